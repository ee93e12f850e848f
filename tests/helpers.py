"""Helpers several test modules share: ports, waiting on conditions, file digests, optuna-dashboard."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
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


PORT_TRIES = 5


def answer(url: str):
    """The JSON at `url`, or None while the server is not answering yet."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.load(response)
    except (urllib.error.URLError, ConnectionError):
        return None


@contextlib.contextmanager
def dashboard_on(storage: str):
    """optuna-dashboard on a free port; a port lost to a race between picking and binding is picked again."""
    executable = Path(sys.executable).with_name("optuna-dashboard")
    for _ in range(PORT_TRIES):
        port = free_port()
        process = subprocess.Popen(
            [str(executable), storage, "--host", "127.0.0.1", "--port", str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ},
        )
        try:
            base = f"http://127.0.0.1:{port}"
            wait_until(lambda: answer(f"{base}/api/studies") or process.poll() is not None, "optuna-dashboard to answer")
            if process.poll() is None:
                yield base
                return
        finally:
            process.terminate()
            process.wait(timeout=GENEROUS_S)
    raise AssertionError(f"optuna-dashboard exited at once on {PORT_TRIES} free ports")
