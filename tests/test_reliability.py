"""Reliability and safety with real processes: one driver per study, exactly once under races,
outages survived, nothing executed from database contents, foreign files left untouched."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import traceback
from collections import Counter
from datetime import datetime
from pathlib import Path

import optuna
import pytest
import yaml
from sqlalchemy import update

from db import ResultsDB
from db.schema import StudyRow
from study.cli import main
from tests.fake_results import fake_result
from tests.helpers import GENEROUS_S, file_digest, free_port, wait_until
from workers.config import TrialConfig

KEYS = 100


def record_every_key(url: str, barrier, errors) -> None:
    try:
        with ResultsDB(url) as writer:
            barrier.wait(timeout=GENEROUS_S)
            for seed in range(KEYS):
                config = TrialConfig(method="equal", seed=seed, steps=20, log_every=10)
                writer.record("race", config.key(), config.to_dict(), fake_result())
    except Exception:
        errors.put(traceback.format_exc())


def test_two_writers_recording_the_same_keys_make_one_optuna_trial_each(database_url):
    with ResultsDB(database_url) as store:
        store.create_study("race", "methods", {"study": "race"})
    context = multiprocessing.get_context("spawn")
    barrier, errors = context.Barrier(2), context.Queue()
    writers = [context.Process(target=record_every_key, args=(database_url, barrier, errors)) for _ in range(2)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=GENEROUS_S)
        assert writer.exitcode == 0, errors.get(timeout=5)
    trials = optuna.load_study(study_name="race", storage=database_url).trials
    assert len(trials) == KEYS
    assert set(Counter(t.user_attrs["key"] for t in trials).values()) == {1}
    with ResultsDB(database_url, create=False) as reader:
        assert len(reader.runs("race")) == KEYS and reader.progress("race") == {"ok": KEYS}


def gated_spec(folder: Path, free: int, runs: int = 4) -> tuple[Path, Path]:
    """A study whose first `free` trials train at once and the rest wait for the returned gate file."""
    tickets, gate = folder / "tickets", folder / "gate"
    tickets.mkdir()
    spec = {
        "study": "held",
        "kind": "random-static",
        "workload": "tests.flaky_workload:gated",
        "workload_options": {"tickets": str(tickets), "gate": str(gate), "free": free},
        "training": {"steps": 30, "log_every": 10},
        "random_static": {"runs": runs, "gradnorm_static": False, "inverse_initial_loss": False},
        "max_concurrent": 2,
    }
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path, gate


def start_driver(spec_path: Path, url: str, stderr=subprocess.PIPE) -> subprocess.Popen:
    command = [sys.executable, "-m", "study", "launch", str(spec_path), "--storage", url]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, text=True, start_new_session=True)


@contextlib.contextmanager
def driver_process(spec_path: Path, url: str, stderr=subprocess.PIPE):
    driver = start_driver(spec_path, url, stderr)
    try:
        yield driver
    finally:
        with contextlib.suppress(ProcessLookupError):  # Ray's helpers share the driver's process group
            os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()


def take_over_while_paused(driver: subprocess.Popen, url: str, monkeypatch) -> ResultsDB:
    """Pause `driver` (SIGSTOP), expire its lease and take it with another writer; that writer, open.

    SQLite keeps the lock of a writer paused inside a transaction (a heartbeat, say), and nobody
    can write until it goes on: then the driver is let go until the database is free, and paused
    again, as often as it takes.
    """
    from db.errors import DatabaseUnavailable

    monkeypatch.setenv("GNS_DB_RETRY_S", "3")  # each try waits this long for the lock
    for _ in range(40):
        os.kill(driver.pid, signal.SIGSTOP)
        other = None
        try:
            other = ResultsDB(url)
            with other.session() as session:
                session.execute(update(StudyRow).where(StudyRow.name == "held").values(lease_expires_at=datetime(2000, 1, 1)))
            other.acquire_lease("held")
            return other
        except DatabaseUnavailable:
            if other is not None:
                other.close()
            os.kill(driver.pid, signal.SIGCONT)
            wait_until(lambda: sqlite_write_lock_free(url), "the driver's write to end")
    raise AssertionError("never found the driver between two writes")


def sqlite_write_lock_free(url: str) -> bool:
    connection = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=0.1)
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.rollback()
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        connection.close()


def running_trials(url: str) -> bool:
    """The study's lease is taken and a trial of it is RUNNING under that driver."""
    try:
        with ResultsDB(url, create=False) as reader:
            return lease_taken(url) and reader.progress("held").get("running", 0) > 0
    except Exception:  # not created yet
        return False


