"""Dynamic Weight Average (Liu, Johns and Davison, CVPR 2019, eq. 7).

    r_i(t-1) = L_i(t-1) / L_i(t-2)
    w_i(t)   = T exp(r_i(t-1) / tau) / sum_j exp(r_j(t-1) / tau),   tau = 2

with L_i(t) a task's mean training loss over epoch t, and w = 1 for the first
two epochs. We train in steps, not epochs: an "epoch" here is a window of
`window` steps (decisions.md), so the weights change once per window.
"""

from __future__ import annotations

from typing import Any

import torch

from workers.balancers.base import Balancer

TEMPERATURE = 2.0  # tau, the paper's value
WINDOW = 100  # steps per "epoch"


def dwa_weights(last_means: torch.Tensor, earlier_means: torch.Tensor, temperature: float = TEMPERATURE) -> torch.Tensor:
    """T softmax(r / tau) with r_i = last_i / earlier_i: a task whose loss fell least gets the most weight."""
    ratios = last_means / earlier_means
    return ratios.shape[-1] * torch.softmax(ratios / temperature, dim=-1)


class DynamicWeightAverage(Balancer):
    def __init__(self, num_tasks: int, window: int = WINDOW, temperature: float = TEMPERATURE) -> None:
        super().__init__(num_tasks)
        if not isinstance(window, int) or window < 1:
            raise ValueError(f"window: must be an integer >= 1, got {window!r}")
        if not temperature > 0:
            raise ValueError(f"temperature: must be > 0, got {temperature!r}")
        self.window, self.temperature = window, float(temperature)
        self._weights = torch.ones(num_tasks)
        self._loss_sum = torch.zeros(num_tasks, dtype=torch.float64)
        self._in_window = 0
        self._window_means: list[torch.Tensor] = []  # the last two windows' mean losses

    @property
    def weights(self) -> torch.Tensor:
        return self._weights.clone()

    def _update(self, task_losses: torch.Tensor, task_grad_norms: torch.Tensor | None) -> None:
        self._loss_sum += task_losses.to(torch.float64)
        self._in_window += 1
        if self._in_window < self.window:
            return
        self._window_means = [*self._window_means, self._loss_sum / self._in_window][-2:]
        self._loss_sum.zero_()
        self._in_window = 0
        if len(self._window_means) == 2:
            self._weights = dwa_weights(self._window_means[1], self._window_means[0], self.temperature).float()

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "weights": self._weights.clone(), "loss_sum": self._loss_sum.clone(),
                "in_window": self._in_window, "window_means": [m.clone() for m in self._window_means]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._weights = state["weights"].clone()
        self._loss_sum = state["loss_sum"].clone()
        self._in_window = int(state["in_window"])
        self._window_means = [m.clone() for m in state["window_means"]]


# How a trial config becomes this module's balancer (the method registry: records/methods.py).
BUILDERS = {
    "dwa": lambda config, workload: DynamicWeightAverage(len(workload.tasks)),
}
