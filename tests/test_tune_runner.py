"""The Tune runner's pieces without starting Ray: its options, and Tune's events mapped onto the
planned trials of each pack and recorded by a real Recorder in a real SQLite database."""

from __future__ import annotations

import io
import pickle
from types import SimpleNamespace

import pytest

from db import open_writer
from records import Status
from study.driver import LeaseKeeper, Recorder
from study.progress import Progress
from study.spec import parse_spec
from study.trials import planned_trial
from study.tune_runner import PackEvents, RunnerOptions, StopWhenRecorderFails, pack_name, pack_payload
from tests.fake_results import fake_result
from workers.remote import FINAL


def spec(**fields):
    return parse_spec({"study": "s", "kind": "methods", "workload": "toy", **fields})


def test_options_take_the_spec_and_the_command_line_wins():
    options = RunnerOptions.for_spec(spec(resources={"cpu": 0.5, "gpu": 0.25}, retries=4, max_concurrent=3))
    assert options == RunnerOptions("s", cpu=0.5, gpu=0.25, retries=4, max_concurrent=3, checkpoint_seconds=600.0)
    assert RunnerOptions.for_spec(spec(resources={"checkpoint_minutes": 0.5})).checkpoint_seconds == 30.0
    assert RunnerOptions.for_spec(spec(resources={"checkpoint_minutes": 0})).checkpoint_seconds is None  # never
    assert RunnerOptions.for_spec(spec(max_concurrent=3), max_concurrent=7).max_concurrent == 7
    assert options.threads == 1  # half a CPU still gets one thread
    assert RunnerOptions("s", cpu=3).threads == 3
    # as many packs at once as the cluster's CPUs hold, unless told
    assert RunnerOptions("s", cpu=2).slots(cluster_cpus=7) == 3
    assert RunnerOptions("s", cpu=4).slots(cluster_cpus=2) == 1
    assert RunnerOptions("s", cpu=2, max_concurrent=5).slots(cluster_cpus=7) == 5


@pytest.fixture
def recorded(tmp_path):
    """Three planned trials in packs of 2 and 1, a Recorder on a fresh SQLite study, and a reader."""
    study = spec(training={"steps": 10})
    trials = [planned_trial(study, seed, method="equal") for seed in (0, 1, 2)]
    url = f"sqlite:///{tmp_path / 'r.db'}"
    with open_writer(url) as results:
        results.create_study("s", "methods", study.to_dict(), planned_trials=3)
        results.acquire_lease("s")
        progress = Progress("s", 3, 0, 0, stream=io.StringIO())
        recorder = Recorder(results, "s", progress, LeaseKeeper(results, "s"))
        yield [trials[:2], trials[2:]], recorder, results


def test_pack_events_record_every_run_of_the_pack_tune_reports(recorded, tmp_path):
    packs, recorder, results = recorded
    events = PackEvents(packs, recorder)
    first, second = SimpleNamespace(config={"index": 0}), SimpleNamespace(config={"index": 1})
    events.on_trial_start(0, [], first)
    assert results.progress("s") == {str(Status.RUNNING): 2}  # both runs of the pack show RUNNING

    events.on_trial_result(0, [], first, {"results": [fake_result().to_dict()] * 2})  # not final: nothing recorded
    assert recorder.recorded == 0
    events.on_trial_result(0, [], first, {FINAL: True, "results": [fake_result((0.5, 20)).to_dict(),
                                                                   fake_result((0.25, 10)).to_dict()]})
    error_file = tmp_path / "error.txt"
    error_file.write_text("Traceback (most recent call last):\n  File \"x.py\", line 1\nRuntimeError: boom\n\n")
    second.error_file = str(error_file)
    events.on_trial_error(0, [], second)

    runs = results.runs("s").set_index("key")
    a, b = (p.key for p in packs[0])
    assert runs.loc[a, "status"] == str(Status.OK) and runs.loc[b, "status"] == str(Status.OK)
    # each run its own result: primary metric 0.5/1 + 20/100 and 0.25/1 + 10/100
    assert runs.loc[a, "value"] == pytest.approx(0.7) and runs.loc[b, "value"] == pytest.approx(0.35)
    failed = packs[1][0].key
    assert runs.loc[failed, "status"] != str(Status.OK)
    assert runs.loc[failed, "failure_reason"] == "crashed: RuntimeError: boom"
    assert (recorder.recorded, recorder.failed) == (3, 1)
    assert recorder.keys == {p.key for pack in packs for p in pack}


def test_the_stopper_stops_all_once_the_recorder_fails_and_neither_travels_with_tune(recorded):
    packs, recorder, _ = recorded
    stopper = StopWhenRecorderFails(recorder)
    assert not stopper("trial", {})
    recorder.error = OSError("database or disk is full")
    assert stopper("trial", {}) and stopper.stop_all()
    # Tune pickles its run config: the database connection stays in the driver
    assert pickle.loads(pickle.dumps(stopper)).recorder is None
    assert pickle.loads(pickle.dumps(PackEvents(packs, recorder))).recorder is None


def test_each_pack_is_sent_as_plain_keys_and_configs(recorded):
    packs, _, _ = recorded
    payload = pack_payload(packs)
    assert [[run["key"] for run in pack] for pack in payload] == [[p.key for p in pack] for pack in packs]
    assert payload[0][0]["config"] == packs[0][0].config.to_dict()
    assert pack_name(packs[0]) == f"{packs[0][0].key}+1" and pack_name(packs[1]) == packs[1][0].key


