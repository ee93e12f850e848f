"""FAMO, Fast Adaptive Multitask Optimization (Liu, Liu, Jin, Stone and Liu, NeurIPS 2023).

Task logits xi, z = softmax(xi). The network minimizes sum_i z_i log L_i / c
with c = sum_j z_j / L_j, whose gradient is sum_i lambda_i grad L_i with

    lambda_i = (z_i / L_i) / sum_j (z_j / L_j)        (sum_i lambda_i = 1; we use w = T lambda)

and xi follows the decrease of each log loss: delta_i = log L_i(t-1) - log L_i(t),
xi <- Adam step along J_softmax(xi)^T delta = z * (delta - z . delta), with
weight decay gamma on xi (the paper's lr 0.025, gamma 0.01, min losses 0).

One forward pass per step (decisions.md): the weights used at step t come
from the losses of step t-1, and delta compares consecutive batches, where the
paper re-evaluates the same batch after the update.
"""

from __future__ import annotations

from typing import Any

import torch

from workers.balancers.base import Balancer
from workers.config import BALANCER_LR

DECAY = 0.01  # gamma
EPSILON = 1e-8  # keeps log L and 1 / L finite at a zero loss


def famo_weights(logits: torch.Tensor, task_losses: torch.Tensor) -> torch.Tensor:
    """T lambda, lambda_i = (z_i / L_i) / sum_j (z_j / L_j) with z = softmax(logits)."""
    scaled = torch.softmax(logits, dim=-1) / (task_losses + EPSILON)
    return task_losses.shape[-1] * scaled / scaled.sum(dim=-1, keepdim=True)


def famo_logit_gradient(logits: torch.Tensor, previous_losses: torch.Tensor, task_losses: torch.Tensor) -> torch.Tensor:
    """J_softmax(logits)^T delta, delta_i = log L_i(t-1) - log L_i(t): the logits' gradient."""
    z = torch.softmax(logits, dim=-1)
    delta = torch.log(previous_losses + EPSILON) - torch.log(task_losses + EPSILON)
    return z * (delta - (z * delta).sum(dim=-1, keepdim=True))


class FAMO(Balancer):
    def __init__(self, num_tasks: int, lr: float = BALANCER_LR, decay: float = DECAY) -> None:
        super().__init__(num_tasks)
        if not lr > 0:
            raise ValueError(f"lr: must be > 0, got {lr!r}")
        self.logits = torch.zeros(num_tasks, requires_grad=True)
        self._optimizer = torch.optim.Adam([self.logits], lr=lr, weight_decay=decay)
        self._weights = torch.ones(num_tasks)
        self._previous_losses: torch.Tensor | None = None

    @property
    def weights(self) -> torch.Tensor:
        return self._weights.clone()

    def _update(self, task_losses: torch.Tensor, task_grad_norms: torch.Tensor | None) -> None:
        if self._previous_losses is not None:
            self.logits.grad = famo_logit_gradient(self.logits.detach(), self._previous_losses, task_losses)
            self._optimizer.step()
        self._previous_losses = task_losses.clone()
        self._weights = famo_weights(self.logits.detach(), task_losses)

    def state_dict(self) -> dict[str, Any]:
        previous = None if self._previous_losses is None else self._previous_losses.clone()
        return {**super().state_dict(), "logits": self.logits.detach().clone(), "optimizer": self._optimizer.state_dict(),
                "weights": self._weights.clone(), "previous_losses": previous}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        with torch.no_grad():
            self.logits.copy_(state["logits"])
        self._optimizer.load_state_dict(state["optimizer"])
        self._weights = state["weights"].clone()
        previous = state["previous_losses"]
        self._previous_losses = None if previous is None else previous.clone()


# How a trial config becomes this module's balancer (the method registry: records/methods.py).
BUILDERS = {
    "famo": lambda config, workload: FAMO(len(workload.tasks), lr=config.balancer_lr),
}
