"""Per-trial cost of going through Ray Tune vs calling the training directly.

The same N toy trials (T=2) run first directly in this process, one after the
other, then through `gns launch` with one trial at a time (so that both are
serial), into a temporary SQLite database. Prints seconds per trial each way,
the ratio, and Ray's start-up cost (part of the launch, measured apart).

    python -m benchmarks.ray_overhead [--trials 12] [--steps 1000]
"""

from __future__ import annotations

import argparse
import io
import logging
import tempfile
import time
from pathlib import Path

import torch

from study.driver import launch
from study.plan import plan_study
from study.spec import parse_spec
from workers.training import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args()
    spec = parse_spec(
        {
            "study": "overhead",
            "kind": "random-static",
            "workload": "toy",
            "training": {"steps": args.steps, "log_every": 100},
            "random_static": {"runs": args.trials - 1, "gradnorm_static": False},
            "max_concurrent": 1,
        }
    )
    planned = plan_study(spec)

    torch.set_num_threads(1)  # what a 1-CPU trial gets on a worker
    started = time.perf_counter()
    for trial in planned:
        train(trial.config)
    direct = (time.perf_counter() - started) / len(planned)

    import ray

    started = time.perf_counter()
    ray.init(include_dashboard=False, logging_level=logging.ERROR)
    ray.shutdown()
    ray_start = time.perf_counter() - started

    with tempfile.TemporaryDirectory() as folder:
        summary = launch(spec, f"sqlite:///{Path(folder) / 'bench.db'}", stream=io.StringIO())
    assert summary.recorded_now == len(planned)
    through_ray = summary.wall_time_s / len(planned)

    print(f"{len(planned)} toy trials of {args.steps} steps, one at a time")
    print(f"direct:        {direct:6.2f} s/trial")
    print(f"through Ray:   {through_ray:6.2f} s/trial (launch {summary.wall_time_s:.1f} s, incl. Ray start {ray_start:.1f} s)")
    print(f"overhead:      {through_ray - direct:+6.2f} s/trial, x{through_ray / direct:.2f}")
    print(f"without start: {(summary.wall_time_s - ray_start) / len(planned) - direct:+6.2f} s/trial")


if __name__ == "__main__":
    main()
