"""torch's thread count, set on purpose in every process that trains.

torch defaults to one intra-op thread per core. For the small networks of
these studies that buys little on an idle machine and costs up to 10x on a
busy one (threads spin-waiting for cores that other processes hold), so
`gns train` uses one thread unless told otherwise, and a Ray worker uses as
many as the CPUs its trial was given (docs/running.md).
"""

from __future__ import annotations

DEFAULT_THREADS = 1


def set_threads(threads: int) -> None:
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ValueError(f"threads: must be an integer >= 1, got {threads!r}")
    import torch  # here, not at the top: `gns` imports DEFAULT_THREADS for its help without loading torch

    torch.set_num_threads(threads)
