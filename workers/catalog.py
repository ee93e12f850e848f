"""The built-in workloads by name, and the module that builds each: a registry that needs no torch.

A workload module defines `build(options) -> Workload` and `OPTIONS`, the
dataclass its options parse into (workers/workloads/base.py: parse_options).
Adding a built-in workload: its module under workers/workloads/ and one entry
here; the CLI's help, error messages and the packing gate read this table.
"""

from __future__ import annotations

WORKLOADS = "workers.workloads"
# name -> the module that builds it
BUILTIN_WORKLOADS: dict[str, str] = {
    "toy": f"{WORKLOADS}.toy",
    "sinusoid": f"{WORKLOADS}.sinusoid",
    "digits": f"{WORKLOADS}.digits",
    "multimnist": f"{WORKLOADS}.multimnist",
    "nyuv2": f"{WORKLOADS}.nyuv2",
    "mtfl": f"{WORKLOADS}.mtfl",
}


def workload_help() -> str:
    """The built-in names, for a --workload help text."""
    return f"{', '.join(BUILTIN_WORKLOADS)} or package.module:factory"
