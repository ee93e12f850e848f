"""What docs/results/ publishes is what its databases say. A database there is a finished snapshot:
a reader who opens one (gns query, pandas, optuna-dashboard) sees no trial still RUNNING, and the
file alone is the whole database (no -wal/-shm beside it, journal not WAL), as scripts/publish-db.sh
leaves it. Each study's summary.json and CSVs, which docs/results.md quotes, come back number for
number from its database through today's report code."""

import json
import math
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
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


# Search studies trained before the driver recorded each proposal (schema 6): their reports replay
# TPE from the recorded values, and TPE's floats differ in the last bits between CPUs (results.md).
REPLAYED_ON_THIS_CPU = {"digits-std-search", "digits-v3-search", "mm-search", "mm-search-12"}
REPORTED = sorted(path.parent.name for path in RESULTS.glob("*/summary.json")
                  if path.parent.name not in REPLAYED_ON_THIS_CPU)


def results_database(study: str) -> Path:
    """The database scripts/results-db.sh names for the study."""
    script = RESULTS.parents[1] / "scripts" / "results-db.sh"
    name = subprocess.run(["bash", "-c", f'source "{script}" && results_db "$0"', study],
                          capture_output=True, text=True, check=True).stdout.strip()
    return RESULTS / f"{name}.db"


def numbers_in(summary: Any, path: str = "") -> dict[str, float | None]:
    """Every number, boolean and null of a summary.json, by its path (texts are the numbers' sentences)."""
    if isinstance(summary, dict):
        return {key: value for name, item in summary.items() for key, value in numbers_in(item, f"{path}/{name}").items()}
    if isinstance(summary, list):
        return {key: value for i, item in enumerate(summary) for key, value in numbers_in(item, f"{path}[{i}]").items()}
    return {path: summary} if summary is None or isinstance(summary, (int, float)) else {}


def test_published_reports_are_found():
    assert {"mm-v3-fig4-uniform", "mm-v3-methods", "digits-v3-fig4-uniform", "toy2-v3-fig2"} <= set(REPORTED)


@pytest.mark.parametrize("study", REPORTED)
def test_a_published_summary_recomputes_from_its_database(study, tmp_path):
    """docs/results.md quotes summary.json: every number in it must come back from the committed
    database through today's report code. Fields added to reports since are not in the old file;
    texts (the guards' problems, the sentences) are not numbers and are not compared."""
    from db import open_reader
    from study.report.build import build_report

    build_report(open_reader(f"sqlite:///{results_database(study)}"), study, tmp_path, png=False)
    published = numbers_in(json.loads((RESULTS / study / "summary.json").read_text()))
    recomputed = numbers_in(json.loads((tmp_path / "summary.json").read_text()))
    assert published["/trials_recorded"] > 0
    differing = {path: (value, recomputed.get(path, "absent")) for path, value in published.items()
                 if not same_number(value, recomputed.get(path, "absent"))}
    assert not differing, f"{len(differing)} of {len(published)} numbers differ, e.g. {list(differing.items())[:3]}"
    for table in sorted((RESULTS / study).glob("*.csv")):
        assert_same_table(pd.read_csv(table), pd.read_csv(tmp_path / table.name), table.name)


def assert_same_table(published: pd.DataFrame, recomputed: pd.DataFrame, name: str) -> None:
    """A figure's CSV: the same rows, and the published columns with the same values."""
    assert len(published) == len(recomputed) > 0, name
    for column in published.columns:
        assert column in recomputed.columns, f"{name}: column {column} is gone"
        old, new = published[column], recomputed[column]
        if pd.api.types.is_numeric_dtype(old) and pd.api.types.is_numeric_dtype(new):
            same = np.isclose(old.to_numpy(float), new.to_numpy(float), rtol=1e-9, atol=1e-12, equal_nan=True)
        else:
            same = (old.astype(str) == new.astype(str)).to_numpy()
        assert same.all(), f"{name}: {column} differs in {int((~same).sum())} of {len(old)} rows"


def same_number(published: Any, recomputed: Any) -> bool:
    if published is None or isinstance(published, bool) or isinstance(recomputed, (bool, str)) or recomputed is None:
        return published == recomputed
    return math.isclose(published, recomputed, rel_tol=1e-9, abs_tol=1e-12)
