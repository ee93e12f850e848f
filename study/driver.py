"""`gns launch`: run a study's missing trials on Ray Tune and record them.

The order matters for "bad input writes nothing": the spec is planned (which
builds the workload once), the storage URL parsed, and Ray's resources
checked, all before the database is opened for writing. A relaunch with
nothing left to run answers from the database alone, without starting Ray.

While it runs, the driver is the study's one writer: it holds the study lease
(renewed in the background), shows each trial RUNNING while it trains, and a
Tune callback records each trial the moment its final report arrives, so a
killed driver loses only the trials in flight, and a relaunch runs only the
keys the database does not hold. GradNorm-Static trials run in a second
phase, once their GradNorm reference is recorded; a search study runs in
rounds, each planned from the outcomes the rounds before recorded.
"""

from __future__ import annotations

import contextlib
import os
import platform
import signal
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator, TextIO

import pandas as pd
import ray
from sqlalchemy.engine import URL

from db import LEASE_TTL_S, DatabaseInputError, DatabaseUnreachable, StudyBusy, ResultsReader, ResultsWriter, check_target, open_reader, open_writer, spec_hash
from records import Status, TrialResult
from study.choices import resolve_choices
from study.errors import BadInput
from study.plan import PlannedTrial, Recorded, check_workload, plan_study, planned_count, recorded_outcomes
from study.progress import Progress, plural
from study.provenance import CodeFingerprint, code_fingerprint, what_changed
from study.searchers import DamagedProposals
from study.ray_session import check_resources, start_ray
from study.spec import StudySpec, parse_stored_spec
from study.tune_runner import RunnerOptions, run_packs
from workers import packing
from workers.run_state import RunState, resume_problem
from workers.workloads import WorkloadShape, code_to_ship


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
    ray_started: bool = True
    terminated: bool = False  # stopped by SIGTERM (like Ctrl-C: Tune stops, recorded trials stay)
    requeued: int = 0  # stale or (--retry-failed) failed keys run again
    # planned keys whose recorded outcome is a failure, by status, and a reason of each status
    failures: dict[str, int] = field(default_factory=dict)
    failure_reasons: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LaunchOptions:
    """What `gns launch` is told besides the spec and the storage."""

    address: str | None = None  # a Ray cluster to join; None: start a local Ray
    max_concurrent: int | None = None  # wins over the spec's
    force_new: bool = False  # delete a study of another spec under the same name
    retry_failed: bool = False  # train the recorded failures again
    allow_code_change: bool = False  # go on although the code changed since the recorded runs


