"""Study specs: YAML loaded into frozen dataclasses, validated on load.

Every error names the field it is about (`training.steps: ...`), and a
misspelled field gets a suggestion. See examples/ for ready specs and
docs/running.md for every field.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from study.errors import BadInput
from study.searchers import halving_cost, halving_first_rung, trial_count
from workers.config import (DEFAULT_ALPHA, DEFAULT_LOG_EVERY, MAX_SEED, check_field, check_selection, check_training,
                            default, shown)

KINDS = ("random-static", "alpha-sweep", "methods", "search")
# How random-static draws its weightings (study.plan.random_static_weights): the paper's, then two
# that reach the small weights the paper's almost never draws.
SAMPLERS = ("uniform", "log-uniform", "dirichlet")
DEFAULT_CONCENTRATION = 1.0  # dirichlet: uniform on the simplex
DEFAULT_SMALLEST = 1e-3  # log-uniform: draws span [1e-3, 1] before scaling
# How a search study looks for static weights (study.searchers): the baseline, a model-based
# search and a multi-fidelity one.
SEARCHERS = ("random", "tpe", "halving")
DEFAULT_BUDGET_RUNS = 8  # search: each searcher's default budget, in full runs' worth of steps
MAX_BUDGET_RUNS = 1000
MAX_SEARCH_TRIALS = 10_000  # per seed, all searchers
# Study names become database keys, report folders and Optuna study names: bounded and plain.
STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# Ceilings checked before anything is expanded or planned (docs/reliability.md); workers.config
# bounds each run (steps, batch size, seed, per-task lists) and the workloads their data sizes.
MAX_SPEC_BYTES = 256 * 1024
MAX_LIST = 1000  # seeds, alphas, budgets, uncertainty_lrs, searchers' settings
MAX_RUNS = 10_000  # random_static.runs: 100 times the paper's Figure 4
MAX_TRIALS = 100_000  # planned trials of one study (random-static runs x seeds)
MAX_TEXT = 10_000  # description
MAX_WORKLOAD_NAME = 200
MAX_CONCURRENT = 100_000
MAX_RETRIES = 100


class SpecError(BadInput):
    """A spec field is wrong; the message starts with the field's path."""


def _fail(path: str, message: str) -> typing.NoReturn:
    raise SpecError(f"{path}: {message}" if path else message)


@dataclass(frozen=True)
class Training:
    """What every run of the study trains with."""

    steps: int = default("steps")
    batch_size: int = default("batch_size")
    lr: float = default("lr")
    log_every: int | None = default("log_every")  # None: every 100 steps, or only at the end of a shorter run
    select: str = "last"  # or "best_validation": each run read at its best logged validation step
    patience: int | None = None  # best_validation: stop a run after this many log points without a better one

    def __post_init__(self) -> None:
        _trial_check(check_training, self.steps, self.batch_size, self.lr, self.log_every)
        _trial_check(check_selection, self.select, self.patience)


@dataclass(frozen=True)
class GradNormOptions:
    """Applies to every GradNorm run (alpha-sweep takes its alphas from its own list).

    `alpha_from` names an alpha-sweep study in the same database: the launch takes
    the alpha it chose on validation (study.choices) and records it in `alpha`.
    """

    alpha: float | None = None  # None: DEFAULT_ALPHA, or (with alpha_from) not chosen yet
    alpha_from: str | None = None
    initial_loss: str | tuple[float, ...] = default("initial_loss")
    balancer_lr: float | None = None
    shared_params: tuple[str, ...] | None = None
    weight_update: str | None = None  # None: the paper's additive step; "log": our ablation
    stuck_window: int | None = None  # take stalled tasks out of the update, checked every this many steps

    def __post_init__(self) -> None:
        for name in ("alpha", "initial_loss", "balancer_lr", "shared_params", "weight_update", "stuck_window"):
            if getattr(self, name) is not None:
                _trial_check(check_field, name, getattr(self, name))
        if self.alpha_from is not None:
            check_study_name(self.alpha_from, "alpha_from")
        elif self.alpha is None:
            object.__setattr__(self, "alpha", DEFAULT_ALPHA)


