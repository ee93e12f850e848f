"""The shape every loss-weighting method shares, in the manner of torch.optim."""

from __future__ import annotations

from typing import Any

import torch


class Balancer:
    """Holds the loss weights w_i of a multitask loss L = sum_i w_i L_i.

    Use per training step::

        loss = balancer.combine(task_losses)   # what the network backpropagates
        loss.backward()
        balancer.step(task_losses)             # update w from this step
        optimizer.step()

    Every balancer accumulates the time-averaged weights E_t[w_i(t)] over the
    weights used at each `step`.
    """

    # True where the weights never change: a pack reads them once (workers/packed.py).
    fixed = False
    # True where `step` needs ||grad_W L_i|| at the shared parameters W.
    needs_task_grad_norms = False
    # G_i = ||grad_W w_i L_i|| of the last step, for traces; None for methods that do not use them.
    last_grad_norms: torch.Tensor | None = None

    def __init__(self, num_tasks: int) -> None:
        if not isinstance(num_tasks, int) or num_tasks < 1:
            raise ValueError(f"num_tasks: must be an integer >= 1, got {num_tasks!r}")
        self.num_tasks = num_tasks
        self._weight_sum = torch.zeros(num_tasks, dtype=torch.float64)
        self._steps = 0

    @property
    def weights(self) -> torch.Tensor:
        """The current weights, detached (shape [T])."""
        raise NotImplementedError

    def combine(self, task_losses: torch.Tensor) -> torch.Tensor:
        """The scalar the network backpropagates: sum_i w_i L_i with w held constant."""
        # clone: `step` updates the weights in place after this graph was built
        return (self.weights.clone().to(task_losses.device) * task_losses).sum()

    def step(self, task_losses: torch.Tensor, task_grad_norms: torch.Tensor | None = None) -> None:
        """Record the weights used at this step, then update them.

        The weights and their update live on the CPU, whatever device trains.
        """
        self._weight_sum += self.weights.to(torch.float64)
        self._steps += 1
        norms = None if task_grad_norms is None else task_grad_norms.detach().cpu()
        self._update(task_losses.detach().cpu(), norms)

    def _update(self, task_losses: torch.Tensor, task_grad_norms: torch.Tensor | None) -> None:
        """Change the weights after a step; static methods keep them."""

    @property
    def time_averaged_weights(self) -> torch.Tensor:
        """E_t[w_i(t)] over the steps taken so far (the current weights before any step)."""
        if self._steps == 0:
            return self.weights.to(torch.float64)
        return self._weight_sum / self._steps

    def state_dict(self) -> dict[str, Any]:
        return {"weight_sum": self._weight_sum.clone(), "steps": self._steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state_dict of a balancer with the same number of tasks (checked, like torch.optim)."""
        weight_sum = torch.as_tensor(state["weight_sum"])
        if weight_sum.shape != self._weight_sum.shape:
            raise ValueError(
                f"load_state_dict: the state is for {weight_sum.numel()} tasks, this balancer has {self.num_tasks}"
            )
        self._weight_sum = weight_sum.clone().to(torch.float64)
        self._steps = int(state["steps"])


def check_weights(name: str, weights, num_tasks: int) -> torch.Tensor:
    """Validate user-given positive weights and return them as a float tensor."""
    values = torch.as_tensor(weights, dtype=torch.float32).flatten()
    if values.numel() != num_tasks:
        raise ValueError(f"{name}: expected {num_tasks} values (one per task), got {values.numel()}")
    if not bool(torch.isfinite(values).all()) or bool((values <= 0).any()):
        raise ValueError(f"{name}: every value must be positive and finite, got {values.tolist()}")
    return values
