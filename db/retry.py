"""Writes that ride out a short database outage (a PostgreSQL restart, a failover).

Every write of the results database goes through `retrying`: an error that
means "the server is not there right now" is retried with exponential backoff
until the window closes; past it DatabaseUnavailable says so in one line.
Writes are idempotent by trial key, so repeating one that did land is harmless.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Callable, TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError

from db.errors import DatabaseUnavailable, DatabaseWriteError

T = TypeVar("T")

RETRY_WINDOW_ENV = "GNS_DB_RETRY_S"
DEFAULT_RETRY_WINDOW_S = 180.0
FIRST_DELAY_S = 0.5
MAX_DELAY_S = 10.0


def retry_window_s() -> float:
    """How long writes keep retrying: $GNS_DB_RETRY_S, default 3 minutes."""
    raw = os.environ.get(RETRY_WINDOW_ENV)
    if raw is None:
        return DEFAULT_RETRY_WINDOW_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise ValueError(f"{RETRY_WINDOW_ENV}: expected seconds >= 0, got {raw!r}")
    return value


# A PostgreSQL server that answers but refuses: asking again will not help (a wrong name or password).
_REFUSALS = ("does not exist", "authentication failed", "pg_hba.conf", "password")


def is_outage(error: BaseException) -> bool:
    """An error that a later attempt may not see: the connection, not the statement."""
    optuna = sys.modules.get("optuna")  # an Optuna error can only come from a loaded Optuna
    if optuna is not None and isinstance(error, optuna.exceptions.StorageInternalError):
        return True
    if isinstance(error, OperationalError):
        if type(error.orig).__module__.startswith("sqlite3"):
            return "locked" in str(error.orig)  # a disk-full or read-only SQLite file will not heal by itself
        message = str(error.orig)
        return not ("FATAL:" in message and any(refusal in message for refusal in _REFUSALS))
    return isinstance(error, DBAPIError) and bool(error.connection_invalidated)


def is_sqlite_lock(error: BaseException) -> bool:
    """SQLite's busy/locked: another writer of the same file, not an outage (retried without a word)."""
    orig = getattr(error, "orig", None)
    return orig is not None and type(orig).__module__.startswith("sqlite3") and "locked" in str(orig)


def retrying(what: str, action: Callable[[], T], window_s: float | None = None, sleep=time.sleep) -> T:
    """Run `action`, retrying outages with backoff for `window_s` seconds."""
    window = retry_window_s() if window_s is None else window_s
    deadline = time.monotonic() + window
    delay = FIRST_DELAY_S
    warned = False
    while True:
        try:
            return action()
        except Exception as error:
            if not is_outage(error):
                if isinstance(error, SQLAlchemyError):  # disk full, permissions: one line, not a traceback
                    raise DatabaseWriteError(f"storage: cannot write while {what}: {_first_line(error)}") from None
                raise
            if time.monotonic() + delay > deadline:
                raise DatabaseUnavailable(
                    f"database unavailable for {window:g} s while {what}: {_first_line(error)}"
                ) from None
            if not warned and not is_sqlite_lock(error):
                print(f"database unavailable while {what}; retrying for up to {window:g} s", file=sys.stderr, flush=True)
                warned = True
            sleep(delay)
            delay = min(delay * 2, MAX_DELAY_S)


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__