@dataclass(frozen=True)
class RandomStatic:
    """Figure 4: `runs` random static weightings, each trained at every seed, plus GradNorm references.

    `budgets`: steps at which the report also draws Figure 4, read from the runs'
    traces (each a log point of the run); the full run is always one.
    """

    runs: int = 100
    weight_seed: int = 0
    gradnorm_static: bool = True
    inverse_initial_loss: bool = True  # the trivial baseline w ∝ 1/L_i(0), one run per seed
    sampler: str = "uniform"
    concentration: float | None = None  # dirichlet only
    smallest: float | None = None  # log-uniform only
    budgets: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        _within("runs", self.runs, 1, MAX_RUNS)
        _within("weight_seed", self.weight_seed, 0, MAX_SEED)
        if self.sampler not in SAMPLERS:
            _fail("sampler", _unknown("sampler", self.sampler, SAMPLERS))
        for name, owner, fallback in (("concentration", "dirichlet", DEFAULT_CONCENTRATION),
                                      ("smallest", "log-uniform", DEFAULT_SMALLEST)):
            if self.sampler != owner:
                if getattr(self, name) is not None:
                    _fail(name, f"only applies to sampler {owner} (this one is {self.sampler})")
            elif getattr(self, name) is None:
                object.__setattr__(self, name, fallback)
        if self.concentration is not None:
            _positive("concentration", self.concentration)
        if self.smallest is not None and not 0 < self.smallest < 1:
            _fail("smallest", f"must be between 0 and 1 (the draws span [smallest, 1]), got {self.smallest}")
        if self.budgets is not None:
            _distinct_values("budgets", self.budgets, "budget")
            for i, budget in enumerate(self.budgets):
                _at_least(f"budgets[{i}]", budget, 1)


@dataclass(frozen=True)
class AlphaSweep:
    """Supplement Figure 7: GradNorm at each alpha, plus equal weights, per seed."""

    alphas: tuple[float, ...] = (0.0, 0.12, 0.5, 1.0, 1.5, 2.0, 3.0)

    def __post_init__(self) -> None:
        _distinct_values("alphas", self.alphas, "alpha")
        for i, alpha in enumerate(self.alphas):
            _trial_check(check_field, "alpha", alpha, path=f"alphas[{i}]")


@dataclass(frozen=True)
class Methods:
    """Tables 1-3: each method at each seed."""

    methods: tuple[str, ...] = ("single-task", "equal", "uncertainty", "gradnorm", "gradnorm-static")
    weights: tuple[float, ...] | None = None  # for `static`
    # Uncertainty weighting at each of these learning rates for its log-variances; the report
    # picks one on validation (None: the one default rate).
    uncertainty_lrs: tuple[float, ...] | None = None
    inverse_initial_loss: bool = True  # the trivial baseline w ∝ 1/L_i(0) is trained too, listed or not

    def __post_init__(self) -> None:
        if not self.methods:
            _fail("methods", "must list at least one method")
        for i, method in enumerate(self.methods):
            _trial_check(check_field, "method", method, path=f"methods[{i}]")
        if len(set(self.methods)) != len(self.methods):
            _fail("methods", "lists a method twice")
        if "gradnorm-static" in self.methods and "gradnorm" not in self.methods:
            _fail("methods", "gradnorm-static retrains with a GradNorm run's weights: list gradnorm too")
        if "static" in self.methods and self.weights is None:
            _fail("weights", "method 'static' needs one weight per task")
        if self.weights is not None:
            if "static" not in self.methods:
                _fail("weights", "only applies when 'static' is among the methods")
            _trial_check(check_field, "weights", self.weights)
        if self.uncertainty_lrs is not None:
            if "uncertainty" not in self.methods:
                _fail("uncertainty_lrs", "only applies when 'uncertainty' is among the methods")
            _distinct_values("uncertainty_lrs", self.uncertainty_lrs, "learning rate")
            for i, lr in enumerate(self.uncertainty_lrs):
                _trial_check(check_field, "balancer_lr", lr, path=f"uncertainty_lrs[{i}]")


