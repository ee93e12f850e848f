"""Where a user's module lives, found without importing it, and the folders it may be imported
from (torch-free: read commands and `gns plan` use them too)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

# Folders a user's factory module may be found in besides the installed packages (workers.workloads).
code_folders: list[Path] = []


def allow_imports_from(*folders: str | Path) -> None:
    """Let a user factory's module be imported from `folders` (appended to sys.path, once each);
    they replace the folders an earlier call named in what is shipped and in error messages."""
    code_folders[:] = dict.fromkeys(Path(folder).resolve() for folder in folders)
    for path in code_folders:
        if str(path) not in sys.path:
            sys.path.append(str(path))


def module_origin(top: str) -> Path | None:
    """Where top-level module `top` lives: its package folder, or its .py file; None if Python finds
    neither. What Ray ships to workers (workers.workloads.code_to_ship) and what study.provenance hashes."""
    spec = importlib.util.find_spec(top)
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    return Path(spec.origin) if spec.origin and spec.origin.endswith(".py") else None
