"""Figure 4's statistics, typed: what summary.json's `figure4` holds, and the sentences the page and
`gns report` print of them (each written here once).

Apart from the computing (study.report.figure4, which draws with plotly) so that `gns report`'s
terminal lines and a reader of summary.json need neither plotting nor scipy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Mapping

from study.output import same_decimals
from study.progress import plural
from study.report.summary_json import known_fields, seed_keyed


@dataclass(frozen=True)
class DistanceLine:
    """OLS of the weightings' % change on their distance to E_t[w_GN], with Spearman's rho and
    bootstrap intervals over weightings (summary.json: ols_*, spearman_*, bootstrap_*)."""

    n: int
    slope: float
    intercept: float
    pearson_r: float
    p_value: float
    slope_ci_low: float  # Student-t, from the residuals
    slope_ci_high: float
    residual_std: float
    spearman_rho: float
    spearman_p: float
    bootstrap_resamples: int
    bootstrap_slope_low: float
    bootstrap_slope_high: float
    bootstrap_r_low: float
    bootstrap_r_high: float

    OLS = ("n", "slope", "intercept", "pearson_r", "p_value", "slope_ci_low", "slope_ci_high", "residual_std")

    def to_dict(self) -> dict[str, Any]:
        return {(f"ols_{name}" if name in self.OLS else name): value for name, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DistanceLine | None":
        keys = {f.name: (f"ols_{f.name}" if f.name in cls.OLS else f.name) for f in fields(cls)}
        if not all(key in data for key in keys.values()):
            return None
        return cls(**{name: data[key] for name, key in keys.items()})

    def sentence(self) -> str:
        slope, t_low, t_high, boot_low, boot_high = same_decimals(
            self.slope, self.slope_ci_low, self.slope_ci_high, self.bootstrap_slope_low, self.bootstrap_slope_high)
        return (f"OLS over weightings: slope {slope} %/unit (t 95 % CI {t_low} to {t_high}; bootstrap {boot_low} to "
                f"{boot_high}), Pearson r = {self.pearson_r:.3f} (bootstrap {self.bootstrap_r_low:.3f} to "
                f"{self.bootstrap_r_high:.3f}; p = {self.p_value:.3g}), Spearman ρ = {self.spearman_rho:.3f} "
                f"(p = {self.spearman_p:.3g}), n = {self.n}.")


@dataclass(frozen=True)
class Confound:
    """Distance to E_t[w_GN] against distance to the trivial 1/L_i(0) weights as the reference:
    r_difference = r(E_t[w]) - r(1/L(0)) with its paired bootstrap 95 % interval (study.report.figure4)."""

    better_reference: str
    pearson_r_inverse: float | None = None
    r_difference: float | None = None
    r_difference_ci_low: float | None = None
    r_difference_ci_high: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {name: value for name, value in asdict(self).items() if value is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Confound":
        return cls(**known_fields(cls, data))

    def sentence(self, r_gradnorm: float) -> str:
        if self.r_difference is None:
            return f"Against the trivial 1/L_i(0) weights: {self.better_reference}."
        difference, low, high = same_decimals(self.r_difference, self.r_difference_ci_low, self.r_difference_ci_high,
                                              digits=2)
        return (f"Against the trivial reference w ∝ 1/L_i(0): Pearson r is {r_gradnorm:.3f} with the distance to "
                f"GradNorm's E_t[w] and {self.pearson_r_inverse:.3f} with the distance to the 1/L_i(0) weights; "
                f"difference {difference} (paired bootstrap 95 % CI {low} to {high}). Better reference: "
                f"{self.better_reference}.")


@dataclass(frozen=True)
class SeedLine:
    """Figure 4 within one seed: its static runs against that seed's GradNorm run."""

    static_runs: int
    beat_gradnorm: int
    median_change_pct: float
    ols_slope: float | None = None  # None below 3 runs or one distance
    ols_pearson_r: float | None = None
    ols_p_value: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {name: value for name, value in asdict(self).items() if value is not None}


