"""Screening records in SQLite, written so that a power cut loses nothing committed.

The kiosk runs on a Raspberry Pi in health centres where the power goes out.
So: the database is in WAL mode with ``synchronous=FULL`` (a committed row is
on the SD card before ``save()`` returns); each photo is written atomically
(temp file, fsync, rename, fsync the folder) *before* its row is committed, so
a row never points at a half-written photo; and :meth:`RecordStore.repair`,
run at every open, removes leftovers of a save that was cut short.

A full disk is never silent: :meth:`RecordStore.save` first makes room by
removing photos older than ``photo_retention_days`` (their rows stay) and
records past ``retention_days``, then retries once; if there is still no room
it raises :class:`StorageFullError` (code ``storage_full``), and
:attr:`RecordStore.storage_full` stays true until a save succeeds again.

No patient names are stored, only :class:`PatientInfo` (age, sex, body site).

>>> import tempfile
>>> from kiosk.result import ScreeningResult
>>> result = ScreeningResult(status="ok", malignant_probability=0.12, risk="low", threshold=0.5)
>>> with tempfile.TemporaryDirectory() as tmp, RecordStore(Path(tmp)) as store:
...     sid = store.save(result, image_jpeg=b"\\xff\\xd8 jpeg bytes", patient=PatientInfo(age=54, body_site="trunk"))
...     got = store.get(sid)
...     got.result.risk, got.patient.age, got.image_path.read_bytes()[:2], store.count()
('low', 54, b'\\xff\\xd8', 1)
"""

from __future__ import annotations

import builtins  # RecordStore.list shadows the builtin inside the class
import contextlib
import errno
import json
import os
import re
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..result import ScreeningResult
from ..storage import atomic_write_bytes
from . import codes
from .outcomes import ClinicalOutcome
from .patient import PatientInfo

if TYPE_CHECKING:
    from ..config import RecordsSettings

__all__ = [
    "ExportBatch",
    "RecordStore",
    "RecordStoreError",
    "RepairSummary",
    "StorageFullError",
    "StoredScreening",
]

SCHEMA_VERSION = 3  # PRAGMA user_version; bump with a migration step in _migrate()
BUSY_TIMEOUT_MS = 10_000  # a web request waits this long for a save in another process
#: Below this much free space the store counts as full: a photo is 0.2-1 MB and SQLite
#: needs room for its write-ahead log, so the next save would likely fail.
MIN_FREE_BYTES = 16 * 2**20
_NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})

# UTC second, a growing per-second sequence (save order), then 128 random bits (unguessable); older
# records have no random part and stay readable.
_ID_RE = re.compile(r"[0-9]{8}-[0-9]{6}-[0-9a-z]{4}(?:-[0-9a-f]{32})?")
_IMAGE_RE = re.compile(_ID_RE.pattern + r"\.jpg")
_SEQ_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
_SEQ_SPACE = 36**4

_COLUMNS = (
    "id, created_at, status, reason, malignant_probability, risk, threshold, model_sha256,"
    " features_json, quality_json, timings_json, image_file, patient_age, patient_sex, patient_body_site,"
    " code, station_code, patient_age_band, patient_skin_type, followup_of, followup_json"
)
_OUTCOME_COLUMNS = "screening_id, outcome, recorded_at, seen_on, note, source"


class RecordStoreError(RuntimeError):
    """The record store cannot be used (closed, or a database from a newer kiosk)."""


class StorageFullError(RecordStoreError):
    """No room for a screening even after removing photos and records past retention.

    ``code`` is the reason code (:mod:`kiosk.reasons`) a health worker is shown.
    """

    code = "storage_full"


@dataclass(frozen=True, kw_only=True)
class StoredScreening:
    """One saved screening as read back from the store."""

    id: str
    created_at: datetime  # UTC, timezone-aware
    result: ScreeningResult
    patient: PatientInfo | None
    image_path: Path | None  # absolute; None when no photo was kept
    code: str | None = None  # the slip code (:mod:`kiosk.records.codes`), nine digits
    station_code: str | None = None  # the station that took it ([station] code), when configured
    followup_of: str | None = None  # the id of the earlier screening of the same spot
    followup: dict[str, Any] | None = None  # what changed since that screening (kiosk.followup)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created_at": self.created_at.isoformat(),
            "result": self.result.to_dict(),
            "patient": self.patient.to_dict() if self.patient else None,
            "image_path": str(self.image_path) if self.image_path else None,
            "code": self.code,
            "station_code": self.station_code,
            "followup_of": self.followup_of,
            "followup": self.followup,
        }


