"""Random search at equal compute: how many static runs does it take to match one GradNorm run?

A user who searches static weights at random trains k weightings, keeps the one
with the best validation value (the workload's primary metric on the
validation split) and reports its test performance. Over every order in which
the n trained weightings could have been drawn, the expected test % change vs
GradNorm of that choice is exact:

    E_k = sum_j P(j is the best on validation among k drawn) * change_j
        = sum_j C(n - r_j, k - 1) / C(n, k) * change_j

with r_j the validation rank of weighting j (1 = best). Computed per seed (each
seed's static runs against its own GradNorm run), then averaged over seeds.
The crossing point is the smallest k from which the mean E_k stays at or above
GradNorm (0 %): the one rule (`stays_from`) every equal-compute report uses.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from math import comb
from typing import Any, Mapping

import numpy as np
import pandas as pd

from study.report.summary_json import known_fields


def expected_best_of_k(validation: np.ndarray, change: np.ndarray, k: int) -> float:
    """E[test change of the run with the best (lowest) validation value among k drawn without replacement]."""
    validation, change = np.asarray(validation, dtype=float), np.asarray(change, dtype=float)
    n = len(validation)
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and the {n} runs, got {k}")
    order = np.argsort(validation, kind="stable")  # best first
    ranks = np.arange(1, n + 1)
    chances = np.array([comb(n - r, k - 1) for r in ranks], dtype=float) / comb(n, k)
    return float((chances * change[order]).sum())


def random_search_curve(points: pd.DataFrame) -> pd.DataFrame:
    """Per k (runs trained): the mean over seeds of E_k and its min and max over seeds.

    `points`: static runs with seed, validation_value and change_pct (Figure4Data.points).
    """
    static = points[(points["method"] == "static") & points["validation_value"].notna()]
    per_seed = {int(seed): runs for seed, runs in static.groupby("seed")}
    if not per_seed:
        return pd.DataFrame(columns=["runs", "mean_change_pct", "low_change_pct", "high_change_pct", "seeds"])
    most = min(len(runs) for runs in per_seed.values())  # every seed can draw this many
    rows = []
    for k in range(1, most + 1):
        values = [expected_best_of_k(runs["validation_value"], runs["change_pct"], k) for runs in per_seed.values()]
        rows.append({"runs": k, "mean_change_pct": float(np.mean(values)), "low_change_pct": float(np.min(values)),
                     "high_change_pct": float(np.max(values)), "seeds": len(values)})
    return pd.DataFrame(rows)


def stays_from(values) -> int | None:
    """The first position from which every value is >= 0 (at or above GradNorm) to the end; None: never.

    "Stays", not "first touches": a choice made on validation can get worse on test as the search
    goes on, and a crossing the curve falls back from is not one a user can rely on.
    """
    values = np.asarray(values, dtype=float)
    below = np.flatnonzero(~(values >= 0))
    start = int(below[-1]) + 1 if len(below) else 0
    return start if start < len(values) else None


def value_at_compute(curve: pd.DataFrame, compute_column: str, budget: float) -> float | None:
    """The curve's mean change at the last point that costs no more than `budget` (None: none does)."""
    affordable = curve[curve[compute_column] <= budget + 1e-9]
    return float(affordable["mean_change_pct"].iloc[-1]) if len(affordable) else None


@dataclass(frozen=True)
class RandomSearchStats:
    """A random search over the study's static runs against one GradNorm run: summary.json's
    `random_search` (beside its curve), and its sentences for the page and `gns report`."""

    runs_searched: int
    runs_to_match_gradnorm: int | None  # the fewest runs from which its mean stays at or above GradNorm
    best_of_all_change_pct: float | None
    gradnorm_runs_charged: float  # GradNorm's compute per seed in static runs' worth (its α sweep's included)
    change_at_gradnorm_compute: float | None  # the expected choice of a search of that many runs
    alpha_cost: dict[str, Any] | None = None  # study.report.alpha_cost.AlphaCost.to_dict: None where α was set

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RandomSearchStats":
        return cls(**known_fields(cls, data))

    def matched(self) -> str:
        if self.runs_to_match_gradnorm:
            return (f"from {self.runs_to_match_gradnorm} random static runs on, their choice (on validation) stays at "
                    "or above one GradNorm run on average")
        return (f"even the best of all {self.runs_searched} static runs (chosen on validation) does not stay at or "
                "above one GradNorm run on average")

    def at_gradnorm_compute(self) -> str | None:
        """GradNorm charged for its α: what a search of its compute finds (None where α was set)."""
        if self.alpha_cost is None:
            return None
        at = self.change_at_gradnorm_compute
        return (f"GradNorm and its α sweep {self.alpha_cost['source']!r} cost {self.gradnorm_runs_charged:.3g} static "
                "runs per seed (as trained, early stopping included); a random search of that many runs expects "
                + (f"{at:+.2f} % vs GradNorm." if at is not None else "a change not known."))

    def findings(self) -> list[str]:
        best = self.best_of_all_change_pct
        found = [f"Random search: {self.matched()}" + (f" (best of all {self.runs_searched}: {best:+.2f} %)." if
                                                       best is not None else ".")]
        charged = self.at_gradnorm_compute()
        return found + ([charged] if charged else [])

    def sentences(self) -> list[str]:
        explained = ("A random search trains k weightings and keeps the one with the best validation value; the curve is "
                     "the expected test % change vs GradNorm of that choice over every order the weightings could have "
                     "been drawn in (exact, per seed, then averaged), against the compute spent.")
        cost = [self.alpha_cost["sentence"]] if self.alpha_cost is not None else []
        return [explained] + cost + self.findings()

    def headline(self) -> list[str]:
        return self.findings()