@dataclass(frozen=True)
class Search:
    """Beyond the paper: searches over static weights at a compute budget, against one GradNorm run per seed.

    Each searcher spends `budget_steps` training steps per seed (None: DEFAULT_BUDGET_RUNS
    full runs' worth), chooses on validation, and is scored on test. Every weighting is
    w = T * u / sum(u) with each u_i in [smallest, 1] on a log scale, for all searchers.
    """

    searchers: tuple[str, ...] = SEARCHERS
    budget_steps: int | None = None
    batch: int = 2  # tpe: weightings proposed per round, trained side by side
    startup: int | None = None  # tpe: random weightings before its model takes over (None: one batch)
    eta: int = 3  # halving: each rung keeps the best 1/eta and trains them eta times longer
    rungs: int = 3  # halving: budgets training.steps / eta^(rungs-1), ..., training.steps
    smallest: float = DEFAULT_SMALLEST
    weight_seed: int = 0
    gradnorm_static: bool = True
    inverse_initial_loss: bool = True  # the trivial baseline w ∝ 1/L_i(0), one run per seed

    def __post_init__(self) -> None:
        _distinct_values("searchers", self.searchers, "searcher")
        for i, searcher in enumerate(self.searchers):
            if searcher not in SEARCHERS:
                _fail(f"searchers[{i}]", _unknown("searcher", searcher, SEARCHERS))
        if self.budget_steps is not None:
            _at_least("budget_steps", self.budget_steps, 1)
        _within("batch", self.batch, 1, MAX_LIST)
        if self.startup is None:
            object.__setattr__(self, "startup", self.batch)
        _within("startup", self.startup, 1, MAX_SEARCH_TRIALS)
        _within("eta", self.eta, 2, 100)
        _within("rungs", self.rungs, 1, 20)
        if not 0 < self.smallest < 1:
            _fail("smallest", f"must be between 0 and 1 (each u_i spans [smallest, 1]), got {self.smallest}")
        _within("weight_seed", self.weight_seed, 0, MAX_SEED)


@dataclass(frozen=True)
class Resources:
    """What one trial asks of a Ray worker."""

    cpu: float = 1.0
    gpu: float = 0.0
    # Runs trained together in one process (workers/packed.py): auto, or at most this many; 1: never.
    pack: int | str = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.pack, str) and self.pack != "auto":
            _fail("pack", f"expected auto or a number of runs >= 1, got {self.pack!r}")
        if isinstance(self.pack, int):
            _at_least("pack", self.pack, 1)
        _positive("cpu", self.cpu)
        _at_least("gpu", self.gpu, 0)
        if self.gpu > 1 and self.gpu != int(self.gpu):
            _fail("gpu", f"a fraction must be <= 1 (or a whole number of GPUs), got {self.gpu}")