def test_a_state_report_is_kept_with_its_run_and_sent_to_the_run_that_continues_it(recorded):
    """Halving's continuation through the runner: a report carrying run 1's state is recorded under
    run 1's key; a promoted run's payload carries the state of the run it resumes, and a run whose
    state a later one needs asks for it."""
    from dataclasses import replace

    from workers.remote import STATE, STATE_OF

    packs, recorder, results = recorded
    packs[0][1] = replace(packs[0][1], keeps_state=True)
    events = PackEvents(packs, recorder)
    pack = SimpleNamespace(config={"index": 0})
    events.on_trial_start(0, [], pack)
    events.on_trial_result(0, [], pack, {STATE_OF: 0, STATE: b"run 0's checkpoint", FINAL: False})
    events.on_trial_result(0, [], pack, {STATE_OF: 1, STATE: b"state of run 1", FINAL: False})
    events.on_trial_result(0, [], pack, {FINAL: True, "results": [fake_result().to_dict()] * 2})
    parent = packs[0][1]
    assert results.run_state("s", parent.key) == b"state of run 1"
    assert results.run_state("s", packs[0][0].key) is None  # a checkpoint: dropped once its run is recorded
    child = replace(packs[1][0], resumes=parent.key, resumes_at=10)
    keeper = replace(packs[0][0], keeps_state=True)
    payload = pack_payload([[keeper], [child]], {parent.key: b"state of run 1"})
    assert payload[0][0]["keep_state"] is True and "state" not in payload[0][0]
    assert payload[1][0]["state"] == b"state of run 1" and "keep_state" not in payload[1][0]


def test_promoted_runs_pack_by_the_step_they_resume_from_and_retrain_without_a_state(recorded, monkeypatch):
    """study.driver.run_trials without Ray: the runner is replaced by one that keeps what it was given."""
    from dataclasses import replace

    import study.driver as driver
    from workers.workloads import inspect_workload

    packs, recorder, results = recorded
    (first, second), (third,) = packs
    for planned in (first, second):
        results.start_trial("s", planned.key, planned.config.to_dict())
        results.record("s", planned.key, planned.config.to_dict(), fake_result())
    results.record_state("s", first.key, b"first's state")  # second's state is missing
    trials = [replace(third, resumes=first.key, resumes_at=10),
              replace(planned_trial(spec(training={"steps": 10}), 3, method="equal"), resumes=second.key, resumes_at=10),
              planned_trial(spec(training={"steps": 10}), 4, method="equal")]
    given = {}
    monkeypatch.setattr(driver, "run_packs", lambda runner, packs, recorder, states: given.update(packs=packs, states=states))
    monkeypatch.setattr(driver.ray, "cluster_resources", lambda: {"CPU": 2})
    study = spec(training={"steps": 10})
    shape = inspect_workload(study.workload, study.workload_options, seed=0)
    driver.run_trials(study, shape, trials, recorder, RunnerOptions("s"))
    assert given["states"] == {first.key: b"first's state"}
    # no pack mixes runs that go on from step 10 with runs from step 0; the one whose state is missing
    # trains from step 0 like the fresh run
    assert all(len({p.resumes_at for p in pack}) == 1 for pack in given["packs"])
    resumed = {p.key: p.resumes for pack in given["packs"] for p in pack}
    assert resumed == {trials[0].key: first.key, trials[1].key: None, trials[2].key: None}
    assert "1 promoted run retrain from step 0" in recorder.progress.stream.getvalue()


def test_an_unfinished_run_goes_on_from_its_own_checkpoint(recorded, monkeypatch):
    """study.driver.run_trials without Ray: a run the last launch left with a checkpoint is sent it
    (to restore, not to continue a shorter run) and packs with runs stopped at the same step; a
    checkpoint that cannot be read trains from step 0, said; a finished run's result drops its checkpoint."""
    from dataclasses import replace

    import study.driver as driver
    from workers.packed import train_pack
    from workers.workloads import inspect_workload

    packs, recorder, results = recorded
    study = spec(training={"steps": 40, "log_every": 10})
    trials = [planned_trial(study, seed, method="equal") for seed in (5, 6, 7)]
    handed: dict[int, bytes] = {}
    short = replace(trials[0].config, steps=20)  # the state a stopped 40-step run would have saved at step 20
    train_pack([short], on_state=lambda run, state: handed.setdefault(run, state.to_bytes()))
    for planned, blob in zip(trials, (handed[0], b"damaged", None)):
        results.start_trial("s", planned.key, planned.config.to_dict())
        if blob is not None:
            results.record_state("s", planned.key, blob)
    results.requeue("s")
    given = {}
    monkeypatch.setattr(driver, "run_packs", lambda runner, packs, recorder, states: given.update(packs=packs, states=states))
    monkeypatch.setattr(driver.ray, "cluster_resources", lambda: {"CPU": 2})
    shape = inspect_workload(study.workload, study.workload_options, seed=0)
    driver.run_trials(study, shape, trials, recorder, RunnerOptions("s"))
    sent = {p.key: p for pack in given["packs"] for p in pack}
    assert (sent[trials[0].key].resumes, sent[trials[0].key].resumes_at, sent[trials[0].key].restores) == (trials[0].key, 20, True)
    assert all(sent[p.key].resumes is None and not sent[p.key].restores for p in trials[1:])
    assert given["states"] == {trials[0].key: handed[0]}
    assert pack_payload([[sent[trials[0].key]]], given["states"])[0][0]["restore"] is True
    note = recorder.progress.stream.getvalue()
    assert "restoring 1 run from checkpoints (step 20)" in note and "1 checkpoint could not be used" in note
    recorder.record_result(sent[trials[0].key], fake_result().to_dict())
    assert results.checkpoint("s", trials[0].key) is None and results.run_state("s", trials[0].key) is None
