"""Did the runs converge within their budget? Each method group's losses over the last part of it.

A study's verdict is read at the end of its budget (or at each run's best
validation step). If a group's validation loss was still falling clearly over
the last WINDOW_FRACTION of the budget, a longer budget could change the
answer, and the report says so in its headline.

Per group (a run label: method, α, balancer lr) and task, over the runs that
trained to the budget's end (the window widened to the last MIN_POINTS logged
steps where the last WINDOW_FRACTION holds fewer): each run's loss is divided by its own value at
the window's first logged step, the ratios are averaged over runs, and an OLS
line through the window's points gives the change over the window (in % of the
level at its start) and its t statistic (slope / its standard error, from the
scatter of the mean curve about the line: the curve's own noise). A task is
still falling when the change is below -MIN_DROP_PCT and t < -TREND_T. Runs
stopped early by patience ended after their validation loss stopped
improving: they count as converged and are not fitted.

Validation losses are used where the traces hold them (databases of schema 4);
older studies are checked on their test losses, and the check says so.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from records import Status
from study.report.frames import run_labels

WINDOW_FRACTION = 0.25  # the last quarter of the budget
MIN_POINTS = 4  # log points in the window needed to fit a trend
MIN_DROP_PCT = 1.0  # a fall smaller than this over the window is read as a plateau
TREND_T = 2.0  # and one whose t is above -TREND_T as noise
HEADLINE_GROUPS = 4  # groups named in the headline; the section lists every one


@dataclass(frozen=True)
class TaskTrend:
    """One group's task over the last part of the budget."""

    group: str
    task: str
    runs: int  # runs that trained to the budget's end and were fitted
    window_start: int  # steps
    window_end: int
    change_pct: float  # fitted change over the window, % of the level at its start (negative: falling)
    t: float  # slope / standard error

    @property
    def falling(self) -> bool:
        return self.change_pct < -MIN_DROP_PCT and self.t < -TREND_T


@dataclass(frozen=True)
class GroupStops:
    group: str
    runs: int
    stopped_early: int  # by patience: converged by construction


@dataclass(frozen=True)
class ConvergenceCheck:
    split: str  # "validation", or "test" for a study recorded before validation traces
    budget: int
    trends: tuple[TaskTrend, ...]
    stops: tuple[GroupStops, ...]
    too_short: tuple[str, ...] = ()  # groups whose runs logged fewer than MIN_POINTS steps
    selects_best: bool = False  # runs read at their best validation step (training.select: best_validation)

    @property
    def falling(self) -> tuple[TaskTrend, ...]:
        return tuple(trend for trend in self.trends if trend.falling)

    @property
    def converged(self) -> bool:
        """Every group fitted and none still falling."""
        return not self.falling and not self.too_short

    def headline(self) -> str | None:
        """The warning for the report's headline, or None when every group has flattened."""
        if self.too_short and not self.falling:
            named = list(self.too_short[:HEADLINE_GROUPS]) + (
                [f"{len(self.too_short) - HEADLINE_GROUPS} more groups"] if len(self.too_short) > HEADLINE_GROUPS else [])
            return (f"convergence unknown: {', '.join(named)} logged fewer than {MIN_POINTS} steps, too few "
                    "to tell whether their losses were still falling (log more often: training.log_every)")
        if self.converged:
            return None
        groups: dict[str, list[TaskTrend]] = {}
        for trend in self.falling:
            groups.setdefault(trend.group, []).append(trend)
        parts = [f"{group} ({', '.join(f'{t.task} {t.change_pct:+.1f} %' for t in trends)})"
                 for group, trends in groups.items()]
        if len(parts) > HEADLINE_GROUPS:
            parts = parts[:HEADLINE_GROUPS] + [f"{len(parts) - HEADLINE_GROUPS} more groups (see the convergence section)"]
        first = self.falling[0]
        return (f"unconverged: {self.split} losses were still falling over the last "
                f"{first.window_end - first.window_start} of {self.budget} steps for {'; '.join(parts)}; "
                + ("a longer budget may change this study's answer" if self.selects_best else
                   "a longer budget (or training.select: best_validation with patience) may change this study's answer"))

    def lines(self) -> list[str]:
        """What the check did and found, for the page and the terminal."""
        if not self.trends and not self.stops:
            return ["Convergence: no run trained to the end of its budget; nothing to check."]
        lines = [f"Convergence, on {self.split} losses over the last {WINDOW_FRACTION:.0%} of the {self.budget}-step "
                 f"budget: a task is still falling when the fitted change is below −{MIN_DROP_PCT:g} % with "
                 f"t < −{TREND_T:g}."]
        if self.split == "test":
            lines.append("This study's traces hold no validation losses (recorded before they were logged), so the "
                         "check reads test losses.")
        headline = self.headline()
        lines.append(headline[0].upper() + headline[1:] + "." if headline else
                     "Every group had flattened (or was rising) by the end of its budget.")
        lines += [f"{t.group}, {t.task}: {t.change_pct:+.1f} % from step {t.window_start} to {t.window_end} "
                  f"(t = {t.t:.1f}, {t.runs} runs)" for t in self.falling]
        stopped = [s for s in self.stops if s.stopped_early]
        if stopped:
            lines.append("Stopped early by patience (converged): " + ", ".join(
                f"{s.group} {s.stopped_early} of {s.runs}" for s in stopped) + ".")
        if self.too_short:
            lines.append(f"Too few log points to tell (fewer than {MIN_POINTS}): {', '.join(self.too_short)}.")
        return lines

    def to_dict(self) -> dict:
        return {
            "split": self.split, "budget": self.budget, "converged": self.converged,
            "window_fraction": WINDOW_FRACTION, "min_drop_pct": MIN_DROP_PCT, "trend_t": TREND_T,
            "trends": [{**asdict(t), "falling": t.falling} for t in self.trends],
            "stopped_early": [asdict(s) for s in self.stops], "too_short": list(self.too_short),
            "headline": self.headline(),
        }


