"""Supplement Figure 7's statistics: GradNorm's gain over equal weights as alpha varies.

gain = 100 * mean_i (L_i^equal - L_i^alpha) / L_i^equal, final test losses,
against the equal-weights run of the same seed (positive: GradNorm is better).
Where the runs have validation losses the same gain is computed on them, and
alpha is chosen there: the test gain at that alpha is the honest number; the
best alpha on the test set is hindsight.

Apart from the drawing (study.report.figure7) because study.choices reads the
chosen alpha at launch, where nothing is drawn.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd

from records import Status
from study.report.frames import task_names, task_values
from study.report.stats import mean_interval_half_width, percent_change
from study.report.summary_json import known_fields

OK = str(Status.OK)


@dataclass(frozen=True)
class SweepStats:
    """Figure 7's statistics: what summary.json's `figure7` holds, and the sentences the page and
    `gns report` print of them (each written here once)."""

    alphas: int
    runs: int
    first_unstable_alpha: float | None = None  # the smallest alpha at which a run diverged
    best_alpha: float | None = None  # the best mean test gain: hindsight
    best_mean_gain_pct: float | None = None
    alpha_chosen_on_validation: float | None = None  # the honest choice, where validation losses exist
    validation_gain_pct_at_chosen: float | None = None
    test_gain_pct_at_chosen: float | None = None
    test_gain_ci_at_chosen: tuple[float, float] | None = None  # Student-t 95 % over seeds

    def to_dict(self) -> dict[str, Any]:
        """summary.json's `figure7`: a choice or a best that was not made is left out."""
        data = {name: value for name, value in asdict(self).items() if value is not None}
        data["first_unstable_alpha"] = self.first_unstable_alpha
        if self.test_gain_ci_at_chosen is not None:
            data["test_gain_ci_at_chosen"] = list(self.test_gain_ci_at_chosen)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SweepStats":
        """Back from `to_dict` (other keys beside them, such as `by_alpha`, are ignored)."""
        values = known_fields(cls, data)
        if values.get("test_gain_ci_at_chosen") is not None:
            values["test_gain_ci_at_chosen"] = tuple(values["test_gain_ci_at_chosen"])
        return cls(**values)

    def choice_sentence(self) -> str | None:
        """The alpha the sweep answers with: chosen on validation, else (no validation losses) the best on test."""
        if self.alpha_chosen_on_validation is not None:
            low, high = self.test_gain_ci_at_chosen
            return (f"α chosen on the validation split: {self.alpha_chosen_on_validation:g} (validation gain "
                    f"{self.validation_gain_pct_at_chosen:+.2f} %), whose test gain is {self.test_gain_pct_at_chosen:+.2f} % "
                    f"(t 95 % CI over seeds {low:+.1f} to {high:+.1f} %). The best α on the test set itself, in "
                    f"hindsight: {self.best_alpha:g} ({self.best_mean_gain_pct:+.2f} %).")
        if self.best_alpha is not None:
            return f"Best α = {self.best_alpha:g} with a mean gain of {self.best_mean_gain_pct:+.2f} % (no validation split to choose on)."
        return None

    def sentences(self) -> list[str]:
        """What the page says of the statistics."""
        choice = self.choice_sentence()
        unstable = ([f"Runs first diverge at α = {self.first_unstable_alpha:g}."]
                    if self.first_unstable_alpha is not None else [])
        return ([choice] if choice else []) + unstable

    def headline(self) -> list[str]:
        """What `gns report` prints: the same sentences, marked as Figure 7's."""
        return [f"Figure 7: {sentence}" for sentence in self.sentences()]


@dataclass
class Figure7Data:
    gains: pd.DataFrame  # one row per GradNorm run: alpha, seed, status, gain_pct
    by_alpha: pd.DataFrame  # alpha, mean_gain_pct, std_gain_pct, seeds_ok, seeds_failed
    stats: SweepStats
    problems: list[str] = field(default_factory=list)


def figure7_data(runs: pd.DataFrame) -> Figure7Data:
    tasks = task_names(runs)
    equal = runs[(runs["method"] == "equal") & (runs["status"] == OK)].drop_duplicates("seed").set_index("seed")
    sweep = runs[runs["method"] == "gradnorm"]
    problems = [] if len(equal) else ["Figure 7 needs a finished equal-weights run; none has finished yet."]

    gains = sweep[["key", "alpha", "seed", "status"]].reset_index(drop=True).copy()
    has_validation = all(f"validation_loss.{t}" in runs.columns for t in tasks) and bool(
        len(sweep) and runs[[f"validation_loss.{t}" for t in tasks]].notna().any().all()
    )
    comparable = (gains["status"] == OK) & gains["seed"].isin(equal.index)
    for column, quantity in (("gain_pct", "test_loss"), ("validation_gain_pct", "validation_loss")):
        gains[column] = np.nan
        if comparable.any() and (quantity == "test_loss" or has_validation):
            ok_runs = sweep[comparable.to_numpy()]
            gains.loc[comparable, column] = percent_change(
                task_values(equal.loc[ok_runs["seed"]], quantity, tasks), task_values(ok_runs, quantity, tasks)
            )
    by_alpha = (
        gains.groupby("alpha")
        .agg(
            mean_gain_pct=("gain_pct", "mean"),
            std_gain_pct=("gain_pct", "std"),
            mean_validation_gain_pct=("validation_gain_pct", "mean"),
            seeds_ok=("status", lambda s: int((s == OK).sum())),
            seeds_failed=("status", lambda s: int((s != OK).sum())),
        )
        .reset_index()
        .sort_values("alpha")
    )
    # Student-t 95 % interval of the mean gain over seeds (each seed paired with its own equal-weights run).
    ok_seeds = gains[gains["gain_pct"].notna()].groupby("alpha")["gain_pct"].count().reindex(by_alpha["alpha"]).to_numpy()
    half = np.array([mean_interval_half_width(std, n) for std, n in zip(by_alpha["std_gain_pct"], ok_seeds)])
    by_alpha["gain_ci_low_pct"] = by_alpha["mean_gain_pct"] - half
    by_alpha["gain_ci_high_pct"] = by_alpha["mean_gain_pct"] + half
    stats: dict[str, Any] = {"alphas": int(len(by_alpha)), "runs": int(len(gains))}
    finished = by_alpha.dropna(subset=["mean_gain_pct"])
    if len(finished):
        best = finished.loc[finished["mean_gain_pct"].idxmax()]
        stats.update({"best_alpha": float(best["alpha"]), "best_mean_gain_pct": float(best["mean_gain_pct"])})
    chosen = by_alpha.dropna(subset=["mean_validation_gain_pct", "mean_gain_pct"])
    if len(chosen):
        pick = chosen.loc[chosen["mean_validation_gain_pct"].idxmax()]
        stats.update({
            "alpha_chosen_on_validation": float(pick["alpha"]),
            "validation_gain_pct_at_chosen": float(pick["mean_validation_gain_pct"]),
            "test_gain_pct_at_chosen": float(pick["mean_gain_pct"]),
            "test_gain_ci_at_chosen": (float(pick["gain_ci_low_pct"]), float(pick["gain_ci_high_pct"])),
        })
    unstable = by_alpha[by_alpha["seeds_failed"] > 0]
    stats["first_unstable_alpha"] = float(unstable["alpha"].min()) if len(unstable) else None
    return Figure7Data(gains, by_alpha, SweepStats(**stats), problems)