def crossing_point(curve: pd.DataFrame, gradnorm_runs: float = 1.0,
                   alpha_cost: dict[str, Any] | None = None) -> RandomSearchStats:
    """The fewest random static runs from which their validation-chosen best stays at or above GradNorm
    on test, on average; and the expected best at GradNorm's own compute, `gradnorm_runs` runs' worth
    (1, or more when its α was charged: `alpha_cost`, study.report.alpha_cost)."""
    start = stays_from(curve["mean_change_pct"]) if len(curve) else None
    return RandomSearchStats(
        runs_searched=int(curve["runs"].max()) if len(curve) else 0,
        runs_to_match_gradnorm=int(curve["runs"].iloc[start]) if start is not None else None,
        best_of_all_change_pct=float(curve["mean_change_pct"].iloc[-1]) if len(curve) else None,
        gradnorm_runs_charged=float(gradnorm_runs),
        change_at_gradnorm_compute=value_at_compute(curve, "runs", gradnorm_runs) if len(curve) else None,
        alpha_cost=alpha_cost,
    )


# Log-axis ticks at whole runs' worth of compute: plotly's own log ticks label the minor
# gridlines ("2 3 ... 10k 2 3"), which reads badly over a span of about a decade.
RUN_TICKS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)


def whole_run_log_axis(title: str, per_run: int, most: float, unit: str = "run") -> dict[str, Any]:
    """A plotly log x-axis up to `most` with ticks at whole runs of `per_run` (steps, or 1 for runs)."""
    runs = [k for k in RUN_TICKS if k * per_run <= most * 1.01]
    return {"title": title, "type": "log", "tickvals": [k * per_run for k in runs],
            "ticktext": [f"{k} {unit}{'s' if k != 1 else ''}" for k in runs]}


def search_plot(curve: pd.DataFrame, steps: int | None, gradnorm_static_change: float | None,
                gradnorm_runs: float = 1.0, charged: bool = False):
    """Best found (expected, validation-chosen) vs compute, GradNorm at its compute, `gradnorm_runs` (one run as
    trained, plus its α sweep's cost where `charged`)."""
    import plotly.graph_objects as go

    per_run = steps or 1
    unit = "training steps" if steps else "runs"
    x = curve["runs"] * per_run
    figure = go.Figure()
    figure.add_trace(go.Scatter(x=np.r_[x, x[::-1]], y=np.r_[curve["high_change_pct"], curve["low_change_pct"][::-1]],
                                fill="toself", line={"width": 0}, fillcolor="rgba(87,117,144,0.2)", hoverinfo="skip",
                                name="range over seeds"))
    figure.add_trace(go.Scatter(x=x, y=curve["mean_change_pct"], mode="lines+markers", line={"color": "#577590"},
                                name="random search: expected best (chosen on validation), mean over seeds"))
    figure.add_trace(go.Scatter(x=[gradnorm_runs * per_run], y=[0.0], mode="markers",
                                marker={"symbol": "diamond", "size": 12, "color": "black"},
                                name="GradNorm, charged for its α sweep (0 %)" if charged else "one GradNorm run (0 %)"))
    if gradnorm_static_change is not None:
        figure.add_trace(go.Scatter(x=[(gradnorm_runs + 1) * per_run], y=[gradnorm_static_change], mode="markers",
                                    marker={"symbol": "star", "size": 14, "color": "#f4a261", "line": {"width": 1, "color": "black"}},
                                    name="GradNorm + GradNorm-Static (two runs)"))
    figure.update_layout(title="Random search over static weights vs one GradNorm run, at equal compute",
                         xaxis=whole_run_log_axis(f"compute spent ({unit}), log scale", per_run,
                                                  max(float(x.max()) if len(x) else 0.0, (gradnorm_runs + 1) * per_run)),
                         yaxis_title="test % change vs GradNorm (higher is better)", template="plotly_white",
                         legend={"orientation": "h", "y": -0.25})
    return figure
