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


@dataclass(frozen=True)
class MethodTableStats:
    """The table's statistics: summary.json's `methods_table`, and the sentences the page and `gns report`
    print of them (each written here once)."""

    best: dict[str, str]  # metric column -> the row with the best mean
    delta_m_pct: dict[str, float] | None = None  # label -> Δm %, with single-task runs
    score: str | None = None  # what rows are compared on, seed by seed (None: no finished multitask rows)
    score_intervals: dict[str, dict[str, float]] | None = None  # label -> mean, ci_low, ci_high, seeds
    best_by_mean: str | None = None
    paired: tuple[PairedComparison, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"best": self.best}
        if self.delta_m_pct is not None:
            data["delta_m_pct"] = self.delta_m_pct
        if self.score is not None:
            data.update(score=self.score, score_intervals=self.score_intervals, best_by_mean=self.best_by_mean,
                        paired=[comparison.to_dict() for comparison in self.paired])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "MethodTableStats":
        paired = tuple(PairedComparison(**{k: v for k, v in entry.items() if k != "verdict"})
                       for entry in data.get("paired", ()))
        return cls(data.get("best", {}), data.get("delta_m_pct"), data.get("score"), data.get("score_intervals"),
                   data.get("best_by_mean"), paired)

    def delta_m_sentence(self) -> str | None:
        if not self.delta_m_pct:
            return None
        intervals = self.score_intervals or {}

        def with_interval(label: str, value: float) -> str:
            ci = intervals.get(label)
            known = ci is not None and np.isfinite(ci["ci_low"])
            return f"{label} {value:+.2f}" + (f" ({ci['ci_low']:+.1f} to {ci['ci_high']:+.1f})" if known else "")

        return (f"{DELTA_M} vs single-task (t 95 % CI over seeds): "
                + ", ".join(with_interval(label, value) for label, value in self.delta_m_pct.items()) + ".")

    def best_sentence(self) -> str | None:
        if self.best_by_mean is None:
            return None
        alike = [c.method for c in self.paired if c.other == self.best_by_mean and c.verdict == "not distinguishable"]
        return (f"Lowest mean {self.score}: {self.best_by_mean}; not distinguishable from it over seeds (paired t 95 % "
                f"CI spans 0): {', '.join(alike) or 'none'}.")

    def findings(self) -> list[str]:
        """The page's and the terminal's sentences."""
        return [sentence for sentence in (self.delta_m_sentence(), self.best_sentence()) if sentence]

    def sentences(self) -> list[str]:
        """The page's: the findings, then every paired comparison in words."""
        if self.best_by_mean is None:
            return self.findings()
        unit = "points" if self.score == DELTA_M else ""
        return self.findings() + [
            "Paired over seeds (a method is better or worse only where the t 95 % interval of its per-seed "
            "differences excludes 0):"] + [comparison.phrase(unit) + "." for comparison in self.paired]

    def headline(self) -> list[str]:
        return [f"Methods: {sentence}" for sentence in self.findings()]


def table_stats(table: MethodTable) -> MethodTableStats:
    best = {column: str(table.best[column].idxmax()) for column in table.columns if table.best[column].any()}
    delta_m = None if table.delta_m is None else {str(label): float(v) for label, v in table.delta_m.items()}
    if not len(table.scores):
        return MethodTableStats(best, delta_m)
    intervals = {str(label): {k: float(v) for k, v in row.items()} for label, row in table.intervals.iterrows()}
    return MethodTableStats(best, delta_m, table.score_name, intervals, table.best_label, tuple(table.paired()))


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
