"""`gns launch` end to end on a real local Ray: recording, retries, resume, exactly once."""

import contextlib
import math
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml

from db import DatabaseInputError, ResultsDB
from study.cli import main
from study.plan import plan_study
from study.report.search_stats import SearchStats
from study.spec import parse_spec
from tests.fake_results import fake_result
from tests.helpers import GENEROUS_S, file_digest, wait_until

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
    # these tests are about launching; the trivial baseline is planned only where one asks for it
    section = spec["kind"].replace("-", "_")
    if section != "alpha_sweep":  # the kinds that train it
        spec[section] = {"inverse_initial_loss": False, **(spec.get(section) or {})}
    path = folder / name
    path.write_text(yaml.safe_dump(spec))
    return path


def launch(capsys, spec_path: Path, url: str, *extra: str) -> tuple[int, str]:
    code = main(["launch", str(spec_path), "--storage", url, *extra])
    return code, capsys.readouterr().err


def optuna_keys(url: str, study: str) -> Counter:
    return Counter(t.user_attrs["key"] for t in optuna.load_study(study_name=study, storage=url).trials)


def test_random_static_study_end_to_end(capsys, tmp_path, database_url):
    spec_path = write_spec(tmp_path, random_static={"runs": 3, "inverse_initial_loss": True})
    code, err = launch(capsys, spec_path, database_url)
    assert code == 0, err
    assert "tiny: 6/6 recorded (6 now, 0 failed)" in err

    planned = plan_study(parse_spec(yaml.safe_load(spec_path.read_text())))
    with ResultsDB(database_url, create=False) as results:
        runs = results.runs("tiny").set_index("key")
        assert set(runs.index) == {p.key for p in planned}
        assert Counter(runs["method"]) == {"static": 3, "gradnorm": 1, "gradnorm-static": 1, "inverse-initial-loss": 1}
        # the trivial baseline trained with w ∝ 1/L_i(0) of its own first batch, summing to T = 2
        inverse = runs[runs.method == "inverse-initial-loss"].iloc[0]
        shares = 1 / inverse["initial_loss.task0"], 1 / inverse["initial_loss.task1"]
        assert inverse["final_weight.task0"] == pytest.approx(2 * shares[0] / sum(shares), rel=1e-5)
        assert (runs["state"] == "COMPLETE").all()
        # validation numbers beside the test ones, for choosing without looking at the test set
        assert runs["validation_value"].notna().all() and (runs["validation_value"] != runs["value"]).all()
        assert runs["validation_loss.task1"].notna().all() and runs["validation_mse.task1"].notna().all()
        # every run starts from the same init and data: the same L_i(0)
        assert runs["initial_loss.task1"].nunique() == 1
        # GradNorm-Static retrained with the reference's time-averaged weights
        reference = runs[runs.method == "gradnorm"].iloc[0]
        retrained = runs[runs.method == "gradnorm-static"].iloc[0]
        assert retrained["weights_from"] == reference.name
        assert retrained["time_averaged_weight.task0"] == pytest.approx(reference["time_averaged_weight.task0"], rel=1e-6)
        assert len(results.traces("tiny")) == 6 * 3 * 2  # runs x log points (0, 20, 40) x tasks
        # two Tune trials on 2 CPUs: the 3 static runs and the baseline trained as two packs of 2 (each run
        # its own key and record; a pack's runs share its wall time)
        static_times = runs.loc[runs.method == "static", "wall_time_s"].round(9)
        assert sorted(static_times.value_counts().tolist()) == [1, 2]
        info = results.find_study("tiny")
        assert info.kind == "random-static" and info.spec["random_static"]["runs"] == 3
    assert set(optuna_keys(database_url, "tiny").values()) == {1}


def test_relaunching_a_finished_study_runs_nothing_and_starts_no_ray(capsys, tmp_path, sqlite_url, monkeypatch):
    spec_path = write_spec(tmp_path, random_static={"runs": 2, "gradnorm_static": False})
    assert launch(capsys, spec_path, sqlite_url)[0] == 0
    before = file_digest(Path(sqlite_url.removeprefix("sqlite:///")))

    def no_ray(address, code=()):
        raise AssertionError("a finished study started Ray")

    monkeypatch.setattr("study.driver.start_ray", no_ray)
    code, err = launch(capsys, spec_path, sqlite_url)
    assert code == 0, err
    assert "all 3 planned trials are recorded; nothing to run" in err and "(0 now, 0 failed)" in err
    assert sum(optuna_keys(sqlite_url, "tiny").values()) == 3
    assert file_digest(Path(sqlite_url.removeprefix("sqlite:///"))) == before  # answered read-only