def launch(spec: StudySpec, storage: str, options: LaunchOptions = LaunchOptions(),
           stream: TextIO | None = None) -> LaunchSummary:
    """Plan `spec`, train what `storage` does not hold on Ray, record it; the summary."""
    stream = stream or sys.stderr
    started = time.monotonic()
    code = code_fingerprint(spec.workload)  # recorded with every trial; a change is refused unless allowed
    spec = resolve_choices(spec, storage)  # alpha_from: the alpha another study chose on validation
    shape = check_workload(spec)  # the workload's shape also sizes the packs
    planned = plan_study(spec, shape)  # a search study: the trials it can propose before any result
    total = planned_count(spec, planned)
    url = check_target(storage)  # a bad URL or SQLite path is refused before Ray starts

    # also refuses a study another driver runs, or one trained with other code (unless allowed)
    done = _already_done(url, spec, shape, options.force_new, options.retry_failed, code, options.allow_code_change)
    if done is not None:
        print(f"study {spec.study!r}: all {plural(total, 'planned trial')} are recorded; nothing to run", file=stream)
        return LaunchSummary(spec.study, total, total, 0, 0, 0, time.monotonic() - started, False,
                             ray_started=False, failures=done[0], failure_reasons=done[1])

    where = f"the Ray cluster at {options.address}" if options.address else "a local Ray"
    print(f"study {spec.study!r}: starting {where} (usually 5-30 s) ...", file=stream, flush=True)
    start_ray(options.address, code_to_ship(spec.workload))
    try:
        check_resources(spec, ray.cluster_resources())
        with open_writer(url) as results:
            prepare_study(results, spec, total, options.force_new, stream)  # takes the study lease
            note_code_change(results, spec.study, code, options.allow_code_change, stream)
            try:
                with LeaseKeeper(results, spec.study) as keeper:
                    requeued = results.requeue(spec.study, failed=options.retry_failed)
                    runs = results.runs(spec.study)  # read once here, and once for the summary
                    planned = plan_from_records(spec, shape, results, runs)
                    keep_proposals(results, spec.study, planned)
                    recorded_before = results.recorded_keys(spec.study) & {p.key for p in planned}
                    print(
                        f"study {spec.study!r} ({spec.kind}, {spec.workload}): {plural(total, 'trial')} planned, "
                        f"{len(recorded_before)} already recorded, {total - len(recorded_before)} to run"
                        + (f" ({requeued} re-queued)" if requeued else "")
                        + f", results in {results.display_url}",
                        file=stream,
                        flush=True,
                    )
                    failures_before = sum(failure_counts(runs, recorded_before)[0].values())
                    progress = Progress(spec.study, total, len(recorded_before) - failures_before, failures_before,
                                        results.best_value(spec.study), stream)
                    recorder = Recorder(results, spec.study, progress, keeper, provenance(code))
                    with sigterm_as_interrupt() as terminated:
                        runner = RunnerOptions.for_spec(spec, options.max_concurrent)
                        planned, interrupted = run_rounds(spec, shape, planned, recorded_before, recorder, runner)
                    progress.close()
                    recorder.raise_error()
                    keys = {p.key for p in planned}
                    missing = total - len(keys & (recorded_before | recorder.keys))
                    if not missing and recorder.failure is None:  # no promotion is left to continue from them
                        results.delete_run_states(spec.study)
                    failures, reasons = failure_counts(results.runs(spec.study), keys)
            finally:
                release_lease(results, spec.study, failing=sys.exc_info()[0] is not None)
    finally:
        ray.shutdown()
    return LaunchSummary(
        study=spec.study,
        planned=total,
        recorded_before=len(recorded_before),
        recorded_now=recorder.recorded,
        failed_now=recorder.failed,
        missing=missing,
        wall_time_s=time.monotonic() - started,
        interrupted=interrupted,
        terminated=terminated.is_set(),
        requeued=requeued,
        failures=failures,
        failure_reasons=reasons,
    )


def release_lease(results: ResultsWriter, study: str, failing: bool) -> None:
    """Give the lease up; while an error is on its way out, try once and keep quiet (the lease expires
    by itself, and the error the user sees is the first one, not the release's)."""
    if not failing:
        results.release_lease(study)
        return
    with contextlib.suppress(Exception):
        results.release_lease(study, retry=False)


def _already_done(
    url: URL, spec: StudySpec, shape: WorkloadShape, force_new: bool, retry_failed: bool,
    code: CodeFingerprint | None = None, allow_code_change: bool = False,
) -> tuple[dict[str, int], dict[str, str]] | None:
    """The failure counts of a study already complete under the same plan (nothing to run), else None.

    Read-only: a relaunch of a finished study starts neither Ray nor a write. A study whose
    recorded trials trained with other code than `code` is refused here, before Ray, unless
    `allow_code_change` (then None: the writer records the change).
    """
    if force_new:
        return None
    try:
        with open_reader(url) as results:
            existing = results.find_study(spec.study)
            holder = results.lease_holder(spec.study) if existing is not None else None
            if holder is not None:
                raise StudyBusy(f"study {spec.study!r} is already being run by {holder.describe()}; wait for it or stop it")
            if existing is None:
                return None
            if spec_hash(_identity_of(existing.spec)) != spec_hash(spec.identity()):
                raise BadInput(_different_spec(spec.study, results.display_url))  # refused before Ray or a write
            change = None if code is None else changed_code(results, spec.study, code)
            if change is not None:
                if not allow_code_change:
                    raise BadInput(_other_code(spec.study, change))
                return None  # the writer keeps the change with the study
            runs = results.runs(spec.study)
            planned = plan_from_records(spec, shape, results, runs)
            keys = {p.key for p in planned}
            if len(keys) < planned_count(spec, planned) or not keys <= results.recorded_keys(spec.study):
                return None
            failures = failure_counts(runs, keys)
    except DatabaseUnreachable:  # no database yet (or not reachable now): the writer creates it or says why
        return None
    if retry_failed and failures[0]:
        return None
    return failures


