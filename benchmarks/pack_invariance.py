"""What a lone run pays for pack-invariant values, side by side in one run.

A run alone is computed beside a shadow copy (workers.packed.PackedNet.forward says why), so
its numbers equal those it gets in any pack. This prints, per workload, ms per training step of
one equal-weights run through `train` (a pack of one, with its shadow) and through the
independent one-run loop (workers.training.train_alone, what `train` was before), their ratio,
and the per-run cost in a pack of 8 (which pays nothing extra). Variants alternate so that
machine noise hits them alike.

With --check it first trains one static run of each workload alone and in packs of 4 and
12 with other partners on --device and prints the largest relative difference of any recorded
number (0 where the values are pack-invariant there; on a CPU tests/test_pack_invariance.py
asserts it).

    python -m benchmarks.pack_invariance [--steps 300] [--repeats 3] [--device cpu|cuda] [--check]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
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
    long = time.perf_counter() - started  # a run returns its numbers as floats: the device has finished
    started = time.perf_counter()
    run(1)
    short = time.perf_counter() - started
    return (long - short) / (steps - 1) * 1e3


def recorded_numbers(result) -> np.ndarray:
    values = [result.primary_metric, *result.final_test_losses, *result.final_weights]
    for point in result.trace:
        values += [*point.train_losses, *point.test_losses, *(point.validation_losses or ())]
    return np.array(values, dtype=float)


def largest_pack_difference(workload: str, options: dict, device: str, steps: int = 60) -> float:
    """The largest relative difference between one run's numbers alone and in packs of 4 and 12."""
    tasks = len(train(TrialConfig(workload=workload, workload_options=options, steps=1), device=device).task_names)
    rng = np.random.default_rng(7)

    def static() -> TrialConfig:
        return TrialConfig(workload=workload, workload_options=options, method="static", steps=steps, log_every=20,
                           weights=tuple(rng.uniform(0.2, 2.0, tasks)))

    target, partners = static(), [static() for _ in range(11)]
    alone = recorded_numbers(train(target, device=device))
    packed = [train_pack([partners[0], target, partners[1], partners[2]], device=device)[1],
              train_pack(partners[3:] + [target], device=device)[-1]]
    return max(float(np.max(np.abs(recorded_numbers(r) / alone - 1))) for r in packed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--check", action="store_true", help="first check pack invariance on --device")
    args = parser.parse_args()
    set_threads(1)
    device = args.device
    where = torch.cuda.get_device_name(0) if device == "cuda" else "CPU"
    print(f"torch {torch.__version__}, {where}, 1 thread, {args.steps} steps, median of {args.repeats}")
    if args.check:
        for name, (workload, options) in WORKLOADS.items():
            print(f"pack invariance on {where}, {name}: largest relative difference alone vs packs of 4 and 12: "
                  f"{largest_pack_difference(workload, options, device):.3g}", flush=True)
    print(f"{'workload':<12} {'alone, invariant':>17} {'alone, old loop':>16} {'ratio':>6} {'per run in 8':>13}")
    for name, (workload, options) in WORKLOADS.items():
        def config(steps: int) -> TrialConfig:
            return TrialConfig(workload=workload, workload_options=options, method="equal", steps=steps, log_every=steps)

        variants = {
            "invariant": lambda steps: train(config(steps), device=device),
            "old": lambda steps: train(config(steps), use_probe=False, device=device),  # the independent loop
            "pack of 8": lambda steps: train_pack([config(steps)] * 8, device=device),
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
