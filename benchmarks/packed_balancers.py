"""DWA, RLW and FAMO runs packed in one process vs trained one after another, side by side.

K runs of toy T=2 (a third each DWA, RLW, FAMO; one seed, so one pack) trained
(1) together by workers.packed.train_pack, each run stepping its own balancer
on its row of losses, and (2) by workers.training.train one at a time; one
torch thread each way, nothing recorded. Prints the wall time each way and the
ratio.

    python -m benchmarks.packed_balancers [--runs 24] [--steps 500] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from workers.config import TrialConfig
from workers.packed import train_pack
from workers.threads import set_threads
from workers.training import train

METHODS = ("dwa", "rlw", "famo")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=24)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = parser.parse_args()
    set_threads(1)
    # FAMO at several learning rates, so the runs differ within each method
    configs = [TrialConfig(workload="toy", workload_options={"tasks": 2, "train_size": 5000, "test_size": 500},
                           method=METHODS[i % 3], balancer_lr=0.025 * (1 + i) if METHODS[i % 3] == "famo" else None,
                           steps=args.steps, log_every=args.steps)
               for i in range(args.runs)]
    print(f"toy T=2: {args.runs} runs (DWA, RLW, FAMO) of {args.steps} steps; {os.cpu_count()} CPUs, one thread, "
          f"device {args.device}, torch {torch.__version__}")
    started = time.perf_counter()
    packed = train_pack(configs, device=args.device)
    packed_s = time.perf_counter() - started
    started = time.perf_counter()
    alone = [train(config, device=args.device) for config in configs]
    alone_s = time.perf_counter() - started
    assert all(r.ok for r in packed + alone)
    print(f"packed:        {packed_s:7.1f} s  ({args.runs / packed_s * 60:.0f} runs/min)")
    print(f"one at a time: {alone_s:7.1f} s  ({args.runs / alone_s * 60:.0f} runs/min)")
    print(f"packed is x{alone_s / packed_s:.2f} faster")


if __name__ == "__main__":
    main()
