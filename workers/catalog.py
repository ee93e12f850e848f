"""The built-in workloads by name, and the module that builds each: a registry that needs no torch.

A workload module defines `build(options) -> Workload` and `OPTIONS`, the
dataclass its options parse into (workers/workloads/base.py: parse_options).
Adding a built-in workload: its module under workers/workloads/ and one entry
here; the CLI's help, error messages and the packing gate read this table.
"""

from __future__ import annotations

WORKLOADS = "workers.workloads"
# name -> (module, one line for help texts)
BUILTIN_WORKLOADS: dict[str, tuple[str, str]] = {
    "toy": (f"{WORKLOADS}.toy", "the paper's synthetic regression, T tasks of scales sigma_i"),
    "sinusoid": (f"{WORKLOADS}.sinusoid", "two sine regressions with target correlation p"),
    "digits": (f"{WORKLOADS}.digits", "scikit-learn's 8x8 digits: digit, parity, ink, denoise"),
    "multimnist": (f"{WORKLOADS}.multimnist", "two MNIST digits overlaid: left, right (and a third task)"),
    "nyuv2": (f"{WORKLOADS}.nyuv2", "NYUv2 from a data directory: segmentation, depth, normal"),
    "mtfl": (f"{WORKLOADS}.mtfl", "MTFL faces from a data directory: landmarks and four attributes"),
}


def workload_help() -> str:
    """The built-in names, for a --workload help text."""
    return f"{', '.join(BUILTIN_WORKLOADS)} or package.module:factory"
