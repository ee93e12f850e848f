"""The databases published under docs/results/ are finished snapshots: a reader who opens one
(gns query, pandas, optuna-dashboard) must see no trial still RUNNING, and the file alone must be
the whole database (no -wal/-shm beside it, journal not WAL), as scripts/publish-db.sh leaves it."""

import sqlite3
from pathlib import Path

import pytest

RESULTS = Path(__file__).parents[1] / "docs" / "results"
PUBLISHED = sorted(RESULTS.glob("*.db"))


def test_results_are_published():
    assert len(PUBLISHED) >= 5, RESULTS


@pytest.mark.parametrize("path", PUBLISHED, ids=lambda path: path.name)
def test_a_published_database_is_one_finished_file(path):
    assert not path.with_name(path.name + "-wal").exists(), "a -wal file holds commits the .db lacks"
    assert not path.with_name(path.name + "-shm").exists()
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        journal = connection.execute("PRAGMA journal_mode").fetchone()[0]
        running = connection.execute("SELECT count(*) FROM trials WHERE state = 'RUNNING'").fetchone()[0]
        finished = connection.execute("SELECT count(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
    finally:
        connection.close()
    assert journal.lower() != "wal", "publish with scripts/publish-db.sh (journal DELETE)"
    assert running == 0, f"{running} trials RUNNING: publish a study only when nothing is in flight"
    assert finished > 0
