"""Two faster kernels the packed engine does not use, because a run's numbers would depend on its pack.

Issue 21 asked for a fused optimizer update over the stacked parameters and for the first layer of
K runs as one wide matrix product (the runs of a pack see the same minibatch). Both are faster on
this CPU, and both round a run's numbers differently with the pack's size, which the engine must
never do (docs/running.md, Packing). This prints each one's speed against what the engine does,
side by side in one run, and how many of its results differ between a pack of K and the same rows
of a pack of 12:

- Adam: torch's `fused=True` against the engine's `foreach=True`, on a toy pack's parameter shapes;
  the fused CPU kernel runs a vector loop and a scalar tail, and where a run's elements fall
  between them moves with K;
- the first linear layer (toy: 250 -> 100, batch 100), forward and weight gradient: one batched
  product per run (the engine's `baddbmm`) against one `addmm` of the batch with every run's
  weights side by side, whose blocking changes with its width.

    python -m benchmarks.rejected_kernels [--pack 16] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable, Sequence

import torch

from workers.threads import set_threads

REFERENCE_PACK = 12  # every smaller pack's rows are compared with the same rows of this one
BATCH, IN, OUT = 100, 250, 100  # toy's first layer and batch size
# A toy T=2 network's parameters, stacked per run: three hidden layers, the shared layer, two heads.
TOY_SHAPES = [(OUT, IN), (OUT,)] + [(100, 100), (100,)] * 5
# Odd sizes too, where a vector loop's tail is widest (a one-output head's bias, a 3-task weight row).
ADAM_SHAPES = TOY_SHAPES[:2] + [(1,), (3,), (7,), (1, 100), (33, 17)]


def adam(params: list[torch.Tensor], fused: bool) -> torch.optim.Adam:
    return torch.optim.Adam(params, lr=1e-3, **({"fused": True} if fused else {"foreach": True}))


def first_layer_output(inputs: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, wide: bool) -> torch.Tensor:
    """[K, N, out]: every run's first layer on the one batch, as the engine computes it or as one wide product."""
    count = weight.shape[0]
    if wide:  # [N, in] @ [in, K*out]: every run's weights side by side
        out = torch.addmm(bias.reshape(1, -1), inputs, weight.reshape(-1, IN).t())
        return out.reshape(BATCH, count, OUT).transpose(0, 1)
    return torch.baddbmm(bias[:, None, :], inputs.expand(count, BATCH, IN), weight.transpose(1, 2))


def adam_rows(count: int, shape: Sequence[int], fused: bool, steps: int = 50) -> torch.Tensor:
    """`count` runs' parameters after `steps` Adam steps on fixed gradients: rows equal for any count if
    the update is pack-invariant."""
    start = torch.randn(REFERENCE_PACK, *shape, generator=torch.Generator().manual_seed(1))
    params = start[:count].clone().requires_grad_(True)
    optimizer = adam([params], fused)
    gradients = torch.Generator().manual_seed(2)
    for _ in range(steps):
        params.grad = torch.randn(REFERENCE_PACK, *shape, generator=gradients)[:count].clone()
        optimizer.step()
    return params.detach()


def first_layer(count: int, wide: bool) -> tuple[torch.Tensor, ...]:
    """Output, weight gradient and bias gradient of `count` runs' first linear layer on one batch."""
    data = torch.Generator().manual_seed(0)
    inputs = torch.randn(BATCH, IN, generator=data)
    weight = torch.randn(REFERENCE_PACK, OUT, IN, generator=data)[:count].clone().requires_grad_(True)
    bias = torch.randn(REFERENCE_PACK, OUT, generator=data)[:count].clone().requires_grad_(True)
    upstream = torch.randn(REFERENCE_PACK, BATCH, OUT, generator=data)[:count]
    out = first_layer_output(inputs, weight, bias, wide)
    out.backward(upstream)
    return out.detach(), weight.grad, bias.grad


def mismatches(rows: Callable[[int], Sequence[torch.Tensor]]) -> tuple[int, int]:
    """(differing, compared): tensors of packs of 2..11 that differ from the same rows of a pack of 12."""
    reference = rows(REFERENCE_PACK)
    compared = differing = 0
    for count in range(2, REFERENCE_PACK):
        for got, full in zip(rows(count), reference):
            compared += 1
            differing += not torch.equal(got, full[:count])
    return differing, compared


def adam_step_ms(pack: int, fused: bool, steps: int = 100) -> float:
    params = [torch.randn(pack, *shape).requires_grad_(True) for shape in TOY_SHAPES]
    optimizer = adam(params, fused)
    for p in params:
        p.grad = torch.randn_like(p)
    optimizer.step()  # creates the moments
    started = time.perf_counter()
    for _ in range(steps):
        optimizer.step()
    return (time.perf_counter() - started) / steps * 1e3


def first_layer_ms(pack: int, wide: bool, steps: int = 50) -> float:
    inputs = torch.randn(BATCH, IN)
    weight = torch.randn(pack, OUT, IN, requires_grad=True)
    bias = torch.randn(pack, OUT, requires_grad=True)
    started = time.perf_counter()
    for _ in range(steps):
        weight.grad = bias.grad = None
        out = first_layer_output(inputs, weight, bias, wide)
        out.backward(torch.ones_like(out))
    return (time.perf_counter() - started) / steps * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pack", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    set_threads(1)
    timed = {name: [] for name in ("adam foreach", "adam fused", "layer bmm", "layer wide")}
    for _ in range(args.repeats):  # alternating, so machine noise hits both alike
        timed["adam foreach"].append(adam_step_ms(args.pack, fused=False))
        timed["adam fused"].append(adam_step_ms(args.pack, fused=True))
        timed["layer bmm"].append(first_layer_ms(args.pack, wide=False))
        timed["layer wide"].append(first_layer_ms(args.pack, wide=True))
    ms = {name: statistics.median(values) for name, values in timed.items()}
    adam = [mismatches(lambda count, s=shape, f=fused: [adam_rows(count, s, f)])
            for fused in (False, True) for shape in ADAM_SHAPES]
    layer = [mismatches(lambda count, w=wide: first_layer(count, w)) for wide in (False, True)]
    half = len(ADAM_SHAPES)
    print(f"pack of {args.pack}, 1 thread, median of {args.repeats}; differing = results of packs of 2..11 unequal "
          f"to the same rows of a pack of {REFERENCE_PACK}")
    print(f"Adam step: foreach (the engine) {ms['adam foreach']:.3f} ms, fused {ms['adam fused']:.3f} ms: "
          f"x{ms['adam foreach'] / ms['adam fused']:.2f}; differing: foreach "
          f"{sum(d for d, _ in adam[:half])} of {sum(c for _, c in adam[:half])}, fused "
          f"{sum(d for d, _ in adam[half:])} of {sum(c for _, c in adam[half:])}")
    print(f"first layer, forward + weight gradient: baddbmm (the engine) {ms['layer bmm']:.3f} ms, one wide addmm "
          f"{ms['layer wide']:.3f} ms: x{ms['layer bmm'] / ms['layer wide']:.2f}; differing: baddbmm "
          f"{layer[0][0]} of {layer[0][1]}, wide {layer[1][0]} of {layer[1][1]}")


if __name__ == "__main__":
    main()
