"""`gns launch`: run a study's missing trials on Ray Tune and record them.

The order matters for "bad input writes nothing": the spec is planned and the
workload built once, the storage URL parsed, and Ray's resources checked,
all before the database is opened for writing.

The driver is the only writer. Trials run through `ray.tune.Tuner` (one Tune
trial per planned key, workers reused so torch is imported once per worker);
a Tune callback records each trial the moment its final report arrives, so a
killed driver loses only the trials in flight, and a relaunch runs only the
keys the database does not hold. GradNorm-Static trials run in a second
phase, once their GradNorm reference is recorded.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import ray
from ray import tune

from db import ResultsDB
from db.store import spec_hash
from db.urls import parse_url
from study.errors import BadInput
from study.plan import PlannedTrial, plan_study
from study.progress import Progress
from study.spec import SpecError, StudySpec, parse_spec
from workers.remote import FINAL, run_trial
from workers.results import TrialResult
from workers.workloads import build_workload

# Read by Ray and Tune when they run, not when imported; set before ray.init so
# that the workers it starts inherit them.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")  # relative paths in workload options keep working


RAY_CONNECT_TIMEOUT_S = 5


@dataclass(frozen=True)
class LaunchSummary:
    study: str
    planned: int
    recorded_before: int
    recorded_now: int
    failed_now: int
    missing: int  # keys still not recorded (interrupted, or a reference that never finished)
    wall_time_s: float
    interrupted: bool


def launch(
    spec: StudySpec,
    storage: str,
    address: str | None = None,
    max_concurrent: int | None = None,
    force_new: bool = False,
    stream: TextIO | None = None,
) -> LaunchSummary:
    stream = stream or sys.stderr
    started = time.monotonic()
    planned = plan_study(spec)
    check_workload_builds(spec)
    parse_url(storage)  # a bad URL is refused before Ray starts

    start_ray(address)
    try:
        check_resources(spec, ray.cluster_resources())
        with ResultsDB(storage, create=True) as results:
            prepare_study(results, spec, force_new, stream)
            recorded = results.recorded_keys(spec.study)
            counts = results.progress(spec.study)
            todo = [p for p in planned if p.key not in recorded]
            print(
                f"study {spec.study!r} ({spec.kind}, {spec.workload}): {len(planned)} planned, "
                f"{len(recorded)} already recorded, {len(todo)} to run, results in {results.display_url}",
                file=stream,
                flush=True,
            )
            ok_before = counts.get("ok", 0)
            progress = Progress(
                spec.study, len(planned), ok_before, len(recorded) - ok_before, results.best_value(spec.study), stream
            )
            recorder = Recorder(results, spec.study, progress)
            interrupted = run_trials(spec, [p for p in todo if p.depends_on is None], recorder, max_concurrent)
            if not interrupted:
                runnable = resolve_dependents(results, spec.study, [p for p in todo if p.depends_on is not None], recorder)
                interrupted = run_trials(spec, runnable, recorder, max_concurrent)
            progress.close()
            missing = len(planned) - len(results.recorded_keys(spec.study))
    finally:
        ray.shutdown()
    return LaunchSummary(
        study=spec.study,
        planned=len(planned),
        recorded_before=len(recorded),
        recorded_now=recorder.recorded,
        failed_now=recorder.failed,
        missing=missing,
        wall_time_s=time.monotonic() - started,
        interrupted=interrupted,
    )


def check_workload_builds(spec: StudySpec) -> None:
    """Build the workload once: its options, data and the batch size must fit."""
    try:
        workload = build_workload(spec.workload, spec.workload_options, seed=spec.seeds[0])
    except ValueError as error:
        raise SpecError(str(error)) from None
    if spec.training.batch_size > len(workload.train):
        raise SpecError(
            f"training.batch_size: {spec.training.batch_size} exceeds the {len(workload.train)} training samples of {spec.workload}"
        )


def check_reachable(address: str) -> None:
    """Fail fast on HOST:PORT nobody answers at (ray.init would retry for minutes)."""
    if address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise BadInput(f"--address: expected auto or HOST:PORT, got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=RAY_CONNECT_TIMEOUT_S).close()
    except OSError as error:
        raise BadInput(f"--address: cannot join the Ray cluster at {address!r}: {error.strerror or error}") from None


def start_ray(address: str | None) -> None:
    if address is not None:
        check_reachable(address)
    # Our progress line is the output; Ray's own notices (such as its token
    # authentication on a local instance) would bury it.
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    try:
        if address is None:
            ray.init(**options)
        else:
            ray.init(address=address, **options)
    except (ConnectionError, ValueError, RuntimeError) as error:
        raise BadInput(f"--address: cannot join the Ray cluster at {address!r}: {str(error).splitlines()[0]}") from None


def check_resources(spec: StudySpec, cluster: dict[str, float]) -> None:
    cpus, gpus = cluster.get("CPU", 0.0), cluster.get("GPU", 0.0)
    if spec.resources.cpu > cpus:
        raise SpecError(f"resources.cpu: each trial asks for {spec.resources.cpu:g} CPUs, the Ray cluster has {cpus:g}")
    if spec.resources.gpu > gpus:
        have = f"{gpus:g} GPUs" if gpus else "no GPU"
        raise SpecError(f"resources.gpu: each trial asks for {spec.resources.gpu:g} GPUs, the Ray cluster has {have}")


def prepare_study(results: ResultsDB, spec: StudySpec, force_new: bool, stream: TextIO) -> None:
    """Create the study, or resume it if it was made from the same plan."""
    identity_hash = spec_hash(spec.identity())
    existing = results.find_study(spec.study)
    if existing is not None and spec_hash(_identity_of(existing.spec)) != identity_hash:
        if not force_new:
            raise BadInput(
                f"study {spec.study!r} already exists in {results.display_url} with a different spec; "
                "rename the study, or pass --force-new to delete it and start over"
            )
        print(f"--force-new: deleting the earlier study {spec.study!r}", file=stream)
        results.delete_study(spec.study)
        existing = None
    if existing is None:
        results.create_study(spec.study, spec.kind, spec.to_dict())


def _identity_of(stored_spec: dict[str, Any]) -> dict[str, Any]:
    try:
        return parse_spec(stored_spec).identity()
    except BadInput:  # made by another version of the spec format: treat as different
        return {"unreadable": stored_spec}


def resolve_dependents(results: ResultsDB, study: str, dependents: list[PlannedTrial], recorder: "Recorder") -> list[PlannedTrial]:
    """GradNorm-Static trials get their reference's E_t[w]; a failed reference fails them."""
    runnable = []
    recorded = results.recorded_keys(study)
    for planned in dependents:
        if planned.depends_on not in recorded:
            continue  # the reference has not run yet (an interrupted launch): stays missing
        weights = results.time_averaged_weights(study, planned.depends_on)
        if weights is None:
            recorder.record_failure(
                planned.key, planned.config.to_dict(), f"reference GradNorm run {planned.depends_on} did not finish"
            )
            continue
        runnable.append(PlannedTrial(planned.key, planned.config.replace(weights=weights), planned.depends_on))
    return runnable


