"""Database URLs: the embedded SQLite default, PostgreSQL for clusters."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

from db.errors import BadDatabaseURL

DEFAULT_URL = "sqlite:///gns.db"
SUPPORTED = ("sqlite", "postgresql")
# SQLite: a writer holds the lock briefly; readers and a second writer wait this long.
SQLITE_BUSY_TIMEOUT_S = 60


_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")


def redact(text: str) -> str:
    """`text` with the password of any URL in it replaced by ***: what every message and hint shows."""
    return _PASSWORD.sub(r"\1***@", text)


def parse_url(url: str) -> URL:
    """Validate a URL and fill in our driver (psycopg 3 for PostgreSQL); a bare file path means SQLite."""
    from sqlalchemy.engine import URL, make_url  # here: `import db` stays light for commands that open nothing
    from sqlalchemy.exc import ArgumentError

    if ":" not in url and url.strip():  # a plain path (a URL, or garble, has a colon)
        return URL.create("sqlite", database=url)
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError, TypeError):
        raise BadDatabaseURL(
            f"storage: cannot parse database URL {redact(url)!r} (expected e.g. {DEFAULT_URL}, a file path, or "
            "postgresql://user@host:5432/db)"
        ) from None
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED:
        raise BadDatabaseURL(f"storage: unsupported database {backend!r} in {redact(url)!r} (use sqlite or postgresql)")
    if backend == "postgresql":
        driver = parsed.get_driver_name()
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        elif driver != "psycopg":
            raise BadDatabaseURL(f"storage: use postgresql+psycopg:// (psycopg 3), not {parsed.drivername!r}")
        if not parsed.database:
            raise BadDatabaseURL(f"storage: {redact(url)!r} names no database")
    else:
        if not parsed.database or parsed.database == ":memory:":
            raise BadDatabaseURL(f"storage: {redact(url)!r} names no SQLite file (e.g. sqlite:///gns.db)")
    return parsed


def sqlite_file(url: URL) -> Path | None:
    return Path(url.database) if url.get_backend_name() == "sqlite" else None


def engine_options(url: URL) -> dict:
    if url.get_backend_name() == "sqlite":
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
    return {"pool_pre_ping": True}


def display(url: URL) -> str:
    """The URL with any password hidden."""
    return url.render_as_string(hide_password=True)
