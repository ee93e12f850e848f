"""Method tables (paper Tables 1-3): per-task test metrics per method, mean ± std over seeds.

Delta_m % (Maninis et al. 2019, used across multitask-learning papers): for
method m and every metric j over all tasks,
    Delta_m = 100 / K * sum_j (-1)^{h_j} (M_{m,j} - M_{single,j}) / M_{single,j}
where h_j = 1 if higher is better for metric j, and M_single,j comes from the
single-task run trained for metric j's task. Lower is better; 0 matches
single-task training.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from study.report.frames import quantity_of, run_labels, task_names, task_of
from records import METHODS, Status

OK = str(Status.OK)

SINGLE_TASK = "single-task"
DELTA_M = "Δm %"


@dataclass
class MethodTable:
    columns: list[str]  # metric columns, `<metric>.<task>`
    mean: pd.DataFrame  # label x column
    std: pd.DataFrame
    seeds: pd.Series  # label -> number of finished seeds
    best: pd.DataFrame  # label x column, bool
    higher_is_better: dict[str, bool]
    delta_m: pd.Series | None  # label -> Delta_m %, when single-task runs exist
    problems: list[str] = field(default_factory=list)

    def long(self) -> pd.DataFrame:
        """One row per (method, metric column): what the CSV holds."""
        frame = pd.concat({"mean": self.mean.stack(), "std": self.std.stack(), "best": self.best.stack()}, axis=1)
        frame.index.names = ["method", "column"]
        frame = frame.reset_index()
        frame["seeds"] = frame["method"].map(self.seeds)
        return frame


def method_table(runs: pd.DataFrame, higher_is_better: dict[str, bool]) -> MethodTable:
    tasks = task_names(runs)
    columns = [f"{metric}.{task}" for task in tasks for metric in higher_is_better if f"{metric}.{task}" in runs.columns]
    ok = runs[runs["status"] == OK].copy()
    ok["label"] = run_labels(ok)
    # Rows in the methods' canonical order (then alpha), whatever order the runs were recorded in.
    ok["order"] = ok["method"].map({method: i for i, method in enumerate(METHODS)})
    ok = ok.sort_values(["order", "alpha"], kind="stable", na_position="first")
    multitask = ok[ok["method"] != SINGLE_TASK]
    mean = multitask.groupby("label", sort=False)[columns].mean()
    std = multitask.groupby("label", sort=False)[columns].std()
    seeds = multitask.groupby("label", sort=False)["seed"].nunique()

    single = ok[ok["method"] == SINGLE_TASK]
    if len(single):
        single_mean, single_std = {}, {}
        for column in columns:
            task_index = tasks.index(task_of(column))
            own = single[single["task"] == task_index][column]
            single_mean[column], single_std[column] = own.mean(), own.std()
        mean.loc[SINGLE_TASK] = pd.Series(single_mean)
        std.loc[SINGLE_TASK] = pd.Series(single_std)
        seeds.loc[SINGLE_TASK] = single["seed"].nunique()

    best = pd.DataFrame(False, index=mean.index, columns=columns)
    for column in columns:
        values = mean[column]
        if values.notna().any():
            winner = values.idxmax() if higher_is_better[quantity_of(column)] else values.idxmin()
            best.loc[winner, column] = True

    delta_m = None
    if SINGLE_TASK in mean.index and len(columns):
        baseline = mean.loc[SINGLE_TASK]
        signs = np.array([-1.0 if higher_is_better[quantity_of(c)] else 1.0 for c in columns])
        relative = (mean[columns] - baseline) / baseline
        delta_m = (relative * signs).mean(axis=1) * 100.0
    problems = [] if len(mean) else ["The methods table needs finished runs; none has finished yet."]
    return MethodTable(columns, mean, std, seeds, best, dict(higher_is_better), delta_m, problems)


def table_stats(table: MethodTable) -> dict[str, Any]:
    stats: dict[str, Any] = {
        "best": {column: table.best[column].idxmax() for column in table.columns if table.best[column].any()},
    }
    if table.delta_m is not None:
        stats["delta_m_pct"] = {label: float(v) for label, v in table.delta_m.items()}
    return stats


def table_html(table: MethodTable) -> str:
    """mean ± std per cell, the best per column in bold, Delta_m % last."""
    arrows = {c: "↑" if table.higher_is_better[quantity_of(c)] else "↓" for c in table.columns}
    head = ["method", "seeds"] + [f"{c} {arrows[c]}" for c in table.columns]
    if table.delta_m is not None:
        head.append(f"{DELTA_M} ↓")
    rows = ["<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for label in table.mean.index:
        cells = [html.escape(label), str(int(table.seeds.get(label, 0)))]
        for column in table.columns:
            mean, std = table.mean.loc[label, column], table.std.loc[label, column]
            text = "–" if pd.isna(mean) else f"{mean:.4g}" + ("" if pd.isna(std) else f" ± {std:.2g}")
            cells.append(f"<b>{text}</b>" if table.best.loc[label, column] else text)
        if table.delta_m is not None:
            cells.append("0 (baseline)" if label == SINGLE_TASK else f"{table.delta_m[label]:+.2f}")
        rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    return "<table>" + "".join(rows) + "</table>"


def chosen_on_validation(runs: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """For each method trained in several variants (e.g. uncertainty at several lrs): the variant
    with the lowest mean validation value (the workload's primary metric on validation)."""
    ok = runs[(runs["status"] == OK) & runs["validation_value"].notna()].copy()
    ok["label"] = run_labels(ok)
    chosen = {}
    for method, variants in ok.groupby("method"):
        means = variants.groupby("label")["validation_value"].mean()
        if method != SINGLE_TASK and len(means) > 1:
            chosen[str(method)] = {"label": str(means.idxmin()), "validation_value": float(means.min()),
                                   "variants": {str(k): float(v) for k, v in means.items()}}
    return chosen
