"""`gns train`'s default thread count vs the best one, on an idle and on a busy machine, side by side.

Each variant is a fresh `gns train` process (toy T=2, GradNorm) timed end to
end, as a user would see it: the default (no --threads), then --threads 1..N
for N the number of CPUs; torch's own default is one thread per CPU, so
--threads N is what `gns train` did before it set the count. The busy round
starts one CPU-bound process per CPU first and stops them after. Variants
alternate, median of --repeats.

    python -m benchmarks.threads [--steps 500] [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

GNS = str(Path(sys.executable).with_name("gns"))


def run_train(steps: int, threads: int | None) -> float:
    command = [GNS, "train", "--workload", "toy", "--method", "gradnorm", "--steps", str(steps), "--json"]
    if threads is not None:
        command += ["--threads", str(threads)]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


@contextlib.contextmanager
def busy_machine(processes: int):
    """One busy loop per CPU, stopped on exit."""
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(processes)]
    try:
        yield
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()


def measure(steps: int, repeats: int, variants: dict[str, int | None]) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, threads in variants.items():
            times[name].append(run_train(steps, threads))
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cpus = os.cpu_count() or 1
    variants: dict[str, int | None] = {"default": None, **{f"--threads {n}": n for n in range(1, cpus + 1)}}
    print(f"gns train toy T=2 gradnorm, {args.steps} steps, {cpus} CPUs, median of {args.repeats} (seconds, whole process)")
    for machine in ("idle", "busy"):
        context = busy_machine(cpus) if machine == "busy" else contextlib.nullcontext()
        with context:
            medians = measure(args.steps, args.repeats, variants)
        best = min(medians.values())
        print(f"\n{machine} machine")
        for name, seconds in medians.items():
            print(f"  {name:<12} {seconds:7.2f} s   x{seconds / best:.2f} vs best")
        print(f"  default / best: x{medians['default'] / best:.2f}; torch's own default (--threads {cpus}) / best: "
              f"x{medians[f'--threads {cpus}'] / best:.2f}")


if __name__ == "__main__":
    main()
