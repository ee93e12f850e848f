"""Figure 4 at several step budgets, read from the runs' traces.

With a constant learning rate, a run's state at step b is the state of the
same run trained for b steps, so one study gives Figure 4 at every logged step.
At budget b a run's test losses are its trace's at step b, and GradNorm's
E_t[w] is the mean of its logged weights over the steps in (0, b] (the full
run's E_t[w] averages every step; the logged ones sample it). GradNorm-Static
retrains with the full run's E_t[w], so it appears at the full budget only.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go

from records import Status
from study.report.figure4 import figure4_data

OK = str(Status.OK)


def runs_at_budget(runs: pd.DataFrame, traces: pd.DataFrame, budget: int) -> pd.DataFrame:
    """The static and GradNorm runs as if they had stopped at step `budget` (a run not logged there drops out)."""
    at_step = traces[traces["step"] == budget].pivot(index="key", columns="task", values="test_loss")
    gradnorm_keys = runs.loc[runs["method"] == "gradnorm", "key"]
    averaged = (traces[traces["key"].isin(gradnorm_keys) & (traces["step"] > 0) & (traces["step"] <= budget)]
                .groupby(["key", "task"])["weight"].mean().unstack("task"))
    chosen = runs[runs["method"].isin(["static", "gradnorm"]) & (runs["status"] == OK) & runs["key"].isin(at_step.index)].copy()
    for task in at_step.columns:
        chosen[f"test_loss.{task}"] = chosen["key"].map(at_step[task])
        is_gradnorm = chosen["method"] == "gradnorm"
        chosen.loc[is_gradnorm, f"time_averaged_weight.{task}"] = chosen.loc[is_gradnorm, "key"].map(averaged[task])
    return chosen


def budget_table(runs: pd.DataFrame, traces: pd.DataFrame, budgets: list[int]) -> pd.DataFrame:
    """One row per budget: the share of weightings beating GradNorm (Wilson 95 %) and the line's slope and r."""
    rows: list[dict[str, Any]] = []
    for budget in sorted(budgets):
        stats = figure4_data(runs_at_budget(runs, traces, budget)).stats
        nan = float("nan")
        share, (low, high) = stats.share_beating_gradnorm, stats.share_ci or (nan, nan)
        of_line = lambda name: None if stats.line is None else getattr(stats.line, name)  # noqa: E731 (no line below 3 points)
        rows.append({
            "steps": budget,
            "weightings": stats.weightings,
            "beating_gradnorm": stats.weightings_beating_gradnorm,
            "share_pct": 100 * (nan if share is None else share),
            "share_ci_low_pct": 100 * low,
            "share_ci_high_pct": 100 * high,
            "median_change_pct": stats.median_static_change_pct,
            "best_change_pct": stats.best_static_change_pct,
            "slope": of_line("slope"),
            "slope_ci_low": of_line("bootstrap_slope_low"),
            "slope_ci_high": of_line("bootstrap_slope_high"),
            "pearson_r": of_line("pearson_r"),
            "r_ci_low": of_line("bootstrap_r_low"),
            "r_ci_high": of_line("bootstrap_r_high"),
        })
    return pd.DataFrame(rows)


def budget_plot(table: pd.DataFrame) -> go.Figure:
    figure = go.Figure()
    figure.add_trace(go.Scatter(
        x=table["steps"], y=table["share_pct"], mode="lines+markers", name="weightings beating GradNorm (%, Wilson 95 %)",
        error_y={"type": "data", "symmetric": False, "array": table["share_ci_high_pct"] - table["share_pct"],
                 "arrayminus": table["share_pct"] - table["share_ci_low_pct"]},
    ))
    figure.add_trace(go.Scatter(x=table["steps"], y=table["median_change_pct"], mode="lines+markers", yaxis="y2",
                                name="median weighting's % change vs GradNorm", line={"dash": "dot"}))
    figure.update_layout(
        title="Figure 4 against the step budget",
        xaxis={"title": "training steps", "type": "log"},
        yaxis={"title": "% of weightings beating GradNorm", "rangemode": "tozero"},
        yaxis2={"title": "median % change vs GradNorm", "overlaying": "y", "side": "right"},
        template="plotly_white",
        legend={"orientation": "h", "y": -0.25},
    )
    return figure
