"""GradNorm (Chen, Badrinarayanan, Lee and Rabinovich, ICML 2018).

The math is in plain functions, checked in the tests against hand-computed
numbers and against the double-backward formulation:

    G_i      = ||grad_W (w_i L_i)||_2 = w_i ||grad_W L_i||_2
    r_i      = (L_i(t) / L_i(0)) / mean_j (L_j(t) / L_j(0))
    target_i = mean_j G_j * r_i ** alpha          (held constant)
    L_grad   = sum_i |G_i - target_i|
    dL_grad/dw_i = sign(G_i - target_i) * ||grad_W L_i||_2

so no double backward is needed, and L_grad never reaches the network.

Stuck tasks (our option, off by default; the supplement leaves the failure as
future work): every `stuck_window` steps each task's mean L_i(t) / L_i(0) over
the window is compared with the window before; a task whose mean fell by less
than STUCK_TOLERANCE while GradNorm raised its weight has stopped learning
(e.g. labels it cannot fit). It leaves the update for good: its weight is
reset to 1, the other tasks share T - 1 and balance among themselves.

The paper steps w itself with Adam ("additive"). Our ablation, not in the paper,
steps log w instead ("log"): dL_grad/d(log w_i) = w_i dL_grad/dw_i, so a step
changes w_i by a ratio and a small weight cannot be pushed through its floor.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from workers.balancers.base import Balancer, check_weights
from workers.balancers.static import normalize_to_task_count
from workers.config import BALANCER_LR, DEFAULT_ALPHA, WEIGHT_UPDATES

# A window in which a task's mean loss ratio fell by less than this (relative) is a stall.
STUCK_TOLERANCE = 0.01
STUCK_WEIGHT = 1.0  # where a stuck task's weight is reset to, and stays

# Weights are clamped here before renormalizing so that they stay positive:
# an Adam step of size ~lr can overshoot a weight that is already near zero.
WEIGHT_FLOOR = 1e-6


def loss_ratios(task_losses: torch.Tensor, initial_losses: torch.Tensor) -> torch.Tensor:
    """r_i: each task's inverse training rate relative to the mean over tasks.

    Tasks are the last dimension, so [K, T] computes K runs at once.
    """
    relative = task_losses / initial_losses
    return relative / relative.mean(dim=-1, keepdim=True)


def gradnorm_targets(grad_norms: torch.Tensor, ratios: torch.Tensor, alpha: float | torch.Tensor) -> torch.Tensor:
    """target_i = mean(G) * r_i^alpha, from the weighted norms G_i (alpha: a number, or [K, 1] per run)."""
    return grad_norms.mean(dim=-1, keepdim=True) * ratios.pow(alpha)


def gradnorm_loss(grad_norms: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """L_grad = sum_i |G_i - target_i|."""
    return (grad_norms - targets).abs().sum()


def gradnorm_weight_gradient(
    weights: torch.Tensor,
    task_grad_norms: torch.Tensor,
    ratios: torch.Tensor,
    alpha: float | torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """dL_grad/dw with the targets held constant.

    Takes the unweighted norms ||grad_W L_i||; returns (gradient, G, targets).
    """
    grad_norms = weights * task_grad_norms
    targets = gradnorm_targets(grad_norms, ratios, alpha)
    return torch.sign(grad_norms - targets) * task_grad_norms, grad_norms, targets


def log_space_gradient(weight_gradient: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """dL/d(log w_i) = w_i dL/dw_i: the same gradient for a parameter held as log w."""
    return weight_gradient * weights


def renormalize(weights: torch.Tensor, floor: float = WEIGHT_FLOOR) -> torch.Tensor:
    """Clamp to a positive floor, then scale so that sum_i w_i = T."""
    return normalize_to_task_count(weights.clamp(min=floor))


def stalled_tasks(
    earlier_ratios: torch.Tensor,
    last_ratios: torch.Tensor,
    earlier_weights: torch.Tensor,
    weights: torch.Tensor,
    tolerance: float = STUCK_TOLERANCE,
) -> torch.Tensor:
    """Tasks whose window-mean L_i / L_i(0) fell by less than `tolerance` while their weight rose."""
    return (last_ratios > (1 - tolerance) * earlier_ratios) & (weights > earlier_weights)


def renormalize_active(weights: torch.Tensor, stuck: torch.Tensor, floor: float = WEIGHT_FLOOR) -> torch.Tensor:
    """Stuck tasks at STUCK_WEIGHT; the others clamped to the floor and scaled to share the rest of T."""
    active = weights.clamp(min=floor).masked_fill(stuck, 0.0)
    share = weights.shape[-1] - STUCK_WEIGHT * stuck.sum(dim=-1, keepdim=True)
    return torch.where(stuck, torch.full_like(weights, STUCK_WEIGHT), active * share / active.sum(dim=-1, keepdim=True))


def grad_norms_at(task_losses: torch.Tensor, shared_params: Sequence[torch.Tensor]) -> torch.Tensor:
    """||grad_W L_i||_2 over the shared parameters W, one autograd pass per task.

    The general path for any list of shared parameters; the training loop has a
    faster one for a linear shared layer (workers.probe). Needs the graph of
    `task_losses` alive (backward with retain_graph=True, or not yet run).
    """
    norms = []
    for loss in task_losses:
        grads = torch.autograd.grad(loss, shared_params, retain_graph=True, allow_unused=True)
        squared = sum((g.pow(2).sum() for g in grads if g is not None), torch.zeros((), device=loss.device))
        norms.append(squared.sqrt())
    return torch.stack(norms)


class GradNorm(Balancer):
    """Learns w so that every task trains at a rate set by alpha."""

    needs_task_grad_norms = True

    def __init__(
        self,
        num_tasks: int,
        shared_params: Sequence[torch.Tensor],
        alpha: float = DEFAULT_ALPHA,
        lr: float = BALANCER_LR,
        initial_loss: str | Sequence[float] = "first",
        theoretical_initial_losses: Sequence[float] | None = None,
        weight_update: str | None = None,
        stuck_window: int | None = None,
    ) -> None:
        super().__init__(num_tasks)
        if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not alpha >= 0:
            raise ValueError(f"alpha: must be a number >= 0, got {alpha!r}")
        if not isinstance(lr, (int, float)) or not lr > 0:
            raise ValueError(f"lr: must be > 0, got {lr!r}")
        self.shared_params = list(shared_params)
        if not self.shared_params:
            raise ValueError("shared_params: GradNorm needs at least one shared parameter")
        self.alpha = float(alpha)
        self.initial_losses = _initial_losses(initial_loss, theoretical_initial_losses, num_tasks)
        if weight_update not in (None, *WEIGHT_UPDATES):
            raise ValueError(f"weight_update: unknown update {weight_update!r} (choose from {', '.join(WEIGHT_UPDATES)})")
        self.in_log_space = weight_update == "log"
        if stuck_window is not None and (not isinstance(stuck_window, int) or stuck_window < 1):
            raise ValueError(f"stuck_window: must be an integer >= 1, got {stuck_window!r}")
        self.stuck_window = stuck_window
        self.stuck = torch.zeros(num_tasks, dtype=torch.bool)
        self.stuck_at_step: list[int | None] = [None] * num_tasks  # the step each task was taken out
        self._window: dict[str, Any] = {"ratio_sum": torch.zeros(num_tasks), "steps": 0, "earlier": None}
        # What Adam steps: w itself, or log w (then w = exp of it); both start at w = 1.
        self._parameter = torch.zeros(num_tasks, requires_grad=True) if self.in_log_space else torch.ones(num_tasks, requires_grad=True)
        self._optimizer = torch.optim.Adam([self._parameter], lr=lr)
        # G_i and targets of the last step, for traces.
        self.last_grad_norms: torch.Tensor | None = None
        self.last_targets: torch.Tensor | None = None

    @property
    def weights(self) -> torch.Tensor:
        parameter = self._parameter.detach()
        return parameter.exp() if self.in_log_space else parameter

    def _set_weights(self, weights: torch.Tensor) -> None:
        with torch.no_grad():
            self._parameter.copy_(weights.log() if self.in_log_space else weights)

    def step(self, task_losses: torch.Tensor, task_grad_norms: torch.Tensor | None = None) -> None:
        """One GradNorm update from this step's task losses.

        `task_grad_norms` are ||grad_W L_i|| (unweighted); when not given they
        are computed from `task_losses`' graph at the shared parameters.
        """
        if task_grad_norms is None:
            task_grad_norms = grad_norms_at(task_losses, self.shared_params)
        super().step(task_losses, task_grad_norms)

    def _update(self, task_losses: torch.Tensor, task_grad_norms: torch.Tensor | None) -> None:
        if self.initial_losses is None:
            self.initial_losses = task_losses.clone()
        if self.stuck_window is not None:
            self._watch_for_stalls(task_losses)
        active = ~self.stuck
        ratios = loss_ratios(task_losses[active], self.initial_losses[active])
        active_gradient, _, targets = gradnorm_weight_gradient(self.weights[active], task_grad_norms[active], ratios, self.alpha)
        gradient = torch.zeros(self.num_tasks).masked_scatter(active, active_gradient)
        self.last_grad_norms = self.weights * task_grad_norms
        self.last_targets = torch.zeros(self.num_tasks).masked_scatter(active, targets)
        self._parameter.grad = log_space_gradient(gradient, self.weights) if self.in_log_space else gradient
        self._optimizer.step()
        self._set_weights(renormalize_active(self.weights, self.stuck) if self.stuck.any() else renormalize(self.weights))

    def _watch_for_stalls(self, task_losses: torch.Tensor) -> None:
        """At the end of each window, take out the tasks that stalled while their weight rose."""
        window = self._window
        window["ratio_sum"] = window["ratio_sum"] + task_losses / self.initial_losses
        window["steps"] += 1
        if window["steps"] < self.stuck_window:
            return
        current = (window["ratio_sum"] / window["steps"], self.weights.clone())
        if window["earlier"] is not None:
            newly = stalled_tasks(window["earlier"][0], current[0], window["earlier"][1], current[1]) & ~self.stuck
            for task in newly.nonzero().flatten().tolist():
                self.stuck_at_step[task] = self._steps
            self.stuck |= newly
        window.update(ratio_sum=torch.zeros(self.num_tasks), steps=0, earlier=current)

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "weights": self.weights.clone(),
            "initial_losses": None if self.initial_losses is None else self.initial_losses.clone(),
            "optimizer": self._optimizer.state_dict(),
            "stuck_at_step": list(self.stuck_at_step),
            "window": {k: (v.clone() if torch.is_tensor(v) else v) for k, v in self._window.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._set_weights(state["weights"])
        initial = state["initial_losses"]
        self.initial_losses = None if initial is None else initial.clone()
        self._optimizer.load_state_dict(state["optimizer"])
        self.stuck_at_step = list(state["stuck_at_step"])
        self.stuck = torch.tensor([step is not None for step in self.stuck_at_step])
        self._window = dict(state["window"])


def _initial_losses(
    mode: str | Sequence[float], theoretical: Sequence[float] | None, num_tasks: int
) -> torch.Tensor | None:
    if isinstance(mode, str):
        if mode == "first":
            return None
        if mode == "theoretical":
            if theoretical is None:
                raise ValueError("initial_loss: 'theoretical' needs theoretical_initial_losses from the workload")
            return check_weights("theoretical_initial_losses", theoretical, num_tasks)
        raise ValueError(f"initial_loss: unknown mode {mode!r} (choose 'first', 'theoretical' or one value per task)")
    return check_weights("initial_loss", mode, num_tasks)


# How a trial config becomes this module's balancer (the method registry: records/methods.py).
BUILDERS = {
    "gradnorm": lambda config, workload: GradNorm(
        len(workload.tasks),
        shared_params=shared_parameters(workload.model, config.shared_params, workload.name),
        alpha=config.alpha,
        lr=config.balancer_lr,
        initial_loss=config.initial_loss,
        theoretical_initial_losses=workload.theoretical_initial_losses,
        weight_update=config.weight_update,
        stuck_window=config.stuck_window,
    ),
}


def shared_parameters(model: torch.nn.Module, names: Sequence[str], workload: str) -> list[torch.nn.Parameter]:
    """The model's parameters `names` (GradNorm's W), which must be shared ones, not a task head's."""
    params = dict(model.named_parameters())
    missing = [name for name in names if name not in params]
    if missing:
        raise ValueError(f"shared_params: the {workload} model has no parameter {missing[0]!r}")
    head_params = {name for name in params if name.startswith("heads.")}
    if head_params & set(names):
        raise ValueError("shared_params: must name shared parameters, not a task head's")
    return [params[name] for name in names]
