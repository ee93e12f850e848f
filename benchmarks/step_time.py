"""Training-step time of GradNorm vs equal weights on the toy workload, side by side.

Prints ms/step for equal weights, GradNorm with the fast probe (per-task
gradients read off the ordinary backward pass) and GradNorm with one autograd
pass per task, and the overhead ratios. Runs alternate so that machine noise
hits every variant alike.

    python -m benchmarks.step_time [--steps 1500] [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics

import torch

from workers.config import TrialConfig
from workers.training import train

VARIANTS = {
    "equal": ("equal", True),
    "gradnorm (probe)": ("gradnorm", True),
    "gradnorm (autograd per task)": ("gradnorm", False),
}


def step_ms(tasks: int, method: str, use_probe: bool, steps: int) -> float:
    config = TrialConfig(
        workload="toy",
        workload_options={"tasks": tasks, "train_size": 5000, "test_size": 100},
        method=method,
        steps=steps,
        log_every=steps,  # evaluate once: we time the steps
    )
    # Time with the workload build excluded: a zero-step-like baseline is subtracted.
    result = train(config, use_probe=use_probe)
    baseline = train(config.replace(steps=1, log_every=1), use_probe=use_probe)
    return (result.wall_time_s - baseline.wall_time_s) / (steps - 1) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.steps} steps, median of {args.repeats}")
    for tasks in (2, 10):
        timings: dict[str, list[float]] = {name: [] for name in VARIANTS}
        for _ in range(args.repeats):
            for name, (method, use_probe) in VARIANTS.items():
                timings[name].append(step_ms(tasks, method, use_probe, args.steps))
        medians = {name: statistics.median(values) for name, values in timings.items()}
        base = medians["equal"]
        print(f"\ntoy T={tasks}")
        for name, value in medians.items():
            print(f"  {name:<30} {value:7.3f} ms/step   x{value / base:.2f} vs equal")


if __name__ == "__main__":
    main()
