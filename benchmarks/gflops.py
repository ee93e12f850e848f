"""Achieved GFLOP/s of a training step per workload, alone and packed, beside this machine's peak.

The peak is measured here, in the same run: a 1-thread float32 1024x1024 matrix product. A
training step's FLOPs are counted from the model's linear and convolution layers on one batch
(forward 2*N*in*out per linear layer, 2*N*H'*W'*C_in*k_h*k_w*C_out per convolution; the step as
3x the forward, the usual count for a backward pass of two such products per layer); activations,
losses, the optimizer and evaluation are left out, so the share of the peak is an upper bound of
what the arithmetic achieves. Variants: one run through the one-run loop
(workers.training.train_alone), one run as a pack of one (what `train` does, with its shadow
copy), and a pack of 16 (per run).

    python -m benchmarks.gflops [--steps 200] [--repeats 2] [--pack 16] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from benchmarks.pack_invariance import WORKLOADS, ms_per_step
from workers.config import TrialConfig
from workers.packed import train_pack
from workers.threads import set_threads
from workers.training import train
from workers.workloads import build_workload


def peak_gflops(device: str, size: int = 1024, repeats: int = 20) -> float:
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best / 1e9


def step_flops(workload: str, options: dict, batch_size: int) -> float:
    """FLOPs of one training step of one run: 3x the forward of its linear and convolution layers."""
    built = build_workload(workload, options, seed=0)
    total = 0.0

    def count(module: torch.nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, torch.nn.Linear):
            total += 2 * output.numel() * module.in_features
        elif isinstance(module, torch.nn.Conv2d):
            per_output = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            total += 2 * output.numel() * per_output

    hooks = [m.register_forward_hook(count) for m in built.model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    with torch.no_grad():
        built.model(built.train.take(torch.arange(batch_size)).inputs)
    for hook in hooks:
        hook.remove()
    return 3 * total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--pack", type=int, default=16)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = parser.parse_args()
    set_threads(1)
    device = args.device
    peak = peak_gflops(device)
    where = torch.cuda.get_device_name(0) if device == "cuda" else "CPU, 1 thread"
    print(f"torch {torch.__version__}, {where}: float32 matrix-product peak {peak:.1f} GFLOP/s")
    print(f"{'workload':<12} {'MFLOP/step':>10} {'one-run loop':>16} {'pack of one':>16} {f'pack of {args.pack}':>16}")
    for name, (workload, options) in WORKLOADS.items():
        flops = step_flops(workload, options, TrialConfig().batch_size)

        def config(steps: int) -> TrialConfig:
            return TrialConfig(workload=workload, workload_options=options, method="equal", steps=steps, log_every=steps)

        variants = {
            "loop": (1, lambda steps: train(config(steps), use_probe=False, device=device)),
            "one": (1, lambda steps: train(config(steps), device=device)),
            "pack": (args.pack, lambda steps: train_pack([config(steps)] * args.pack, device=device)),
        }
        times: dict[str, list[float]] = {key: [] for key in variants}
        for _ in range(args.repeats):
            for key, (_, run) in variants.items():
                times[key].append(ms_per_step(run, args.steps))
        cells = []
        for key, (runs, _) in variants.items():
            achieved = flops * runs / (statistics.median(times[key]) / 1e3) / 1e9
            cells.append(f"{achieved:>7.1f} ({100 * achieved / peak:>3.0f} %)")
        print(f"{name:<12} {flops / 1e6:>10.2f} " + " ".join(f"{c:>16}" for c in cells))


if __name__ == "__main__":
    main()
