"""The RHU console's database: PostgreSQL for a province's many kiosks, SQLite for one RHU.

One SQL text runs on both: ``?`` placeholders (turned into ``%s`` for
psycopg), ``INSERT ... ON CONFLICT DO UPDATE`` upserts, ISO-8601 UTC text for
times (it sorts like time, and ``substr(created_at, 1, 7)`` is the month), and
no server-side functions. The adapter is this thin on purpose: the console
needs a handful of queries, and both engines read them the same way.

``url``: ``sqlite:///PATH`` (a file; the embedded default) or a libpq URL,
``postgresql://user@/dbname?host=/run/postgresql``.

>>> import tempfile, pathlib
>>> db = Database.open("sqlite:///" + str(pathlib.Path(tempfile.mkdtemp()) / "rhu.sqlite3"))
>>> db.kind, db.scalar("SELECT count(*) FROM screenings")
('sqlite', 0)
>>> db.close()
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

__all__ = ["SCHEMA", "Database", "DatabaseError"]

SCHEMA_VERSION = 1
#: The tables. Photos are files outside the database (content-addressed by sha256, see
#: kiosk.rhu.photos): a province's 650 GB a year of photos must not live in its tables.
SCHEMA = (
    """CREATE TABLE IF NOT EXISTS screenings (
        key TEXT PRIMARY KEY,              -- the Encounter's id: station code + screening id
        station_code TEXT NOT NULL,
        screening_id TEXT NOT NULL,
        code TEXT,                         -- the slip code, nine digits
        created_at TEXT NOT NULL,          -- ISO-8601 UTC
        status TEXT,
        risk TEXT,
        probability DOUBLE PRECISION,
        threshold DOUBLE PRECISION,
        features_json TEXT,
        body_site TEXT,
        age_band TEXT,
        sex TEXT,
        referred INTEGER NOT NULL,
        due_date TEXT,                     -- YYYY-MM-DD
        facility TEXT,
        photo_sha256 TEXT,
        resources_json TEXT NOT NULL,      -- the FHIR resources as imported, for audit and re-mapping
        imported_at TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS screenings_referrals ON screenings (referred, station_code, due_date)",
    "CREATE INDEX IF NOT EXISTS screenings_code ON screenings (code)",
    "CREATE INDEX IF NOT EXISTS screenings_month ON screenings (station_code, created_at)",
    """CREATE TABLE IF NOT EXISTS outcomes (
        id TEXT PRIMARY KEY,               -- screening key + recorded_at: the same outcome twice is one row
        screening_key TEXT NOT NULL REFERENCES screenings (key),
        outcome TEXT NOT NULL,             -- kiosk.records.outcomes.OUTCOMES
        seen_on TEXT,
        biopsy TEXT,
        note TEXT,
        recorded_at TEXT NOT NULL,
        recorded_by TEXT NOT NULL,
        written_at TEXT                    -- when its NDJSON reached the station's outbound folder
    )""",
    "CREATE INDEX IF NOT EXISTS outcomes_screening ON outcomes (screening_key, recorded_at)",
    """CREATE TABLE IF NOT EXISTS users (
        username TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        created_at TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS imports (
        manifest_sha256 TEXT PRIMARY KEY,  -- an export folder imported once is not read again
        station_code TEXT,
        screenings INTEGER NOT NULL,
        imported_at TEXT NOT NULL
    )""",
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
)


class DatabaseError(RuntimeError):
    """The database cannot be opened or used (one line: what and where)."""


class Database:
    """A connection per thread to one SQLite file or one PostgreSQL database."""

    def __init__(self, url: str, kind: Literal["sqlite", "postgresql"]) -> None:
        self.url = url
        self.kind = kind
        self._local = threading.local()
        self._connections: list[Any] = []
        self._lock = threading.Lock()

    @classmethod
    def open(cls, url: str) -> Database:
        """Connect and create the tables that are missing."""
        if url.startswith("sqlite:///"):
            db = cls(url, "sqlite")
            Path(url.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
        elif url.startswith(("postgresql://", "postgres://")):
            db = cls(url, "postgresql")
        else:
            raise DatabaseError(f"unknown database URL {url!r} (expected sqlite:///PATH or postgresql://...)")
        try:
            with db.transaction() as cur:
                for statement in SCHEMA:
                    cur.execute(statement)
                cur.execute("SELECT count(*) FROM schema_version")
                if cur.fetchone()[0] == 0:
                    cur.execute(db._sql("INSERT INTO schema_version (version) VALUES (?)"), (SCHEMA_VERSION,))
        except DatabaseError:
            db.close()
            raise
        except Exception as exc:
            db.close()
            raise DatabaseError(f"cannot open the database {db.safe_url}: {str(exc).strip().splitlines()[0]}") from exc
        return db

    @property
    def safe_url(self) -> str:
        """The URL without a password, for messages."""
        if "@" in self.url and "://" in self.url:
            scheme, rest = self.url.split("://", 1)
            return f"{scheme}://{rest.split('@', 1)[1]}"
        return self.url

    def _connect(self) -> Any:
        if self.kind == "sqlite":
            conn = sqlite3.connect(
                self.url.removeprefix("sqlite:///"), timeout=30, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")  # a committed import survives a power cut
            conn.execute("PRAGMA foreign_keys = ON")
            return conn
        try:
            import psycopg
        except ImportError as exc:  # the [rhu] extra is not installed
            raise DatabaseError("PostgreSQL needs psycopg 3: pip install 'melanoma-kiosk[rhu]'") from exc
        return psycopg.connect(self.url, autocommit=True, connect_timeout=10)

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
            with self._lock:
                self._connections.append(conn)
        return conn

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.kind == "postgresql" else sql

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Cursor]:
        """One transaction: committed when the block ends, rolled back when it raises."""
        conn = self._conn()
        if self.kind == "sqlite":
            conn.execute("BEGIN IMMEDIATE")
            cur = Cursor(self, conn.cursor())
            try:
                yield cur
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        else:
            with conn.transaction(), conn.cursor() as raw:
                yield Cursor(self, raw)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Rows as dicts (column name -> value)."""
        with self.transaction() as cur:
            cur.execute(sql, params)
            return cur.dicts()

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        with self.transaction() as cur:
            cur.execute(sql, params)
            row = cur.fetchone()
            return row[0] if row else None

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                with contextlib.suppress(Exception):
                    conn.close()
            self._connections.clear()
        self._local = threading.local()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Cursor:
    """A DB-API cursor that takes ``?`` placeholders on either engine."""

    def __init__(self, db: Database, raw: Any) -> None:
        self._db = db
        self.raw = raw

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.raw.execute(self._db._sql(sql), tuple(params))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.raw.executemany(self._db._sql(sql), [tuple(r) for r in rows])

    def fetchone(self) -> Any:
        return self.raw.fetchone()

    def dicts(self) -> list[dict[str, Any]]:
        names = [d[0] for d in self.raw.description or ()]
        return [dict(zip(names, row, strict=True)) for row in self.raw.fetchall()]
