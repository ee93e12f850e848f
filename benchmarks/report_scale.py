"""Time `gns report` on a random-static study of 100 and of 10,000 synthetic trials.

Trials are recorded through ResultsDB.record (each with 2 tasks and 3 trace
points) into a temporary SQLite file; the report is then built with and
without PNG export. Prints seconds and the 10,000/100 ratio.

    python -m benchmarks.report_scale [--trials 10000] [--small 100]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from db import ResultsDB
from study.report import build_report
from tests.fake_results import fake_result
from workers.config import TrialConfig


def make_study(url: str, trials: int) -> float:
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    with ResultsDB(url) as results:
        results.create_study("scale", "random-static", {"study": "scale", "kind": "random-static", "workload": "toy"})
        reference = TrialConfig(method="gradnorm")
        results.record("scale", reference.key(), reference.to_dict(), fake_result(time_averaged_weights=(1.9, 0.1)))
        for seed in range(trials):
            u = rng.uniform(size=2)
            weights = tuple(float(w) for w in 2 * u / u.sum())
            losses = (0.5 + rng.uniform(), 20.0 + 10 * rng.uniform())
            config = TrialConfig(method="static", weights=weights, seed=0, steps=3000 + seed)  # distinct keys
            results.record("scale", config.key(), config.to_dict(), fake_result(final_test_losses=losses, time_averaged_weights=weights))
    return time.perf_counter() - started


def time_report(url: str, out: Path, png: bool) -> float:
    started = time.perf_counter()
    with ResultsDB(url, create=False) as results:
        build_report(results, "scale", out, png=png)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=10000)
    parser.add_argument("--small", type=int, default=100)
    args = parser.parse_args()
    timings = {}
    with tempfile.TemporaryDirectory() as folder:
        for trials in (args.small, args.trials):
            url = f"sqlite:///{Path(folder) / f'scale{trials}.db'}"
            recording = make_study(url, trials)
            without_png = time_report(url, Path(folder) / f"report{trials}", png=False)
            with_png = time_report(url, Path(folder) / f"report{trials}-png", png=True)
            timings[trials] = (without_png, with_png)
            print(f"{trials:>6} trials: recorded in {recording:.1f} s; report {without_png:.2f} s, with PNGs {with_png:.2f} s")
    small, large = timings[args.small], timings[args.trials]
    print(f"{args.trials}/{args.small} trials: report x{large[0] / small[0]:.2f}, with PNGs x{large[1] / small[1]:.2f}")


if __name__ == "__main__":
    main()
