"""Method tables (paper Tables 1-3): per-task test metrics per method, mean ± std over seeds.

Delta_m % (Maninis et al. 2019, used across multitask-learning papers): for
method m and every metric j over all tasks,
    Delta_m = 100 / K * sum_j (-1)^{h_j} (M_{m,j} - M_{single,j}) / M_{single,j}
where h_j = 1 if higher is better for metric j, and M_single,j comes from the
single-task run trained for metric j's task. Lower is better; 0 matches
single-task training.

Every comparison between rows is also made seed by seed (study.report.paired):
Δm % (or, without single-task runs, the task-normalized test loss) per seed,
its t-interval over seeds, and each method paired against GradNorm and
against the best row.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from study.report.frames import quantity_of, run_labels, task_names, task_of
from study.report.paired import PairedComparison, comparisons, mean_intervals
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
    # label x seed: Delta_m % per seed (or the task-normalized test loss without single-task runs)
    scores: pd.DataFrame = field(default_factory=pd.DataFrame)
    score_name: str = DELTA_M

    @property
    def intervals(self) -> pd.DataFrame:
        """Per multitask label: the mean score and its t 95 % interval over seeds."""
        return mean_intervals(self.scores)

    @property
    def best_label(self) -> str | None:
        """The row with the lowest mean score (lower is better for both scores)."""
        means = self.scores.mean(axis=1).dropna()
        return str(means.idxmin()) if len(means) else None

    @property
    def gradnorm_label(self) -> str | None:
        return next((str(label) for label in self.scores.index if str(label).startswith("gradnorm α=")), None)

    def paired(self) -> list[PairedComparison]:
        """Each row against GradNorm and against the best row, seed by seed."""
        references = [label for label in dict.fromkeys([self.gradnorm_label, self.best_label]) if label is not None]
        return comparisons(self.scores, references)

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

    delta_m, score_name = None, "task-normalized test loss"
    per_seed = multitask.groupby(["label", "seed"], sort=False)
    scores = per_seed["value"].mean().unstack("seed")
    if SINGLE_TASK in mean.index and len(columns):
        baseline = mean.loc[SINGLE_TASK]
        signs = np.array([-1.0 if higher_is_better[quantity_of(c)] else 1.0 for c in columns])
        delta_m = (((mean[columns] - baseline) / baseline) * signs).mean(axis=1) * 100.0
        # the same per seed, against the same baseline: their mean over seeds is the Delta_m above
        scores = ((((per_seed[columns].mean() - baseline) / baseline) * signs).mean(axis=1) * 100.0).unstack("seed")
        score_name = DELTA_M
    problems = [] if len(mean) else ["The methods table needs finished runs; none has finished yet."]
    return MethodTable(columns, mean, std, seeds, best, dict(higher_is_better), delta_m, problems, scores, score_name)


def table_stats(table: MethodTable) -> dict[str, Any]:
    stats: dict[str, Any] = {
        "best": {column: table.best[column].idxmax() for column in table.columns if table.best[column].any()},
    }
    if table.delta_m is not None:
        stats["delta_m_pct"] = {label: float(v) for label, v in table.delta_m.items()}
    if len(table.scores):
        stats["score"] = table.score_name
        stats["score_intervals"] = {str(label): {k: float(v) for k, v in row.items()}
                                    for label, row in table.intervals.iterrows()}
        stats["best_by_mean"] = table.best_label
        stats["paired"] = [c.to_dict() for c in table.paired()]
    return stats


def ranking_lines(table: MethodTable) -> list[str]:
    """The table's comparisons in words: who is best by its mean, and which differences the seeds support."""
    best = table.best_label
    if best is None:
        return []
    unit = "points" if table.score_name == DELTA_M else ""
    lines = [f"Lowest mean {table.score_name}: {best}. Paired over seeds (a method is better or worse only where the "
             "t 95 % interval of its per-seed differences excludes 0):"]
    lines += [comparison.phrase(unit) + "." for comparison in table.paired()]
    return lines


def table_html(table: MethodTable) -> str:
    """mean ± std per cell, the best per column in bold, Delta_m % last."""
    arrows = {c: "↑" if table.higher_is_better[quantity_of(c)] else "↓" for c in table.columns}
    head = ["method", "seeds"] + [f"{c} {arrows[c]}" for c in table.columns]
    if table.delta_m is not None:
        head.append(f"{DELTA_M} ↓ (t 95 % CI)")
    best = table.best_label
    versus = {c.method: c for c in table.paired() if c.other == best}
    if versus:
        head.append(f"vs {best}, paired")
    intervals = table.intervals
    rows = ["<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for label in table.mean.index:
        cells = [html.escape(label), str(int(table.seeds.get(label, 0)))]
        for column in table.columns:
            mean, std = table.mean.loc[label, column], table.std.loc[label, column]
            text = "–" if pd.isna(mean) else f"{mean:.4g}" + ("" if pd.isna(std) else f" ± {std:.2g}")
            cells.append(f"<b>{text}</b>" if table.best.loc[label, column] else text)
        if table.delta_m is not None:
            cells.append("0 (baseline)" if label == SINGLE_TASK else
                         f"{table.delta_m[label]:+.2f}" + _interval(intervals, label))
        if versus:
            comparison = versus.get(label)
            cells.append("–" if comparison is None else
                         f"{comparison.mean_difference:+.2f} ({comparison.ci_low:+.2f} to {comparison.ci_high:+.2f}), "
                         f"{comparison.verdict}")
        rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    return "<table>" + "".join(rows) + "</table>"


def _interval(intervals: pd.DataFrame, label: str) -> str:
    if label not in intervals.index or not np.isfinite(intervals.loc[label, "ci_low"]):
        return ""
    return f" ({intervals.loc[label, 'ci_low']:+.2f} to {intervals.loc[label, 'ci_high']:+.2f})"


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
