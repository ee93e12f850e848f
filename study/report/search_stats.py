"""A search study's statistics, typed: what summary.json's `search` holds (beside its curve and
budget), and the sentences the page and `gns report` print of them (each written here once).

Computed by study.report.best_found; apart from it because that module draws with plotly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from study.report.summary_json import known_fields, seed_keyed

CROSSING = ("steps_to_match_gradnorm", "runs_to_match_gradnorm")  # known even before a curve exists
CURVE_END = ("change_at_gradnorm_compute", "steps_spent", "seconds_spent", "final_change_pct", "final_change_low",
             "final_change_high", "final_change_ci_half_width")  # where the curve ends: none without a curve
TRAINED = ("runs_trained", "runs_failed", "final_change_pct_by_seed")  # a searcher's own runs (not the expected curve)


@dataclass(frozen=True)
class SearcherStats:
    """One searcher's curve: the least compute from which its mean choice stays at or above GradNorm,
    where the curve ends (mean, seed range, t half-width over seeds) and its choice at GradNorm's compute."""

    steps_to_match_gradnorm: float | None = None
    runs_to_match_gradnorm: float | None = None
    change_at_gradnorm_compute: float | None = None  # None where the curve starts after GradNorm's compute
    steps_spent: float | None = None
    seconds_spent: float | None = None
    final_change_pct: float | None = None  # None: no curve yet
    final_change_low: float | None = None
    final_change_high: float | None = None
    final_change_ci_half_width: float | None = None  # NaN from one seed
    runs_trained: int | None = None
    runs_failed: int | None = None
    final_change_pct_by_seed: dict[int, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        names = CROSSING + (CURVE_END if self.final_change_pct is not None else ()) + (
            TRAINED if self.runs_trained is not None else ())
        return {name: getattr(self, name) for name in names}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SearcherStats":
        values = known_fields(cls, data)
        values["final_change_pct_by_seed"] = seed_keyed(values.get("final_change_pct_by_seed"))
        return cls(**values)

    def sentence(self, searcher: str, seeds: int, gradnorm_compute_steps: float) -> str | None:
        if self.final_change_pct is None:
            return None
        matched = (f"is at or above GradNorm on average from {self.steps_to_match_gradnorm:g} steps on "
                   f"({self.runs_to_match_gradnorm:.3g} runs' worth)" if self.steps_to_match_gradnorm is not None
                   else "does not match GradNorm on average within its budget")
        half = self.final_change_ci_half_width
        interval = f", t 95 % CI ±{half:.2f}" if half is not None and half == half else ""
        equal = (f" At GradNorm's compute ({gradnorm_compute_steps:g} steps) its choice is "
                 f"{self.change_at_gradnorm_compute:+.2f} %." if self.change_at_gradnorm_compute is not None else "")
        return (f"{searcher}: {matched}; at {self.steps_spent:g} steps its choice is {self.final_change_pct:+.2f} % vs "
                f"GradNorm on test (seed range {self.final_change_low:+.2f} to {self.final_change_high:+.2f}{interval}), "
                f"from {self.runs_trained} runs over {seeds} seeds ({self.runs_failed} failed)." + equal)


@dataclass(frozen=True)
class SearchStats:
    seeds: int  # seeds with a finished GradNorm reference
    steps_per_run: int
    searchers: dict[str, SearcherStats]
    alpha_cost: dict[str, Any] | None  # study.report.alpha_cost.AlphaCost.to_dict: None where α was set
    gradnorm_compute_steps: float  # per seed: its own run (as trained) plus its α sweep's
    gradnorm_spread_pct: dict[int, float]
    gradnorm_seconds: float | None
    gradnorm_compute_s: float | None
    gradnorm_static_change_pct: float | None = None  # mean over seeds; None without GradNorm-Static runs
    gradnorm_static_change_by_seed: dict[int, float] | None = None
    gradnorm_static_seconds: float | None = None
    random_expected: SearcherStats | None = None  # random search without the luck of its draw order
    budget_steps: int | None = None  # from the spec

    def to_dict(self) -> dict[str, Any]:
        """summary.json's `search` (without its curve)."""
        data: dict[str, Any] = {"seeds": self.seeds, "steps_per_run": self.steps_per_run,
                                "searchers": {name: entry.to_dict() for name, entry in self.searchers.items()},
                                "alpha_cost": self.alpha_cost, "gradnorm_compute_steps": self.gradnorm_compute_steps,
                                "gradnorm_spread_pct": self.gradnorm_spread_pct, "gradnorm_seconds": self.gradnorm_seconds,
                                "gradnorm_compute_s": self.gradnorm_compute_s}
        if self.gradnorm_static_change_pct is not None:
            data.update(gradnorm_static_change_pct=self.gradnorm_static_change_pct,
                        gradnorm_static_change_by_seed=self.gradnorm_static_change_by_seed,
                        gradnorm_static_seconds=self.gradnorm_static_seconds)
        if self.random_expected is not None:
            data["random_expected"] = self.random_expected.to_dict()
        if self.budget_steps is not None:
            data["budget_steps"] = self.budget_steps
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SearchStats":
        """Back from `to_dict`, or from summary.json (JSON has made the seeds' keys text)."""
        values = known_fields(cls, data)
        values["searchers"] = {name: SearcherStats.from_dict(entry) for name, entry in data["searchers"].items()}
        values["gradnorm_spread_pct"] = seed_keyed(data["gradnorm_spread_pct"])
        values["gradnorm_static_change_by_seed"] = seed_keyed(data.get("gradnorm_static_change_by_seed"))
        if data.get("random_expected") is not None:
            values["random_expected"] = SearcherStats.from_dict(data["random_expected"])
        return cls(**values)

    def findings(self) -> list[str]:
        """The statistics in sentences: the page's and the terminal's."""
        found = []
        if self.alpha_cost is not None:
            found.append(self.alpha_cost["sentence"] + f" GradNorm's compute per seed: {self.gradnorm_compute_steps:g} steps.")
        for searcher, entry in self.searchers.items():
            sentence = entry.sentence(searcher, self.seeds, self.gradnorm_compute_steps)
            found += [sentence] if sentence else []
        expected = self.random_expected
        if expected is not None and expected.final_change_pct is not None:
            reached = (f"is at or above GradNorm from {expected.runs_to_match_gradnorm:.3g} full runs' worth of steps on"
                       if expected.steps_to_match_gradnorm is not None else "does not reach GradNorm")
            found.append("Random search without the luck of its draw order (dotted): the exact expected test change of "
                         "the validation-chosen best of k of its finished runs, over every order they could have come "
                         f"in, mean over seeds; it {reached}.")
        if self.gradnorm_static_change_pct is not None:
            found.append(f"GradNorm-Static (a second run with GradNorm's E_t[w]): {self.gradnorm_static_change_pct:+.2f} % "
                         "vs GradNorm, mean over seeds.")
        return found

    def headline(self) -> list[str]:
        """What `gns report` prints: the page's findings, marked as the search's."""
        return [f"Search: {sentence}" for sentence in self.findings()]
