"""Reading per-task columns (`<quantity>.<task>`) out of a runs DataFrame."""

from __future__ import annotations

import numpy as np
import pandas as pd


def quantity_of(column: str) -> str:
    """`accuracy` of `accuracy.digit`."""
    return column.split(".", 1)[0]


def task_of(column: str) -> str:
    """`digit` of `accuracy.digit`."""
    return column.split(".", 1)[1]


def task_names(runs: pd.DataFrame) -> tuple[str, ...]:
    """The study's tasks, in their workload's order."""
    return tuple(task_of(column) for column in runs.columns if column.startswith("test_loss."))


def task_values(frame: pd.DataFrame, quantity: str, tasks: tuple[str, ...]) -> np.ndarray:
    """An array [runs, tasks] of e.g. `time_averaged_weight` or `test_loss`."""
    return frame[[f"{quantity}.{task}" for task in tasks]].to_numpy(dtype=float)


def run_label(row: pd.Series) -> str:
    """How a run is named in legends and tables."""
    method = row["method"]
    if method == "gradnorm" and pd.notna(row.get("alpha")):
        return f"gradnorm α={row['alpha']:g}"
    if method == "single-task" and pd.notna(row.get("task")):
        return f"single-task {int(row['task'])}"
    return method
