"""What one training run returns: plain numbers, torch-free and JSON-ready."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

STATUS_OK = "ok"
STATUS_DIVERGED = "diverged"


@dataclass(frozen=True)
class TracePoint:
    """The state of a run at one logged step.

    train_losses are averaged over the steps since the previous log point;
    test_losses are measured on the whole test set at `step`.
    """

    step: int
    train_losses: tuple[float, ...]
    test_losses: tuple[float, ...]
    weights: tuple[float, ...]
    grad_norms: tuple[float, ...] | None = None  # G_i = ||grad_W w_i L_i||, GradNorm only


@dataclass(frozen=True)
class TaskMetric:
    task: str
    metric: str
    value: float
    higher_is_better: bool


@dataclass(frozen=True)
class TrialResult:
    status: str  # STATUS_OK or STATUS_DIVERGED
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

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrialResult":
        fields = dict(data)
        fields["trace"] = tuple(
            TracePoint(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in point.items()})
            for point in fields["trace"]
        )
        fields["test_metrics"] = tuple(TaskMetric(**m) for m in fields["test_metrics"])
        for name in ("task_names", "initial_losses", "final_test_losses", "final_weights", "time_averaged_weights"):
            fields[name] = tuple(fields[name])
        return cls(**fields)