def lease_taken(url: str) -> bool:
    try:
        with ResultsDB(url, create=False) as reader:
            return reader.find_study("held") is not None and reader.lease_holder("held") is not None
    except Exception:  # not created yet
        return False


@pytest.mark.ray
def test_a_second_driver_on_a_running_study_is_refused(capsys, tmp_path, database_url):
    spec_path, gate = gated_spec(tmp_path, free=0)
    with driver_process(spec_path, database_url) as first:
        wait_until(lambda: lease_taken(database_url) or first.poll() is not None, "the first driver's lease")
        assert first.poll() is None, first.stderr.read()
        code = main(["launch", str(spec_path), "--storage", database_url])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1
        assert "study 'held' is already being run by " in err and f"pid {first.pid} since " in err
        gate.touch()
        assert first.wait(timeout=GENEROUS_S) == 0, first.stderr.read()
    trials = optuna.load_study(study_name="held", storage=database_url).trials
    assert len(trials) == 5 and len({t.user_attrs["key"] for t in trials}) == 5


@pytest.mark.slow
@pytest.mark.ray
def test_a_dead_drivers_lease_is_taken_over_and_its_running_trials_rerun(capsys, tmp_path, sqlite_url):
    spec_path, gate = gated_spec(tmp_path, free=0)
    with driver_process(spec_path, sqlite_url) as first:
        wait_until(lambda: lease_taken(sqlite_url) or first.poll() is not None, "the first driver's lease")
        with ResultsDB(sqlite_url, create=False) as reader:
            wait_until(lambda: reader.progress("held").get("running", 0) >= 1, "a trial shown RUNNING")
        os.killpg(first.pid, signal.SIGKILL)
    assert main(["status", "held", "--storage", sqlite_url]) == 0
    headline = capsys.readouterr().out.splitlines()[0]
    assert re.fullmatch(r"held: interrupted, no driver running; 0/5 done, 0 failed; 5 trials to run at the next gns "
                        r"launch \([12] of them in flight when its driver stopped\)", headline), headline
    gate.touch()
    code = main(["launch", str(spec_path), "--storage", sqlite_url])
    err = capsys.readouterr().err
    assert code == 0, err and "re-queued" in err
    with ResultsDB(sqlite_url, create=False) as reader:
        assert reader.progress("held") == {"ok": 5} and reader.lease_holder("held") is None
    trials = optuna.load_study(study_name="held", storage=sqlite_url).trials
    complete = Counter(t.user_attrs["key"] for t in trials if t.state.name == "COMPLETE")
    assert len(complete) == 5 and set(complete.values()) == {1}
    assert {t.user_attrs["status"] for t in trials if t.state.name != "COMPLETE"} <= {"stale"}


@pytest.mark.slow
@pytest.mark.ray
def test_a_driver_that_lost_its_lease_stops_with_one_line(tmp_path, sqlite_url, monkeypatch):
    """Paused past the lease's time (SIGSTOP) while another driver takes the study over."""
    spec_path, gate = gated_spec(tmp_path, free=0)
    with driver_process(spec_path, sqlite_url) as first:
        wait_until(lambda: running_trials(sqlite_url) or first.poll() is not None, "the first driver's running trials")
        other = take_over_while_paused(first, sqlite_url, monkeypatch)
        with other:
            os.kill(first.pid, signal.SIGCONT)
            assert first.wait(timeout=GENEROUS_S) == 2
            err = first.stderr.read()
            other.release_lease("held")
    assert err.strip().endswith("this driver lost its lease (it went silent past 60 s and another driver took the "
                                "study over); it stopped, the trials it recorded are kept"), err
    assert "Traceback" not in err and err.count("gns launch: error") == 1


@pytest.mark.slow
@pytest.mark.ray
def test_sigterm_stops_a_launch_like_ctrl_c_with_its_summary_and_no_ray_left(tmp_path, sqlite_url):
    spec_path, gate = gated_spec(tmp_path, free=2, runs=4)
    with driver_process(spec_path, sqlite_url) as driver:
        wait_until(lambda: len(recorded_keys(sqlite_url)) >= 2 or driver.poll() is not None, "2 trials recorded")
        driver.send_signal(signal.SIGTERM)
        assert driver.wait(timeout=GENEROUS_S) == 143
        err = driver.stderr.read()
        wait_until(lambda: not process_group_alive(driver.pid), "Ray's processes to end with the driver")
    assert "Traceback" not in err and "held: 2/5 recorded" in err, err
    assert "not recorded yet: run the same command again to finish" in err
    gate.touch()
    assert main(["launch", str(spec_path), "--storage", sqlite_url]) == 0
    assert len(recorded_keys(sqlite_url)) == 5


