"""Ray for one launch: the environment Ray and Tune read, starting or joining Ray, and
whether the cluster can run a trial of the spec at all.

The one place gns touches Ray's private settings (start_ray, ENABLE_RAY_CLUSTER), and why.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
from typing import Any

import ray

from study.errors import BadInput
from study.spec import SpecError, StudySpec

RAY_CONNECT_TIMEOUT_S = 5
# Read by Ray and Tune when they run, not when imported; set before ray.init so that the
# workers it starts inherit them (a value the user set wins).
RAY_ENVIRONMENT = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AIR_NEW_OUTPUT": "0",
    "RAY_CHDIR_TO_TRIAL_DIR": "0",  # relative paths in workload options keep working
    # Tune's own JSON/CSV/TensorBoard logs of every report go to a temporary folder nobody reads, and
    # a report may carry a run's saved state (megabytes of bytes): they are not written.
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
}


def check_reachable(address: str) -> None:
    """Fail fast on HOST:PORT nobody answers at (ray.init would retry for minutes)."""
    if address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise BadInput(f"--address: expected auto or HOST:PORT, got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=RAY_CONNECT_TIMEOUT_S).close()
    except OSError as error:
        raise BadInput(f"--address: cannot join the Ray cluster at {address!r}: {error.strerror or error}") from None


def start_ray(address: str | None, code: list[str] = ()) -> None:
    """Start or join Ray; `code`: a user factory's package folder or .py file, shipped to every worker."""
    if address is not None:
        check_reachable(address)
    for name, value in RAY_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    # Our progress line is the output; Ray's own notices (such as its token
    # authentication on a local instance) would bury it.
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    if code:  # on a cluster the workers share no folder with the driver: Ray uploads the module to each node
        options["runtime_env"] = {"py_modules": list(code)}
    # A local Ray is for this machine only: Ray's single-machine mode (its default on macOS and
    # Windows) binds every Ray process to 127.0.0.1 instead of all interfaces. Ray has no public
    # setting for it; its constant is read while Ray runs, so it is set, not restored.
    import ray._private.ray_constants as ray_constants

    platform_mode = _platform_cluster_mode()  # read before the first change
    ray_constants.ENABLE_RAY_CLUSTER = platform_mode if address is not None else False
    try:
        if address is None:
            ray.init(**options)
        else:
            ray.init(address=address, **options)
    except (ConnectionError, ValueError, RuntimeError) as error:
        raise BadInput(f"--address: cannot join the Ray cluster at {address!r}: {str(error).splitlines()[0]}") from None


@functools.cache
def _platform_cluster_mode() -> bool:
    """Ray's own default for this platform, read before start_ray first changes it."""
    import ray._private.ray_constants as ray_constants

    return bool(ray_constants.ENABLE_RAY_CLUSTER)


def check_resources(spec: StudySpec, cluster: dict[str, float]) -> None:
    cpus, gpus = cluster.get("CPU", 0.0), cluster.get("GPU", 0.0)
    if spec.resources.cpu > cpus:
        raise SpecError(f"resources.cpu: each trial asks for {spec.resources.cpu:g} CPUs, the Ray cluster has {cpus:g}")
    if spec.resources.gpu > gpus:
        have = f"{gpus:g} GPUs" if gpus else "no GPU"
        raise SpecError(f"resources.gpu: each trial asks for {spec.resources.gpu:g} GPUs, the Ray cluster has {have}")
