"""Shared fixtures: real SQLite files and real PostgreSQL databases, made and dropped per test."""

from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import create_engine, text

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

POSTGRES_ADMIN_URL = os.environ.get("GNS_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def pytest_collection_modifyitems(items) -> None:
    """Mark every test that uses the PostgreSQL server, so `-m "not postgres"` leaves them out."""
    for item in items:
        if "postgres_url" in getattr(item, "fixturenames", ()) or "own_postgres" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'results.db'}"


@pytest.fixture
def postgres_url():
    """A fresh PostgreSQL database on the local server, dropped afterwards."""
    name = f"gns_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request) -> str:
    """Each test that takes this runs on both backends."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def float64():
    """Train in float64 for the test: two equal computations then differ only where they really differ."""
    import torch  # here: most tests never load torch

    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)