@dataclass(frozen=True)
class StudySpec:
    study: str
    kind: str
    workload: str = "toy"
    workload_options: Mapping[str, Any] = field(default_factory=dict)
    seeds: tuple[int, ...] = (0,)
    training: Training = field(default_factory=Training)
    gradnorm: GradNormOptions = field(default_factory=GradNormOptions)
    random_static: RandomStatic | None = None
    alpha_sweep: AlphaSweep | None = None
    methods: Methods | None = None
    search: Search | None = None
    resources: Resources = field(default_factory=Resources)
    max_concurrent: int | None = None
    retries: int = 2
    description: str = ""

    def __post_init__(self) -> None:
        check_study_name(self.study, "study")
        if self.kind not in KINDS:
            _fail("kind", _unknown("study kind", self.kind, KINDS))
        if len(self.workload) > MAX_WORKLOAD_NAME:
            _fail("workload", f"a name of at most {MAX_WORKLOAD_NAME} characters, got {len(self.workload):,}")
        if len(self.description) > MAX_TEXT:
            _fail("description", f"at most {MAX_TEXT:,} characters, got {len(self.description):,}")
        _distinct_values("seeds", self.seeds, "seed")
        for i, seed in enumerate(self.seeds):
            _trial_check(check_field, "seed", seed, path=f"seeds[{i}]")
        if self.max_concurrent is not None:
            _within("max_concurrent", self.max_concurrent, 1, MAX_CONCURRENT)
        _within("retries", self.retries, 0, MAX_RETRIES)
        own_section = self.kind.replace("-", "_")
        for section in ("random_static", "alpha_sweep", "methods", "search"):
            if section != own_section and getattr(self, section) is not None:
                _fail(section, f"does not apply to a {self.kind} study (its section is {own_section})")
        if getattr(self, own_section) is None:  # the kind's section with its defaults
            defaults = {"random_static": RandomStatic, "alpha_sweep": AlphaSweep, "methods": Methods, "search": Search}
            object.__setattr__(self, own_section, defaults[own_section]())
        if self.random_static is not None and self.random_static.runs * len(self.seeds) > MAX_TRIALS:
            _fail("random_static.runs", f"{self.random_static.runs:,} runs at each of {len(self.seeds)} seeds are more "
                  f"than {MAX_TRIALS:,} trials for one study")
        if self.random_static is not None and self.random_static.budgets is not None:
            log_every = self.training.log_every or min(DEFAULT_LOG_EVERY, self.training.steps)
            for i, budget in enumerate(self.random_static.budgets):
                if budget > self.training.steps or budget % log_every:
                    _fail(f"random_static.budgets[{i}]", f"{budget} is not a logged step of the runs "
                          f"(a multiple of log_every {log_every}, at most training.steps {self.training.steps})")
        if self.search is not None:
            self._check_search_budget()
        if self.gradnorm.alpha_from is not None and self.kind == "alpha-sweep":
            _fail("gradnorm.alpha_from", "an alpha-sweep study sweeps alpha itself")

    def _check_search_budget(self) -> None:
        """The budget buys at least one full run and a bounded number of runs; halving's shortest rung
        at least one step. (Bounded because a report replays the search from a stored, untrusted spec.)"""
        section, steps = self.search, self.training.steps
        if section.budget_steps is None:
            object.__setattr__(self, "search", dataclasses.replace(section, budget_steps=DEFAULT_BUDGET_RUNS * steps))
        elif section.budget_steps < steps:
            _fail("search.budget_steps", f"{section.budget_steps} buys less than one run of training.steps {steps}")
        elif section.budget_steps > MAX_BUDGET_RUNS * steps:
            _fail("search.budget_steps", f"{section.budget_steps} is more than {MAX_BUDGET_RUNS} runs of training.steps {steps}")
        section = self.search
        if "halving" in section.searchers:
            if steps < section.eta ** (section.rungs - 1):
                _fail("search.rungs", f"{section.rungs} rungs at eta {section.eta} leave the shortest rung under one "
                      f"step of training.steps {steps}")
            if not halving_first_rung(section.budget_steps, steps, section.eta, section.rungs):
                least = halving_cost(section.eta ** (section.rungs - 1), steps, section.eta, section.rungs)
                _fail("search.budget_steps", f"{section.budget_steps} does not pay for halving's {section.rungs} rungs "
                      f"(at least {least} steps at eta {section.eta})")
        runs = trial_count(section, steps)
        if runs * len(self.seeds) > MAX_TRIALS:
            _fail("search", f"its searchers would train {runs:,} runs at each of {len(self.seeds)} seeds, more than "
                  f"{MAX_TRIALS:,} trials for one study")
        if runs > MAX_SEARCH_TRIALS:
            _fail("search", f"its searchers would train {runs} runs per seed, more than {MAX_SEARCH_TRIALS}; "
                  "lower budget_steps or rungs")

    def to_dict(self) -> dict[str, Any]:
        """Plain data with every default filled in (what the database keeps)."""
        return _plain(dataclasses.asdict(self))

    def identity(self) -> dict[str, Any]:
        """What decides the plan: everything but how it is executed."""
        data = self.to_dict()
        for name in ("resources", "max_concurrent", "retries", "description"):
            data.pop(name)
        return data


def check_study_name(name: str, field_name: str) -> None:
    """1-128 letters, digits, '.', '_' or '-', starting with a letter or digit."""
    if not STUDY_NAME.fullmatch(name):
        shown = name if len(name) <= 40 else name[:37] + "..."
        _fail(field_name, f"{shown!r} is not a study name (1-128 letters, digits, '.', '_' or '-', starting with a letter or digit)")


class _NoAliasLoader(yaml.SafeLoader):
    """YAML without aliases (*name): a few hundred bytes of nested aliases expand to gigabytes
    once a value is copied, hashed or shown, so they are refused where they are read."""

    def compose_node(self, parent, index):  # noqa: ANN001 (PyYAML's signature)
        if self.check_event(yaml.events.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "YAML aliases (*name) are not accepted in a spec; "
                                              "write the value out", event.start_mark)
        return super().compose_node(parent, index)


