"""What a lone run pays for pack-invariant values, side by side in one run.

A run alone is computed beside a shadow copy (workers.packed.PackedNet.forward says why), so
its numbers equal those it gets in any pack. This prints, per workload, ms per training step of
one equal-weights run through `train` (a pack of one, with its shadow) and through the
independent one-run loop (workers.training.train_alone, what `train` was before), their ratio,
and the per-run cost in a pack of 8 (which pays nothing extra). Variants alternate so that
machine noise hits them alike.

    python -m benchmarks.pack_invariance [--steps 300] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from workers.config import TrialConfig
from workers.packed import train_pack
from workers.threads import set_threads
from workers.training import train

WORKLOADS = {
    "toy T=2": ("toy", {"tasks": 2, "train_size": 5000, "test_size": 100, "validation_size": 100}),
    "digits": ("digits", {"standardize_targets": True}),
    "multimnist": ("multimnist", {"third_task": "sum", "train_size": 2000, "validation_size": 100, "test_size": 100}),
}


def ms_per_step(run, steps: int) -> float:
    """Wall ms per step of `run(steps)`, a one-step run's time (build, evaluation) subtracted."""
    started = time.perf_counter()
    run(steps)
    long = time.perf_counter() - started
    started = time.perf_counter()
    run(1)
    short = time.perf_counter() - started
    return (long - short) / (steps - 1) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    set_threads(1)
    print(f"torch {torch.__version__}, 1 thread, {args.steps} steps, median of {args.repeats}")
    print(f"{'workload':<12} {'alone, invariant':>17} {'alone, old loop':>16} {'ratio':>6} {'per run in 8':>13}")
    for name, (workload, options) in WORKLOADS.items():
        def config(steps: int) -> TrialConfig:
            return TrialConfig(workload=workload, workload_options=options, method="equal", steps=steps, log_every=steps)

        variants = {
            "invariant": lambda steps: train(config(steps)),
            "old": lambda steps: train(config(steps), use_probe=False),  # the independent loop
            "pack of 8": lambda steps: train_pack([config(steps)] * 8),
        }
        times: dict[str, list[float]] = {key: [] for key in variants}
        for _ in range(args.repeats):
            for key, run in variants.items():
                times[key].append(ms_per_step(run, args.steps))
        invariant, old = statistics.median(times["invariant"]), statistics.median(times["old"])
        packed = statistics.median(times["pack of 8"]) / 8
        print(f"{name:<12} {invariant:>14.2f} ms {old:>13.2f} ms {invariant / old:>5.2f}x {packed:>10.2f} ms")


if __name__ == "__main__":
    main()
