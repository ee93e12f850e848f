"""Helpers several test modules share: ports, waiting on conditions, file digests."""

from __future__ import annotations

import hashlib
import socket
import time
from pathlib import Path
from typing import Callable, TypeVar

T = TypeVar("T")

# Waits are on conditions; this bound only stops a test that would otherwise hang,
# generous enough for a machine several times slower and busier than ours.
GENEROUS_S = 300.0


def free_port() -> int:
    """A port free right now (a caller that loses it to a race starts again with another)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(probe: Callable[[], T], what: str, timeout_s: float = GENEROUS_S, every_s: float = 0.1) -> T:
    """Call `probe` until it returns something truthy; fail naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(every_s)


def file_digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None
