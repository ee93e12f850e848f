"""Record and read back 1,000 trials with traces on SQLite and PostgreSQL, side by side.

Each trial has 2 tasks and 31 logged steps (62 trace rows), like a toy run of
3,000 steps logged every 100. Prints seconds for recording and for reading the
runs table and all traces, per backend, and the PostgreSQL/SQLite ratio.

    python -m benchmarks.db_throughput [--trials 1000] [--postgres URL]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text

from db import ResultsDB
from tests.fake_results import fake_result
from workers.config import TrialConfig

STEPS = tuple(range(0, 3001, 100))


def measure(url: str, trials: int) -> dict[str, float]:
    with ResultsDB(url) as store:
        store.create_study("bench", "random-static", {"study": "bench"})
        started = time.perf_counter()
        for seed in range(trials):
            config = TrialConfig(method="static", weights=(1.0, 1.0 + seed / trials), seed=seed)
            store.record("bench", config.key(), config.to_dict(), fake_result(steps=STEPS))
        recorded = time.perf_counter() - started
        started = time.perf_counter()
        runs = store.runs("bench")
        read_runs = time.perf_counter() - started
        started = time.perf_counter()
        traces = store.traces("bench")
        read_traces = time.perf_counter() - started
    assert len(runs) == trials and len(traces) == trials * len(STEPS) * 2
    return {"record": recorded, "runs": read_runs, "traces": read_traces}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()

    results = {}
    with tempfile.TemporaryDirectory() as folder:
        results["sqlite"] = measure(f"sqlite:///{Path(folder) / 'bench.db'}", args.trials)
    name = f"gns_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(args.postgres, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        results["postgresql"] = measure(args.postgres.rsplit("/", 1)[0] + "/" + name, args.trials)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))

    print(f"{args.trials} trials, {len(STEPS) * 2} trace rows each")
    print(f"{'backend':<12} {'record (s)':>11} {'ms/trial':>9} {'read runs (s)':>14} {'read traces (s)':>16}")
    for backend, r in results.items():
        print(f"{backend:<12} {r['record']:>11.2f} {r['record'] / args.trials * 1e3:>9.1f} {r['runs']:>14.3f} {r['traces']:>16.3f}")
    for quantity in ("record", "runs", "traces"):
        print(f"postgresql / sqlite, {quantity}: x{results['postgresql'][quantity] / results['sqlite'][quantity]:.2f}")


if __name__ == "__main__":
    main()
