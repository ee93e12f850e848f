"""The checks a spec's fields are held to, each failing with a SpecError that names its field.

Apart from study.spec so that the study kinds (study.kinds), whose spec sections use
them, and the spec loader, which reads the kinds' sections, do not import each other.
"""

from __future__ import annotations

import difflib
import typing
from typing import Any

from study.errors import BadInput

MAX_LIST = 1000  # seeds, alphas, budgets, uncertainty_lrs, searchers' settings
MAX_TRIALS = 100_000  # planned trials of one study (e.g. random-static runs x seeds)


class SpecError(BadInput):
    """A spec field is wrong; the message starts with the field's path."""


def fail(path: str, message: str) -> typing.NoReturn:
    raise SpecError(f"{path}: {message}" if path else message)


def unknown(what: str, value: Any, choices: tuple[str, ...]) -> str:
    suggestion = difflib.get_close_matches(str(value), choices, n=1)
    hint = f" (did you mean {suggestion[0]!r}?)" if suggestion else f" (choose from {', '.join(choices)})"
    return f"unknown {what} {value!r}{hint}"


def at_least(name: str, value: float, minimum: float) -> None:
    if not value >= minimum:  # written so that NaN fails too
        fail(name, f"must be >= {minimum}, got {value}")


def within(name: str, value: int, minimum: int, maximum: int) -> None:
    at_least(name, value, minimum)
    if value > maximum:
        fail(name, f"must be at most {maximum:,}, got {value:,}")


def positive(name: str, value: float) -> None:
    if not value > 0:
        fail(name, f"must be > 0, got {value}")


def distinct_values(name: str, values: tuple[float, ...], noun: str) -> None:
    """A non-empty list of at most MAX_LIST values, none twice."""
    if not values:
        fail(name, f"must list at least one {noun}")
    if len(values) > MAX_LIST:
        fail(name, f"lists {len(values):,} values; at most {MAX_LIST}")
    if len(set(values)) != len(values):
        article = "an" if noun[0] in "aeiou" else "a"
        fail(name, f"lists {article} {noun} twice")


def trial_check(check: Any, *args: Any, path: str | None = None) -> None:
    """Run one of workers.config's field checks; its message becomes a spec error at `path`."""
    try:
        check(*args)
    except ValueError as error:
        name, _, message = str(error).partition(": ")
        fail(path or name, message)


def trials_bounded(path: str, per_seed: int, seeds: int, what: str) -> None:
    """`per_seed` trials at each of `seeds` seeds stay within MAX_TRIALS for one study."""
    if per_seed * seeds > MAX_TRIALS:
        fail(path, f"{what} at each of {seeds} seeds are more than {MAX_TRIALS:,} trials for one study")