def changed_code(results: ResultsReader, study: str, code: CodeFingerprint) -> str | None:
    """What differs between `code` and the code the study's recorded trials trained with (None: the same)."""
    changes = {what_changed(CodeFingerprint.from_dict(recorded), code) for recorded, _ in results.code_fingerprints(study)}
    changes.discard(None)
    return "; ".join(sorted(changes)) or None


def note_code_change(results: ResultsWriter, study: str, code: CodeFingerprint, allowed: bool, stream: TextIO) -> None:
    """Under the lease: a study that goes on with other code keeps that with it when the launch was
    allowed to (--allow-code-change), and is refused otherwise (the read-only check may not have run:
    the database was unreachable then)."""
    before = [recorded for recorded, _ in results.code_fingerprints(study) if CodeFingerprint.from_dict(recorded) != code]
    if not before:
        return
    if not allowed:
        results.release_lease(study)
        raise BadInput(_other_code(study, changed_code(results, study, code)))
    results.note_code_change(study, {"fingerprints": before}, code.to_dict())
    print(f"--allow-code-change: study {study!r} goes on with {code.describe()} (kept with the study)", file=stream)


def _other_code(study: str, change: str | None) -> str:
    return (f"study {study!r} was trained with other code: {change} since its recorded runs; name a new study, "
            "or pass --allow-code-change to go on with this code on purpose (the change is kept with the study)")


def provenance(code: CodeFingerprint) -> dict[str, Any]:
    """What the driver knows of a trial's making: the code fingerprint and its own versions."""
    import optuna

    return {"code": code.to_dict(),
            "driver": {"optuna": optuna.__version__, "ray": ray.__version__, "python": platform.python_version()}}


def plan_from_records(spec: StudySpec, shape: WorkloadShape, results: ResultsReader, runs: pd.DataFrame) -> list[PlannedTrial]:
    """The plan given the study's recorded runs: an adaptive kind's later rounds need their outcomes
    and the proposals made so far, every other kind's plan needs nothing from them."""
    if not spec.study_kind.adaptive:
        return plan_study(spec, shape)
    try:
        return plan_study(spec, shape, Recorded(recorded_outcomes(runs), results.proposals(spec.study)))
    except DamagedProposals as error:  # the database is untrusted
        raise DatabaseInputError(f"storage: {results.display_url}, study {spec.study!r}: {error}") from None


def keep_proposals(results: ResultsWriter, study: str, planned: list[PlannedTrial]) -> None:
    """Record the plan's search proposals before anything trains them (one kept before stays as it
    is): a relaunch or a report on another machine replays the search from them."""
    proposals = [(p.seed, p.searcher, p.index, p.draws) for p in (t.proposal for t in planned) if p is not None]
    if proposals:
        results.record_proposals(study, proposals)


def failure_counts(runs: pd.DataFrame, keys: set[str]) -> tuple[dict[str, int], dict[str, str]]:
    """Recorded planned keys whose outcome is a failure: how many by status, and one reason each."""
    failed = runs[runs["key"].isin(keys) & (runs["status"] != str(Status.OK))]
    counts = {str(status): int(count) for status, count in failed["status"].value_counts().items()}
    reasons = {str(status): str(group["failure_reason"].iloc[0]) for status, group in failed.groupby("status")}
    return counts, reasons