def test_a_trial_that_crashes_once_is_retried_and_recorded_once(capsys, tmp_path, sqlite_url):
    marker = tmp_path / "crashed"
    spec_path = write_spec(
        tmp_path,
        kind="methods",
        workload="tests.flaky_workload:crash_once",
        workload_options={"marker": str(marker)},
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


@pytest.mark.slow
def test_a_trial_that_always_crashes_is_recorded_once_as_failed(capsys, tmp_path, sqlite_url):
    spec_path = write_spec(
        tmp_path,
        kind="methods",
        workload="tests.flaky_workload:always_crash",
        workload_options={},
        methods={"methods": ["equal", "uncertainty"]},
        random_static=None,
        retries=1,
    )
    code, err = launch(capsys, spec_path, sqlite_url)
    assert code == 3, err  # every trial recorded, some failed
    assert "(2 now, 2 failed)" in err
    assert "2 trials failed (2 crashed), e.g. crashed: " in err and "this workload always crashes" in err.splitlines()[-1]
    assert "--retry-failed" in err
    with ResultsDB(sqlite_url, create=False) as results:
        runs = results.runs("tiny")
    assert set(runs["status"]) == {"crashed"}
    assert all("always crashes" in reason for reason in runs["failure_reason"])
    # a relaunch does not retry what is recorded as failed, and still says so
    code, err = launch(capsys, spec_path, sqlite_url)
    assert code == 3 and "nothing to run" in err and sum(optuna_keys(sqlite_url, "tiny").values()) == 2
    # --retry-failed runs them again, keeping the failed attempts as Optuna history
    code, err = launch(capsys, spec_path, sqlite_url, "--retry-failed")
    assert code == 3 and "(2 re-queued)" in err
    attempts = Counter(
        (t.user_attrs["key"], t.user_attrs["attempt"]) for t in optuna.load_study(study_name="tiny", storage=sqlite_url).trials
    )
    assert len(attempts) == 4 and set(attempts.values()) == {1}
    with ResultsDB(sqlite_url, create=False) as results:
        assert len(results.runs("tiny")) == 2


def test_diverged_trials_are_recorded_as_failed_and_the_study_goes_on(capsys, tmp_path, sqlite_url):
    spec_path = write_spec(
        tmp_path,
        kind="alpha-sweep",
        random_static=None,
        alpha_sweep={"alphas": [0.5]},
        training={"steps": 40, "log_every": 20, "lr": 1e8},
    )
    code, err = launch(capsys, spec_path, sqlite_url)
    assert code == 3, err
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
    assert launch(capsys, spec_path, sqlite_url)[0] == 3
    with ResultsDB(sqlite_url, create=False) as results:
        runs = results.runs("tiny").set_index("method")
    assert runs.loc["gradnorm", "status"] == "diverged"
    assert runs.loc["gradnorm-static", "status"] == "crashed"
    assert "did not finish" in runs.loc["gradnorm-static", "failure_reason"]


@pytest.mark.slow
def test_a_different_spec_under_the_same_name_is_refused_unless_force_new(capsys, tmp_path, sqlite_url):
    first = write_spec(tmp_path, "a.yaml", random_static={"runs": 1, "gradnorm_static": False})
    second = write_spec(tmp_path, "b.yaml", random_static={"runs": 2, "gradnorm_static": False})
    assert launch(capsys, first, sqlite_url)[0] == 0
    database = Path(sqlite_url.removeprefix("sqlite:///"))
    before = file_digest(database)
    code, err = launch(capsys, second, sqlite_url)
    assert code == 2 and "already exists" in err and "--force-new" in err and err.count("\n") == 1
    assert file_digest(database) == before  # refused from a read-only look: no Ray, no write
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
    assert out.startswith("tiny: complete; 3/3 done, 0 failed, best ")
    assert "ok: 3" in out
    from study.cli.status import compute_line

    with ResultsDB(sqlite_url, create=False) as results:
        wall_times = results.runs("tiny")["wall_time_s"].tolist()
    assert min(wall_times) > 0 and f"  {compute_line(wall_times)}\n" in out  # the 3 trials' times, summed


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "killed"])
def test_an_interrupted_study_relaunched_ends_with_every_key_exactly_once(capsys, tmp_path, sqlite_url, stop):
    # The first 3 trials train; the rest wait at a gate that opens only after the driver is stopped,
    # so the driver is stopped with exactly 3 recorded and others in flight, however fast the machine.
    tickets, gate = tmp_path / "tickets", tmp_path / "gate"
    tickets.mkdir()
    spec_path = write_spec(
        tmp_path,
        workload="tests.flaky_workload:gated",
        workload_options={"tickets": str(tickets), "gate": str(gate), "free": 3},
        random_static={"runs": 10, "gradnorm_static": True},
        training={"steps": 30, "log_every": 10},
        max_concurrent=2,
    )
    command = [sys.executable, "-m", "study", "launch", str(spec_path), "--storage", sqlite_url]
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)

    def recorded_count() -> int:
        try:
            with ResultsDB(sqlite_url, create=False) as results:
                return len(results.recorded_keys("tiny"))
        except DatabaseInputError:  # the driver has not created the database yet
            return 0

    try:
        wait_until(lambda: recorded_count() >= 3 or driver.poll() is not None, "3 trials recorded")
        assert driver.poll() is None, driver.stderr.read().decode()
        wait_until(lambda: len(list(tickets.iterdir())) >= 4, "a trial waiting at the gate")
        driver.send_signal(stop)
        driver.wait(timeout=GENEROUS_S)
    finally:
        # Ray's helper processes left by a killed driver share its process group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    assert recorded_count() == 3

    gate.touch()
    code, err = launch(capsys, spec_path, sqlite_url)
    assert code == 0, err
    planned = {p.key for p in plan_study(parse_spec(yaml.safe_load(spec_path.read_text())))}
    with ResultsDB(sqlite_url, create=False) as results:
        runs = results.runs("tiny")
        assert set(runs["key"]) == planned and len(runs) == 12
        assert (runs["state"] == "COMPLETE").all()
        assert results.progress("tiny") == {"ok": 12}  # nothing left running
    # one COMPLETE Optuna trial per key; a trial that was RUNNING when the driver died stays as FAIL history
    trials = optuna.load_study(study_name="tiny", storage=sqlite_url).trials
    complete = Counter(t.user_attrs["key"] for t in trials if t.state.name == "COMPLETE")
    assert set(complete) == planned and set(complete.values()) == {1}
    assert all(t.user_attrs["status"] == "stale" for t in trials if t.state.name != "COMPLETE")