@dataclass(frozen=True)
class Figure4Stats:
    seeds: int  # seeds with a finished GradNorm reference
    static_seeds: int  # seeds that trained static runs (fewer than `seeds` mid-study)
    static_runs: int
    static_failed: int
    beat_gradnorm: int  # static runs better than their seed's GradNorm
    weightings: int
    weightings_beating_gradnorm: int  # by their mean over seeds
    best_static_change_pct: float | None
    median_static_change_pct: float | None
    gradnorm_spread_pct: dict[int, float]  # each seed's GradNorm vs the mean of GradNorm's test losses
    gradnorm_time_averaged_weights: dict[int, dict[str, float]]
    share_ci: tuple[float, float] | None = None  # Wilson 95 % of weightings_beating_gradnorm / weightings
    line: DistanceLine | None = None
    confound: Confound | None = None
    per_seed: dict[int, SeedLine] | None = None  # with more than one seed
    gradnorm_static_change_pct: float | None = None  # mean over seeds
    gradnorm_static_change_std: float | None = None  # with more than one seed
    sampler: str | None = None  # how the weightings were drawn (from the spec)

    @property
    def share_beating_gradnorm(self) -> float | None:
        return self.weightings_beating_gradnorm / self.weightings if self.weightings else None

    def with_sampler(self, sampler: str) -> "Figure4Stats":
        return replace(self, sampler=sampler)

    def to_dict(self) -> dict[str, Any]:
        """summary.json's `figure4` (the keys it has always had: ols_*, bootstrap_*, share_* flat)."""
        data: dict[str, Any] = {name: getattr(self, name) for name in (
            "seeds", "static_seeds", "static_runs", "static_failed", "beat_gradnorm", "weightings",
            "weightings_beating_gradnorm", "best_static_change_pct", "median_static_change_pct", "gradnorm_spread_pct")}
        if self.share_ci is not None:
            data.update(share_beating_gradnorm=self.share_beating_gradnorm, share_ci_low=self.share_ci[0],
                        share_ci_high=self.share_ci[1])
        if self.line is not None:
            data.update(self.line.to_dict())
        if self.confound is not None:
            data["confound"] = self.confound.to_dict()
        if self.per_seed is not None:
            data["per_seed"] = {seed: entry.to_dict() for seed, entry in self.per_seed.items()}
        for name in ("gradnorm_static_change_pct", "gradnorm_static_change_std"):
            if getattr(self, name) is not None:
                data[name] = getattr(self, name)
        data["gradnorm_time_averaged_weights"] = self.gradnorm_time_averaged_weights
        if self.sampler is not None:
            data["sampler"] = self.sampler
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Figure4Stats":
        """Back from `to_dict`, or from summary.json (where JSON has made the seeds' keys text)."""
        share = (data["share_ci_low"], data["share_ci_high"]) if "share_ci_low" in data else None
        per_seed = data.get("per_seed")
        return cls(
            **{name: data[name] for name in ("seeds", "static_seeds", "static_runs", "static_failed", "beat_gradnorm",
                                             "weightings", "weightings_beating_gradnorm", "best_static_change_pct",
                                             "median_static_change_pct")},
            gradnorm_spread_pct=seed_keyed(data.get("gradnorm_spread_pct", {})),
            gradnorm_time_averaged_weights=seed_keyed(data.get("gradnorm_time_averaged_weights", {})),
            share_ci=share,
            line=DistanceLine.from_dict(data),
            confound=Confound.from_dict(data["confound"]) if "confound" in data else None,
            per_seed=None if per_seed is None else {seed: SeedLine(**entry) for seed, entry in seed_keyed(per_seed).items()},
            gradnorm_static_change_pct=data.get("gradnorm_static_change_pct"),
            gradnorm_static_change_std=data.get("gradnorm_static_change_std"),
            sampler=data.get("sampler"),
        )

    def share_sentence(self) -> str | None:
        if not self.weightings or self.share_ci is None:
            return None
        low, high = self.share_ci
        share = (f"{self.weightings_beating_gradnorm} of {self.weightings} weightings beat GradNorm over "
                 f"{plural(self.static_seeds, 'seed')} ({100 * self.share_beating_gradnorm:.1f} %, Wilson 95 % CI "
                 f"{100 * low:.1f}–{100 * high:.1f} %)")
        if self.static_seeds > 1:
            share += f"; run by run, {self.beat_gradnorm} of {self.static_runs} static runs beat their seed's GradNorm"
        return share + (f"; {self.static_failed} static runs failed." if self.static_failed else ".")

    def findings(self) -> list[str]:
        """The statistics in sentences, each with its interval: the page's and the terminal's."""
        found = [self.line.sentence()] if self.line is not None else []
        if self.confound is not None and self.line is not None:
            found.append(self.confound.sentence(self.line.pearson_r))
        share = self.share_sentence()
        found += [share] if share else []
        if self.gradnorm_static_change_pct is not None:
            spread = (f" ± {self.gradnorm_static_change_std:.2f} (std over seeds)"
                      if self.gradnorm_static_change_std is not None else "")
            found.append(f"GradNorm-Static (retrained with E_t[w]): {self.gradnorm_static_change_pct:+.2f} %{spread} "
                         "vs GradNorm.")
        return found

    def sentences(self) -> list[str]:
        """What the page says: what a point is, then the findings."""
        several = self.static_seeds > 1
        text = [
            f"Each point is one static weighting (drawn by the {self.sampler or 'uniform'} sampler) trained with fixed "
            "weights" + (f" at each of {self.static_seeds} seeds, shown as its mean over seeds ± std" if several else "")
            + "; x is the L2 distance from its weights to the GradNorm run's time-averaged weights E_t[w], y is "
            "100 · mean_i (L_i^GN − L_i^static) / L_i^GN on the test set after the same number of steps, against the "
            "GradNorm run of the same seed (negative: the static run does worse than GradNorm).",
        ]
        if self.seeds > 1 and self.gradnorm_spread_pct:
            spread = self.gradnorm_spread_pct.values()
            text.append(f"GradNorm's own seed spread (grey band): {min(spread):+.2f} % to {max(spread):+.2f} % around "
                        "the mean of its test losses; a weighting inside the band is within GradNorm's seed noise.")
        return text + self.findings()

    def headline(self) -> list[str]:
        """What `gns report` prints: the page's findings, marked as Figure 4's."""
        return [f"Figure 4: {sentence}" for sentence in self.findings()]
