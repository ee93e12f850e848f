"""User workloads that crash inside Ray workers: `tests.flaky_workload:crash_once` / `:always_crash`.

The driver builds the workload once to validate the spec, so they only crash
in a process other than the driver's (`driver_pid`).
"""

import os
from pathlib import Path

from workers.workloads import build_workload


def crash_once(options):
    marker = Path(options["marker"])
    if os.getpid() != options["driver_pid"] and not marker.exists():
        marker.write_text("crashed once")
        raise RuntimeError("simulated worker crash")
    return build_workload("sinusoid", {"train_size": 300, "test_size": 50}, seed=0)


def always_crash(options):
    if os.getpid() != options["driver_pid"]:
        raise RuntimeError("this workload always crashes")
    return build_workload("sinusoid", {"train_size": 300, "test_size": 50}, seed=0)
