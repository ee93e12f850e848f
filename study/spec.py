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

from study.kinds import KINDS, StudyKind
from study.spec_checks import SpecError, at_least, distinct_values, fail, positive, trial_check, unknown, within
from workers.config import DEFAULT_ALPHA, check_field, check_selection, check_training, default, shown

# Study names become database keys, report folders and Optuna study names: bounded and plain.
STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# Ceilings checked before anything is expanded or planned (docs/reliability.md); workers.config
# bounds each run (steps, batch size, seed, per-task lists), the workloads their data sizes and
# each study kind its own section (study.kinds).
MAX_SPEC_BYTES = 256 * 1024
MAX_TEXT = 10_000  # description
MAX_WORKLOAD_NAME = 200
MAX_CONCURRENT = 100_000
MAX_RETRIES = 100

__all__ = ["SpecError", "StudySpec", "check_study_name", "load_spec", "parse_spec"]


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
        trial_check(check_training, self.steps, self.batch_size, self.lr, self.log_every)
        trial_check(check_selection, self.select, self.patience)


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
                trial_check(check_field, name, getattr(self, name))
        if self.alpha_from is not None:
            check_study_name(self.alpha_from, "alpha_from")
        elif self.alpha is None:
            object.__setattr__(self, "alpha", DEFAULT_ALPHA)


@dataclass(frozen=True)
class Resources:
    """What one trial asks of a Ray worker."""

    cpu: float = 1.0
    gpu: float = 0.0
    # Runs trained together in one process (workers/packed.py): auto, or at most this many; 1: never.
    pack: int | str = "auto"
    # How often a pack saves its runs' states, so that a stopped study restores them there (0: never).
    checkpoint_minutes: float = 10.0

    def __post_init__(self) -> None:
        if isinstance(self.pack, str) and self.pack != "auto":
            fail("pack", f"expected auto or a number of runs >= 1, got {self.pack!r}")
        if isinstance(self.pack, int):
            at_least("pack", self.pack, 1)
        positive("cpu", self.cpu)
        at_least("gpu", self.gpu, 0)
        at_least("checkpoint_minutes", self.checkpoint_minutes, 0)
        if self.gpu > 1 and self.gpu != int(self.gpu):
            fail("gpu", f"a fraction must be <= 1 (or a whole number of GPUs), got {self.gpu}")


@dataclass(frozen=True)
class StudySpec:
    """A study: what every run shares, and the section of its kind (study.kinds), read from the
    YAML key of the kind's name with '_' for '-' (random_static: ..., search: ...)."""

    study: str
    kind: str
    workload: str = "toy"
    workload_options: Mapping[str, Any] = field(default_factory=dict)
    seeds: tuple[int, ...] = (0,)
    training: Training = field(default_factory=Training)
    gradnorm: GradNormOptions = field(default_factory=GradNormOptions)
    section: Any = None  # the kind's section (StudyKind.section); None: its defaults
    resources: Resources = field(default_factory=Resources)
    max_concurrent: int | None = None
    retries: int = 2
    description: str = ""

    def __post_init__(self) -> None:
        check_study_name(self.study, "study")
        if self.kind not in KINDS:
            fail("kind", unknown("study kind", self.kind, tuple(KINDS)))
        if len(self.workload) > MAX_WORKLOAD_NAME:
            fail("workload", f"a name of at most {MAX_WORKLOAD_NAME} characters, got {len(self.workload):,}")
        if len(self.description) > MAX_TEXT:
            fail("description", f"at most {MAX_TEXT:,} characters, got {len(self.description):,}")
        distinct_values("seeds", self.seeds, "seed")
        for i, seed in enumerate(self.seeds):
            trial_check(check_field, "seed", seed, path=f"seeds[{i}]")
        if self.max_concurrent is not None:
            within("max_concurrent", self.max_concurrent, 1, MAX_CONCURRENT)
        within("retries", self.retries, 0, MAX_RETRIES)
        kind = self.study_kind
        if self.section is None:
            object.__setattr__(self, "section", kind.section())
        elif not isinstance(self.section, kind.section):
            raise TypeError(f"section: a {kind.name} study takes a {kind.section.__name__}, got {type(self.section).__name__}")
        if kind.check is not None:
            completed = kind.check(self)
            if completed is not None:
                object.__setattr__(self, "section", completed)

    @property
    def study_kind(self) -> StudyKind:
        return KINDS[self.kind]

    def to_dict(self) -> dict[str, Any]:
        """Plain data with every default filled in (what the database keeps); the section under its kind's key."""
        data = _plain(dataclasses.asdict(self))
        data[self.study_kind.section_name] = data.pop("section")
        return data

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
        fail(field_name, f"{shown!r} is not a study name (1-128 letters, digits, '.', '_' or '-', starting with a letter or digit)")


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


