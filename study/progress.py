"""A study's progress: done / running / failed / remaining, ETA and best value.

On a terminal the line is redrawn in place; elsewhere (CI, a log file) a plain
line is printed whenever a trial finishes.
"""

from __future__ import annotations

import math
import sys
import time
from typing import TextIO


def plural(count: int, noun: str) -> str:
    """`1 trial`, `2 trials`."""
    return f"{count} {noun}" + ("" if count == 1 else "s")


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def status_line(study: str, total: int, ok: int, failed: int, running: int, best: float | None, eta: float | None) -> str:
    done = ok + failed
    parts = [
        f"{study}: {done}/{total} done",
        f"{running} running",
        f"{failed} failed",
        f"{max(total - done - running, 0)} waiting",
    ]
    if eta is not None:
        parts.append(f"ETA {format_duration(eta)}")
    if best is not None:
        parts.append(f"best {best:.4g}")
    return ", ".join(parts)


class Progress:
    """Counts what a launch has done so far, on top of what was recorded before it."""

    def __init__(
        self,
        study: str,
        total: int,
        ok_before: int,
        failed_before: int,
        best_before: float | None = None,
        stream: TextIO | None = None,
    ):
        self.study = study
        self.total = total
        self.ok = ok_before
        self.failed = failed_before
        self.best = best_before
        self.running: set[str] = set()
        self.finished_now = 0
        self.started_at = time.monotonic()
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty()
        self._first_started = False

    def started(self, key: str) -> None:
        self.running.add(key)
        if not self._first_started:  # the first sign of life after Ray's start-up
            self._first_started = True
            self.note(f"first trials started after {format_duration(time.monotonic() - self.started_at)}")
            return
        self._draw(newline=False)

    def finished(self, key: str, value: float | None) -> None:
        """A trial was recorded: `value` is its primary metric, None if it failed."""
        self.running.discard(key)
        self.finished_now += 1
        if value is None:
            self.failed += 1
        else:
            self.ok += 1
            self.best = value if self.best is None else min(self.best, value)
        self._draw(newline=True)

    def eta(self) -> float | None:
        if self.finished_now == 0:
            return None
        remaining = self.total - self.ok - self.failed
        return (time.monotonic() - self.started_at) / self.finished_now * remaining

    def line(self) -> str:
        return status_line(self.study, self.total, self.ok, self.failed, len(self.running), self.best, self.eta())

    def note(self, message: str) -> None:
        """A line of its own (a retry, a failure), above the progress line."""
        prefix = "\r\033[K" if self.interactive else ""
        self.stream.write(f"{prefix}{message}\n")
        self._draw(newline=False)

    def _draw(self, newline: bool) -> None:
        if self.interactive:
            self.stream.write("\r\033[K" + self.line())
        elif newline:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.interactive:
            self.stream.write("\n")
            self.stream.flush()
