"""A run of a pack, stopped at a step with all it needs to go on as if it had never stopped.

Successive halving promotes a run to a longer budget: instead of training it
again from step 0, the longer run continues from the shorter one's state
(workers.packed.train_pack's `resume`). What the state holds is what the next
step reads: the run's parameters, its rows of Adam's moments (and Adam's step,
which all runs of a pack share), its row of the balancer, L_i(0), the trace so
far, the best-validation tracker and its best parameters, and the worker time
spent. The minibatch order is not stored: it follows from the seed and the
step (the batch generator is replayed).

A pack also saves its runs' states every few minutes as checkpoints
(`resources.checkpoint_minutes`): a study stopped mid-pack restores each run
from its last checkpoint at the next launch. A restored run is the same run
going on, so it keeps the worker time and the `resumed_step` its state carries.

A state crosses the database as bytes (`to_bytes`); `from_bytes` reads them
with torch.load(weights_only=True), which builds tensors and plain containers
only, since a database is untrusted input.
"""

from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass
from typing import Any

import torch

from records import TracePoint

FORMAT = 1  # bump when the fields change; an older state is refused, never misread


def resume_problem(step: int, steps: int, log_every: int) -> str | None:
    """Why a run of `steps` logging every `log_every` cannot go on from a state at `step`; None if it can."""
    if 0 < step < steps and step % log_every == 0:
        return None
    return (f"step {step} is not a logged step (log_every {log_every}) before the budget {steps}; a run resumes "
            "only where its trace and its averages are complete")


@dataclass(frozen=True)
class RunState:
    step: int  # the budget the run trained to (`stopped_at` where its patience ran out before it)
    params: dict[str, torch.Tensor]  # the run's parameters (no pack dimension)
    moments: dict[str, dict[str, torch.Tensor]]  # per parameter: Adam's exp_avg and exp_avg_sq for this run
    adam_step: torch.Tensor  # Adam's step count, shared by every run of a pack
    balancer: dict[str, Any]  # workers.packed.PackedBalancer.row_state
    initial_losses: torch.Tensor  # L_i(0), the first batch's
    trace: tuple[TracePoint, ...]
    seconds: float  # worker time spent so far (the run's share of its pack's)
    stopped_at: int | None = None  # patience ran out here: nothing left to train
    best_score: float | None = None  # with select: best_validation
    best_step: int | None = None
    since_best: int = 0
    best_params: dict[str, torch.Tensor] | None = None
    resumed_step: int | None = None  # where the run's own training began: a promoted run's shorter budget

    def to_bytes(self) -> bytes:
        data = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        data["trace"] = [dataclasses.asdict(point) for point in self.trace]
        buffer = io.BytesIO()
        torch.save({"format": FORMAT, "state": data}, buffer)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> "RunState":
        """A state written by `to_bytes`; ValueError naming the problem for anything else."""
        try:
            loaded = torch.load(io.BytesIO(blob), weights_only=True, map_location="cpu")
        except Exception as error:  # noqa: BLE001 (pickle and zip errors of a damaged or foreign blob)
            raise ValueError(f"a saved run state cannot be read: {type(error).__name__}") from None
        if not isinstance(loaded, dict) or loaded.get("format") != FORMAT or not isinstance(loaded.get("state"), dict):
            raise ValueError(f"a saved run state is not of format {FORMAT} (written by another version?)")
        data = dict(loaded["state"])
        names = {field.name for field in dataclasses.fields(cls)}
        optional = {field.name for field in dataclasses.fields(cls) if field.default is not dataclasses.MISSING}
        if not names - optional <= set(data) <= names:  # a state saved before an optional field existed has its default
            raise ValueError(f"a saved run state has the wrong fields: {sorted((set(data) ^ names) - optional)}")
        try:
            data["trace"] = tuple(TracePoint(**{k: tuple(v) if isinstance(v, list) else v for k, v in point.items()})
                                  for point in data["trace"])
        except TypeError as error:
            raise ValueError(f"a saved run state has a malformed trace: {error}") from None
        return cls(**data)
