"""Setting a results database up: in one step a crash cannot leave half-done, safe with several
writers at once, and a killed writer's unfinished transaction rolled back by the next writer."""

import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import traceback
from pathlib import Path

import pytest
import yaml

from db import ResultsDB
from study.cli import main
from tests.helpers import GENEROUS_S, file_digest, wait_until

WRITERS = 6


def wal_header(path: Path) -> bool:
    """SQLite's file format bytes 18 and 19 are 2 for a database in WAL mode."""
    head = path.read_bytes()[:20]
    return head[18] == 2 and head[19] == 2


def test_a_new_sqlite_database_is_made_in_wal_mode_in_one_step(tmp_path):
    path = tmp_path / "fresh.db"
    ResultsDB(str(path)).close()
    assert wal_header(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh.db"]  # nothing left from the aside copy


def open_and_create(url: str, index: int, barrier, errors) -> None:
    try:
        barrier.wait(timeout=GENEROUS_S)
        with ResultsDB(url) as writer:
            writer.create_study(f"study-{index}", "methods", {"study": f"study-{index}"})
    except Exception:
        errors.put(traceback.format_exc())


def test_writers_setting_up_one_fresh_database_at_once_all_succeed(database_url):
    context = multiprocessing.get_context("spawn")
    barrier, errors = context.Barrier(WRITERS), context.Queue()
    writers = [context.Process(target=open_and_create, args=(database_url, i, barrier, errors)) for i in range(WRITERS)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=GENEROUS_S)
    failures = [errors.get(timeout=5) for writer in writers if writer.exitcode != 0]
    assert not failures, failures[0]
    with ResultsDB(database_url, create=False) as reader:
        assert sorted(reader.studies()["study"]) == [f"study-{i}" for i in range(WRITERS)]


KILLED_MID_TRANSACTION = textwrap.dedent("""
    import os, sqlite3, sys
    connection = sqlite3.connect(sys.argv[1])
    connection.execute("PRAGMA cache_size=5")  # spill changed pages into the file before the commit
    connection.execute("BEGIN")
    connection.executemany("INSERT INTO scratch VALUES (?)", [(str(i) * 20,) for i in range(50000)])
    os._exit(0)  # killed before COMMIT: a hot journal stays beside the file
""")


def test_a_killed_writers_hot_journal_is_named_to_readers_and_rolled_back_by_the_next_writer(capsys, tmp_path):
    path = tmp_path / "results.db"
    with ResultsDB(str(path)) as writer:
        writer.create_study("kept", "methods", {"study": "kept"})
    with sqlite3.connect(path) as connection:  # an older gns, or another SQLite tool, in rollback-journal mode
        connection.execute("PRAGMA journal_mode=DELETE")
        connection.execute("CREATE TABLE scratch (x TEXT)")
    subprocess.run([sys.executable, "-c", KILLED_MID_TRANSACTION, str(path)], check=True, timeout=GENEROUS_S)
    assert Path(f"{path}-journal").stat().st_size > 0

    before = file_digest(path)
    assert main(["studies", "--storage", str(path)]) == 2
    err = capsys.readouterr().err
    assert "holds a transaction that a stopped writer left unfinished (results.db-journal)" in err
    assert err.count("\n") == 1 and file_digest(path) == before

    ResultsDB(str(path)).close()  # a writer: SQLite rolls the journal back at its first open
    assert not Path(f"{path}-journal").exists()
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        assert connection.execute("SELECT count(*) FROM scratch").fetchone() == (0,)
    assert main(["studies", "--storage", str(path), "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("kept,methods,")


@pytest.mark.slow
@pytest.mark.ray
def test_a_driver_killed_as_it_creates_the_database_leaves_one_that_works(capsys, tmp_path):
    spec = {"study": "early", "kind": "methods", "methods": {"methods": ["equal"], "inverse_initial_loss": False},
            "training": {"steps": 4},
            "workload_options": {"train_size": 200, "test_size": 50}}
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    path = tmp_path / "early.db"
    driver = subprocess.Popen([sys.executable, "-m", "study", "launch", str(spec_path), "--storage", str(path)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_until(lambda: path.exists() or driver.poll() is not None, "the driver to create the database", every_s=0.005)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    assert path.exists() and wal_header(path)  # whenever it died, the file it made is a whole database
    assert main(["studies", "--storage", str(path)]) == 0
    capsys.readouterr()
    assert main(["launch", str(spec_path), "--storage", str(path)]) == 0
    assert "early: 1/1 recorded" in capsys.readouterr().err
