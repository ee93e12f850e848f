"""What a run trained on, recorded with its result (the provenance a report shows)."""

from __future__ import annotations

import platform

import torch


def runtime_environment(device: str) -> dict[str, str]:
    """torch's and Python's versions and the device by name (a GPU's model, not just "cuda")."""
    name = str(device)
    if torch.device(device).type == "cuda":
        name = f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return {"torch": torch.__version__, "python": platform.python_version(), "device": name}