class LeaseKeeper:
    """Renews the driver's study lease (and its running trials' heartbeat) in the background."""

    def __init__(self, results: ResultsWriter, study: str, interval_s: float = LEASE_TTL_S / 4) -> None:
        self.results = results
        self.study = study
        self.interval_s = interval_s
        self.error: Exception | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gns-lease", daemon=True)

    def __enter__(self) -> "LeaseKeeper":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.results.renew_lease(self.study)
            except Exception as error:  # raised in the driver's thread at its next write
                self.error = error
                return

    def check(self) -> None:
        if self.error is not None:
            raise self.error


def prepare_study(results: ResultsWriter, spec: StudySpec, planned: int, force_new: bool, stream: TextIO) -> None:
    """Create the study, or resume it if it was made from the same plan; either way, take its lease.

    The lease is taken before anything of an existing study changes, so a
    second driver is refused having written nothing.
    """
    existing = results.find_study(spec.study)
    if existing is None:
        results.create_study(spec.study, spec.kind, spec.to_dict(), planned_trials=planned)
        results.acquire_lease(spec.study)
        return
    results.acquire_lease(spec.study)
    if spec_hash(_identity_of(existing.spec)) == spec_hash(spec.identity()):
        results.set_planned_trials(spec.study, planned)
        return
    if not force_new:  # changed since the read-only check (another launch of another spec in between)
        results.release_lease(spec.study)
        raise BadInput(_different_spec(spec.study, results.display_url))
    print(f"--force-new: deleting the earlier study {spec.study!r}", file=stream)
    results.delete_study(spec.study)
    results.create_study(spec.study, spec.kind, spec.to_dict(), planned_trials=planned)
    results.acquire_lease(spec.study)


def _different_spec(study: str, display_url: str) -> str:
    return (f"study {study!r} already exists in {display_url} with a different spec; "
            "rename the study, or pass --force-new to delete it and start over")


def _identity_of(stored_spec: dict[str, Any]) -> dict[str, Any]:
    try:
        return parse_stored_spec(stored_spec).identity()
    except BadInput:  # made by another version of the spec format: treat as different
        return {"unreadable": stored_spec}


