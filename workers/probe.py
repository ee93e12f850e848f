"""Per-task gradient norms at a linear shared layer, read off the ordinary backward pass.

GradNorm needs ||grad_W L_i|| for every task i. The general way is one autograd
pass per task (workers.balancers.gradnorm.grad_norms_at). For a linear layer
y = x W^T + b there is a cheaper way: the network's own backward pass already
forms each task's gradient dL/dy_i at W's output before the heads' gradients
are summed. MultiTaskNet hands each head its own view of y; a hook on each view
keeps that gradient, and grad_W L_i = delta_i^T x follows from one batched
matrix product with W's input x.
"""

from __future__ import annotations

import torch
from torch import nn


class LinearLayerProbe:
    """Captures delta_i = d(sum_j w_j L_j)/dy at each task's view of W's output."""

    def __init__(self, model: nn.Module, include_bias: bool = False) -> None:
        if not isinstance(model.shared_layer, nn.Linear):
            raise ValueError("shared_params: the fast gradient probe needs an nn.Linear shared layer")
        if include_bias and model.shared_layer.bias is None:
            raise ValueError("shared_params: shared_layer.bias does not exist")
        self.include_bias = include_bias
        self._layer_input: torch.Tensor | None = None
        self._output_shape: torch.Size | None = None
        self._output_grads: list[torch.Tensor | None] = []
        model.probe = self

    def branch(self, layer_input: torch.Tensor, layer_output: torch.Tensor, num_tasks: int) -> list[torch.Tensor]:
        self._layer_input = layer_input.detach()
        self._output_shape = layer_output.shape
        self._output_grads = [None] * num_tasks
        branches = []
        for task in range(num_tasks):
            view = layer_output.view_as(layer_output)
            view.register_hook(self._keeper(task))
            branches.append(view)
        return branches

    def _keeper(self, task: int):
        def keep(grad: torch.Tensor) -> None:
            self._output_grads[task] = grad

        return keep

    def task_grad_norms(self, weights: torch.Tensor) -> torch.Tensor:
        """||grad_W L_i|| per task, after the backward pass of sum_i w_i L_i.

        `weights` are the w_i that backward pass used; they are divided out
        (GradNorm keeps them positive).
        """
        if self._layer_input is None:
            raise RuntimeError("task_grad_norms: no forward pass with gradients has run yet")
        layer_input = self._layer_input.reshape(-1, self._layer_input.shape[-1])
        # a head that took no part in the loss leaves its hook uncalled: zero gradient
        grads = [torch.zeros(self._output_shape, device=layer_input.device) if g is None else g for g in self._output_grads]
        deltas = torch.stack(grads).reshape(len(grads), layer_input.shape[0], -1)  # [T, N, out]
        squared = squared_weight_grad_norms(deltas, layer_input)
        if self.include_bias:
            squared = squared + deltas.sum(dim=1).pow(2).sum(dim=1)
        return squared.sqrt() / weights.to(squared.device)


def squared_weight_grad_norms(deltas: torch.Tensor, layer_input: torch.Tensor) -> torch.Tensor:
    """||grad_W||^2 per task of a linear layer y = x W^T + b, from the gradients at its output.

    deltas [..., T, N, out] (one per task), layer_input [..., N, in] (x): grad_W = delta^T x,
    one batched matrix product; the result is [..., T].
    """
    weight_grads = deltas.transpose(-1, -2) @ layer_input.unsqueeze(-3)  # [..., T, out, in]
    return weight_grads.pow(2).sum(dim=(-2, -1))
