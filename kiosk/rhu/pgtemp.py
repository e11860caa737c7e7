"""A throwaway PostgreSQL on a Unix socket in a temp folder (no TCP), for tests and the benchmark.

Debian's ``initdb`` and ``pg_ctl`` (PATH, else /usr/lib/postgresql/*/bin). As
root the server runs as the ``postgres`` user, which PostgreSQL insists on.

>>> server = TempPostgres()  # doctest: +SKIP
>>> with server as url: print(url)  # doctest: +SKIP
postgresql://rhu@/postgres?host=/tmp/rhu-pg-.../sock
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

__all__ = ["PostgresUnavailable", "TempPostgres", "pg_binary"]


class PostgresUnavailable(RuntimeError):
    """PostgreSQL cannot be started here (one line: why)."""


def pg_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True)
    return str(candidates[0]) if candidates else None


class TempPostgres:
    """``with TempPostgres() as url:`` a server that is stopped and deleted afterwards."""

    def __init__(self, *, fsync: bool = False, prefix: str = "rhu-pg-") -> None:
        self.fsync = fsync  # off for tests and the benchmark's bulk load; a real RHU keeps it on
        self.prefix = prefix
        self.root: Path | None = None
        self._run_as: list[str] = []
        self._pg_ctl = ""

    def start(self) -> str:
        initdb, pg_ctl = pg_binary("initdb"), pg_binary("pg_ctl")
        if not initdb or not pg_ctl:
            raise PostgresUnavailable(
                "PostgreSQL's initdb/pg_ctl are not installed (Debian: apt-get install postgresql)"
            )
        if os.geteuid() == 0:
            if shutil.which("runuser") is None:
                raise PostgresUnavailable("running as root without runuser: cannot start PostgreSQL as another user")
            self._run_as = ["runuser", "-u", "postgres", "--"]
        self._pg_ctl = pg_ctl
        self.root = root = Path(tempfile.mkdtemp(prefix=self.prefix))
        sock = root / "sock"
        sock.mkdir()
        if self._run_as:
            shutil.chown(root, "postgres")
            shutil.chown(sock, "postgres")
        env = {**os.environ, "LC_ALL": "C.UTF-8"}
        options = f"-c listen_addresses='' -c unix_socket_directories={sock} -c max_connections=40"
        if not self.fsync:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        try:
            subprocess.run(
                [*self._run_as, initdb, "-D", str(root / "data"), "-U", "rhu", "--auth=trust", "--encoding=UTF8",
                 "--locale=C.UTF-8", "--no-sync"],
                check=True, capture_output=True, timeout=120, env=env,
            )  # fmt: skip
            subprocess.run(
                [*self._run_as, pg_ctl, "-D", str(root / "data"), "-w", "-t", "60", "-l", str(root / "log"), "start",
                 "-o", options],
                check=True, capture_output=True, timeout=90, env=env,
            )  # fmt: skip
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            log = (root / "log").read_text(errors="replace")[-300:] if (root / "log").exists() else ""
            shutil.rmtree(root, ignore_errors=True)
            self.root = None
            raise PostgresUnavailable(f"PostgreSQL did not start: {exc} {log}".strip()) from None
        return f"postgresql://rhu@/postgres?host={sock}"

    def stop(self) -> None:
        if self.root is None:
            return
        subprocess.run(
            [*self._run_as, self._pg_ctl, "-D", str(self.root / "data"), "-m", "immediate", "stop"],
            capture_output=True, timeout=60,
        )  # fmt: skip
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
