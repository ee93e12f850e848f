"""Which code a study's runs trained with: a fingerprint recorded with every trial.

A trial's key hashes its config, not the code that trains it, so without this
a study could silently mix two versions of a model: a relaunch after an edit
would find every key recorded and run nothing. The fingerprint has two parts:

- `training`: sha256 of gradnorm-study's own training code (every .py file
  under workers/ and records/, the code that turns a config into numbers),
  with the product version beside it for reading;
- `factory`: for a user's `module:factory`, sha256 of its top-level package's
  .py files (or its single .py file); None for the built-in workloads, whose
  code is part of `training`.

A relaunch whose fingerprint differs from the one the study recorded is
refused in one line naming the part that changed, unless the user passes
`--allow-code-change` (then the change is recorded with the study).
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

from records import MACHINE_FIELDS, NOT_RECORDED, product_version
from study.progress import plural
from workers.modules import module_origin

TRAINING_PACKAGES = ("workers", "records")  # what turns a config into a result
SHORT = 12  # hex digits shown


@dataclass(frozen=True)
class CodeFingerprint:
    product: str
    training: str
    factory: str | None = None
    factory_module: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CodeFingerprint":
        """From a database row (untrusted): only the known fields, as text."""
        def text(name: str) -> str | None:
            value = data.get(name)
            return None if value is None else str(value)[:200]

        return cls(text("product") or "unknown", text("training") or "unknown", text("factory"), text("factory_module"))

    def describe(self) -> str:
        factory = f", factory {self.factory_module} {self.factory[:SHORT]}" if self.factory else ""
        return f"gradnorm-study {self.product} training code {self.training[:SHORT]}{factory}"


def sources_digest(paths: list[Path], root: Path) -> str:
    """sha256 over (path relative to root, content) of each file, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(paths, key=lambda p: p.relative_to(root).as_posix()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def module_sources(top: str) -> tuple[list[Path], Path] | None:
    """The .py files of top-level module `top` (a package's tree, or one file) and the folder they hang
    from; None when it cannot be found. Found without importing it."""
    origin = module_origin(top)
    if origin is None:
        return None
    if origin.is_dir():
        return [p for p in origin.rglob("*.py") if "__pycache__" not in p.parts], origin.parent
    return [origin], origin.parent


def code_fingerprint(workload: str) -> CodeFingerprint:
    """The fingerprint of the code that trains `workload` now (a built-in name or module:factory)."""
    files: list[Path] = []
    root = None
    for package in TRAINING_PACKAGES:
        found = module_sources(package)
        if found is not None:
            files += found[0]
            root = found[1]
    training = sources_digest(files, root) if root is not None else "unknown"
    if ":" not in workload:
        return CodeFingerprint(product_version(), training)
    module = workload.partition(":")[0]
    found = module_sources(module.split(".")[0])
    factory = sources_digest(*found) if found is not None else "unknown"
    return CodeFingerprint(product_version(), training, factory, module)


def what_changed(recorded: CodeFingerprint, now: CodeFingerprint) -> str | None:
    """A phrase naming what differs between the recorded fingerprint and today's; None if nothing."""
    changes = []
    if recorded.factory != now.factory or recorded.factory_module != now.factory_module:
        changes.append(f"your factory {now.factory_module or recorded.factory_module} "
                       f"({(recorded.factory or 'none')[:SHORT]} -> {(now.factory or 'none')[:SHORT]})")
    if recorded.training != now.training:
        version = (f"{recorded.product} -> {now.product}" if recorded.product != now.product else now.product)
        changes.append(f"gradnorm-study's training code ({version}: {recorded.training[:SHORT]} -> {now.training[:SHORT]})")
    return " and ".join(changes) or None


def code_lines(fingerprints: list[tuple[dict[str, Any], int]], changes: list[dict[str, Any]]) -> list[str]:
    """What `gns status` and the report say of the code a study's recorded trials trained with."""
    if not fingerprints:
        return ["code: not recorded (its trials were recorded before gradnorm-study kept code fingerprints)"]
    shown = [(CodeFingerprint.from_dict(code).describe(), count) for code, count in fingerprints]
    if len(shown) == 1:
        lines = [f"code: {shown[0][0]} (every fingerprinted trial: {shown[0][1]})"]
    else:
        lines = [f"warning: the trials trained with {len(shown)} versions of the code, so they may not be comparable: "
                 + "; ".join(f"{description} ({count} trials)" for description, count in shown)]
    for change in changes:
        lines.append(f"code changed on purpose (--allow-code-change) at {str(change.get('at', '?'))[:19]}")
    return lines


def machine_lines(machines: list[tuple[dict[str, str], int]]) -> list[str]:
    """What `gns status` and the report say of the machines a study's recorded trials trained on; a
    warning when two of them differ in a field both recorded: float32 rounds differently per CPU,
    device and torch version, and thousands of steps amplify it, so runs from two machines differ by
    more than their weightings. (Trials from before the CPU model was recorded do not count as another
    machine for that alone.)"""
    if not machines:
        return ["machine: not recorded (its trials were recorded before gradnorm-study kept it)"]
    shown = "; ".join(f"{describe_machine(machine)} ({plural(count, 'trial')})" for machine, count in machines)
    if machines_mixed(machines):
        return [f"warning: the trials trained on {len(machines)} different machines; float32 rounds differently on "
                f"each and training amplifies it, so runs compared across them differ by more than their weightings: "
                f"{shown}"]
    return [f"machine: {shown}"]


def machines_mixed(machines: list[tuple[dict[str, str], int]]) -> bool:
    """Whether two of the machines differ in a field both recorded."""
    return any(machines_differ(a, b) for (a, _), (b, _) in itertools.combinations(machines, 2))


def machines_differ(a: dict[str, str], b: dict[str, str]) -> bool:
    return any(a[name] != b[name] for name in MACHINE_FIELDS if NOT_RECORDED not in (a[name], b[name]))


def describe_machine(machine: dict[str, str]) -> str:
    return ", ".join(f"{name} {machine[name]}" for name in MACHINE_FIELDS)