def saved_states(url: str) -> int:
    """How many run states (checkpoints) the database holds."""
    connection = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30)
    try:
        return connection.execute("SELECT count(*) FROM gns_run_states").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0
    finally:
        connection.close()


@pytest.mark.slow
@pytest.mark.ray
def test_a_killed_study_restores_its_runs_from_their_checkpoints(capsys, tmp_path, sqlite_url):
    """Every logged step is a checkpoint here: the driver and its workers are killed (a machine gone) once a
    pack has saved one, and the relaunch trains each run on from its last checkpoint, recording what an
    uninterrupted run records (pack invariance's tolerance) and charging it its whole budget."""
    from study.plan import plan_study
    from study.spec import parse_spec
    from tests.test_pack_invariance import TOLERANCE
    from workers.training import train

    spec = {
        "study": "held", "kind": "random-static", "workload": "toy",
        "workload_options": {"tasks": 2, "train_size": 300, "test_size": 50, "validation_size": 50},
        "training": {"steps": 1500, "log_every": 20},
        "gradnorm": {"alpha": 1.5},
        "random_static": {"runs": 2, "gradnorm_static": False, "inverse_initial_loss": False},
        "resources": {"checkpoint_minutes": 0.0001},
        "max_concurrent": 1,
    }
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    with driver_process(spec_path, sqlite_url) as first:
        wait_until(lambda: saved_states(sqlite_url) > 0 or first.poll() is not None, "a checkpoint saved")
        os.killpg(first.pid, signal.SIGKILL)
    assert len(recorded_keys(sqlite_url)) < 3, "the study ended before it could be killed: nothing to restore"
    code = main(["launch", str(spec_path), "--storage", sqlite_url])
    err = capsys.readouterr().err
    assert code == 0, err
    assert re.search(r"restoring [123] runs? from checkpoints \(step \d+\)", err), err
    with ResultsDB(sqlite_url, create=False) as reader:
        runs = reader.runs("held").set_index("key")
        traces = reader.traces("held")
    assert saved_states(sqlite_url) == 0  # the study is done: its checkpoints are dropped
    assert list(runs["status"]) == ["ok"] * 3 and set(runs["steps_completed"]) == {1500}
    assert runs["resumed_step"].isna().all()  # a restored run is charged its whole budget
    for planned in plan_study(parse_spec(spec)):
        alone = train(planned.config)
        recorded = runs.loc[planned.key]
        expected = [alone.primary_metric, *alone.final_test_losses, *alone.final_weights]
        got = [recorded["value"], *(recorded[f"test_loss.{task}"] for task in alone.task_names),
               *(recorded[f"final_weight.{task}"] for task in alone.task_names)]
        assert got == pytest.approx(expected, rel=TOLERANCE, abs=0)
        steps = traces[traces.key == planned.key].step.drop_duplicates().tolist()
        assert steps == [point.step for point in alone.trace]  # the whole trace, from step 0, once each


@pytest.mark.slow
@pytest.mark.ray
def test_a_full_disk_mid_study_ends_in_one_line_and_the_relaunch_starts_at_once(capsys, tmp_path, sqlite_url,
                                                                                 monkeypatch):
    """SQLite's own 'database or disk is full': once the first trial is recorded, max_page_count caps the
    file one page above its size, so a later record fails as on a full disk."""
    import db.store

    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump({
        "study": "full", "kind": "random-static", "workload_options": {"tasks": 2, "train_size": 200, "test_size": 50},
        "training": {"steps": 20, "log_every": 1},
        "random_static": {"runs": 4, "gradnorm_static": False, "inverse_initial_loss": False},
        "resources": {"pack": 1}}))
    real_begin = db.store._sqlite_begin_immediate

    def begin_on_a_filling_disk(connection):
        tables = connection.exec_driver_sql("SELECT count(*) FROM sqlite_master WHERE name = 'gns_trials'").scalar()
        if tables and connection.exec_driver_sql("SELECT count(*) FROM gns_trials WHERE complete").scalar():
            pages = connection.exec_driver_sql("PRAGMA page_count").scalar()
            connection.exec_driver_sql(f"PRAGMA max_page_count={pages + 1}")
        real_begin(connection)

    monkeypatch.setattr(db.store, "_sqlite_begin_immediate", begin_on_a_filling_disk)
    code = main(["launch", str(spec_path), "--storage", sqlite_url])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.splitlines()[-1].startswith("gns launch: error: storage: cannot write while ")
    assert "database or disk is full" in err.splitlines()[-1] and "Traceback" not in err

    monkeypatch.setattr(db.store, "_sqlite_begin_immediate", real_begin)
    monkeypatch.setattr(db.store, "CLAIM_STALE_S", 10 * GENEROUS_S)  # a half-recorded key must not be waited for
    code = main(["launch", str(spec_path), "--storage", sqlite_url])
    assert code == 0, capsys.readouterr().err
    trials = optuna.load_study(study_name="full", storage=sqlite_url).trials
    complete = Counter(t.user_attrs["key"] for t in trials if t.state.name == "COMPLETE")
    assert len(complete) == 5 and set(complete.values()) == {1}


