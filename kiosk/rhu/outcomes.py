"""The doctor's finding at the RHU: stored, then written as NDJSON for the station's kiosk.

Each outcome becomes one file ``<outbound>/<station code>/outcomes/<id>.ndjson``
(written atomically, named by the outcome's id, so writing it again changes
nothing). The station folder is what Syncthing (a receive-only folder on the
kiosk) or a USB stick carries back; the kiosk imports the lines with
``RecordStore.record_outcome``, which ignores one it already has.

>>> import tempfile, pathlib, json
>>> from kiosk.rhu.db import Database
>>> from kiosk.rhu.importer import import_export
>>> from kiosk.rhu.photos import PhotoStore
>>> from kiosk.rhu.sample import write_sample_export
>>> tmp = pathlib.Path(tempfile.mkdtemp()); db = Database.open(f"sqlite:///{tmp}/rhu.sqlite3")
>>> _ = import_export(db, PhotoStore(tmp / "p"), write_sample_export(tmp, station_code="PH-LEY-0001", count=1, seed=1))
>>> key = db.scalar("SELECT key FROM screenings")
>>> path = record_outcome(db, tmp / "outbound", key=key, outcome="benign", recorded_by="dr.cruz", facility="RHU Palo")
>>> line = json.loads(path.read_text()); line["outcome"], line["source"], path.parent.parent.name
('benign', 'rhu:RHU Palo', 'PH-LEY-0001')
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from ..records.outcomes import MAX_NOTE_CHARS, OUTCOMES, ClinicalOutcome, InvalidOutcome
from ..storage import atomic_write_bytes
from .db import Database

__all__ = ["BIOPSY_RESULTS", "outcome_line", "record_outcome", "write_pending"]

#: What the biopsy showed, when one was taken (the outcome itself is the doctor's conclusion).
BIOPSY_RESULTS = ("not_done", "pending", "melanoma", "benign", "other_skin_cancer", "other")


def outcome_line(row: dict[str, Any], *, facility: str) -> dict[str, Any]:
    """One outcome as the kiosk reads it back (docs/FHIR.md, "Outcomes back to the kiosk")."""
    note = row["note"] or None
    outcome = ClinicalOutcome(
        screening_id=row["screening_id"],
        outcome=row["outcome"],
        recorded_at=datetime.fromisoformat(row["recorded_at"]),
        seen_on=date.fromisoformat(row["seen_on"]) if row["seen_on"] else None,
        note=note,
        source=f"rhu:{facility}",
    )
    return {
        **outcome.to_dict(),
        "station_code": row["station_code"],
        "code": row["code"],
        "biopsy": row["biopsy"],
        "recorded_by": row["recorded_by"],
    }


def _outcome_path(outbound: Path, station_code: str, outcome_id: str) -> Path:
    name = hashlib.sha256(outcome_id.encode()).hexdigest()[:32]
    return Path(outbound) / station_code / "outcomes" / f"{name}.ndjson"


def record_outcome(
    db: Database,
    outbound: Path,
    *,
    key: str,
    outcome: str,
    recorded_by: str,
    facility: str,
    seen_on: date | None = None,
    biopsy: str | None = None,
    note: str | None = None,
    now: datetime | None = None,
) -> Path:
    """Store one outcome for screening ``key`` and write its NDJSON; returns the file written."""
    if outcome not in OUTCOMES:
        raise InvalidOutcome(f"outcome must be one of {', '.join(OUTCOMES)}; got {outcome!r}")
    if biopsy is not None and biopsy not in BIOPSY_RESULTS:
        raise InvalidOutcome(f"biopsy must be one of {', '.join(BIOPSY_RESULTS)}; got {biopsy!r}")
    if note is not None and len(note) > MAX_NOTE_CHARS:
        raise InvalidOutcome(f"the note is longer than {MAX_NOTE_CHARS} characters")
    if outcome == "not_seen" and seen_on is not None:
        raise InvalidOutcome("a patient who was not seen has no 'seen on' date")
    recorded_at = (now or datetime.now(UTC)).astimezone(UTC).isoformat()
    outcome_id = f"{key}/{recorded_at}"
    with db.transaction() as cur:
        cur.execute("SELECT count(*) FROM screenings WHERE key = ?", (key,))
        if not cur.fetchone()[0]:
            raise InvalidOutcome(f"no screening {key!r} in the console")
        cur.execute(
            "INSERT INTO outcomes (id, screening_key, outcome, seen_on, biopsy, note, recorded_at, recorded_by)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
            (outcome_id, key, outcome, seen_on.isoformat() if seen_on else None, biopsy, note or None, recorded_at,
             recorded_by),
        )  # fmt: skip
    written = write_pending(db, outbound, facility=facility)
    return written[outcome_id]


def write_pending(db: Database, outbound: Path, *, facility: str) -> dict[str, Path]:
    """Write every outcome whose NDJSON is not out yet (after a crash between commit and write, too)."""
    rows = db.query(
        "SELECT o.id, o.outcome, o.seen_on, o.biopsy, o.note, o.recorded_at, o.recorded_by,"
        " s.screening_id, s.station_code, s.code FROM outcomes o JOIN screenings s ON s.key = o.screening_key"
        " WHERE o.written_at IS NULL ORDER BY o.recorded_at"
    )
    written: dict[str, Path] = {}
    for row in rows:
        path = _outcome_path(outbound, row["station_code"], row["id"])
        line = json.dumps(outcome_line(row, facility=facility), sort_keys=True) + "\n"
        atomic_write_bytes(path, line.encode(), mode=0o640)
        with db.transaction() as cur:
            cur.execute("UPDATE outcomes SET written_at = ? WHERE id = ?", (datetime.now(UTC).isoformat(), row["id"]))
        written[row["id"]] = path
    return written
