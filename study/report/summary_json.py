"""Reading a figure's statistics back from summary.json (each stats class's `from_dict`)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Mapping


def known_fields(cls: type, data: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of `data` that are fields of the dataclass `cls` (other keys, such as a curve, stay out)."""
    return {f.name: data[f.name] for f in fields(cls) if f.name in data}


def seed_keyed(mapping: Mapping[Any, Any] | None) -> dict[int, Any] | None:
    """A per-seed mapping with its seeds as ints again (JSON keeps object keys as text); None stays None."""
    return None if mapping is None else {int(seed): value for seed, value in mapping.items()}