@dataclass(frozen=True, kw_only=True)
class ExportBatch:
    """One export batch of the log: which screenings went (or are going) out together."""

    export_id: str
    channel: str  # "outbox", "usb", ...: each channel gets every screening once
    number: int  # grows across channels: batch ids are unique per station
    opened_at: datetime
    finished_at: datetime | None  # None: written partly or not at all; redo it
    screening_ids: tuple[str, ...]  # oldest first (a purged screening's id may stay listed)


@dataclass(frozen=True)
class RepairSummary:
    """What :meth:`RecordStore.repair` cleaned up."""

    temp_files: int = 0  # half-written photos from a save cut short
    orphan_images: int = 0  # complete photos whose row was never committed
    missing_images: int = 0  # rows whose photo is gone; their image reference was cleared


class RecordStore:
    """Screening records under ``data_dir``: ``records.sqlite3`` and ``images/``.

    Safe to share between threads (each thread gets its own connection; saves
    are serialised) and between processes (SQLite's write lock is held for the
    whole save). ``clock`` returns the current time; tests inject one.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        retention_days: int = 365,
        photo_retention_days: int = 180,
        keep_images: bool = True,
        min_free_bytes: int = MIN_FREE_BYTES,
        station_code: str | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        for name, days in (("retention_days", retention_days), ("photo_retention_days", photo_retention_days)):
            if isinstance(days, bool) or not isinstance(days, int) or days < 0:
                raise ValueError(f"{name} must be a whole number >= 0 (0 = keep forever); got {days!r}")
        self.data_dir = Path(data_dir).expanduser()
        self.images_dir = self.data_dir / "images"
        self.db_path = self.data_dir / "records.sqlite3"
        self.retention_days = retention_days
        self.photo_retention_days = photo_retention_days
        self.keep_images = keep_images
        self.min_free_bytes = min_free_bytes
        self.station_code = station_code  # stamped on each new record
        self._out_of_space = False  # the last save found no room, even after pruning
        #: Why the last save failed ("storage_full" or "not_saved"), None after a save that worked.
        self.last_save_error: str | None = None
        self._clock = clock or (lambda: datetime.now(UTC))
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._closed = False
        # 0o700: these are health records (applies only when the folder is new).
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.images_dir.mkdir(mode=0o700, exist_ok=True)
        try:
            self._migrate()
            self.repair()
        except BaseException:
            self.close()
            raise

    @classmethod
    def from_settings(cls, settings: RecordsSettings, **kwargs: Any) -> RecordStore:
        """Open the store that ``[records]`` settings describe."""
        return cls(
            settings.data_dir,
            retention_days=settings.retention_days,
            photo_retention_days=settings.photo_retention_days,
            keep_images=settings.keep_images,
            **kwargs,
        )

    # --- connections and transactions ---------------------------------------

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise RecordStoreError(f"the record store at {self.data_dir} is closed")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves. check_same_thread
            # is off only so close() can close every thread's connection.
            conn = sqlite3.connect(
                self.db_path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA synchronous = FULL")  # fsync the WAL at every commit
            conn.execute("PRAGMA secure_delete = ON")  # purged records are overwritten, not just unlinked
            self._local.conn = conn
            with self._connections_lock:
                self._connections.append(conn)
        return conn

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction holding SQLite's write lock from the start."""
        conn = self._conn()
        with self._write_lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
            try:
                conn.execute("COMMIT")
            except BaseException:  # SQLITE_FULL at commit leaves the transaction open
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise

    def _migrate(self) -> None:
        conn = self._conn()
        conn.execute("PRAGMA journal_mode = WAL")  # persistent in the file; not allowed inside a transaction
        with self._write() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise RecordStoreError(
                    f"{self.db_path} was written by a newer kiosk (schema {version}; this one knows {SCHEMA_VERSION})"
                )
            if version < 1:
                conn.execute(
                    """CREATE TABLE IF NOT EXISTS screenings (
                        id TEXT PRIMARY KEY,
                        created_at TEXT NOT NULL,
                        status TEXT NOT NULL,
                        reason TEXT,
                        malignant_probability REAL,
                        risk TEXT,
                        threshold REAL,
                        model_sha256 TEXT,
                        features_json TEXT NOT NULL,
                        quality_json TEXT NOT NULL,
                        timings_json TEXT NOT NULL,
                        image_file TEXT,
                        patient_age INTEGER,
                        patient_sex TEXT,
                        patient_body_site TEXT
                    )"""
                )
                conn.execute("CREATE INDEX IF NOT EXISTS screenings_created_at ON screenings (created_at)")
            if version < 2:
                self._migrate_to_2(conn)
            if version < 3:
                self._migrate_to_3(conn)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")  # inside the transaction: atomic with the DDL

    def _migrate_to_2(self, conn: sqlite3.Connection) -> None:
        """Slip codes, station, age band, skin type, follow-ups and outcomes (the health-centre week)."""
        for column in (
            "code TEXT",
            "station_code TEXT",
            "patient_age_band TEXT",
            "patient_skin_type INTEGER",
            "followup_of TEXT",
            "followup_json TEXT",
        ):
            conn.execute(f"ALTER TABLE screenings ADD COLUMN {column}")
        taken: set[str] = set()
        for (sid,) in conn.execute("SELECT id FROM screenings").fetchall():  # every old record gets a code too
            code = codes.new_code()
            while code in taken:
                code = codes.new_code()
            taken.add(code)
            conn.execute("UPDATE screenings SET code = ? WHERE id = ?", (code, sid))
        conn.execute("CREATE UNIQUE INDEX screenings_code ON screenings (code)")
        conn.execute("CREATE INDEX screenings_followup_of ON screenings (followup_of)")
        conn.execute(
            """CREATE TABLE outcomes (
                screening_id TEXT NOT NULL,
                outcome TEXT NOT NULL,
                recorded_at TEXT NOT NULL,
                seen_on TEXT,
                note TEXT,
                source TEXT NOT NULL,
                PRIMARY KEY (screening_id, source, recorded_at)
            )"""
        )

    def _migrate_to_3(self, conn: sqlite3.Connection) -> None:
        """The export log (kiosk.fhir): which screenings went out in which batch, per channel."""
        conn.execute(
            """CREATE TABLE export_batches (
                export_id TEXT PRIMARY KEY,
                channel TEXT NOT NULL,
                number INTEGER NOT NULL UNIQUE,
                opened_at TEXT NOT NULL,
                finished_at TEXT
            )"""
        )
        conn.execute(
            """CREATE TABLE exported (
                screening_id TEXT NOT NULL,
                channel TEXT NOT NULL,
                export_id TEXT NOT NULL REFERENCES export_batches (export_id),
                PRIMARY KEY (screening_id, channel)
            )"""
        )
        conn.execute("CREATE INDEX exported_export_id ON exported (export_id)")

    # --- writing -------------------------------------------------------------

    def _now(self) -> datetime:
        return _utc(self._clock())

    def save(
        self,
        result: ScreeningResult,
        *,
        image_jpeg: bytes | None = None,
        patient: PatientInfo | None = None,
        followup_of: str | None = None,
        followup: Mapping[str, Any] | None = None,
    ) -> str:
        """Store ``result`` (and its photo, unless ``keep_images`` is off); return the new id.

        Ids look like ``20250314-093015-k3f9-<32 hex digits>``: UTC time, a
        per-second sequence that only grows (so ids sort in save order), then
        128 random bits, so an id cannot be guessed from the time of a visit.
        Each record also gets a slip code (:meth:`get_by_code`). ``followup_of``
        names the earlier screening of the same spot and ``followup`` says
        what changed since (both from :mod:`kiosk.followup`).
        """
        if not isinstance(result, ScreeningResult):
            raise TypeError(f"result must be a ScreeningResult, not {type(result).__name__}")
        if image_jpeg is not None and not image_jpeg:
            raise ValueError("image_jpeg is empty")
        if followup_of is not None and self.get(followup_of) is None:
            raise ValueError(f"followup_of names no stored screening: {followup_of!r}")
        patient = patient or PatientInfo()
        # Serialise before touching the disk, so a bad result fails with nothing written.
        values = {
            "status": result.status,
            "reason": result.reason,
            "malignant_probability": _float_or_none(result.malignant_probability),
            "risk": result.risk,
            "threshold": _float_or_none(result.threshold),
            "model_sha256": result.model_sha256,
            "features_json": _to_json(result.features),
            "quality_json": _to_json(result.quality),
            "timings_json": _to_json(result.timings_ms),
            "patient_age": patient.age,
            "patient_sex": patient.sex,
            "patient_body_site": patient.body_site,
            "patient_age_band": patient.effective_age_band,
            "patient_skin_type": patient.skin_type,
            "followup_of": followup_of,
            "followup_json": None if followup is None else _to_json(dict(followup)),
        }
        if self.free_bytes() < self.min_free_bytes:
            self.make_room()
        try:
            try:
                sid = self._insert(values, image_jpeg)
            except (OSError, sqlite3.Error) as exc:
                if not _is_no_space(exc):
                    raise
                self.make_room()
                try:
                    sid = self._insert(values, image_jpeg)
                except (OSError, sqlite3.Error) as again:
                    if not _is_no_space(again):
                        raise
                    self._out_of_space = True
                    raise StorageFullError(f"no room for a screening in {self.data_dir} ({again})") from again
        except StorageFullError:
            self.last_save_error = "storage_full"
            raise
        except BaseException:
            self.last_save_error = "not_saved"
            raise
        self._out_of_space = False
        self.last_save_error = None
        return sid

    def _insert(self, values: dict[str, Any], image_jpeg: bytes | None) -> str:
        """One attempt: the photo (atomically), then its row; nothing is left behind if either fails."""
        now = self._now()
        image_file = None
        try:
            with self._write() as conn:
                sid = self._next_id(conn, now)
                code = self._next_code(conn)
                if image_jpeg is not None and self.keep_images:
                    image_file = f"{sid}.jpg"
                    atomic_write_bytes(self.images_dir / image_file, bytes(image_jpeg), mode=0o600)
                conn.execute(
                    f"INSERT INTO screenings ({_COLUMNS}) VALUES ({', '.join('?' * len(_COLUMNS.split(',')))})",
                    (
                        sid,
                        _iso(now),
                        values["status"],
                        values["reason"],
                        values["malignant_probability"],
                        values["risk"],
                        values["threshold"],
                        values["model_sha256"],
                        values["features_json"],
                        values["quality_json"],
                        values["timings_json"],
                        image_file,
                        values["patient_age"],
                        values["patient_sex"],
                        values["patient_body_site"],
                        code,
                        self.station_code,
                        values["patient_age_band"],
                        values["patient_skin_type"],
                        values["followup_of"],
                        values["followup_json"],
                    ),
                )
        except BaseException:
            if image_file:  # no row points at it (the insert or the commit failed)
                with contextlib.suppress(OSError):
                    (self.images_dir / image_file).unlink()
            raise
        return sid

    # --- space -----------------------------------------------------------------

    def free_bytes(self) -> int:
        """Space left for the store (what an unprivileged writer may use)."""
        try:
            stats = os.statvfs(self.data_dir)
        except OSError:
            return 0
        return stats.f_bavail * stats.f_frsize

    @property
    def storage_full(self) -> bool:
        """True while screenings cannot be saved for lack of space (for /healthz and the watchdog status)."""
        return self._out_of_space or self.free_bytes() < self.min_free_bytes

    def make_room(self, now: datetime | None = None) -> int:
        """Remove photos past ``photo_retention_days`` and records past ``retention_days``; how many went.

        Best effort: on a disk so full that SQLite cannot even write its log,
        the photos are still removed (a later :meth:`repair` clears their rows).
        """
        removed = 0
        with contextlib.suppress(OSError, sqlite3.Error):
            removed += self.prune_photos(now)
        with contextlib.suppress(OSError, sqlite3.Error):
            removed += self.purge_expired(now)
        return removed

    def prune_photos(self, now: datetime | None = None) -> int:
        """Delete the photos of screenings older than ``photo_retention_days``, oldest first; keep their rows.

        ``photo_retention_days == 0`` keeps every photo as long as its record.
        Files go before their references, so the space comes back even when
        the disk is too full for SQLite; a power cut in between leaves rows
        pointing at missing photos, which :meth:`repair` clears.
        """
        if self.photo_retention_days == 0:
            return 0
        now = self._now() if now is None else _utc(now)
        cutoff = _iso(now - timedelta(days=self.photo_retention_days))
        with self._write() as conn:
            old = [
                row[0]
                for row in conn.execute(
                    "SELECT image_file FROM screenings WHERE created_at < ? AND image_file IS NOT NULL"
                    " ORDER BY created_at",
                    (cutoff,),
                )
            ]
            for image_file in old:
                with contextlib.suppress(FileNotFoundError):
                    (self.images_dir / image_file).unlink()
            conn.executemany("UPDATE screenings SET image_file = NULL WHERE image_file = ?", [(n,) for n in old])
        return len(old)

    def _next_id(self, conn: sqlite3.Connection, now: datetime) -> str:
        prefix = now.strftime("%Y%m%d-%H%M%S")
        last = conn.execute(
            "SELECT id FROM screenings WHERE id > ? AND id < ? ORDER BY id DESC LIMIT 1",
            (prefix + "-", prefix + "-~"),  # "~" sorts after every base-36 digit
        ).fetchone()
        if last is None:
            seq = secrets.randbelow(_SEQ_SPACE // 2)
        else:
            seq = int(last[0][len(prefix) + 1 : len(prefix) + 5], 36) + 1 + secrets.randbelow(36)
        if seq >= _SEQ_SPACE:
            raise RecordStoreError(f"too many screenings saved within {prefix}")
        digits = []
        for _ in range(4):
            seq, d = divmod(seq, 36)
            digits.append(_SEQ_DIGITS[d])
        return f"{prefix}-{''.join(reversed(digits))}-{secrets.token_hex(16)}"

    @staticmethod
    def _next_code(conn: sqlite3.Connection) -> str:
        for _ in range(100):  # 10^8 codes: a clash is rare, a hundred in a row means something is wrong
            code = codes.new_code()
            if conn.execute("SELECT 1 FROM screenings WHERE code = ?", (code,)).fetchone() is None:
                return code
        raise RecordStoreError("could not find a free slip code")

    def repair(self) -> RepairSummary:
        """Clean up after a save cut short (run at every open; safe to run any time).

        Removes half-written temp photos and complete photos without a row,
        and clears the image reference of rows whose photo is gone. Only files
        named like the store's own are touched.
        """
        temp_files = orphans = 0
        with self._write() as conn:  # the write lock: no save is mid-flight, in any process
            referenced = {
                row[0] for row in conn.execute("SELECT image_file FROM screenings WHERE image_file IS NOT NULL")
            }
            with os.scandir(self.images_dir) as entries:
                for entry in entries:
                    if not entry.is_file(follow_symlinks=False):
                        continue
                    is_temp = entry.name.startswith(".") and entry.name.endswith(".tmp")
                    is_orphan = entry.name not in referenced and _IMAGE_RE.fullmatch(entry.name) is not None
                    if is_temp or is_orphan:
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(entry.path)
                        temp_files += is_temp
                        orphans += is_orphan
            missing = [name for name in referenced if not (self.images_dir / name).is_file()]
            conn.executemany("UPDATE screenings SET image_file = NULL WHERE image_file = ?", [(n,) for n in missing])
        return RepairSummary(temp_files=temp_files, orphan_images=orphans, missing_images=len(missing))

    def purge_expired(self, now: datetime | None = None) -> int:
        """Delete records (and photos) older than ``retention_days``; return how many rows went.

        ``retention_days == 0`` keeps everything.
        """
        if self.retention_days == 0:
            return 0
        now = self._now() if now is None else _utc(now)
        cutoff = _iso(now - timedelta(days=self.retention_days))
        with self._write() as conn:
            expired = conn.execute("SELECT image_file FROM screenings WHERE created_at < ?", (cutoff,)).fetchall()
            conn.execute(
                "DELETE FROM outcomes WHERE screening_id IN (SELECT id FROM screenings WHERE created_at < ?)", (cutoff,)
            )
            conn.execute("DELETE FROM screenings WHERE created_at < ?", (cutoff,))
        # Rows first: a power cut here leaves orphan photos, which repair() removes.
        for (image_file,) in expired:
            if image_file:
                with contextlib.suppress(FileNotFoundError):
                    (self.images_dir / image_file).unlink()
        return len(expired)

    # --- reading -------------------------------------------------------------

    def get(self, screening_id: str) -> StoredScreening | None:
        """The screening with this id, or None (also for ids that are not well-formed)."""
        if not isinstance(screening_id, str) or not _ID_RE.fullmatch(screening_id):
            return None
        row = self._conn().execute(f"SELECT {_COLUMNS} FROM screenings WHERE id = ?", (screening_id,)).fetchone()
        return self._from_row(row) if row else None

    def list(self, *, limit: int = 50, offset: int = 0) -> list[StoredScreening]:
        """Screenings newest first, ``limit`` at a time from ``offset``."""
        if limit < 0 or offset < 0:
            raise ValueError(f"limit and offset must be >= 0; got limit={limit}, offset={offset}")
        rows = self._conn().execute(
            f"SELECT {_COLUMNS} FROM screenings ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?", (limit, offset)
        )
        return [self._from_row(row) for row in rows]

    def count(self) -> int:
        return int(self._conn().execute("SELECT count(*) FROM screenings").fetchone()[0])

    def get_by_code(self, code: str) -> StoredScreening | None:
        """The screening a slip code names (dashes and spaces allowed), or None (also for a mistyped code)."""
        if not isinstance(code, str) or not codes.is_valid(code):
            return None
        row = (
            self._conn()
            .execute(f"SELECT {_COLUMNS} FROM screenings WHERE code = ?", (codes.normalise(code),))
            .fetchone()
        )
        return self._from_row(row) if row else None

    def find_by_code_prefix(self, prefix: str, *, limit: int = 20) -> builtins.list[StoredScreening]:
        """Screenings whose slip code starts with these digits, newest first (History's search)."""
        digits = codes.normalise(prefix) if isinstance(prefix, str) else ""
        if not re.fullmatch(r"[0-9]{1,9}", digits):
            return []
        rows = self._conn().execute(
            f"SELECT {_COLUMNS} FROM screenings WHERE code LIKE ? ORDER BY created_at DESC, id DESC LIMIT ?",
            (digits + "%", limit),
        )
        return [self._from_row(row) for row in rows]

    def followups(self, screening_id: str) -> builtins.list[StoredScreening]:
        """Later screenings of the same spot taken as follow-ups of this one, oldest first."""
        rows = self._conn().execute(
            f"SELECT {_COLUMNS} FROM screenings WHERE followup_of = ? ORDER BY created_at, id", (screening_id,)
        )
        return [self._from_row(row) for row in rows]

    def between(self, start: datetime, end: datetime) -> builtins.list[StoredScreening]:
        """Screenings with ``start <= created_at < end``, oldest first (daily summaries, exports)."""
        rows = self._conn().execute(
            f"SELECT {_COLUMNS} FROM screenings WHERE created_at >= ? AND created_at < ? ORDER BY created_at, id",
            (_iso(_utc(start)), _iso(_utc(end))),
        )
        return [self._from_row(row) for row in rows]

    # --- outcomes ----------------------------------------------------------------

    def record_outcome(self, outcome: ClinicalOutcome) -> bool:
        """Store what the doctor found; False when this very outcome was stored before (a second import).

        Raises ValueError when the screening is not in the store.
        """
        if not isinstance(outcome, ClinicalOutcome):
            raise TypeError(f"outcome must be a ClinicalOutcome, not {type(outcome).__name__}")
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM screenings WHERE id = ?", (outcome.screening_id,)).fetchone() is None:
                raise ValueError(f"no screening {outcome.screening_id!r} for this outcome")
            cursor = conn.execute(
                f"INSERT OR IGNORE INTO outcomes ({_OUTCOME_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    outcome.screening_id,
                    outcome.outcome,
                    _iso(_utc(outcome.recorded_at)),
                    outcome.seen_on.isoformat() if outcome.seen_on else None,
                    outcome.note,
                    outcome.source,
                ),
            )
            return cursor.rowcount == 1

    def outcomes(self, screening_id: str) -> builtins.list[ClinicalOutcome]:
        """Every outcome recorded for a screening, oldest first (the last one counts)."""
        rows = self._conn().execute(
            f"SELECT {_OUTCOME_COLUMNS} FROM outcomes WHERE screening_id = ? ORDER BY recorded_at, source",
            (screening_id,),
        )
        return [_outcome_from_row(row) for row in rows]

    def latest_outcome(self, screening_id: str) -> ClinicalOutcome | None:
        found = self.outcomes(screening_id)
        return found[-1] if found else None

    def latest_outcomes(self) -> dict[str, ClinicalOutcome]:
        """Screening id -> its newest outcome, for every screening that has one (the validation report)."""
        latest: dict[str, ClinicalOutcome] = {}
        for row in self._conn().execute(f"SELECT {_OUTCOME_COLUMNS} FROM outcomes ORDER BY recorded_at, source"):
            latest[row["screening_id"]] = _outcome_from_row(row)
        return latest

    def _from_row(self, row: sqlite3.Row) -> StoredScreening:
        patient = PatientInfo(
            age=row["patient_age"],
            sex=row["patient_sex"],
            body_site=row["patient_body_site"],
            # Stored derived from the age too (for SQL counts); given back only when it was given.
            age_band=row["patient_age_band"] if row["patient_age"] is None else None,
            skin_type=row["patient_skin_type"],
        )
        result = ScreeningResult(
            status=row["status"],
            reason=row["reason"],
            malignant_probability=row["malignant_probability"],
            risk=row["risk"],
            threshold=row["threshold"],
            features=json.loads(row["features_json"]),
            quality=json.loads(row["quality_json"]),
            model_sha256=row["model_sha256"],
            timings_ms=json.loads(row["timings_json"]),
        )
        return StoredScreening(
            id=row["id"],
            created_at=datetime.fromisoformat(row["created_at"]),
            result=result,
            patient=None if patient.is_empty else patient,
            image_path=self.images_dir / row["image_file"] if row["image_file"] else None,
            code=row["code"],
            station_code=row["station_code"],
            followup_of=row["followup_of"],
            followup=json.loads(row["followup_json"]) if row["followup_json"] else None,
        )

    # --- the export log (kiosk.fhir) ------------------------------------------------

    def open_export(self, channel: str, *, limit: int, export_id: Callable[[int, datetime], str]) -> ExportBatch | None:
        """The batch to write next on ``channel``: the unfinished one if there is one, else a new one.

        A new batch takes up to ``limit`` screenings never exported on this
        channel (oldest first) and is committed *before* anything is written,
        so a power cut during the export neither loses them (the batch is
        redone, same id, same screenings) nor exports them twice. None when
        there is nothing to export. ``export_id(number, opened_at)`` names a
        new batch; numbers grow across all channels.
        """
        if limit < 1:
            raise ValueError(f"limit must be >= 1; got {limit}")
        with self._write() as conn:
            row = conn.execute(
                "SELECT export_id FROM export_batches WHERE channel = ? AND finished_at IS NULL"
                " ORDER BY number LIMIT 1",
                (channel,),
            ).fetchone()
            if row is not None:
                return self._batch(conn, row[0])
            ids = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM screenings WHERE id NOT IN (SELECT screening_id FROM exported WHERE channel = ?)"
                    " ORDER BY created_at, id LIMIT ?",
                    (channel, limit),
                )
            ]
            if not ids:
                return None
            number = int(conn.execute("SELECT coalesce(max(number), 0) + 1 FROM export_batches").fetchone()[0])
            opened_at = self._now()
            new_id = export_id(number, opened_at)
            conn.execute(
                "INSERT INTO export_batches (export_id, channel, number, opened_at) VALUES (?, ?, ?, ?)",
                (new_id, channel, number, _iso(opened_at)),
            )
            conn.executemany(
                "INSERT INTO exported (screening_id, channel, export_id) VALUES (?, ?, ?)",
                [(sid, channel, new_id) for sid in ids],
            )
            return self._batch(conn, new_id)

    def finish_export(self, export_id: str) -> None:
        """Mark a batch as written and verified; its screenings are not offered again on its channel."""
        with self._write() as conn:
            conn.execute(
                "UPDATE export_batches SET finished_at = ? WHERE export_id = ? AND finished_at IS NULL",
                (_iso(self._now()), export_id),
            )

    def export_batches(self, channel: str | None = None) -> builtins.list[ExportBatch]:
        """Every batch (of one channel, or all), oldest first."""
        conn = self._conn()
        rows = conn.execute(
            "SELECT export_id FROM export_batches WHERE ? IS NULL OR channel = ? ORDER BY number", (channel, channel)
        ).fetchall()
        return [self._batch(conn, r[0]) for r in rows]

    def unexported_count(self, channel: str) -> int:
        """Screenings not yet in a *finished* batch of ``channel`` (the settings page's "not yet on a stick")."""
        row = (
            self._conn()
            .execute(
                "SELECT count(*) FROM screenings WHERE id NOT IN (SELECT e.screening_id FROM exported e"
                " JOIN export_batches b ON b.export_id = e.export_id"
                " WHERE e.channel = ? AND b.finished_at IS NOT NULL)",
                (channel,),
            )
            .fetchone()
        )
        return int(row[0])

    @staticmethod
    def _batch(conn: sqlite3.Connection, export_id: str) -> ExportBatch:
        row = conn.execute(
            "SELECT export_id, channel, number, opened_at, finished_at FROM export_batches WHERE export_id = ?",
            (export_id,),
        ).fetchone()
        ids = tuple(
            r[0]
            for r in conn.execute(
                "SELECT e.screening_id FROM exported e LEFT JOIN screenings s ON s.id = e.screening_id"
                " WHERE e.export_id = ? ORDER BY s.created_at, e.screening_id",
                (export_id,),
            )
        )
        return ExportBatch(
            export_id=row["export_id"],
            channel=row["channel"],
            number=row["number"],
            opened_at=datetime.fromisoformat(row["opened_at"]),
            finished_at=datetime.fromisoformat(row["finished_at"]) if row["finished_at"] else None,
            screening_ids=ids,
        )

    # --- lifetime --------------------------------------------------------------

    def close(self) -> None:
        """Close every thread's connection; further use raises RecordStoreError."""
        self._closed = True
        with self._connections_lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def __enter__(self) -> RecordStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