def test_damaged_recorded_proposals_stop_a_relaunch_before_ray_and_the_report_says_why(capsys, tmp_path, sqlite_url):
    """The database is untrusted: draws that do not fit the search's space are named, exit 2, nothing run."""
    spec_text = {"study": "tiny", "kind": "search", "workload": "toy", "workload_options": TINY_TOY,
                 "training": {"steps": 30, "log_every": 10}, "search": {"budget_steps": 90, "searchers": ["random"]}}
    spec_path = tmp_path / "search.yaml"
    spec_path.write_text(yaml.safe_dump(spec_text))
    spec = parse_spec(spec_text)
    with ResultsDB(sqlite_url) as results:
        results.create_study("tiny", "search", spec.to_dict(), planned_trials=6)
        gradnorm = next(p for p in plan_study(spec) if p.config.method == "gradnorm")
        results.record("tiny", gradnorm.key, gradnorm.config.to_dict(), fake_result())
        # random search's 3 proposals at seed 0, the second with a weight outside [smallest, 1]
        results.record_proposals("tiny", [(0, "random", 0, (0.5, 0.5)), (0, "random", 1, (0.5, 7.0)),
                                          (0, "random", 2, (0.5, 0.5))])
    code, err = launch(capsys, spec_path, sqlite_url)
    assert code == 2 and "study 'tiny': recorded proposals: random #1 at seed 0 is not 2 numbers in [0.001, 1]" in err
    assert "starting a local Ray" not in err
    from study.report.build import build_report

    with ResultsDB(sqlite_url, create=False) as results:
        report = build_report(results, "tiny", tmp_path / "report", png=False)
    assert any(line.startswith("The search cannot be replayed: recorded proposals: random #1") for line in report.summary["problems"])


