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
    assert options == RunnerOptions("s", cpu=0.5, gpu=0.25, retries=4, max_concurrent=3)
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
