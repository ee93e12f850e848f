"""Training-step time of GradNorm vs equal weights on toy T=2, toy T=10, digits and MultiMNIST, side by side.

Prints ms/step for equal weights, GradNorm with the fast probe (per-task
gradients read off the ordinary backward pass) and GradNorm with one autograd
pass per task, and the overhead ratios. Runs alternate so that machine noise
hits every variant alike.

    python -m benchmarks.step_time [--steps 1500] [--repeats 3] [--threads 1] [--device cpu|cuda] [--networks NAME ...]
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


NETWORKS = {
    "toy T=2": ("toy", {"tasks": 2, "train_size": 5000, "test_size": 100}),
    "toy T=10": ("toy", {"tasks": 10, "train_size": 5000, "test_size": 100}),
    "digits (4 tasks)": ("digits", {}),
    "multimnist (LeNet, 3 tasks)": ("multimnist", {"third_task": "sum", "train_size": 2000, "validation_size": 100,
                                                  "test_size": 100}),
}


def step_ms(network: str, method: str, use_probe: bool, steps: int, device: str) -> float:
    workload, options = NETWORKS[network]
    config = TrialConfig(
        workload=workload,
        workload_options=options,
        method=method,
        steps=steps,
        log_every=steps,  # evaluate once: we time the steps
    )
    # Time with the workload build excluded: a one-step baseline is subtracted.
    result = train(config, use_probe=use_probe, device=device)
    baseline = train(config.replace(steps=1, log_every=1), use_probe=use_probe, device=device)
    return (result.wall_time_s - baseline.wall_time_s) / (steps - 1) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--networks", nargs="+", choices=list(NETWORKS), default=list(NETWORKS), metavar="NAME",
                        help=f"of {', '.join(NETWORKS)}")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.device}, {args.steps} steps, median of {args.repeats}")
    for network in args.networks:
        timings: dict[str, list[float]] = {name: [] for name in VARIANTS}
        for _ in range(args.repeats):
            for name, (method, use_probe) in VARIANTS.items():
                timings[name].append(step_ms(network, method, use_probe, args.steps, args.device))
        medians = {name: statistics.median(values) for name, values in timings.items()}
        base = medians["equal"]
        print(f"\n{network}")
        for name, value in medians.items():
            print(f"  {name:<30} {value:7.3f} ms/step   x{value / base:.2f} vs equal")


if __name__ == "__main__":
    main()
