"""Fixtures for the RHU console's tests: a database of each kind (SQLite, and PostgreSQL 15 on a socket).

``pg_url`` starts Debian's PostgreSQL (``initdb`` + ``pg_ctl``) once per test
session in a temp folder, listening on a Unix socket only
(``listen_addresses=''``: no TCP at all), and skips with a reason when the
binaries or psycopg are missing. As root (CI, this machine) the server runs as
the ``postgres`` user, which PostgreSQL insists on. ``rhu_db`` is a fresh,
empty database of each kind for every test.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiosk.rhu.db import Database
from kiosk.rhu.pgtemp import PostgresUnavailable, TempPostgres

__all__ = ["pg_url", "rhu_db"]


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg 3 is not installed (pip install 'melanoma-kiosk[rhu]')")
    server = TempPostgres()
    try:
        url = server.start()
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield url
    finally:
        server.stop()


def _fresh_pg_database(base_url: str) -> str:
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return base_url.replace("/postgres?", f"/{name}?")


@pytest.fixture(params=["sqlite", "postgresql"])
def rhu_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'rhu.sqlite3'}"
    else:
        url = _fresh_pg_database(request.getfixturevalue("pg_url"))
    db = Database.open(url)
    try:
        yield db
    finally:
        db.close()
