"""The results database: Optuna's RDB storage plus our trace tables. Never imports torch.

Open it through `open_reader` (read-only, writes nothing) or `open_writer`;
both return the interfaces of db.interface.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from db.errors import (
    BadDatabaseURL,
    DatabaseInputError,
    DatabaseUnavailable,
    DatabaseUnreachable,
    DatabaseWriteError,
    NoSuchStudy,
    NotOurDatabase,
    StudyBusy,
)
from db.urls import DEFAULT_URL, display, parse_url, redact, sqlite_file

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

    from db.interface import ResultsReader, ResultsWriter

# Loaded on first use (PEP 562), so that `import db` costs neither SQLAlchemy's ORM, Optuna nor pandas:
# `gns --version` and `gns --help` import this package and never open a database.
_LAZY = {
    "LEASE_TTL_S": "db.store", "ResultsDB": "db.store", "spec_hash": "db.store",
    "LeaseHolder": "db.interface", "RecordOutcome": "db.interface", "ResultsReader": "db.interface",
    "ResultsWriter": "db.interface", "StudyInfo": "db.interface",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'db' has no attribute {name!r}")


def check_target(url: str) -> "URL":
    """The parsed URL of a database a writer may open: for SQLite, a folder that exists and a file
    that is absent, empty or an SQLite database. Raises DatabaseInputError otherwise; writes nothing."""
    from db.files import check_sqlite_file

    parsed = parse_url(url)
    path = sqlite_file(parsed)
    if path is not None:
        check_sqlite_file(path, display(parsed), must_exist=False)
    return parsed


def open_reader(url: "str | URL") -> "ResultsReader":
    """An existing results database, read-only."""
    from db.store import ResultsDB

    return ResultsDB(url, create=False)


def open_writer(url: "str | URL") -> "ResultsWriter":
    """A results database to write, set up if empty."""
    from db.store import ResultsDB

    return ResultsDB(url, create=True)


__all__ = [
    "DEFAULT_URL",
    "LEASE_TTL_S",
    "BadDatabaseURL",
    "DatabaseInputError",
    "DatabaseUnavailable",
    "DatabaseUnreachable",
    "DatabaseWriteError",
    "LeaseHolder",
    "NoSuchStudy",
    "NotOurDatabase",
    "RecordOutcome",
    "ResultsDB",
    "ResultsReader",
    "ResultsWriter",
    "StudyBusy",
    "StudyInfo",
    "check_target",
    "open_reader",
    "open_writer",
    "parse_url",
    "redact",
    "spec_hash",
]
