"""Shared fixtures: a fresh database per test, on SQLite and (when available) PostgreSQL.

PostgreSQL is a real server named by PREPAID_TEST_POSTGRES_URL (`.ci/run` sets it). Each xdist
worker gets its own database, emptied before every test, so tests never see each other's rows.
Without the variable, PostgreSQL tests skip with a visible reason.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

PG_ENV = "PREPAID_TEST_POSTGRES_URL"


def _worker_database(base_url: str, worker: str) -> str:
    """Create a database for this test run's xdist worker and return its URL.

    The name carries the run's id, so two test runs on one machine never share a database.
    """
    url = make_url(base_url)
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID", f"p{os.getpid()}")[:10]
    name = f"prepaid_test_{worker}_{run}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
        ).first()
        if not exists:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_base_url(worker_id: str) -> Iterator[str]:
    """The per-worker PostgreSQL database URL (dropped at the end), or a skip without one."""
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set: PostgreSQL tests need a real server")
    try:
        url = _worker_database(base, worker_id)
    except Exception as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"PostgreSQL at {PG_ENV} is unreachable: {exc}")
    yield url
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        name = make_url(url).database
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def reset_postgres(url: str) -> None:
    """Drop everything in the public schema."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL: SQLite file, then PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / f'ledger-{uuid.uuid4().hex[:6]}.db'}"
        return
    url = request.getfixturevalue("postgres_base_url")
    reset_postgres(url)
    yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite file URL."""
    return f"sqlite:///{tmp_path / 'ledger.db'}"
