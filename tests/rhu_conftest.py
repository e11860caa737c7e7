"""Fixtures for the RHU console's tests: a database of each kind (SQLite, and PostgreSQL 15 on a socket).

``pg_url`` starts Debian's PostgreSQL (``initdb`` + ``pg_ctl``) once per test
session in a temp folder, listening on a Unix socket only
(``listen_addresses=''``: no TCP at all), and skips with a reason when the
binaries or psycopg are missing. As root (CI, this machine) the server runs as
the ``postgres`` user, which PostgreSQL insists on. ``rhu_db`` is a fresh,
empty database of each kind for every test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiosk.rhu.db import Database

__all__ = ["pg_url", "rhu_db"]


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    return None


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL's initdb/pg_ctl are not installed (Debian: apt-get install postgresql)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg 3 is not installed (pip install 'melanoma-kiosk[rhu]')")
    run_as: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
        run_as = ["runuser", "-u", "postgres", "--"]
    root = Path(tempfile.mkdtemp(prefix="rhu-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    if run_as:
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
    env = {**os.environ, "LC_ALL": "C.UTF-8"}
    try:
        subprocess.run(
            [*run_as, initdb, "-D", str(data), "-U", "rhu", "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8",
             "--no-sync"],
            check=True, capture_output=True, timeout=120, env=env,
        )  # fmt: skip
        subprocess.run(
            [*run_as, pg_ctl, "-D", str(data), "-w", "-t", "60", "-l", str(root / "log"), "start", "-o",
             f"-c listen_addresses='' -c unix_socket_directories={sock} -c fsync=off -c max_connections=40"],
            check=True, capture_output=True, timeout=90, env=env,
        )  # fmt: skip
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        log = (root / "log").read_text(errors="replace")[-500:] if (root / "log").exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"PostgreSQL did not start here: {exc} {log}")
    try:
        yield f"postgresql://rhu@/postgres?host={sock}"
    finally:
        subprocess.run([*run_as, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


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
