"""Arguments and helpers that several subcommands share."""

from __future__ import annotations

import argparse
import fnmatch
import operator
import os
import re
from pathlib import Path

from typing import TYPE_CHECKING

from db import DEFAULT_URL, redact
from study.errors import BadInput

if TYPE_CHECKING:
    import pandas as pd

STORAGE_ENV = "GNS_STORAGE"  # a cluster sets its PostgreSQL URL once here

# Exit codes beyond 0 (success), 1 (runtime failure), 2 (bad input) and 130 (interrupted).
EXIT_TRIALS_FAILED = 3  # gns launch: every trial recorded, some of them failed
EXIT_DATABASE_UNAVAILABLE = 4  # the database stayed unreachable for the whole retry window
EXIT_TERMINATED = 143  # gns launch stopped by SIGTERM (128 + 15), after recording what finished


def add_storage_argument(parser: argparse.ArgumentParser) -> None:
    from_env = os.environ.get(STORAGE_ENV)
    parser.add_argument(
        "--storage",
        default=from_env or DEFAULT_URL,
        metavar="URL",
        # --help shows where the default comes from, never its value: the URL may hold a password
        help=f"results database: a URL (e.g. postgresql://user@host:port/db) or an SQLite file path (default: "
        + (f"${STORAGE_ENV}, set in the environment)" if from_env else f"{DEFAULT_URL}; ${STORAGE_ENV} sets another)"),
    )


def allow_user_code(spec_path: str | None = None) -> None:
    """A `module:factory` may live in the directory gns runs in, or beside the spec (docs/workloads.md)."""
    from workers.modules import allow_imports_from

    allow_imports_from(Path.cwd(), *([Path(spec_path).resolve().parent] if spec_path else []))


def next_steps(study: str, storage: str) -> list[str]:
    """What to run after a launch, with this study and database filled in."""
    shown = redact(storage)
    store = "" if storage in (DEFAULT_URL, os.environ.get(STORAGE_ENV)) else f" --storage {shown}"
    hidden = "   (password shown as ***)" if shown != storage else ""
    return [
        "next:",
        f"  gns report {study}{store}        # Figure-4/7 and tables: reports/{study}/index.html",
        f"  gns status {study}{store}        # progress from the database",
        f"  optuna-dashboard {shown}   # the trials in Optuna's dashboard{hidden}",
    ]


_CONDITION = re.compile(r"^([^=!<>]+)(==|=|!=|<=|>=|<|>)(.*)$")
_OPERATORS = {
    "=": operator.eq,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def filter_rows(frame: pd.DataFrame, conditions: list[str]) -> pd.DataFrame:
    """Keep rows matching every `column<op>value` (op: = != < <= > >=)."""
    from pandas.api.types import is_numeric_dtype

    for condition in conditions:
        match = _CONDITION.match(condition)
        if match is None:
            raise BadInput(f"--where: expected COLUMN=VALUE (or != < <= > >=), got {condition!r}")
        column, op, raw = match.group(1).strip(), match.group(2), match.group(3).strip()
        if column not in frame.columns:
            raise BadInput(f"--where: no column {column!r} (see --columns '*' for all)")
        series = frame[column]
        if is_numeric_dtype(series):
            try:
                value = float(raw)
            except ValueError:
                raise BadInput(f"--where: column {column!r} is numeric, got {raw!r}") from None
        else:
            series, value = series.astype(str), raw
        frame = frame[_OPERATORS[op](series, value).fillna(False).astype(bool)]
    return frame


def select_columns(frame: pd.DataFrame, patterns: list[str], strict: bool = True) -> pd.DataFrame:
    """Columns by name or glob (`time_averaged_weight.*`), in the order asked; strict: each must match."""
    chosen: list[str] = []
    for pattern in (p.strip() for item in patterns for p in item.split(",") if p.strip()):
        matches = [c for c in frame.columns if fnmatch.fnmatchcase(c, pattern)]
        if not matches and strict:
            raise BadInput(f"--columns: no column matches {pattern!r} (columns: {', '.join(frame.columns)})")
        chosen += [c for c in matches if c not in chosen]
    return frame[chosen]