def parse_stored_spec(data: Any) -> StudySpec:
    """A spec as the database keeps it (StudySpec.to_dict, every field filled in when stored): a field
    of its kind's section added since it was stored takes the value the study was run with
    (the section's STORED_BEFORE), not today's default."""
    if isinstance(data, Mapping) and isinstance(data.get("kind"), str) and data["kind"] in KINDS:
        kind = KINDS[data["kind"]]
        section = data.get(kind.section_name)
        before = getattr(kind.section, "STORED_BEFORE", {})
        if isinstance(section, Mapping) and before:
            data = {**data, kind.section_name: {**before, **section}}
    return parse_spec(data)


def parse_spec(data: Any) -> StudySpec:
    if not isinstance(data, Mapping):
        raise SpecError("spec: expected a mapping of fields (study: ..., kind: ...)")
    for required in ("study", "kind"):
        if required not in data:
            fail(required, "missing (every spec names its study and kind)")
    kind = KINDS.get(data["kind"]) if isinstance(data["kind"], str) else None
    if kind is None:
        check_study_name(_convert(str, data["study"], "study"), "study")
        fail("kind", unknown("study kind", data["kind"], tuple(KINDS)) if isinstance(data["kind"], str)
             else f"expected text, got {_describe(data['kind'])}")
    fields, sections = {}, {other.section_name for other in KINDS.values()}
    for key, value in data.items():
        if key not in sections:
            fields[key] = value
        elif key != kind.section_name and value is not None:  # a stored spec holds the other kinds' keys as null
            fail(str(key), f"does not apply to a {kind.name} study (its section is {kind.section_name})")
    section = _build(kind.section, data.get(kind.section_name) or {}, kind.section_name)
    return _build(StudySpec, fields, "", known=tuple(sections), given={"section": section})


# ---- a small typed loader for the dataclasses above ----------------------------


def _build(cls: type, data: Any, path: str, known: tuple[str, ...] = (), given: Mapping[str, Any] | None = None) -> Any:
    """`cls` from a mapping of its fields' values, each converted by its type hint. `given`: fields
    already built, which the mapping may not name; `known`: other keys a user may write (for hints)."""
    if not isinstance(data, Mapping):
        fail(path, f"expected a mapping, got {_describe(data)}")
    given = given or {}
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.name not in given]
    for key in data:
        if key not in names:
            choices = names + list(known)
            suggestion = difflib.get_close_matches(str(key), choices, n=1)
            hint = f" (did you mean {suggestion[0]!r}?)" if suggestion else f" (known: {', '.join(choices)})"
            fail(_join(path, str(key)), f"unknown field{hint}")
    values = {key: _convert(hints[key], value, _join(path, key)) for key, value in data.items()}
    try:
        return cls(**values, **given)
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
            fail(path, f"expected a list, got {_describe(value)}")
        item_type = typing.get_args(hint)[0]
        return tuple(_convert(item_type, item, f"{path}[{i}]") for i, item in enumerate(value))
    if hint is Mapping[str, Any] or origin in (Mapping, dict, typing.Mapping):
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            fail(path, f"expected a mapping, got {_describe(value)}")
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            fail(path, f"expected true or false, got {_describe(value)}")
        return value
    if hint is int:
        if not isinstance(value, int) or isinstance(value, bool):
            fail(path, f"expected an integer, got {_describe(value)}")
        return value
    if hint is float:
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            fail(path, f"expected a number, got {_describe(value)}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            fail(path, f"expected text, got {_describe(value)}")
        return value
    raise TypeError(f"spec loader: unsupported type {hint!r} at {path}")  # a bug here, not bad input


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _describe(value: Any) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {shown(value)}"


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
