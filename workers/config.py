"""What one training run is asked to do: a frozen, validated, hashable config.

This module is the one source of the trial defaults and of the checks on each
field: the study spec, `gns train`'s arguments and the balancers' callers all
take them from here. Torch-free on purpose: the driver plans and hashes
configs without importing torch.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from records import canonical_hash
from records.methods import METHOD_FIELDS, REGISTRY

# Chen et al. 2018, section 4 (the synthetic regression): alpha = 0.12.
DEFAULT_ALPHA = 0.12
# Chen et al. 2018, section 5.1 (NYUv2): the loss weights are trained with lr 0.025.
# The paper gives no optimizer settings for the toy; we use the same value everywhere.
BALANCER_LR = 0.025
DEFAULT_SHARED_PARAMS = ("shared_layer.weight",)
INITIAL_LOSS_MODES = ("first", "theoretical")
DEFAULT_LOG_EVERY = 100  # a trace point every 100 steps, or only at the end of a shorter run
# Ceilings on what one run may ask for (docs/reliability.md): far above any real study, low
# enough that a typo (steps: 1000000000000) is refused at parse time instead of training forever.
MAX_STEPS = 10_000_000
MAX_BATCH_SIZE = 1_000_000
MAX_SEED = 2**32 - 1
MAX_TASKS = 1000  # values per task (weights, initial_loss) and a task index
SHOWN_CHARS = 60  # how much of a bad value an error message repeats


def shown(value: Any) -> str:
    """A bad value as an error message repeats it: its repr, cut to SHOWN_CHARS."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS - 3] + "..."


# How GradNorm moves w: "additive" is the paper's Adam step on w itself; "log" is our
# ablation (not in the paper), an Adam step on log w, so a step changes w by a ratio.
WEIGHT_UPDATES = ("additive", "log")
# Fields added after studies were recorded: left out of the key while unset, so
# that configs recorded before they existed keep their keys.
LATER_FIELDS = ("weight_update", "stuck_window", "select", "patience")
# Which state of a run its final numbers are read from: the last step's (the paper's), or the
# logged step with the lowest task-normalized validation loss (a run read where it converged).
SELECT_MODES = ("last", "best_validation")

# Which methods each method-specific field applies to (initial_loss has a value, "first", for all).
APPLIES_TO = {name: tuple(m.name for m in REGISTRY.values() if name in m.fields) for name in METHOD_FIELDS
              if name != "initial_loss"}


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
    weight_update: str | None = None  # gradnorm only; None: "additive" (the paper's)
    stuck_window: int | None = None  # gradnorm only: detect stuck tasks every this many steps; None: off
    steps: int = 3000
    batch_size: int = 100
    lr: float = 1e-3
    seed: int = 0
    log_every: int | None = None  # None: DEFAULT_LOG_EVERY, or `steps` if that is fewer
    select: str | None = None  # None: "last"; "best_validation": read the run at its best logged validation step
    patience: int | None = None  # best_validation only: stop after this many log points without a better one

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen)
        set_("workload_options", dict(self.workload_options))
        if isinstance(self.weights, (list, tuple)):
            set_("weights", tuple(self.weights))
        if isinstance(self.initial_loss, (list, tuple)):
            set_("initial_loss", tuple(self.initial_loss))
        if isinstance(self.shared_params, (list, tuple)):
            set_("shared_params", tuple(self.shared_params))
        if self.method == "gradnorm":
            if self.alpha is None:
                set_("alpha", DEFAULT_ALPHA)
            if self.shared_params is None:
                set_("shared_params", DEFAULT_SHARED_PARAMS)
        if self.weight_update == "additive":  # the default, spelled out: the same run, the same key
            set_("weight_update", None)
        if self.select == "last":
            set_("select", None)
        if self.log_every is None and isinstance(self.steps, int):
            set_("log_every", min(DEFAULT_LOG_EVERY, self.steps))
        if self.method in APPLIES_TO["balancer_lr"] and self.balancer_lr is None:
            set_("balancer_lr", BALANCER_LR)
        self.validate()
        if self.weights is not None:
            set_("weights", tuple(float(w) for w in self.weights))
        if isinstance(self.initial_loss, tuple):
            set_("initial_loss", tuple(float(v) for v in self.initial_loss))

    def validate(self) -> None:
        """Raise ValueError naming the first field that is wrong."""
        if not isinstance(self.workload, str) or not self.workload:
            raise ValueError(f"workload: expected a name, got {shown(self.workload)}")
        check_field("method", self.method)
        check_training(self.steps, self.batch_size, self.lr, self.log_every)
        check_field("seed", self.seed)
        for name, methods in APPLIES_TO.items():
            value = getattr(self, name)
            if self.method not in methods and value is not None:
                raise ValueError(f"{name}: does not apply to method {self.method!r}")
            if value is not None and name != "weights_from":
                check_field(name, value)
        if "initial_loss" not in REGISTRY[self.method].fields and self.initial_loss != "first":
            raise ValueError(f"initial_loss: does not apply to method {self.method!r}")
        check_field("initial_loss", self.initial_loss)
        check_selection(self.select, self.patience)
        for name in REGISTRY[self.method].needs:
            if getattr(self, name) is None:
                raise ValueError(f"{name}: method {self.method!r} needs {name} set")
        if self.method == "gradnorm-static" and self.weights is None and self.weights_from is None:
            raise ValueError("weights: method 'gradnorm-static' needs weights, or weights_from naming a GradNorm run")

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
        data = self.to_dict()
        for name in LATER_FIELDS:
            if data[name] is None:
                del data[name]
        return canonical_hash(data)[:16]

    def __hash__(self) -> int:  # workload_options is a dict: hash by the canonical key instead
        return hash(self.key())

    def replace(self, **changes: Any) -> "TrialConfig":
        return dataclasses.replace(self, **changes)


