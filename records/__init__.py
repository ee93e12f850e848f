"""The record types that cross between layers: torch-free, JSON-ready, owned by no layer.

`workers` returns a TrialResult; `db` stores one; `study` moves it from the
first to the second. Each may import this module; none of them is imported
here. Also here: the trial status enum, the method names, and the one
canonical hash that turns plain data into a stable key.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, Mapping

from records.methods import METHODS  # noqa: F401 (re-exported: every method a trial can name)

# What of a trial's environment decides its float32 rounding, so that two machines' runs may differ in
# the last bits (and over thousands of steps in more): the CPU model, the device and torch's version.
MACHINE_FIELDS = ("cpu", "device", "torch")
NOT_RECORDED = "not recorded"  # a machine field a trial did not record


class Status(enum.StrEnum):
    """Where a trial key stands. Stored as its text value."""

    RECORDING = "recording"  # claimed by a writer, its Optuna trial and rows not yet complete
    RUNNING = "running"  # a driver is training it now (heartbeat in gns_trials)
    OK = "ok"  # finished; the primary metric is valid
    DIVERGED = "diverged"  # a loss or weight became non-finite; stopped early
    CRASHED = "crashed"  # the worker failed past its retries, or its reference failed
    PENDING = "pending"  # runs again: was RUNNING under a driver that died, or FAIL and --retry-failed;
    # the earlier attempt stays in Optuna's history, marked superseded

    @property
    def finished(self) -> bool:
        """A final state: the key counts as recorded."""
        return self in (Status.OK, Status.DIVERGED, Status.CRASHED)

    @property
    def failed(self) -> bool:
        return self in (Status.DIVERGED, Status.CRASHED)


def product_version() -> str:
    """gradnorm-study's installed version ("unknown" when run from a bare checkout)."""
    from importlib import metadata

    try:
        return metadata.version("gradnorm-study")
    except metadata.PackageNotFoundError:
        return "unknown"


def canonical_hash(data: Any) -> str:
    """sha256 of `data` as canonical JSON (sorted keys, no spaces): the same data, the same hash."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True)
class TracePoint:
    """The state of a run at one logged step.

    train_losses are averaged over the steps since the previous log point;
    test_losses (and validation_losses, where the workload has that split) are
    measured on the whole split at `step`.
    """

    step: int
    train_losses: tuple[float, ...]
    test_losses: tuple[float, ...]
    weights: tuple[float, ...]
    grad_norms: tuple[float, ...] | None = None  # G_i = ||grad_W w_i L_i||, GradNorm only
    validation_losses: tuple[float, ...] | None = None  # None: no validation split (or recorded before they were logged)


@dataclass(frozen=True)
class TaskMetric:
    task: str
    metric: str
    value: float
    higher_is_better: bool


@dataclass(frozen=True)
class TrialResult:
    status: Status  # OK or DIVERGED (a crash has no result)
    task_names: tuple[str, ...]
    primary_metric: float  # the workload's headline number, lower is better
    initial_losses: tuple[float, ...]  # L_i(0): training loss of the first batch
    final_test_losses: tuple[float, ...]
    test_metrics: tuple[TaskMetric, ...]
    final_weights: tuple[float, ...]
    time_averaged_weights: tuple[float, ...]  # E_t[w_i(t)] over every step taken
    steps_completed: int
    wall_time_s: float
    trace: tuple[TracePoint, ...]
    diverged_step: int | None = None
    failure_reason: str | None = None
    # The same numbers on the validation split, where the workload has one: what a study
    # chooses by (alpha, a best weighting), while the test numbers above are what it reports.
    validation_metric: float = math.nan  # task-normalized validation loss, sum_i L_i^val / L_i(0)
    final_validation_losses: tuple[float, ...] = ()
    validation_metrics: tuple[TaskMetric, ...] = ()
    # GradNorm with stuck-task detection: the step each task was taken out of the update (None: never).
    stuck_at_step: tuple[int | None, ...] = ()
    # select: best_validation: the logged step whose state the final numbers above come from
    # (None: the last step's). A run stopped early by patience has steps_completed < its budget.
    selected_step: int | None = None
    # Continued from a saved state of a shorter run (halving's promotions): the step it went on
    # from, so its new training is steps_completed - resumed_step (None: trained from step 0).
    resumed_step: int | None = None
    # Where it trained: torch and Python versions, the device, the CPU model (workers.environment);
    # empty if unknown.
    environment: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", Status(self.status))

    @property
    def ok(self) -> bool:
        return self.status is Status.OK

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["status"] = str(self.status)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrialResult":
        fields = dict(data)
        fields["trace"] = tuple(
            TracePoint(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in point.items()})
            for point in fields["trace"]
        )
        fields["test_metrics"] = tuple(TaskMetric(**m) for m in fields["test_metrics"])
        fields["validation_metrics"] = tuple(TaskMetric(**m) for m in fields.get("validation_metrics", ()))
        fields["final_validation_losses"] = tuple(fields.get("final_validation_losses", ()))
        fields["stuck_at_step"] = tuple(fields.get("stuck_at_step", ()))
        fields["environment"] = {str(k): str(v) for k, v in dict(fields.get("environment") or {}).items()}
        for name in ("task_names", "initial_losses", "final_test_losses", "final_weights", "time_averaged_weights"):
            fields[name] = tuple(fields[name])
        return cls(**fields)