def load_spec(path: str | Path) -> StudySpec:
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"spec: no such file {str(path)!r}")
    with path.open("rb") as file:
        raw = file.read(MAX_SPEC_BYTES + 1)
    if len(raw) > MAX_SPEC_BYTES:
        raise SpecError(f"spec: {path.name} is larger than {MAX_SPEC_BYTES // 1024} KiB; a study spec is a few lines")
    try:
        data = yaml.load(raw.decode("utf-8"), Loader=_NoAliasLoader)  # noqa: S506 (a SafeLoader)
    except UnicodeDecodeError:
        raise SpecError(f"spec: {path.name} is not UTF-8 text") from None
    except ValueError as error:  # e.g. an integer of more digits than Python converts
        raise SpecError(f"spec: {path.name} holds a value that cannot be read ({str(error)[:80]})") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = f" ({error.problem})" if getattr(error, "problem", None) else ""
        raise SpecError(f"spec: {path.name} is not valid YAML{where}{problem}") from None
    return parse_spec(data)


def parse_spec(data: Any) -> StudySpec:
    if not isinstance(data, Mapping):
        raise SpecError("spec: expected a mapping of fields (study: ..., kind: ...)")
    for required in ("study", "kind"):
        if required not in data:
            _fail(required, "missing (every spec names its study and kind)")
    return _build(StudySpec, data, "")


# ---- a small typed loader for the dataclasses above ----------------------------


def _build(cls: type, data: Any, path: str) -> Any:
    if not isinstance(data, Mapping):
        _fail(path, f"expected a mapping, got {_describe(data)}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in names:
            suggestion = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean {suggestion[0]!r}?)" if suggestion else f" (known: {', '.join(names)})"
            _fail(_join(path, str(key)), f"unknown field{hint}")
    values = {key: _convert(hints[key], value, _join(path, key)) for key, value in data.items()}
    try:
        return cls(**values)
    except SpecError as error:
        raise SpecError(_join(path, str(error))) from None


def _convert(hint: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return _convert(option, value, path)
            except SpecError as error:
                errors.append(str(error))
        raise SpecError(errors[-1])
    if dataclasses.is_dataclass(hint):
        return _build(hint, value if value is not None else {}, path)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            _fail(path, f"expected a list, got {_describe(value)}")
        item_type = typing.get_args(hint)[0]
        return tuple(_convert(item_type, item, f"{path}[{i}]") for i, item in enumerate(value))
    if hint is Mapping[str, Any] or origin in (Mapping, dict, typing.Mapping):
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            _fail(path, f"expected a mapping, got {_describe(value)}")
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            _fail(path, f"expected true or false, got {_describe(value)}")
        return value
    if hint is int:
        if not isinstance(value, int) or isinstance(value, bool):
            _fail(path, f"expected an integer, got {_describe(value)}")
        return value
    if hint is float:
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            _fail(path, f"expected a number, got {_describe(value)}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            _fail(path, f"expected text, got {_describe(value)}")
        return value
    raise TypeError(f"spec loader: unsupported type {hint!r} at {path}")  # a bug here, not bad input


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _describe(value: Any) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {shown(value)}"


def _unknown(what: str, value: Any, choices: tuple[str, ...]) -> str:
    suggestion = difflib.get_close_matches(str(value), choices, n=1)
    hint = f" (did you mean {suggestion[0]!r}?)" if suggestion else f" (choose from {', '.join(choices)})"
    return f"unknown {what} {value!r}{hint}"


def _at_least(name: str, value: float, minimum: float) -> None:
    if not value >= minimum:  # written so that NaN fails too
        _fail(name, f"must be >= {minimum}, got {value}")


def _within(name: str, value: int, minimum: int, maximum: int) -> None:
    _at_least(name, value, minimum)
    if value > maximum:
        _fail(name, f"must be at most {maximum:,}, got {value:,}")


def _distinct_values(name: str, values: tuple[float, ...], noun: str) -> None:
    """A non-empty list of at most MAX_LIST values, none twice."""
    if not values:
        _fail(name, f"must list at least one {noun}")
    if len(values) > MAX_LIST:
        _fail(name, f"lists {len(values):,} values; at most {MAX_LIST}")
    if len(set(values)) != len(values):
        article = "an" if noun[0] in "aeiou" else "a"
        _fail(name, f"lists {article} {noun} twice")


def _trial_check(check: Any, *args: Any, path: str | None = None) -> None:
    """Run one of workers.config's field checks; its message becomes a spec error at `path`."""
    try:
        check(*args)
    except ValueError as error:
        name, _, message = str(error).partition(": ")
        _fail(path or name, message)


def _positive(name: str, value: float) -> None:
    if not value > 0:
        _fail(name, f"must be > 0, got {value}")


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