def resolve_dependents(
    results: ResultsWriter, study: str, dependents: list[PlannedTrial], recorded: set[str], recorder: "Recorder"
) -> list[PlannedTrial]:
    """GradNorm-Static trials get their reference's E_t[w]; a failed reference fails them."""
    runnable = []
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
    """Writes finished trials to the database from Tune's callbacks (the driver's thread).

    The first write that fails for good (the disk full, the lease lost, the database gone past the
    retry window) is kept in `error`, every later call does nothing, and `_StopWhenRecorderFails`
    stops Tune; the driver raises `error` once Tune has returned, so it reaches the user as one
    line, not as a traceback through Tune.
    """

    def __init__(self, results: ResultsWriter, study: str, progress: Progress, keeper: LeaseKeeper,
                 provenance: dict[str, Any] | None = None) -> None:
        self.results = results
        self.provenance = provenance
        self.study = study
        self.progress = progress
        self.keeper = keeper
        self.recorded = 0
        self.failed = 0
        self.keys: set[str] = set()  # recorded during this launch, now or by an earlier attempt
        self.error: Exception | None = None

    def _write(self, write: Callable[[], None]) -> None:
        if self.error is not None:
            return
        try:
            self.keeper.check()
            write()
        except Exception as error:  # noqa: BLE001 (kept whole and raised by the driver after Tune stops)
            self.error = error

    def start(self, planned: PlannedTrial) -> None:
        """Show the trial RUNNING in the database (and optuna-dashboard) while it trains."""

        def write() -> None:
            self.results.start_trial(self.study, planned.key, planned.config.to_dict())
            self.progress.started(planned.key)

        self._write(write)

    def record_result(self, planned: PlannedTrial, result_data: dict[str, Any], worker: str | None = None) -> None:
        def write() -> None:
            result = TrialResult.from_dict(result_data)
            outcome = self.results.record(self.study, planned.key, planned.config.to_dict(), result, worker=worker,
                                          provenance=self.provenance)
            if not planned.keeps_state:  # its checkpoints served their purpose
                self.results.delete_run_states(self.study, planned.key)
            self.keys.add(planned.key)
            if outcome.created:
                self._count(planned.key, result.primary_metric if result.ok else None)

        self._write(write)

    def record_state(self, planned: PlannedTrial, state: bytes) -> None:
        """Keep a run's saved state: a checkpoint, or the final state a promoted run may continue from."""
        self._write(lambda: self.results.record_state(self.study, planned.key, state))

    def record_failure(self, key: str, config: dict[str, Any], reason: str) -> None:
        def write() -> None:
            outcome = self.results.record(self.study, key, config, failure=reason, provenance=self.provenance)
            self.keys.add(key)
            if outcome.created:
                self._count(key, None)

        self._write(write)

    @property
    def failure(self) -> Exception | None:
        """Why the launch must stop: a write that failed for good, or the lease lost in the background."""
        return self.error or self.keeper.error

    def raise_error(self) -> None:
        if self.failure is not None:
            raise self.failure

    def _count(self, key: str, value: float | None) -> None:
        self.recorded += 1
        self.failed += value is None
        self.progress.finished(key, value)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[threading.Event]:
    """SIGTERM (a scheduler, `kill`, docker stop) stops the launch as Ctrl-C does: Tune's own SIGINT
    handler stops the trials, the driver records what finished, prints its summary and shuts Ray
    down. The event says whether it happened."""
    terminated = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield terminated
        return

    def on_sigterm(signum, frame) -> None:  # noqa: ARG001
        terminated.set()
        os.kill(os.getpid(), signal.SIGINT)

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield terminated
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_rounds(
    spec: StudySpec,
    shape: WorkloadShape,
    planned: list[PlannedTrial],
    recorded: set[str],
    recorder: Recorder,
    runner: RunnerOptions,
) -> tuple[list[PlannedTrial], bool]:
    """Train what the plan holds and the database does not, round after round; the last plan, and
    whether a trial ended unrecorded (interrupted).

    One round for every kind but an adaptive one (search), whose next proposals are planned from the
    outcomes recorded in the round before (study.searchers); GradNorm-Static trials
    run at the end of their round, once their GradNorm reference is recorded.
    """
    while True:
        done = recorded | recorder.keys
        todo = [p for p in planned if p.key not in done]
        if not todo:
            return planned, False
        interrupted = run_trials(spec, shape, [p for p in todo if p.depends_on is None], recorder, runner)
        if not interrupted and recorder.failure is None:
            dependents = [p for p in todo if p.depends_on is not None]
            runnable = resolve_dependents(recorder.results, spec.study, dependents, done | recorder.keys, recorder)
            interrupted = run_trials(spec, shape, runnable, recorder, runner)
        if interrupted or recorder.failure is not None:
            return planned, True
        if not spec.study_kind.adaptive:
            return planned, False  # one round holds all its trials
        planned = plan_from_records(spec, shape, recorder.results, recorder.results.runs(spec.study))
        keep_proposals(recorder.results, spec.study, planned)
        strays = recorder.keys - {p.key for p in planned}
        if strays:  # the replay must give back what it proposed, or the rounds would never end
            raise RuntimeError(f"study {spec.study!r}: replaying the search proposed other trials than it trained "
                               f"({len(strays)} trained ones are missing from it): a study begun before its proposals "
                               "were recorded (gradnorm-study < schema 6), relaunched on another machine?")


def make_packs(spec: StudySpec, shape: WorkloadShape, trials: list[PlannedTrial], slots: int) -> list[list[PlannedTrial]]:
    """`trials` in packs by the packing policy (workers/packing.py) and `resources.pack`."""
    packs = packing.make_packs([p.config for p in trials], shape, spec.resources.pack, slots)
    return [[trials[i] for i in pack] for pack in packs]


