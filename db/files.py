"""SQLite files: tell ours from anything else before touching them, open readers read-only.

A reader never changes a byte: it opens the file with SQLite's `mode=ro`
(and `immutable=1` on a read-only filesystem, where SQLite cannot create its
lock files), and no pragma that writes (journal_mode=WAL) runs on it.
"""

from __future__ import annotations

import os
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