def default(name: str) -> Any:
    """TrialConfig's default for `name`: what the spec and `gns train` fall back to."""
    return TrialConfig.__dataclass_fields__[name].default


# ---- one check per field: the spec, the CLI and TrialConfig all call these --------------


def check_field(name: str, value: Any) -> None:
    """Raise ValueError(f"{name}: ...") when `value` is not valid for trial field `name`."""
    _CHECKS[name](name, value)


def check_training(steps: Any, batch_size: Any, lr: Any, log_every: Any) -> None:
    """The training budget fields, and that a log point falls inside the run (log_every None: the default)."""
    for name, value in (("steps", steps), ("batch_size", batch_size), ("lr", lr), ("log_every", log_every)):
        if value is not None or name != "log_every":
            check_field(name, value)
    if log_every is not None and log_every > steps:
        raise ValueError(f"log_every: {log_every} is more than the {steps} steps (nothing would be logged between)")


def check_selection(select: Any, patience: Any) -> None:
    """Which step a run is read at (None: the last) and early stopping, which needs best_validation."""
    if select is not None:
        check_field("select", select)
    if patience is not None:
        check_field("patience", patience)
        if select != "best_validation":
            raise ValueError("patience: early stopping needs select: best_validation (a stopped run is read at its best step)")


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _integer(minimum: int, maximum: int):
    def check(name: str, value: Any) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise ValueError(f"{name}: must be an integer >= {minimum}, got {shown(value)}")
        if value > maximum:
            raise ValueError(f"{name}: must be at most {maximum:,}, got {value:,}")

    return check


def _number(minimum: float, strict: bool):
    def check(name: str, value: Any) -> None:
        if not is_number(value) or value < minimum or (strict and value == minimum):
            raise ValueError(f"{name}: must be a number {'>' if strict else '>='} {minimum:g}, got {shown(value)}")

    return check


def _positive_values(name: str, values: Any) -> None:
    if not isinstance(values, (list, tuple)) or not values:
        raise ValueError(f"{name}: expected a list of numbers, got {shown(values)}")
    if len(values) > MAX_TASKS:
        raise ValueError(f"{name}: at most {MAX_TASKS} values (one per task), got {len(values):,}")
    if not all(is_number(v) and v > 0 for v in values):
        raise ValueError(f"{name}: every value must be positive and finite, got {shown(list(values))}")


def _initial_loss(name: str, value: Any) -> None:
    if isinstance(value, str):
        if value not in INITIAL_LOSS_MODES:
            raise ValueError(
                f"{name}: unknown mode {shown(value)} (choose from {', '.join(INITIAL_LOSS_MODES)} or give one value per task)"
            )
        return
    _positive_values(name, value)


def _one_of(choices: tuple[str, ...], noun: str):
    def check(name: str, value: Any) -> None:
        if value not in choices:
            raise ValueError(f"{name}: unknown {noun} {shown(value)} (choose from {', '.join(choices)})")

    return check


def _method(name: str, value: Any) -> None:
    if not isinstance(value, str) or value not in REGISTRY:
        raise ValueError(f"{name}: unknown method {shown(value)} (choose from {', '.join(REGISTRY)})")


def _shared_params(name: str, value: Any) -> None:
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(p, str) and p for p in value):
        raise ValueError(f"{name}: must name at least one shared parameter, got {shown(value)}")
    if len(value) > MAX_TASKS:
        raise ValueError(f"{name}: at most {MAX_TASKS} parameters, got {len(value):,}")


_CHECKS = {
    "method": _method,
    "steps": _integer(1, MAX_STEPS),
    "batch_size": _integer(1, MAX_BATCH_SIZE),
    "log_every": _integer(1, MAX_STEPS),
    "seed": _integer(0, MAX_SEED),
    "task": _integer(0, MAX_TASKS - 1),
    "lr": _number(0, strict=True),
    "balancer_lr": _number(0, strict=True),
    "alpha": _number(0, strict=False),
    "weights": _positive_values,
    "initial_loss": _initial_loss,
    "shared_params": _shared_params,
    "weight_update": _one_of(WEIGHT_UPDATES, "update"),
    "stuck_window": _integer(1, MAX_STEPS),
    "select": _one_of(SELECT_MODES, "mode"),
    "patience": _integer(1, MAX_STEPS),
}
