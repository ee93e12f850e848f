"""Balancers whose weights never change: equal, fixed static, single-task."""

from __future__ import annotations

from typing import Sequence

import torch

from workers.balancers.base import Balancer, check_weights


def normalize_to_task_count(weights: torch.Tensor) -> torch.Tensor:
    """Scale positive weights so that they sum to T, the paper's convention (tasks: the last dimension)."""
    return weights * (weights.shape[-1] / weights.sum(dim=-1, keepdim=True))


class StaticWeights(Balancer):
    """Fixed weights, renormalized to sum to the number of tasks."""

    def __init__(self, num_tasks: int, weights: Sequence[float]) -> None:
        super().__init__(num_tasks)
        self._weights = normalize_to_task_count(check_weights("weights", weights, num_tasks))

    @property
    def weights(self) -> torch.Tensor:
        return self._weights


class EqualWeights(StaticWeights):
    """w_i = 1 for every task."""

    def __init__(self, num_tasks: int) -> None:
        super().__init__(num_tasks, [1.0] * num_tasks)


class SingleTask(Balancer):
    """Trains one task alone: w = one-hot(task). The other heads get no gradient."""

    def __init__(self, num_tasks: int, task: int) -> None:
        super().__init__(num_tasks)
        if not isinstance(task, int) or not 0 <= task < num_tasks:
            raise ValueError(f"task: must be an index in [0, {num_tasks}), got {task!r}")
        self.task = task
        self._weights = torch.nn.functional.one_hot(torch.tensor(task), num_tasks).float()

    @property
    def weights(self) -> torch.Tensor:
        return self._weights
