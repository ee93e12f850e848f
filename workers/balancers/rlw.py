"""Random Loss Weighting (Lin, Ye, Xu, Shi and Zhang, TMLR 2022).

Every step draws fresh weights, w = T softmax(lambda) with lambda ~ N(0, I)
(the paper's normal variant, scaled here to sum to T like every method), from
a generator seeded by the run's seed, so a run is reproducible.
"""

from __future__ import annotations

from typing import Any

import torch

from workers.balancers.base import Balancer


def random_loss_weights(generator: torch.Generator, num_tasks: int) -> torch.Tensor:
    """T softmax(lambda), lambda_i ~ N(0, 1)."""
    return num_tasks * torch.softmax(torch.randn(num_tasks, generator=generator), dim=-1)


class RandomLossWeighting(Balancer):
    def __init__(self, num_tasks: int, seed: int = 0) -> None:
        super().__init__(num_tasks)
        self._generator = torch.Generator().manual_seed(seed)
        self._weights = random_loss_weights(self._generator, num_tasks)

    @property
    def weights(self) -> torch.Tensor:
        return self._weights.clone()

    def _update(self, task_losses: torch.Tensor, task_grad_norms: torch.Tensor | None) -> None:
        self._weights = random_loss_weights(self._generator, self.num_tasks)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "weights": self._weights.clone(), "generator": self._generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._weights = state["weights"].clone()
        self._generator.set_state(state["generator"])


# How a trial config becomes this module's balancer (the method registry: records/methods.py).
BUILDERS = {
    "rlw": lambda config, workload: RandomLossWeighting(len(workload.tasks), seed=config.seed),
}
