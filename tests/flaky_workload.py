"""User workloads that misbehave inside Ray workers, for the driver's tests.

The driver builds the workload once to check the spec, so each of them only
misbehaves inside a Ray worker.
"""

import os
from pathlib import Path

from tests.helpers import wait_until
from workers.workloads import build_workload

GATE_WAIT_S = 600.0  # a gated trial waits at most this long, then fails naming what it waited for


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
    if number >= options["free"]:
        wait_until(Path(options["gate"]).exists, f"the gate {options['gate']}", timeout_s=GATE_WAIT_S, every_s=0.05)
    return _small()


def rendezvous(options):
    """Wait until `parties` different worker processes are building at once (bounded)."""
    if not _in_ray_worker():
        return _small()
    folder = Path(options["folder"])
    (folder / str(os.getpid())).touch()
    wait_until(lambda: len(list(folder.iterdir())) >= options["parties"],
               f"{options['parties']} workers building at once", timeout_s=GATE_WAIT_S, every_s=0.05)
    return _small()
