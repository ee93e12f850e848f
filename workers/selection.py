"""Which logged step a run is read at: `select: best_validation` and early stopping (`patience`).

One tracker for K runs at once ([K] tensors), so that a run alone and a run in
a pack choose their step by the same arithmetic. The score is the primary
metric on the validation split, sum_i L_i^val / L_i(0) (a single-task run's own
task only: scored_tasks); ties keep the earlier step, and a score that is not
finite never counts as better.
"""

from __future__ import annotations

from typing import Sequence

import torch

from workers.config import TrialConfig


def validation_scores(validation_losses: torch.Tensor, initial_losses: torch.Tensor,
                      scored: torch.Tensor | None = None) -> torch.Tensor:
    """[K]: sum_i L_i^val / L_i(0) per run over its `scored` tasks ([K, T] bool; all where None), in
    float64 on the CPU."""
    ratios = validation_losses.detach().to("cpu", torch.float64) / initial_losses.detach().to("cpu", torch.float64)
    if scored is not None:
        ratios = torch.where(scored.cpu(), ratios, 0.0)
    return ratios.sum(dim=-1)


def scored_tasks(configs: Sequence[TrialConfig], num_tasks: int) -> torch.Tensor:
    """[K, T] bool: the tasks whose validation losses choose each run's step. Every task, but for a
    single-task run its own: the other heads never train and the shared layers drift away from
    them, so their losses would pull its choice back towards step 0."""
    scored = torch.ones(len(configs), num_tasks, dtype=torch.bool)
    for run, config in enumerate(configs):
        if config.method == "single-task":
            scored[run] = torch.arange(num_tasks) == config.task
    return scored


class BestValidation:
    """Each run's best logged validation score and step, and (with patience) which runs are done."""

    def __init__(self, count: int, patience: int | None) -> None:
        self.patience = patience
        self.best_score = torch.full((count,), float("inf"), dtype=torch.float64)
        self.best_step: list[int | None] = [None] * count
        self.since_best = torch.zeros(count, dtype=torch.int64)  # log points since the best one

    def update(self, step: int, scores: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        """Take the scores logged at `step` of the `active` runs; [K] bool: whose best this step is."""
        active = active.cpu()
        improved = active & torch.isfinite(scores) & (scores < self.best_score)
        self.best_score = torch.where(improved, scores, self.best_score)
        self.since_best = torch.where(improved, 0, self.since_best + active.to(torch.int64))
        for run in improved.nonzero().flatten().tolist():
            self.best_step[run] = step
        return improved

    def exhausted(self) -> torch.Tensor:
        """[K] bool: runs whose last `patience` log points brought no better score (all False without patience)."""
        if self.patience is None:
            return torch.zeros_like(self.since_best, dtype=torch.bool)
        return self.since_best >= self.patience
