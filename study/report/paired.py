"""Comparisons between methods that a reader can trust: per-seed scores, paired over seeds.

Runs of one seed share their initialization and minibatch order, so two
methods are compared seed by seed: d_s = score(method, s) - score(other, s),
lower scores being better. The comparison reports the mean difference, its
Student-t 95 % interval over the seeds both methods finished, and how many of
those seeds the method scored better in. A method is called better (or worse)
only when that interval excludes 0; otherwise the two are not distinguishable
at this number of seeds.

The score is Δm % (study.report.tables, one value per seed against the mean
single-task baseline) where the study trained single-task runs, else the
primary metric, the task-normalized test loss sum_i L_i / L_i(0).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import pandas as pd

from study.report.stats import mean_interval_half_width


@dataclass(frozen=True)
class PairedComparison:
    method: str
    other: str
    seeds: int  # seeds both finished
    mean_difference: float  # method - other; negative: the method scores better (lower)
    ci_low: float
    ci_high: float
    better_seeds: int  # seeds where the method scored lower

    @property
    def verdict(self) -> str:
        if self.ci_high < 0:
            return "better"
        if self.ci_low > 0:
            return "worse"
        return "not distinguishable"

    def phrase(self, unit: str) -> str:
        interval = (f"t 95 % CI {self.ci_low:+.2f} to {self.ci_high:+.2f}" if math.isfinite(self.ci_low)
                    else "no interval from one seed")
        amount = f"{self.mean_difference:+.2f}" + (f" {unit}" if unit else "")
        return (f"{self.method} vs {self.other}: {amount} ({interval}; better in "
                f"{self.better_seeds} of {self.seeds} seeds): {self.verdict}")

    def to_dict(self) -> dict:
        return {**asdict(self), "verdict": self.verdict}


def paired(scores: pd.DataFrame, method: str, other: str) -> PairedComparison:
    """`scores`: label x seed (NaN where a seed did not finish)."""
    both = scores.loc[[method, other]].dropna(axis=1)
    differences = both.loc[method] - both.loc[other]
    n = len(differences)
    mean = float(differences.mean()) if n else math.nan
    half = mean_interval_half_width(float(differences.std()), n) if n >= 2 else math.nan
    return PairedComparison(method, other, n, mean, mean - half, mean + half, int((differences < 0).sum()))


def mean_intervals(scores: pd.DataFrame) -> pd.DataFrame:
    """Per label: the mean score over seeds with its Student-t 95 % interval."""
    mean, std, n = scores.mean(axis=1), scores.std(axis=1), scores.notna().sum(axis=1)
    half = pd.Series([mean_interval_half_width(s, k) for s, k in zip(std, n)], index=scores.index)
    return pd.DataFrame({"mean": mean, "ci_low": mean - half, "ci_high": mean + half, "seeds": n})


def comparisons(scores: pd.DataFrame, references: list[str]) -> list[PairedComparison]:
    """Every label against each of `references` (itself left out)."""
    return [paired(scores, label, reference) for reference in references for label in scores.index
            if label != reference and reference in scores.index]
