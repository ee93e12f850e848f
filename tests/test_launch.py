"""`gns launch` end to end on a real local Ray: recording, retries, resume, exactly once."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
import yaml

from db import ResultsDB
from study.cli import main
from study.plan import plan_study
from study.spec import parse_spec

pytestmark = pytest.mark.ray

TINY_TOY = {"tasks": 2, "train_size": 400, "test_size": 100}


def write_spec(folder: Path, name: str = "spec.yaml", **fields) -> Path:
    spec = {
        "study": "tiny",
        "kind": "random-static",
        "workload": "toy",
        "workload_options": TINY_TOY,
        "training": {"steps": 40, "log_every": 20},
        "random_static": {"runs": 3},
    }
    spec.update(fields)
    path = folder / name
    path.write_text(yaml.safe_dump(spec))
    return path


def launch(capsys, spec_path: Path, url: str, *extra: str) -> tuple[int, str]:
    code = main(["launch", str(spec_path), "--storage", url, *extra])
    return code, capsys.readouterr().err


def optuna_keys(url: str, study: str) -> Counter:
    return Counter(t.user_attrs["key"] for t in optuna.load_study(study_name=study, storage=url).trials)


def test_random_static_study_end_to_end(capsys, tmp_path, database_url):
    spec_path = write_spec(tmp_path)
    code, err = launch(capsys, spec_path, database_url)
    assert code == 0, err
    assert "tiny: 5/5 recorded (5 now, 0 failed)" in err

    planned = plan_study(parse_spec(yaml.safe_load(spec_path.read_text())))
    with ResultsDB(database_url, create=False) as results:
        runs = results.runs("tiny").set_index("key")
        assert set(runs.index) == {p.key for p in planned}
        assert Counter(runs["method"]) == {"static": 3, "gradnorm": 1, "gradnorm-static": 1}
        assert (runs["state"] == "COMPLETE").all()
        # every run starts from the same init and data: the same L_i(0)
        assert runs["initial_loss.task1"].nunique() == 1
        # GradNorm-Static retrained with the reference's time-averaged weights
        reference = runs[runs.method == "gradnorm"].iloc[0]
        retrained = runs[runs.method == "gradnorm-static"].iloc[0]
        assert retrained["weights_from"] == reference.name
        assert retrained["mean_w.task0"] == pytest.approx(reference["mean_w.task0"], rel=1e-6)
        assert len(results.traces("tiny")) == 5 * 3 * 2  # runs x log points (0, 20, 40) x tasks
        info = results.find_study("tiny")
        assert info.kind == "random-static" and info.spec["random_static"]["runs"] == 3
    assert set(optuna_keys(database_url, "tiny").values()) == {1}


def test_relaunching_a_finished_study_runs_nothing(capsys, tmp_path, sqlite_url):
    spec_path = write_spec(tmp_path, random_static={"runs": 2, "gradnorm_static": False})
    assert launch(capsys, spec_path, sqlite_url)[0] == 0
    code, err = launch(capsys, spec_path, sqlite_url)
    assert code == 0
    assert "3 planned, 3 already recorded, 0 to run" in err and "(0 now, 0 failed)" in err
    assert sum(optuna_keys(sqlite_url, "tiny").values()) == 3


def test_a_trial_that_crashes_once_is_retried_and_recorded_once(capsys, tmp_path, sqlite_url):
    marker = tmp_path / "crashed"
    spec_path = write_spec(
        tmp_path,
        kind="methods",
        workload="tests.flaky_workload:crash_once",
        workload_options={"marker": str(marker), "driver_pid": os.getpid()},
        methods={"methods": ["equal"]},
        random_static=None,
        retries=2,
    )
    code, err = launch(capsys, spec_path, sqlite_url)
    assert code == 0, err
    assert marker.exists()  # it did crash
    with ResultsDB(sqlite_url, create=False) as results:
        runs = results.runs("tiny")
    assert len(runs) == 1 and runs.iloc[0]["state"] == "COMPLETE"
    assert sum(optuna_keys(sqlite_url, "tiny").values()) == 1


def test_a_trial_that_always_crashes_is_recorded_once_as_failed(capsys, tmp_path, sqlite_url):
    spec_path = write_spec(
        tmp_path,
        kind="methods",
        workload="tests.flaky_workload:always_crash",
        workload_options={"driver_pid": os.getpid()},
        methods={"methods": ["equal", "uncertainty"]},
        random_static=None,
        retries=1,
    )
    code, err = launch(capsys, spec_path, sqlite_url)
    assert code == 0, err
    assert "(2 now, 2 failed)" in err
    with ResultsDB(sqlite_url, create=False) as results:
        runs = results.runs("tiny")
    assert set(runs["status"]) == {"crashed"}
    assert all("always crashes" in reason for reason in runs["failure_reason"])
    # a relaunch does not retry what is recorded as failed
    code, err = launch(capsys, spec_path, sqlite_url)
    assert "0 to run" in err and sum(optuna_keys(sqlite_url, "tiny").values()) == 2


def test_diverged_trials_are_recorded_as_failed_and_the_study_goes_on(capsys, tmp_path, sqlite_url):
    spec_path = write_spec(
        tmp_path,
        kind="alpha-sweep",
        random_static=None,
        alpha_sweep={"alphas": [0.5]},
        training={"steps": 40, "log_every": 20, "lr": 1e8},
    )
    code, err = launch(capsys, spec_path, sqlite_url)
    assert code == 0, err
    with ResultsDB(sqlite_url, create=False) as results:
        runs = results.runs("tiny")
    assert len(runs) == 2 and set(runs["status"]) == {"diverged"}
    assert runs["failure_reason"].str.contains("non-finite").all()


def test_gradnorm_static_fails_when_its_reference_diverged(capsys, tmp_path, sqlite_url):
    spec_path = write_spec(
        tmp_path,
        kind="methods",
        random_static=None,
        methods={"methods": ["gradnorm", "gradnorm-static"]},
        training={"steps": 40, "log_every": 20, "lr": 1e8},
    )
    assert launch(capsys, spec_path, sqlite_url)[0] == 0
    with ResultsDB(sqlite_url, create=False) as results:
        runs = results.runs("tiny").set_index("method")
    assert runs.loc["gradnorm", "status"] == "diverged"
    assert runs.loc["gradnorm-static", "status"] == "crashed"
    assert "did not finish" in runs.loc["gradnorm-static", "failure_reason"]


def test_a_different_spec_under_the_same_name_is_refused_unless_force_new(capsys, tmp_path, sqlite_url):
    first = write_spec(tmp_path, "a.yaml", random_static={"runs": 1, "gradnorm_static": False})
    second = write_spec(tmp_path, "b.yaml", random_static={"runs": 2, "gradnorm_static": False})
    assert launch(capsys, first, sqlite_url)[0] == 0
    code, err = launch(capsys, second, sqlite_url)
    assert code == 2 and "already exists" in err and "--force-new" in err and err.count("\n") == 1
    with ResultsDB(sqlite_url, create=False) as results:
        assert len(results.runs("tiny")) == 2  # untouched
    # execution settings are not part of the plan: more concurrency resumes the same study
    same_plan = write_spec(tmp_path, "c.yaml", random_static={"runs": 1, "gradnorm_static": False}, max_concurrent=1, retries=0)
    assert launch(capsys, same_plan, sqlite_url)[0] == 0
    code, err = launch(capsys, second, sqlite_url, "--force-new")
    assert code == 0 and "deleting the earlier study" in err
    with ResultsDB(sqlite_url, create=False) as results:
        assert len(results.runs("tiny")) == 3
    assert sum(optuna_keys(sqlite_url, "tiny").values()) == 3


def test_status_reports_progress_from_the_database(capsys, tmp_path, sqlite_url):
    spec_path = write_spec(tmp_path, random_static={"runs": 2, "gradnorm_static": False})
    assert launch(capsys, spec_path, sqlite_url)[0] == 0
    assert main(["status", "tiny", "--storage", sqlite_url]) == 0
    out = capsys.readouterr().out
    assert out.startswith("tiny: 3/3 done, 0 running, 0 failed, 0 waiting, best ")
    assert "ok: 3" in out


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "killed"])
def test_an_interrupted_study_relaunched_ends_with_every_key_exactly_once(capsys, tmp_path, sqlite_url, stop):
    spec_path = write_spec(
        tmp_path,
        random_static={"runs": 10, "gradnorm_static": True},
        training={"steps": 300, "log_every": 100},
        max_concurrent=2,
    )
    command = [sys.executable, "-m", "study", "launch", str(spec_path), "--storage", sqlite_url]
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        recorded = 0
        while recorded < 3 and time.monotonic() < deadline and driver.poll() is None:
            time.sleep(0.2)
            try:
                with ResultsDB(sqlite_url, create=False) as results:
                    recorded = len(results.recorded_keys("tiny"))
            except Exception:  # the driver has not created the database yet
                recorded = 0
        assert driver.poll() is None, driver.stderr.read().decode()
        driver.send_signal(stop)
        driver.wait(timeout=120)
    finally:
        # Ray's helper processes left by a killed driver share its process group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    with ResultsDB(sqlite_url, create=False) as results:
        part_way = len(results.recorded_keys("tiny"))
    assert 3 <= part_way < 12

    code, err = launch(capsys, spec_path, sqlite_url)
    assert code == 0, err
    planned = {p.key for p in plan_study(parse_spec(yaml.safe_load(spec_path.read_text())))}
    counts = optuna_keys(sqlite_url, "tiny")
    assert set(counts) == planned and set(counts.values()) == {1}
    with ResultsDB(sqlite_url, create=False) as results:
        assert len(results.runs("tiny")) == 12
        assert (results.runs("tiny")["state"] == "COMPLETE").all()