def run_trials(spec: StudySpec, shape: WorkloadShape, trials: list[PlannedTrial], recorder: Recorder,
               runner: RunnerOptions) -> bool:
    """Run `trials` through the Tune runner, packed; True if some ended unrecorded (interrupted).

    A promoted run (halving) continues from its shorter run's saved state: such runs pack only with
    runs continuing from the same step. One whose state is missing (recorded by a version that kept
    none, or a workload that cannot pack) trains from step 0, and the launch says so. A run that an
    earlier launch left unfinished goes on from its last checkpoint, if it saved one.
    """
    if not trials:
        return False
    trials = [continuable(planned, shape) for planned in trials]
    states = {planned.resumes: recorder.results.run_state(spec.study, planned.resumes)
              for planned in trials if planned.resumes is not None}
    states = {key: state for key, state in states.items() if state is not None}
    trials, checkpoints = restored(spec, shape, trials, recorder)
    states.update(checkpoints)
    retrained = {p.key for p in trials if p.resumes is not None and p.resumes not in states}
    if retrained:
        recorder.progress.note(f"{plural(len(retrained), 'promoted run')} retrain from step 0: the saved state of the "
                               "shorter run each continues is missing")
        trials = [replace(p, resumes=None, resumes_at=None) if p.key in retrained else p for p in trials]
    slots = runner.slots(ray.cluster_resources().get("CPU", 1))
    # a pack's runs go on from one step (Adam's step count is the pack's), all restored or none
    by_start: dict[tuple[int | None, bool], list[PlannedTrial]] = {}
    for planned in trials:
        by_start.setdefault((planned.resumes_at, planned.restores), []).append(planned)
    packs = [pack for group in by_start.values() for pack in make_packs(spec, shape, group, slots)]
    run_packs(runner, packs, recorder, states)
    return any(p.key not in recorder.keys for p in trials)


def restored(spec: StudySpec, shape: WorkloadShape, trials: list[PlannedTrial],
             recorder: Recorder) -> tuple[list[PlannedTrial], dict[str, bytes]]:
    """`trials`, those with a usable checkpoint of their own set to restore from it, and those checkpoints
    by key. A checkpoint is read as untrusted bytes: one that cannot be read or does not fit the trial's
    budget is passed over (the trial trains from step 0) and the launch says so."""
    checkpoints: dict[str, bytes] = {}
    steps: set[int] = set()
    unusable = 0
    result = []
    for planned in trials:
        blob = recorder.results.checkpoint(spec.study, planned.key) if packing.can_pack(planned.config, shape) is None else None
        if blob is not None:
            try:
                step = RunState.from_bytes(blob).step
            except ValueError:
                step = None
            if step is None or resume_problem(step, planned.config.steps, planned.config.log_every):
                unusable += 1
            else:
                checkpoints[planned.key] = blob
                steps.add(step)
                planned = replace(planned, resumes=planned.key, resumes_at=step, restores=True)
        result.append(planned)
    if checkpoints:
        recorder.progress.note(f"restoring {plural(len(checkpoints), 'run')} from checkpoints "
                               f"(step {', '.join(map(str, sorted(steps)))})")
    if unusable:
        recorder.progress.note(f"{plural(unusable, 'checkpoint')} could not be used (unreadable, or for another "
                               "budget): those runs train from step 0")
    return result, checkpoints


def continuable(planned: PlannedTrial, shape: WorkloadShape) -> PlannedTrial:
    """The trial as it will run: saving and resuming states needs the packed engine, so a run that
    cannot pack (a user workload, a model with buffers) neither keeps nor resumes one."""
    if (planned.resumes is None and not planned.keeps_state) or packing.can_pack(planned.config, shape) is None:
        return planned
    return replace(planned, resumes=None, resumes_at=None, keeps_state=False)
