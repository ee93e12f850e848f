"""What one training run is asked to do: a frozen, validated, hashable config.

Torch-free on purpose: the driver plans and hashes configs, and the database
stores them, without importing torch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

# Chen et al. 2018, section 5.1: alpha = 0.12 on the synthetic regression task.
DEFAULT_ALPHA = 0.12
# Chen et al. 2018, section 4: the loss weights are trained with lr 0.025.
BALANCER_LR = 0.025
DEFAULT_SHARED_PARAMS = ("shared_layer.weight",)

METHODS = ("equal", "static", "uncertainty", "gradnorm", "gradnorm-static", "single-task")
INITIAL_LOSS_MODES = ("first", "theoretical")


@dataclass(frozen=True)
class TrialConfig:
    """One training run: workload, loss-weighting method and training budget.

    Fields that do not apply to the method must stay unset, so that two configs
    that train the same way hash to the same key.
    """

    workload: str = "toy"
    workload_options: Mapping[str, Any] = field(default_factory=dict)
    method: str = "equal"
    alpha: float | None = None  # gradnorm only
    weights: tuple[float, ...] | None = None  # static, gradnorm-static
    weights_from: str | None = None  # gradnorm-static: key of the GradNorm run to copy E_t[w] from
    task: int | None = None  # single-task only
    initial_loss: str | tuple[float, ...] = "first"  # gradnorm only
    balancer_lr: float | None = None  # gradnorm, uncertainty
    shared_params: tuple[str, ...] | None = None  # gradnorm only
    steps: int = 3000
    batch_size: int = 100
    lr: float = 1e-3
    seed: int = 0
    log_every: int = 100

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen)
        set_("workload_options", dict(self.workload_options))
        if self.weights is not None:
            set_("weights", tuple(float(w) for w in self.weights))
        if isinstance(self.initial_loss, (list, tuple)):
            set_("initial_loss", tuple(float(v) for v in self.initial_loss))
        if self.shared_params is not None:
            set_("shared_params", tuple(self.shared_params))
        if self.method == "gradnorm":
            if self.alpha is None:
                set_("alpha", DEFAULT_ALPHA)
            if self.shared_params is None:
                set_("shared_params", DEFAULT_SHARED_PARAMS)
        if self.method in ("gradnorm", "uncertainty") and self.balancer_lr is None:
            set_("balancer_lr", BALANCER_LR)
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first field that is wrong."""
        if not isinstance(self.workload, str) or not self.workload:
            raise ValueError(f"workload: expected a name, got {self.workload!r}")
        if self.method not in METHODS:
            raise ValueError(f"method: unknown method {self.method!r} (choose from {', '.join(METHODS)})")
        _check_int("steps", self.steps, minimum=1)
        _check_int("batch_size", self.batch_size, minimum=1)
        _check_int("seed", self.seed, minimum=0)
        _check_int("log_every", self.log_every, minimum=1)
        _check_positive("lr", self.lr)

        uses = {
            "alpha": self.method == "gradnorm",
            "weights": self.method in ("static", "gradnorm-static"),
            "weights_from": self.method == "gradnorm-static",
            "task": self.method == "single-task",
            "balancer_lr": self.method in ("gradnorm", "uncertainty"),
            "shared_params": self.method == "gradnorm",
        }
        for name, applies in uses.items():
            if not applies and getattr(self, name) is not None:
                raise ValueError(f"{name}: does not apply to method {self.method!r}")
        if self.method != "gradnorm" and self.initial_loss != "first":
            raise ValueError(f"initial_loss: does not apply to method {self.method!r}")

        if self.method == "gradnorm":
            if not _is_number(self.alpha) or self.alpha < 0:
                raise ValueError(f"alpha: must be a number >= 0, got {self.alpha!r}")
            if not self.shared_params:
                raise ValueError("shared_params: must name at least one shared parameter")
            if isinstance(self.initial_loss, str):
                if self.initial_loss not in INITIAL_LOSS_MODES:
                    raise ValueError(
                        f"initial_loss: unknown mode {self.initial_loss!r} "
                        f"(choose from {', '.join(INITIAL_LOSS_MODES)} or give one value per task)"
                    )
            elif not all(v > 0 and math.isfinite(v) for v in self.initial_loss):
                raise ValueError("initial_loss: explicit initial losses must be positive and finite")
        if self.balancer_lr is not None:
            _check_positive("balancer_lr", self.balancer_lr)
        if self.method == "static" and self.weights is None:
            raise ValueError("weights: method 'static' needs one weight per task")
        if self.method == "gradnorm-static" and self.weights is None and self.weights_from is None:
            raise ValueError("weights: method 'gradnorm-static' needs weights, or weights_from naming a GradNorm run")
        if self.weights is not None and not all(w > 0 and math.isfinite(w) for w in self.weights):
            raise ValueError(f"weights: every weight must be positive and finite, got {list(self.weights)}")
        if self.method == "single-task":
            _check_int("task", self.task, minimum=0)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for name in ("weights", "initial_loss", "shared_params"):
            if isinstance(data[name], tuple):
                data[name] = list(data[name])
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrialConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{unknown[0]}: unknown trial field")
        return cls(**dict(data))

    def key(self) -> str:
        """A stable 16-hex-digit hash of everything that decides how the run trains."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def replace(self, **changes: Any) -> "TrialConfig":
        return dataclasses.replace(self, **changes)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_int(name: str, value: Any, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name}: must be an integer >= {minimum}, got {value!r}")


def _check_positive(name: str, value: Any) -> None:
    if not _is_number(value) or value <= 0:
        raise ValueError(f"{name}: must be a number > 0, got {value!r}")
