"""A Figure-4 study four ways, side by side: packed trials, one run per Tune trial, train() in a loop, the one-run loop.

The same plan (one GradNorm reference, N static weightings and the 1/L_i(0) run of toy T=2 or
MultiMNIST, one seed) runs (1) through `gns launch` with packing on (`resources.pack: auto`),
(2) through `gns launch` with one run per Tune trial (`pack: 1`), both on a
local Ray using every CPU, each into its own temporary SQLite database, and
(3) by calling `train()` on each run in turn in this process (one thread,
no Ray, nothing recorded; a packable run is a pack of one beside a shadow
copy there), and (4) the same through the one-run loop without the shadow
(`use_probe=False`). Prints runs per minute each way and the ratios.

    python -m benchmarks.packing [--runs 100] [--steps 500] [--workload toy|multimnist] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from pathlib import Path

import torch

from study.driver import launch
from study.plan import plan_study
from study.spec import parse_spec
from workers.threads import set_threads
from workers.training import train


WORKLOADS = {  # name: (what to print, workload options)
    "toy": ("toy T=2", {"tasks": 2, "train_size": 5000, "test_size": 500}),
    "multimnist": ("MultiMNIST (LeNet, 3 tasks)", {"third_task": "sum", "train_size": 2000, "validation_size": 100,
                                                  "test_size": 500}),
}


def study_spec(runs: int, steps: int, pack: int | str, gpu: float, workload: str = "toy") -> dict:
    return {
        "study": f"bench-pack-{pack}",
        "kind": "random-static",
        "workload": workload,
        "workload_options": WORKLOADS[workload][1],
        "training": {"steps": steps, "log_every": steps},
        "random_static": {"runs": runs, "gradnorm_static": False},
        "resources": {"cpu": 1, "gpu": gpu, "pack": pack},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100, help="static weightings (plus one GradNorm and one 1/L_i(0) run)")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--workload", default="toy", choices=list(WORKLOADS))
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = parser.parse_args()
    gpu = 0.5 if args.device == "cuda" else 0.0
    print(f"{WORKLOADS[args.workload][0]} Figure-4 plan: {args.runs} static runs, 1 GradNorm and the 1/L_i(0) run, "
          f"{args.steps} steps each; "
          f"{os.cpu_count()} CPUs, device {args.device}, torch {torch.__version__}")

    planned = plan_study(parse_spec(study_spec(args.runs, args.steps, 1, gpu, args.workload)))
    runs = len(planned)  # the static runs, GradNorm and the 1/L_i(0) run: every way trains these
    timings = {}
    for label, pack in (("packed (pack: auto)", "auto"), ("one run per trial (pack: 1)", 1)):
        spec = parse_spec(study_spec(args.runs, args.steps, pack, gpu, args.workload))
        with tempfile.TemporaryDirectory() as folder:
            summary = launch(spec, f"sqlite:///{Path(folder) / 'bench.db'}", stream=io.StringIO())
        assert summary.recorded_now == runs and not summary.failures, summary
        timings[label] = summary.wall_time_s

    set_threads(1)
    # train() of a packable run is a pack of one beside a shadow copy (pack-invariant values);
    # use_probe=False is the one-run loop without that copy: what the engine costs without packing
    for label, use_probe in (("train() in a loop (1 process, no Ray)", True), ("one-run loop (no shadow, no Ray)", False)):
        started = time.perf_counter()
        for trial in planned:
            train(trial.config, device=args.device, use_probe=use_probe)
        timings[label] = time.perf_counter() - started

    print(f"{'way':<40} {'wall s':>8} {'runs/min':>9}")
    for label, seconds in timings.items():
        print(f"{label:<40} {seconds:8.1f} {runs / seconds * 60:9.1f}")
    packed, single, loop, bare = timings.values()
    print(f"packed vs one run per trial: x{single / packed:.2f} throughput")
    print(f"packed vs train() in a loop: x{loop / packed:.2f}")
    print(f"packed vs the one-run loop:  x{bare / packed:.2f} (both CPUs against one)")
    print(f"one run per trial vs loop:   x{loop / single:.2f}")


if __name__ == "__main__":
    main()
