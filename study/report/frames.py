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
        update = row.get("weight_update")
        return f"gradnorm α={row['alpha']:g}" + (f" ({update} update)" if isinstance(update, str) else "")
    if method == "single-task" and pd.notna(row.get("task")):
        return f"single-task {int(row['task'])}"
    return method


def run_labels(runs: pd.DataFrame) -> pd.Series:
    """run_label, plus the balancer's learning rate for a method the study trains at several."""
    labels = runs.apply(run_label, axis=1) if len(runs) else pd.Series([], dtype=object)
    if "balancer_lr" not in runs.columns:
        return labels
    rates = runs.groupby("method")["balancer_lr"].nunique()
    swept = runs["method"].isin(rates[rates > 1].index)
    if not swept.any():
        return labels
    labels = labels.copy()
    labels[swept] = labels[swept] + " lr=" + runs.loc[swept, "balancer_lr"].map("{:g}".format)
    return labels
