"""The multitask network shape every workload uses: a shared trunk, one head per task."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import torch
from torch import nn


class Branching(Protocol):
    def branch(self, layer_input: torch.Tensor, layer_output: torch.Tensor, num_tasks: int) -> list[torch.Tensor]: ...


class MultiTaskNet(nn.Module):
    """x -> body -> shared_layer -> after_shared -> head_i, for each task i.

    `shared_layer` is the last shared layer W that GradNorm normalizes
    gradients at (parameter names `shared_layer.weight`, `shared_layer.bias`).
    `after_shared` must be stateless (an activation, pooling, flattening): with
    a probe attached it runs once per task, so that each task's gradient at W's
    output arrives separately in the ordinary backward pass.
    """

    def __init__(self, body: nn.Module, shared_layer: nn.Module, after_shared: nn.Module, heads: Sequence[nn.Module]):
        super().__init__()
        if not heads:
            raise ValueError("heads: a multitask network needs at least one head")
        self.body = body
        self.shared_layer = shared_layer
        self.after_shared = after_shared
        self.heads = nn.ModuleList(heads)
        self.probe: Branching | None = None

    @property
    def num_tasks(self) -> int:
        return len(self.heads)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = self.body(x)
        shared = self.shared_layer(features)
        if self.probe is None or not torch.is_grad_enabled():
            trunk_output = self.after_shared(shared)
            return [head(trunk_output) for head in self.heads]
        branches = self.probe.branch(features, shared, self.num_tasks)
        return [head(self.after_shared(branch)) for head, branch in zip(self.heads, branches)]


@dataclass(frozen=True)
class PackFacts:
    """What a model allows runs stacked under vmap (workers/packed.py): no buffers (batch
    statistics cannot be shared), and for GradNorm a linear shared layer (its fast norms)."""

    packs_fixed_weights: bool
    packs_gradnorm: bool

    @classmethod
    def of(cls, model: nn.Module) -> "PackFacts":
        no_buffers = not any(True for _ in model.buffers())
        return cls(no_buffers, no_buffers and isinstance(getattr(model, "shared_layer", None), nn.Linear))


def mlp(sizes: Sequence[int]) -> nn.Sequential:
    """Linear + ReLU for each consecutive pair of sizes."""
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    return nn.Sequential(*layers)


def fully_connected_net(input_dim: int, hidden: int, depth: int, output_dims: Sequence[int]) -> MultiTaskNet:
    """A ReLU trunk of `depth` linear layers (the last one shared-layer W), affine heads."""
    if depth < 1:
        raise ValueError(f"depth: the trunk needs at least one layer, got {depth}")
    return MultiTaskNet(
        body=mlp([input_dim] + [hidden] * (depth - 1)),
        shared_layer=nn.Linear(input_dim if depth == 1 else hidden, hidden),
        after_shared=nn.ReLU(),
        heads=[nn.Linear(hidden, dim) for dim in output_dims],
    )