def recorded_keys(url: str) -> set[str]:
    try:
        with ResultsDB(url, create=False) as reader:
            return reader.recorded_keys("held")
    except Exception:  # not created yet
        return set()


def process_group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


# ---- a PostgreSQL server of the test's own, stopped and restarted mid-study ----------------


def pg_bin(name: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    assert found, f"no PostgreSQL {name} under /usr/lib/postgresql"
    return str(found[-1])


def as_postgres(*command: str) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the postgres user when we are root."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else list(command)


@pytest.fixture
def own_postgres():
    folder = Path(tempfile.mkdtemp(prefix="gns-pg-"))
    data, sockets = folder / "data", folder / "sockets"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        shutil.chown(sockets, "postgres")
    port = free_port()
    subprocess.run(as_postgres(pg_bin("initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"),
                   check=True, capture_output=True)
    options = f"-p {port} -k {sockets} -h 127.0.0.1"

    def start() -> None:
        # -l: the server's output goes to a file, not to pipes that would keep this call waiting
        subprocess.run(as_postgres(pg_bin("pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "server.log"),
                                   "-w", "-t", "120", "start"),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop() -> None:
        subprocess.run(as_postgres(pg_bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"),
                       check=True, capture_output=True)

    start()
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", start, stop
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.postgres
def test_the_driver_survives_a_postgres_outage_mid_study(tmp_path, own_postgres):
    url, start, stop = own_postgres
    spec_path, gate = gated_spec(tmp_path, free=2, runs=5)
    log = tmp_path / "driver.err"
    with log.open("w") as stderr, driver_process(spec_path, url, stderr) as driver:
        def recorded() -> int:
            with contextlib.suppress(Exception):
                with ResultsDB(url, create=False) as reader:
                    return len(reader.recorded_keys("held"))
            return 0

        wait_until(lambda: recorded() >= 2 or driver.poll() is not None, "2 trials recorded")
        assert driver.poll() is None, log.read_text()
        stop()
        gate.touch()  # the waiting trials finish while the database is down
        # the outage the driver must ride out: it meets it on a write, says so, and keeps going
        wait_until(lambda: "database unavailable while" in log.read_text() or driver.poll() is not None,
                   "the driver to meet the outage")
        assert driver.poll() is None, log.read_text()
        start()
        assert driver.wait(timeout=GENEROUS_S) == 0, log.read_text()
    with ResultsDB(url, create=False) as reader:
        assert reader.progress("held") == {"ok": 6}
    trials = optuna.load_study(study_name="held", storage=url).trials
    complete = Counter(t.user_attrs["key"] for t in trials if t.state.name == "COMPLETE")
    assert len(complete) == 6 and set(complete.values()) == {1}


@pytest.mark.slow
@pytest.mark.postgres
def test_a_trial_created_as_the_server_goes_down_is_not_left_running(own_postgres, monkeypatch):
    """The Optuna trial lands, then PostgreSQL stops before the driver notes it: the retried start
    must reuse it, so the key ends with one Optuna trial, COMPLETE (not a RUNNING orphan beside it)."""
    url, start, stop = own_postgres
    monkeypatch.setenv("GNS_DB_RETRY_S", str(GENEROUS_S))
    config = TrialConfig(method="equal")
    restarted = threading.Event()
    with ResultsDB(url) as results:
        results.create_study("s", "methods", {"study": "s"})
        real_create = results.optuna.create_new_trial

        def create_then_outage(*args, **kwargs):
            made = real_create(*args, **kwargs)
            if not restarting.is_set():  # once: the trial is in the database, what follows it is not
                restarting.set()
                stop()
                threading.Thread(target=lambda: (start(), restarted.set())).start()
            return made

        restarting = threading.Event()
        monkeypatch.setattr(results.optuna, "create_new_trial", create_then_outage)
        results.start_trial("s", config.key(), config.to_dict())
        assert restarted.wait(timeout=GENEROUS_S)
        results.record("s", config.key(), config.to_dict(), fake_result())
    trials = optuna.load_study(study_name="s", storage=url).trials
    assert [(t.user_attrs["key"], t.state.name) for t in trials] == [(config.key(), "COMPLETE")]


# ---- nothing from the database is imported or run ------------------------------------------


def test_read_commands_never_import_a_workload_named_in_the_database(capsys, tmp_path, sqlite_url, monkeypatch):
    marker = tmp_path / "imported"
    module = tmp_path / "evil_workload.py"
    module.write_text(f"from pathlib import Path\nPath({str(marker)!r}).touch()\ndef build(options):\n    Path({str(marker)!r}).touch()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = {"study": "evil", "kind": "methods", "workload": "evil_workload:build", "methods": {"methods": ["equal"]}}
    with ResultsDB(sqlite_url) as store:  # what a hostile database holds: a spec naming a module
        store.create_study("evil", "methods", spec)
        config = TrialConfig(workload="evil_workload:build", method="equal")
        store.record("evil", config.key(), config.to_dict(), fake_result())
    for argv in (["status", "evil"], ["studies"], ["query", "evil"], ["query", "evil", "--traces"],
                 ["report", "evil", "--no-png", "--out", str(tmp_path / "report")]):
        assert main([*argv, "--storage", sqlite_url]) == 0, capsys.readouterr().err
    capsys.readouterr()
    assert not marker.exists()
    assert "evil_workload" not in sys.modules


# ---- files that are not ours, and read-only databases ----------------------------------------


@pytest.fixture
def foreign_files(tmp_path):
    text_file = tmp_path / "notes.db"
    text_file.write_text("not a database\n" * 10)
    other_app = tmp_path / "other.db"
    connection = sqlite3.connect(other_app)
    connection.execute("create table customers (id integer primary key, name text)")
    connection.execute("insert into customers (name) values ('ada')")
    connection.commit()
    connection.close()
    return {"text": text_file, "other-app": other_app}


@pytest.mark.parametrize("which", ["text", "other-app"])
@pytest.mark.parametrize(
    "argv",
    [["studies"], ["query", "s"], ["status", "s"], ["delete", "s", "--yes"], ["report", "s", "--no-png"],
     ["train", "--steps", "2", "--study", "s"]],
    ids=lambda argv: argv[0],
)
def test_foreign_files_are_refused_in_one_line_and_left_byte_for_byte(capsys, tmp_path, foreign_files, which, argv):
    path = foreign_files[which]
    before = file_digest(path)
    code = main([*argv, "--storage", f"sqlite:///{path}"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "left unchanged" in err
    assert file_digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.db", "other.db"]  # no journal, no report


@pytest.mark.ray
def test_launch_on_another_applications_database_adds_nothing(capsys, tmp_path, foreign_files):
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump({"study": "s", "kind": "methods", "methods": {"methods": ["equal"]},
                                         "workload_options": {"train_size": 200, "test_size": 50},
                                         "training": {"steps": 5}}))
    before = file_digest(foreign_files["other-app"])
    assert main(["launch", str(spec_path), "--storage", f"sqlite:///{foreign_files['other-app']}"]) == 2
    assert "another application's database (tables customers); left unchanged" in capsys.readouterr().err
    assert file_digest(foreign_files["other-app"]) == before


@contextlib.contextmanager
def read_only_folder(folder: Path):
    """`folder` read-only: a read-only bind mount as root (root ignores permissions), else chmod."""
    if os.geteuid() == 0:
        subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)
        try:
            yield
        finally:
            subprocess.run(["umount", str(folder)], check=True)
    else:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)


def test_a_results_database_on_a_read_only_filesystem_can_be_read(capsys, tmp_path):
    folder = tmp_path / "shared"
    folder.mkdir()
    url = f"sqlite:///{folder / 'gns.db'}"
    with ResultsDB(url) as store:
        store.create_study("s", "methods", {"study": "s"})
        config = TrialConfig(method="equal")
        store.record("s", config.key(), config.to_dict(), fake_result())
    before = file_digest(folder / "gns.db")
    with read_only_folder(folder):
        with pytest.raises(OSError):
            (folder / "probe").touch()  # it really is read-only
        assert main(["query", "s", "--storage", url, "--format", "csv"]) == 0
        assert config.key() in capsys.readouterr().out
        assert main(["status", "s", "--storage", url]) == 0
        assert "1/1 done" in capsys.readouterr().out
    assert file_digest(folder / "gns.db") == before
