"""Uncertainty weighting (Kendall, Gal and Cipolla, 2017): learned log-variances.

With s_i = log sigma_i^2 the loss is sum_i exp(-s_i) L_i + s_i: Kendall's
regression form scaled by 2, so that w_i(0) = exp(0) = 1 like every other
method here. The minimum over s_i is the same as in the paper's form.

s_i enters the loss only through its own term, so its gradient needs no
backward pass: d/ds_i = 1 - exp(-s_i) L_i, from the step's loss values alone
(the same floats autograd produced when s_i was part of the network's loss).
The network sees fixed weights w_i = exp(-s_i) within a step, which lets
uncertainty runs pack like DWA's (workers/packed.py).
"""

from __future__ import annotations

from typing import Any

import torch

from workers.balancers.base import Balancer
from workers.config import BALANCER_LR


def uncertainty_gradient(weights: torch.Tensor, task_losses: torch.Tensor) -> torch.Tensor:
    """d/ds_i of sum_i exp(-s_i) L_i + s_i, with w_i = exp(-s_i): 1 - w_i L_i."""
    return 1 - weights * task_losses


class UncertaintyWeighting(Balancer):
    def __init__(self, num_tasks: int, lr: float = BALANCER_LR) -> None:
        super().__init__(num_tasks)
        if not lr > 0:
            raise ValueError(f"lr: must be > 0, got {lr!r}")
        self.log_variances = torch.zeros(num_tasks, requires_grad=True)
        self._optimizer = torch.optim.Adam([self.log_variances], lr=lr)

    @property
    def weights(self) -> torch.Tensor:
        return torch.exp(-self.log_variances.detach())

    def _update(self, task_losses: torch.Tensor, task_grad_norms: torch.Tensor | None) -> None:
        self.log_variances.grad = uncertainty_gradient(self.weights, task_losses)
        self._optimizer.step()
        self._optimizer.zero_grad(set_to_none=True)

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "log_variances": self.log_variances.detach().clone(),
            "optimizer": self._optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        with torch.no_grad():
            self.log_variances.copy_(state["log_variances"])
        self._optimizer.load_state_dict(state["optimizer"])


# How a trial config becomes this module's balancer (the method registry: records/methods.py).
BUILDERS = {
    "uncertainty": lambda config, workload: UncertaintyWeighting(len(workload.tasks), lr=config.balancer_lr),
}
