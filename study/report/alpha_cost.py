"""What GradNorm's α cost before the study: the alpha sweep it was chosen from, per seed.

A study whose spec says `gradnorm.alpha_from: SWEEP` trains GradNorm at the α
that SWEEP chose on validation. Comparing one GradNorm run with a search over
static weights at "equal compute" then leaves that sweep out: honestly
charged, GradNorm costs its own run plus the sweep. The sweep chose α once,
pooled over its seeds, so each seed of the comparison is charged the sweep's
training divided by its number of seeds (steps actually trained, and worker
seconds, over every run of the sweep: its GradNorm runs at each α and its
equal-weights runs, failed ones included).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd


@dataclass(frozen=True)
class AlphaCost:
    source: str  # the alpha-sweep study
    runs: int  # runs it trained, all seeds
    seeds: int
    steps_per_seed: float  # its training steps divided by its seeds: what one seed of the comparison is charged
    seconds_per_seed: float

    def runs_worth(self, steps_per_run: int) -> float:
        """The charge in runs of `steps_per_run` steps."""
        return self.steps_per_seed / steps_per_run

    def sentence(self, steps_per_run: int) -> str:
        return (f"GradNorm is charged for its α: the sweep {self.source!r} trained {self.runs} runs over "
                f"{self.seeds} seeds, {self.runs_worth(steps_per_run):.3g} runs' worth of {steps_per_run} steps per seed "
                f"({self.seconds_per_seed:.0f} worker seconds), added to its own run on every compute axis.")

    def to_dict(self, steps_per_run: int) -> dict:
        return {**asdict(self), "runs_worth": self.runs_worth(steps_per_run), "sentence": self.sentence(steps_per_run)}


def sweep_cost(source: str, sweep_runs: pd.DataFrame) -> AlphaCost | None:
    """The cost of the alpha sweep `source` from its recorded runs (None: it has none)."""
    if sweep_runs.empty:
        return None
    seeds = int(sweep_runs["seed"].nunique())
    steps = float(pd.to_numeric(sweep_runs["steps_completed"], errors="coerce").fillna(0).clip(lower=0).sum())
    seconds = float(pd.to_numeric(sweep_runs["wall_time_s"], errors="coerce").fillna(0).clip(lower=0).sum())
    return AlphaCost(source, int(len(sweep_runs)), seeds, steps / seeds, seconds / seeds)


def alpha_source(spec: dict) -> str | None:
    """The alpha-sweep study a stored spec took GradNorm's α from (None: α was set in the spec)."""
    options = spec.get("gradnorm") if isinstance(spec, dict) else None
    source = options.get("alpha_from") if isinstance(options, dict) else None
    return source if isinstance(source, str) else None
