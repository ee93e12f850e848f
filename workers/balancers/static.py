"""Balancers whose weights never change (equal, fixed static, single-task), or are fixed after the
first step (inverse initial loss)."""

from __future__ import annotations

from typing import Any, Sequence

import torch

from workers.balancers.base import Balancer, check_weights


def normalize_to_task_count(weights: torch.Tensor) -> torch.Tensor:
    """Scale positive weights so that they sum to T, the paper's convention (tasks: the last dimension)."""
    return weights * (weights.shape[-1] / weights.sum(dim=-1, keepdim=True))


class StaticWeights(Balancer):
    """Fixed weights, renormalized to sum to the number of tasks."""

    fixed = True

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

    fixed = True

    def __init__(self, num_tasks: int, task: int) -> None:
        super().__init__(num_tasks)
        if not isinstance(task, int) or not 0 <= task < num_tasks:
            raise ValueError(f"task: must be an index in [0, {num_tasks}), got {task!r}")
        self.task = task
        self._weights = torch.nn.functional.one_hot(torch.tensor(task), num_tasks).float()

    @property
    def weights(self) -> torch.Tensor:
        return self._weights


def inverse_initial_loss_weights(initial_losses: torch.Tensor) -> torch.Tensor:
    """w_i = T * (1 / L_i(0)) / sum_j (1 / L_j(0)): every task's loss starts at the same weighted size.

    The trivial baseline that normalizes losses by their starting scale (as GradNorm's L_i/L_i(0)
    does), which any claim about GradNorm's weights should be told apart from.
    """
    inverse = 1.0 / initial_losses
    return normalize_to_task_count(inverse)


class InverseInitialLoss(Balancer):
    """Static weights ∝ 1/L_i(0), from the run's own first-batch losses.

    The first step trains with w = 1 (its losses are L_i(0), measured by that step); every later
    step with inverse_initial_loss_weights(L(0)). Set from the losses alone, so a pack holds one per
    run (workers/packed.py) and a run's weights do not depend on its partners.
    """

    def __init__(self, num_tasks: int) -> None:
        super().__init__(num_tasks)
        self._weights = torch.ones(num_tasks)
        self.initial_losses: torch.Tensor | None = None

    @property
    def weights(self) -> torch.Tensor:
        return self._weights

    def _update(self, task_losses: torch.Tensor, task_grad_norms: torch.Tensor | None) -> None:
        if self.initial_losses is None:
            if not bool(torch.isfinite(task_losses).all()) or bool((task_losses <= 0).any()):
                raise ValueError(f"initial losses: need finite positive L_i(0), got {task_losses.tolist()}")
            self.initial_losses = task_losses.clone().to(torch.float32)
            self._weights = inverse_initial_loss_weights(self.initial_losses)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "initial_losses": None if self.initial_losses is None else self.initial_losses.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        initial = state.get("initial_losses")
        self.initial_losses = None if initial is None else torch.as_tensor(initial, dtype=torch.float32).clone()
        self._weights = torch.ones(self.num_tasks) if self.initial_losses is None else inverse_initial_loss_weights(self.initial_losses)


# How a trial config becomes this module's balancer (the method registry: records/methods.py).
BUILDERS = {
    "equal": lambda config, workload: EqualWeights(len(workload.tasks)),
    "static": lambda config, workload: StaticWeights(len(workload.tasks), config.weights),
    "gradnorm-static": lambda config, workload: StaticWeights(len(workload.tasks), resolved_weights(config)),
    "single-task": lambda config, workload: SingleTask(len(workload.tasks), config.task),
    "inverse-initial-loss": lambda config, workload: InverseInitialLoss(len(workload.tasks)),
}


def resolved_weights(config) -> tuple[float, ...]:
    """A gradnorm-static run's weights, which the driver copies from its GradNorm run before training."""
    if config.weights is None:
        raise ValueError("weights: gradnorm-static needs its weights resolved before training")
    return config.weights