def fitted_change(steps: np.ndarray, values: np.ndarray) -> tuple[float, float]:
    """OLS of `values` on `steps`: (fitted change over the span in % of the fitted start, t of the slope).

    A line through fewer than 3 points, or one without scatter, has no standard
    error: its t is -inf/+inf for a fall/rise (a perfect line), 0 for a flat one.
    """
    x, y = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    slope, intercept = np.polyfit(x, y, 1)
    start = intercept + slope * x[0]
    change_pct = 100 * slope * (x[-1] - x[0]) / start
    residuals = y - (intercept + slope * x)
    dof = len(x) - 2
    spread = float(((x - x.mean()) ** 2).sum())
    se = math.sqrt(float((residuals ** 2).sum()) / dof / spread) if dof > 0 and spread > 0 else 0.0
    if se == 0 or not math.isfinite(se):
        return float(change_pct), (0.0 if slope == 0 else math.copysign(math.inf, slope))
    return float(change_pct), float(slope / se)


def convergence_check(runs: pd.DataFrame, traces: pd.DataFrame, budget: int) -> ConvergenceCheck:
    """The check over `runs` (a study's runs DataFrame) and their `traces`, for a `budget` of steps."""
    has_validation = "validation_loss" in traces.columns and traces["validation_loss"].notna().any()
    column = "validation_loss" if has_validation else "test_loss"
    finished = runs[runs["status"] == str(Status.OK)]
    labels = pd.Series(run_labels(finished).to_numpy(), index=finished["key"])
    by_key = finished.set_index("key")
    planned = pd.to_numeric(by_key["steps"], errors="coerce") if "steps" in by_key else pd.Series(budget, index=by_key.index)
    completed = pd.to_numeric(by_key["steps_completed"], errors="coerce")
    reached = completed >= budget
    # stopped by patience: fewer steps than the run itself was given (a search's short rungs are not)
    stopped = completed < planned.fillna(budget)
    trends: list[TaskTrend] = []
    stops: list[GroupStops] = []
    too_short: list[str] = []
    for group in dict.fromkeys(labels):
        keys = labels.index[labels == group]
        stops.append(GroupStops(group, len(keys), int(stopped[keys].sum())))
        fitted = [key for key in keys if reached[key]]
        logged = traces[traces["key"].isin(fitted) & (traces["step"] <= budget)].dropna(subset=[column])
        if logged.empty:
            continue
        steps = np.sort(logged["step"].unique())
        if len(steps) < MIN_POINTS:
            too_short.append(group)
            continue
        start = min(budget - WINDOW_FRACTION * budget, steps[-MIN_POINTS])
        window = logged[logged["step"] >= start]
        trained = finished.set_index("key").loc[fitted]
        for task in dict.fromkeys(window["task"]):
            if not (trained.get(f"time_averaged_weight.{task}", pd.Series([1.0])) > 0).any():
                continue  # a task no run of the group trained (single-task's other heads)
            curve = ratio_curve(window[window["task"] == task], column)
            if curve is None:
                continue
            change, t = fitted_change(curve.index.to_numpy(), curve.to_numpy())
            trends.append(TaskTrend(group, str(task), len(fitted), int(curve.index[0]), int(curve.index[-1]), change, t))
    selects_best = "selected_step" in finished and finished["selected_step"].notna().any()
    return ConvergenceCheck("validation" if has_validation else "test", int(budget), tuple(trends), tuple(stops),
                            tuple(too_short), bool(selects_best))


def ratio_curve(task_window: pd.DataFrame, column: str) -> pd.Series | None:
    """Mean over runs of each run's loss / its loss at the window's first step, by step (None if unusable)."""
    wide = task_window.pivot_table(index="step", columns="key", values=column, aggfunc="first").sort_index()
    first = wide.iloc[0]
    usable = first.index[(first > 0) & np.isfinite(first)]
    if not len(usable):
        return None
    curve = (wide[usable] / first[usable]).mean(axis=1).dropna()
    return curve if len(curve) >= MIN_POINTS else None
