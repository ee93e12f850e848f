"""What a run trained on, recorded with its result (the provenance a report shows)."""

from __future__ import annotations

import functools
import platform
from pathlib import Path

import torch


def runtime_environment(device: str) -> dict[str, str]:
    """torch's and Python's versions, the device by name (a GPU's model, not just "cuda") and the
    host's CPU model: float results differ in the last bits between CPUs (vectorized kernels)."""
    name = str(device)
    if torch.device(device).type == "cuda":
        name = f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return {"torch": torch.__version__, "python": platform.python_version(), "device": name, "cpu": cpu_model()}


@functools.cache
def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what the platform says, else "unknown"."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()[:128]
    except OSError:
        pass
    return platform.processor()[:128] or "unknown"
