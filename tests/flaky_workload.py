"""User workloads that misbehave inside Ray workers, for the driver's tests.

The driver builds the workload once to check the spec, so each of them only
misbehaves inside a Ray worker.
"""

import os
import time
from pathlib import Path

from workers.workloads import build_workload

GATE_WAIT_S = 600.0  # a gated trial waits at most this long (the test opens the gate long before)


def _in_ray_worker() -> bool:
    import ray

    return ray.is_initialized() and ray.get_runtime_context().worker.mode == ray.WORKER_MODE


def _small():
    return build_workload("sinusoid", {"train_size": 300, "test_size": 50}, seed=0)


def crash_once(options):
    marker = Path(options["marker"])
    if _in_ray_worker() and not marker.exists():
        marker.write_text("crashed once")
        raise RuntimeError("simulated worker crash")
    return _small()


def always_crash(options):
    if _in_ray_worker():
        raise RuntimeError("this workload always crashes")
    return _small()


def gated(options):
    """The first `free` trials build at once; later ones wait until the file `gate` exists.

    Tickets are files made with O_EXCL in `tickets`, so concurrent workers never share one.
    """
    if not _in_ray_worker():
        return _small()
    tickets = Path(options["tickets"])
    number = 0
    while True:
        try:
            os.close(os.open(tickets / str(number), os.O_CREAT | os.O_EXCL))
            break
        except FileExistsError:
            number += 1
    deadline = time.monotonic() + GATE_WAIT_S
    while number >= options["free"] and not Path(options["gate"]).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return _small()


def rendezvous(options):
    """Wait until `parties` different worker processes are building at once (bounded)."""
    if not _in_ray_worker():
        return _small()
    folder = Path(options["folder"])
    (folder / str(os.getpid())).touch()
    deadline = time.monotonic() + GATE_WAIT_S
    while len(list(folder.iterdir())) < options["parties"] and time.monotonic() < deadline:
        time.sleep(0.05)
    return _small()
