"""Where a user's module lives, found without importing it (torch-free: read commands use it too)."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def module_origin(top: str) -> Path | None:
    """Where top-level module `top` lives: its package folder, or its .py file; None if Python finds
    neither. What Ray ships to workers (workers.workloads.code_to_ship) and what study.provenance hashes."""
    spec = importlib.util.find_spec(top)
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    return Path(spec.origin) if spec.origin and spec.origin.endswith(".py") else None
