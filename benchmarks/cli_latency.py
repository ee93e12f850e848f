"""How long `gns` takes to answer the commands that only read, beside the imports that bound it.

Each variant is a fresh process timed end to end, as a user would see it,
variants alternating, median of --repeats: `gns --version`, `gns --help`,
`gns studies`, `gns status` and `gns query` on a small results database made
for the run, `gns plan` of the quickstart spec (digits), next to `python -c "import optuna"` (the issue's yardstick),
`import pandas` and `import torch` (what these commands used to load).

    python -m benchmarks.cli_latency [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GNS = str(Path(sys.executable).with_name("gns"))


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def make_database(folder: Path) -> str:
    from db import ResultsDB
    from tests.fake_results import fake_result
    from workers.config import TrialConfig

    url = f"sqlite:///{folder / 'bench.db'}"
    with ResultsDB(url) as results:
        results.create_study("bench", "methods", {"study": "bench"})
        for seed in range(20):
            config = TrialConfig(method="equal", seed=seed)
            results.record("bench", config.key(), config.to_dict(), fake_result())
    return url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = make_database(Path(folder))
        variants = {
            "python -c 'import optuna'": [sys.executable, "-c", "import optuna"],
            "python -c 'import pandas'": [sys.executable, "-c", "import pandas"],
            "python -c 'import torch'": [sys.executable, "-c", "import torch"],
            "gns --version": [GNS, "--version"],
            "gns --help": [GNS, "--help"],
            "gns studies": [GNS, "studies", "--storage", url],
            "gns status bench": [GNS, "status", "bench", "--storage", url],
            "gns query bench": [GNS, "query", "bench", "--storage", url],
            "gns plan quickstart": [GNS, "plan", "examples/quickstart.yaml"],
            # what gns plan did before it read a built-in workload's facts from its options: build it
            "plan, workload built": [sys.executable, "-c", "from study.spec import load_spec\nfrom study.plan import "
                                     "check_workload, plan_study\nspec = load_spec('examples/quickstart.yaml')\n"
                                     "plan_study(spec, check_workload(spec))"],
        }
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.repeats):
            for name, command in variants.items():
                times[name].append(timed(command))
    base = statistics.median(times["python -c 'import optuna'"])
    print(f"{'command':<28} {'median s':>9} {'x import optuna':>16}")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"{name:<28} {median:>9.2f} {median / base:>16.2f}")


if __name__ == "__main__":
    main()