class Recorder:
    """Writes finished trials to the database from Tune's callbacks (the driver's thread)."""

    def __init__(self, results: ResultsDB, study: str, progress: Progress) -> None:
        self.results = results
        self.study = study
        self.progress = progress
        self.recorded = 0
        self.failed = 0

    def record_result(self, planned: PlannedTrial, result_data: dict[str, Any], worker: str | None = None) -> None:
        result = TrialResult.from_dict(result_data)
        outcome = self.results.record(self.study, planned.key, planned.config.to_dict(), result, worker=worker)
        if outcome.created:
            self._count(planned.key, result.primary_metric if result.ok else None)

    def record_failure(self, key: str, config: dict[str, Any], reason: str) -> None:
        outcome = self.results.record(self.study, key, config, failure=reason)
        if outcome.created:
            self._count(key, None)

    def _count(self, key: str, value: float | None) -> None:
        self.recorded += 1
        self.failed += value is None
        self.progress.finished(key, value)


def run_trials(spec: StudySpec, trials: list[PlannedTrial], recorder: Recorder, max_concurrent: int | None) -> bool:
    """Run `trials` through a Tune Tuner; True if some ended unrecorded (interrupted)."""
    if not trials:
        return False
    callback = _TuneCallback(trials, recorder)
    payload = [{"key": p.key, "config": p.config.to_dict()} for p in trials]
    trainable = tune.with_resources(
        tune.with_parameters(
            run_trial,
            trials=payload,
            threads=max(1, int(spec.resources.cpu)),
            use_gpu=spec.resources.gpu > 0,
        ),
        {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu},
    )
    # Tune logs every failed attempt's whole traceback; we print one line each instead.
    logging.getLogger("ray.tune").setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory(prefix="gns-tune-") as tune_dir:
        tuner = tune.Tuner(
            trainable,
            param_space={"index": tune.grid_search(list(range(len(trials))))},
            tune_config=tune.TuneConfig(
                max_concurrent_trials=max_concurrent or spec.max_concurrent,
                reuse_actors=True,
                trial_name_creator=lambda t: trials[t.config["index"]].key,
                trial_dirname_creator=lambda t: trials[t.config["index"]].key,
            ),
            run_config=tune.RunConfig(
                name=spec.study.replace("/", "_"),
                storage_path=tune_dir,
                verbose=0,
                callbacks=[callback],
                failure_config=tune.FailureConfig(max_failures=spec.retries),
            ),
        )
        tuner.fit()
    recorded = recorder.results.recorded_keys(recorder.study)
    return any(p.key not in recorded for p in trials)


def _error_line(trial: Any) -> str:
    """The last line of the trial's traceback (`RuntimeError: ...`), from Tune's error file."""
    path = getattr(trial, "error_file", None)
    try:
        text = Path(path).read_text() if path else ""
    except OSError:
        text = ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "the worker failed"


class _TuneCallback(tune.Callback):
    """Maps Tune's trial events onto our planned trials."""

    def __init__(self, trials: list[PlannedTrial], recorder: Recorder) -> None:
        self.trials = trials
        self.recorder = recorder

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its run config; the database connection stays in this process.
        return {"trials": self.trials, "recorder": None}

    def _planned(self, trial: Any) -> PlannedTrial:
        return self.trials[trial.config["index"]]

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self.recorder.progress.started(self._planned(trial).key)

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        if result.get(FINAL):
            self.recorder.record_result(self._planned(trial), result["result"], result.get("worker"))

    def on_trial_recover(self, iteration, trials, trial, **info) -> None:
        planned = self._planned(trial)
        self.recorder.progress.note(f"trial {planned.key} failed ({_error_line(trial)}); retrying")

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        planned = self._planned(trial)
        reason = _error_line(trial)
        self.recorder.progress.note(f"trial {planned.key} failed for good: {reason} (traceback: {trial.error_file})")
        self.recorder.record_failure(planned.key, planned.config.to_dict(), f"crashed: {reason}")
