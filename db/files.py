"""SQLite files: tell ours from anything else before touching them, open readers read-only.

A reader never changes a byte: it opens the file with SQLite's `mode=ro`
(and `immutable=1` on a read-only filesystem, where SQLite cannot create its
lock files), and no pragma that writes (journal_mode=WAL) runs on it.

A writer makes a new file in one step (`create_wal_file`: built aside in WAL
mode, then linked into place), so a crash leaves either no file or an empty
WAL database, never a half-made one; and before its first look it lets SQLite
roll back a hot journal that a killed writer left (`recover_hot_journal`),
which a read-only open cannot do.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from pathlib import Path
from typing import Callable
from urllib.parse import quote

from sqlalchemy.engine import URL

from db.errors import DatabaseUnreachable, NotOurDatabase

SQLITE_MAGIC = b"SQLite format 3\x00"


def check_sqlite_file(path: Path, display_url: str, must_exist: bool) -> bool:
    """Whether `path` is to be opened as an existing SQLite database (False: absent, or empty and about to be
    written); raises for a file that is not one, or (must_exist) an absent one.

    Only the file's first bytes are read; which tables it holds is checked once
    it is open (db.store), the same way for SQLite and PostgreSQL.
    """
    if not path.exists():
        if must_exist:
            raise DatabaseUnreachable(f"storage: no database at {display_url} (run a study first, or pass --storage)"
                                      + _absolute_hint(path, Path.exists))
        if not path.parent.is_dir():
            raise DatabaseUnreachable(f"storage: directory {str(path.parent)!r} for {display_url} does not exist"
                                      + _absolute_hint(path, lambda absolute: absolute.parent.is_dir()))
        return False
    if path.is_dir():
        raise NotOurDatabase(f"storage: {display_url} is a directory, not a database file")
    try:
        with path.open("rb") as file:
            head = file.read(len(SQLITE_MAGIC))
    except OSError as error:
        raise DatabaseUnreachable(f"storage: cannot read {display_url}: {error.strerror or error}") from None
    if not head:  # SQLite's empty database: a reader finds no studies in it, a writer sets it up
        return must_exist
    if head != SQLITE_MAGIC:
        raise NotOurDatabase(f"storage: {display_url} is not an SQLite database; left unchanged")
    return True


def journal_of(path: Path) -> Path:
    return path.with_name(path.name + "-journal")


def has_hot_journal(path: Path) -> bool:
    """A non-empty rollback journal beside `path`: a writer died in a transaction (ours run in WAL
    mode, which keeps no -journal file, so one left beside a results database is a leftover)."""
    journal = journal_of(path)
    return journal.is_file() and journal.stat().st_size > 0


def recover_hot_journal(path: Path) -> None:
    """Open `path` read-write once so SQLite rolls its hot journal back (what any writer's open does)."""
    connection = sqlite3.connect(path, timeout=60)
    try:
        connection.execute("SELECT count(*) FROM sqlite_master").fetchall()
    finally:
        connection.close()


def create_wal_file(path: Path) -> None:
    """An empty SQLite database in WAL mode at `path`, made aside and linked into place in one step;
    if another writer made the file first, theirs stands."""
    aside = path.with_name(f".{path.name}.{uuid.uuid4().hex}.new")  # made by SQLite: its usual permissions
    try:
        connection = sqlite3.connect(aside)
        try:
            connection.execute("PRAGMA journal_mode=WAL").fetchall()  # written into the file's header
        finally:
            connection.close()
        try:
            os.link(aside, path)
        except FileExistsError:
            pass
    finally:
        aside.unlink(missing_ok=True)


def _absolute_hint(path: Path, fits: Callable[[Path], bool]) -> str:
    """sqlite:///home/me/gns.db names the relative path home/me/gns.db; where /home/me/gns.db would
    fit, say that an absolute path takes four slashes."""
    absolute = Path("/") / path
    if path.is_absolute() or not fits(absolute):
        return ""
    return f"; for the absolute path {absolute} write sqlite:///{absolute} (four slashes) or just the path"


def read_only_uri(path: Path) -> str:
    """SQLite's URI for opening `path` without writing, also on a read-only filesystem."""
    immutable = "&immutable=1" if not os.access(path.parent, os.W_OK) else ""
    return f"file:{quote(str(path.resolve()))}?mode=ro{immutable}"


def read_only_url(path: Path) -> URL:
    """A SQLAlchemy URL that opens `path` read-only (pysqlite's uri=true form)."""
    return URL.create("sqlite", database=read_only_uri(path), query={"uri": "true"})
