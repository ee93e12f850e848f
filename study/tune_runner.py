"""The Tune runner: packs of planned trials in, the recorder's events out.

Built from one frozen `RunnerOptions`; one Tune trial per pack (workers.remote.run_trial
trains the pack in one process). Tune's events are mapped onto the planned trials of
each pack by `PackEvents`, which is what a test drives without starting Ray.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Protocol

from ray import tune

from workers.remote import FINAL, STATE, STATE_OF, run_trial

if TYPE_CHECKING:
    from study.progress import Progress
    from study.spec import StudySpec
    from study.trials import PlannedTrial


class Recording(Protocol):
    """What the runner reports to (study.driver.Recorder)."""

    progress: "Progress"

    def start(self, planned: "PlannedTrial") -> None: ...
    def record_result(self, planned: "PlannedTrial", result_data: dict[str, Any], worker: str | None = None) -> None: ...
    def record_failure(self, key: str, config: dict[str, Any], reason: str) -> None: ...
    def record_state(self, planned: "PlannedTrial", state: bytes) -> None: ...

    @property
    def failure(self) -> Exception | None: ...


@dataclass(frozen=True)
class RunnerOptions:
    """How Tune runs a study's packs: the resources of each, at most how many at once, retries."""

    study: str
    cpu: float = 1.0
    gpu: float = 0.0
    retries: int = 2
    max_concurrent: int | None = None  # None: as many as the cluster's resources allow
    checkpoint_seconds: float | None = None  # how often a pack reports its runs' states; None: never

    @classmethod
    def for_spec(cls, spec: "StudySpec", max_concurrent: int | None = None) -> "RunnerOptions":
        """The spec's settings; `max_concurrent` (gns launch --max-concurrent) wins over the spec's."""
        minutes = spec.resources.checkpoint_minutes
        return cls(spec.study, spec.resources.cpu, spec.resources.gpu, spec.retries, max_concurrent or spec.max_concurrent,
                   checkpoint_seconds=minutes * 60 if minutes > 0 else None)

    @property
    def threads(self) -> int:
        """torch threads per trial: its whole CPUs (a fraction gets one)."""
        return max(1, int(self.cpu))

    def slots(self, cluster_cpus: float) -> int:
        """How many packs run at once, which is also how many packs a round is split into at least."""
        return self.max_concurrent or max(1, int(cluster_cpus // self.cpu))


def pack_name(pack: list["PlannedTrial"]) -> str:
    return pack[0].key + (f"+{len(pack) - 1}" if len(pack) > 1 else "")


def pack_payload(packs: list[list["PlannedTrial"]], states: Mapping[str, bytes] | None = None) -> list[list[dict[str, Any]]]:
    """What each Tune trial is sent: its runs' keys and configs, as plain data; a promoted or restored run
    also the saved state it goes on from (`states`: by the key it resumes), a run whose state a later one
    needs the request to report it."""
    states = states or {}

    def entry(planned: "PlannedTrial") -> dict[str, Any]:
        data: dict[str, Any] = {"key": planned.key, "config": planned.config.to_dict()}
        if planned.resumes is not None and planned.resumes in states:
            data["state"] = states[planned.resumes]
            if planned.restores:
                data["restore"] = True
        if planned.keeps_state:
            data["keep_state"] = True
        return data

    return [[entry(p) for p in pack] for pack in packs]


def run_packs(options: RunnerOptions, packs: list[list["PlannedTrial"]], recorder: Recording,
              states: Mapping[str, bytes] | None = None) -> None:
    """Train `packs` through one Tune Tuner; every outcome reaches `recorder` as it happens. `states`:
    the saved states promoted runs continue from, by the key of the run that saved each."""
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, packs=pack_payload(packs, states), threads=options.threads,
                             use_gpu=options.gpu > 0, checkpoint_seconds=options.checkpoint_seconds),
        {"cpu": options.cpu, "gpu": options.gpu},
    )
    # Tune logs every failed attempt's whole traceback; we print one line each instead.
    logging.getLogger("ray.tune").setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory(prefix="gns-tune-") as tune_dir:
        tuner = tune.Tuner(
            trainable,
            param_space={"index": tune.grid_search(list(range(len(packs))))},
            tune_config=tune.TuneConfig(
                max_concurrent_trials=options.max_concurrent,
                reuse_actors=True,
                trial_name_creator=lambda t: pack_name(packs[t.config["index"]]),
                trial_dirname_creator=lambda t: pack_name(packs[t.config["index"]]),
            ),
            run_config=tune.RunConfig(
                name=options.study.replace("/", "_"),
                storage_path=tune_dir,
                verbose=0,
                callbacks=[PackEvents(packs, recorder)],
                stop=StopWhenRecorderFails(recorder),
                failure_config=tune.FailureConfig(max_failures=options.retries),
            ),
        )
        tuner.fit()


def error_line(trial: Any) -> str:
    """The last line of the trial's traceback (`RuntimeError: ...`), from Tune's error file."""
    path = getattr(trial, "error_file", None)
    try:
        text = Path(path).read_text() if path else ""
    except OSError:
        text = ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "the worker failed"


class StopWhenRecorderFails(tune.Stopper):
    """Stops every trial once the recorder cannot write or the lease is lost (Recorder.failure)."""

    def __init__(self, recorder: Recording) -> None:
        self.recorder = recorder

    def __getstate__(self) -> dict[str, Any]:  # Tune pickles its run config; the recorder stays here
        return {"recorder": None}

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return self.stop_all()

    def stop_all(self) -> bool:
        return self.recorder is not None and self.recorder.failure is not None


class PackEvents(tune.Callback):
    """Maps Tune's trial events (one per pack) onto our planned trials."""

    def __init__(self, packs: list[list["PlannedTrial"]], recorder: Recording) -> None:
        self.packs = packs
        self.recorder = recorder

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its run config; the database connection stays in this process.
        return {"packs": self.packs, "recorder": None}

    def _pack(self, trial: Any) -> list["PlannedTrial"]:
        return self.packs[trial.config["index"]]

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        for planned in self._pack(trial):
            self.recorder.start(planned)

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        if result.get(STATE) is not None:
            self.recorder.record_state(self._pack(trial)[result[STATE_OF]], result[STATE])
        if result.get(FINAL):
            for planned, result_data in zip(self._pack(trial), result["results"]):
                self.recorder.record_result(planned, result_data, result.get("worker"))

    def on_trial_recover(self, iteration, trials, trial, **info) -> None:
        self.recorder.progress.note(f"trial {pack_name(self._pack(trial))} failed ({error_line(trial)}); retrying")

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        reason = error_line(trial)
        pack = self._pack(trial)
        self.recorder.progress.note(f"trial {pack_name(pack)} failed for good: {reason} (traceback: {trial.error_file})")
        for planned in pack:
            self.recorder.record_failure(planned.key, planned.config.to_dict(), f"crashed: {reason}")