# --- helpers -----------------------------------------------------------------


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _outcome_from_row(row: sqlite3.Row) -> ClinicalOutcome:
    return ClinicalOutcome(
        screening_id=row["screening_id"],
        outcome=row["outcome"],
        recorded_at=datetime.fromisoformat(row["recorded_at"]),
        seen_on=date.fromisoformat(row["seen_on"]) if row["seen_on"] else None,
        note=row["note"],
        source=row["source"],
    )


def _utc(moment: datetime) -> datetime:
    """Naive datetimes are taken as UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _iso(moment: datetime) -> str:
    # Fixed width (always microseconds, always +00:00) so text order is time order in SQL.
    return moment.isoformat(timespec="microseconds")


def _is_no_space(exc: BaseException) -> bool:
    """ENOSPC/EDQUOT from a photo write, or SQLITE_FULL from the database."""
    if isinstance(exc, OSError):
        return exc.errno in _NO_SPACE_ERRNOS
    if isinstance(exc, sqlite3.Error):
        full = getattr(sqlite3, "SQLITE_FULL", 13)
        return getattr(exc, "sqlite_errorcode", None) == full or "disk is full" in str(exc)
    return False


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)  # numpy float32 cannot be bound by sqlite3


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _to_json(value: Any) -> str:
    return json.dumps(value, default=_jsonable, sort_keys=True, separators=(",", ":"))
