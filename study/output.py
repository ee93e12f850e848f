"""Shared output formatting for the CLI: aligned tables, CSV and JSON."""

from __future__ import annotations

import json
import math
import sys
from datetime import datetime
from typing import Any, TextIO

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

FORMATS = ("table", "csv", "json")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"  # every timestamp gns prints, in UTC, in every format


def format_value(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return str(value)


def same_decimals(*values: float, digits: int = 4) -> list[str]:
    """`values` with one number of decimals, enough for `digits` significant digits of the largest:
    an estimate and its interval read alike (-12.94 to 0.17, not -12.94 to 0.1672)."""
    finite = [abs(v) for v in values if math.isfinite(v) and v != 0]
    decimals = max(0, digits - 1 - math.floor(math.log10(max(finite)))) if finite else 0
    return [f"{v:.{decimals}f}" for v in values]


def table(frame: pd.DataFrame) -> str:
    """An aligned plain-text table; numbers right-aligned."""
    if frame.empty:
        return "(no rows)"
    columns = [str(c) for c in frame.columns]
    cells = [[format_value(v) for v in row] for row in frame.itertuples(index=False)]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    from pandas.api.types import is_numeric_dtype

    numeric = [is_numeric_dtype(frame[c]) for c in frame.columns]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    return "\n".join([line(columns), line(["-" * w for w in widths]), *(line(row) for row in cells)])


def with_plain_times(frame: pd.DataFrame) -> pd.DataFrame:
    """Timestamp columns as TIME_FORMAT text, so a table, CSV and JSON show the same value."""
    from pandas import to_datetime
    from pandas.api.types import is_datetime64_any_dtype

    frame = frame.copy()
    for column in frame.columns:
        series = frame[column]
        if is_datetime64_any_dtype(series) or (
            series.dtype == object and len(series) and all(isinstance(v, datetime) for v in series.dropna())
            and series.notna().any()
        ):
            frame[column] = to_datetime(series, utc=True).dt.strftime(TIME_FORMAT)
    return frame


def write_frame(frame: pd.DataFrame, fmt: str, out: TextIO | None = None) -> None:
    """The same columns in the same order in every format."""
    out = out or sys.stdout
    frame = with_plain_times(frame)
    if fmt == "table":
        out.write(table(frame) + "\n")
    elif fmt == "csv":
        frame.to_csv(out, index=False)
    elif fmt == "json":
        records = [{k: _jsonable(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]
        json.dump(records, out, indent=2)
        out.write("\n")
    else:
        raise ValueError(f"format: unknown format {fmt!r} (choose from {', '.join(FORMATS)})")


def _jsonable(value: Any) -> Any:
    from pandas import isna

    if not isinstance(value, (list, tuple, dict)) and isna(value):
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return _jsonable(value.item())
    return value