@pytest.mark.slow
def test_search_study_runs_in_rounds_once_each_and_the_report_replays_it(capsys, tmp_path, sqlite_url, monkeypatch):
    """Random, TPE and halving at 90 steps of budget (3 runs of 30): rounds planned from recorded results."""
    import json

    spec_text = {"study": "tiny", "kind": "search", "workload": "toy", "workload_options": TINY_TOY,
                 "training": {"steps": 30, "log_every": 10},
                 "search": {"budget_steps": 90, "batch": 1, "startup": 1, "rungs": 2}}
    spec_path = tmp_path / "search.yaml"
    spec_path.write_text(yaml.safe_dump(spec_text))
    spec = parse_spec(spec_text)
    # per seed: GradNorm, 3 random, 3 tpe, halving rungs of 10 and 30 steps, its promoted run continued
    # from its rung's saved state (5 * 10 + 1 * 20 = 70 <= 90; 6 runs would pay 100), GradNorm-Static
    # and the trivial baseline
    code, err = launch(capsys, spec_path, sqlite_url)
    assert code == 0, err
    assert "tiny: 15/15 recorded (15 now, 0 failed)" in err

    from study.report.build import build_report, search_order

    with ResultsDB(sqlite_url, create=False) as results:
        runs = results.runs("tiny")
        assert Counter(runs["steps"]) == {30: 1 + 3 + 3 + 1 + 1 + 1, 10: 5}
        # every proposal's draws were recorded before it trained: 3 random, 3 TPE, halving's 5 and 1
        proposals = results.proposals("tiny")
        assert Counter(searcher for _, searcher, _ in proposals) == {"random": 3, "tpe": 3, "halving": 6}
        # the report replays the launch's search from them: the same keys, in the order proposed
        order = search_order(spec, runs, proposals)
        assert set(order["key"]) == set(runs.loc[runs["method"] == "static", "key"])
        halving = order[order["searcher"] == "halving"].merge(runs, on="key")
        rung0 = halving[halving["steps_x"] == 10]
        promoted = halving[halving["steps_x"] == 30].iloc[0]
        best = rung0.loc[rung0["validation_value"].idxmin()]
        assert promoted["time_averaged_weight.task0"] == pytest.approx(best["time_averaged_weight.task0"])
        # it went on from step 10: its trace begins with its rung's, bit for bit, and goes on to 30
        assert promoted["resumed_step"] == 10 and rung0["resumed_step"].isna().all()
        traces = results.traces("tiny", keys=[best["key"], promoted["key"]])
        before = traces[traces["key"] == best["key"]].drop(columns=["key", "trial_id"], errors="ignore")
        after = traces[traces["key"] == promoted["key"]].drop(columns=["key", "trial_id"], errors="ignore")
        assert sorted(after["step"].unique()) == [0, 10, 20, 30]
        pd.testing.assert_frame_equal(after[after["step"] <= 10].reset_index(drop=True), before.reset_index(drop=True))
        assert results.run_state("tiny", best["key"]) is None  # the search is done: its states are dropped
        report = build_report(results, "tiny", tmp_path / "report", png=False)
    assert set(optuna_keys(sqlite_url, "tiny").values()) == {1}
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert set(summary["search"]["searchers"]) == {"random", "tpe", "halving"}
    assert summary["search"]["searchers"]["halving"]["steps_spent"] == 70  # each step paid once
    assert report.summary["problems"] == []
    # a relaunch finds every round recorded: nothing to run, no Ray; also on a machine whose TPE
    # chooses other weightings (other CPUs' last bits can make it): it replays the recorded proposals
    import study.searchers

    honest = study.searchers.tpe_batch
    monkeypatch.setattr(study.searchers, "tpe_batch", lambda *args: [tuple(math.sqrt(u) for u in draws)
                                                                     for draws in honest(*args)])
    code, err = launch(capsys, spec_path, sqlite_url)
    assert code == 0 and "all 15 planned trials are recorded; nothing to run" in err
    monkeypatch.undo()
    # gns status says the proposals are recorded, so the replay is the same on any machine
    assert main(["status", "tiny", "--storage", sqlite_url]) == 0
    assert "search: 12 proposals recorded; a report or relaunch replays them on any machine" in capsys.readouterr().out
    # gns report prints the page's findings: a line per searcher, and GradNorm-Static's
    assert main(["report", "tiny", "--storage", sqlite_url, "--out", str(tmp_path / "cli-report")]) == 0
    printed = capsys.readouterr().out
    stats = SearchStats.from_dict(summary["search"])
    findings = [line for line in stats.findings() if line.split(":")[0] in ("random", "tpe", "halving")]
    assert len(findings) == 3 and stats.gradnorm_static_change_pct is not None
    assert all(f"Search: {line}" in printed for line in stats.findings()), printed
