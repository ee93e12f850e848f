"""The results database: Optuna's RDB storage plus our trace tables. Never imports torch.

Open it through `open_reader` (read-only, writes nothing) or `open_writer`;
both return the interfaces of db.interface.
"""

from __future__ import annotations

from sqlalchemy.engine import URL

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
from db.interface import LeaseHolder, RecordOutcome, ResultsReader, ResultsWriter, StudyInfo
from db.store import LEASE_TTL_S, ResultsDB, spec_hash
from db.urls import DEFAULT_URL, parse_url


def open_reader(url: str | URL) -> ResultsReader:
    """An existing results database, read-only."""
    return ResultsDB(url, create=False)


def open_writer(url: str | URL) -> ResultsWriter:
    """A results database to write, set up if empty."""
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
    "open_reader",
    "open_writer",
    "parse_url",
    "spec_hash",
]
