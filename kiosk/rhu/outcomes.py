"""The doctor's finding at the RHU: stored, then written as NDJSON for the station's kiosk.

Each outcome becomes a FHIR Observation (docs/FHIR.md §5) in one file
``<outbound>/<station code>/outcomes/<id>.ndjson``
(written atomically, named by the outcome's id, so writing it again changes
nothing). The station folder is what Syncthing (a receive-only folder on the
kiosk) or a USB stick carries back; the kiosk imports the lines with
``kiosk import outcomes``, which ignores one it already has.

>>> import tempfile, pathlib, json
>>> from kiosk.rhu.db import Database
>>> from kiosk.rhu.importer import import_export
>>> from kiosk.rhu.photos import PhotoStore
>>> from kiosk.rhu.sample import write_sample_export
>>> tmp = pathlib.Path(tempfile.mkdtemp()); db = Database.open(f"sqlite:///{tmp}/rhu.sqlite3")
>>> _ = import_export(db, PhotoStore(tmp / "p"), write_sample_export(tmp, station_code="PH-LEY-0001", count=1, seed=1))
>>> key = db.scalar("SELECT key FROM screenings")
>>> path = record_outcome(db, tmp / "outbound", key=key, outcome="benign", recorded_by="dr.cruz",
...                       facility="Palo RHU", facility_code="RHU-PALO")
>>> line = json.loads(path.read_text())
>>> line["valueCodeableConcept"]["coding"][0]["code"], line["performer"][0]["identifier"]["value"]
('benign', 'RHU-PALO')
>>> path.parent.parent.name, path.parent.name
('PH-LEY-0001', 'outcomes')
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
from .fhirmap import URN, resource_id

__all__ = ["BIOPSY_RESULTS", "outcome_line", "record_outcome", "write_pending"]

#: What the biopsy showed, when one was taken (the outcome itself is the doctor's conclusion).
BIOPSY_RESULTS = ("not_done", "pending", "melanoma", "benign", "other_skin_cancer", "other")


def outcome_line(row: dict[str, Any], *, facility: str, facility_code: str) -> dict[str, Any]:
    """One outcome as the kiosk reads it back: a FHIR Observation (docs/FHIR.md §5)."""
    ClinicalOutcome(  # the kiosk's own checks, so nothing is written that the kiosk would refuse
        screening_id=row["screening_id"],
        outcome=row["outcome"],
        recorded_at=datetime.fromisoformat(row["recorded_at"]),
        seen_on=date.fromisoformat(row["seen_on"]) if row["seen_on"] else None,
        note=_note(row),
        source=f"rhu:{facility_code}",
    )
    station, screening = row["station_code"], f"{row['station_code']}/{row['screening_id']}"
    ident = f"{station}/{row['code']}/{facility_code}/{row['recorded_at']}"
    line: dict[str, Any] = {
        "resourceType": "Observation",
        "id": resource_id("Observation", ident),
        "status": "final",
        "identifier": [{"system": f"{URN}:outcome", "value": ident}],
        "code": {"coding": [{"system": f"{URN}:CodeSystem:observation", "code": "clinical-outcome"}]},
        "focus": [{"identifier": {"system": f"{URN}:screening", "value": screening}}],
        "valueCodeableConcept": {"coding": [{"system": f"{URN}:CodeSystem:outcome", "code": row["outcome"]}]},
        "issued": row["recorded_at"],
        "performer": [{"identifier": {"system": f"{URN}:facility", "value": facility_code}, "display": facility}],
    }
    if row["code"]:  # the slip code names the screening for the kiosk; the focus (screening id) does too
        line["subject"] = {"identifier": {"system": f"{URN}:slip-code", "value": f"{station}/{row['code']}"}}
    if row["referred"]:
        line["basedOn"] = [{"identifier": {"system": f"{URN}:referral", "value": screening}}]
    if row["seen_on"]:
        line["effectiveDateTime"] = row["seen_on"]
    if _note(row):
        line["note"] = [{"text": _note(row)}]
    return line


def _note(row: dict[str, Any]) -> str | None:
    """The doctor's note, with the biopsy result in front (the kiosk's outcome has no biopsy field)."""
    parts = [f"biopsy: {row['biopsy'].replace('_', ' ')}" if row["biopsy"] else None, row["note"] or None]
    text = "; ".join(p for p in parts if p)
    return text[:MAX_NOTE_CHARS] or None


def _outcome_path(outbound: Path, station_code: str, outcome_id: str) -> Path:
    name = hashlib.sha256(outcome_id.encode()).hexdigest()[:32]
    return Path(outbound) / station_code / "outcomes" / f"{name}.ndjson"  # the kiosk reads DIR/outcomes/*.ndjson


def record_outcome(
    db: Database,
    outbound: Path,
    *,
    key: str,
    outcome: str,
    recorded_by: str,
    facility: str,
    facility_code: str,
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
    if note is not None and len(note) > MAX_NOTE_CHARS - 40:  # room for the biopsy result in front
        raise InvalidOutcome(f"the note is longer than {MAX_NOTE_CHARS - 40} characters")
    if outcome == "not_seen" and seen_on is not None:
        raise InvalidOutcome("a patient who was not seen has no 'seen on' date")
    recorded_at = (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds")
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
    write_pending(db, outbound, facility=facility, facility_code=facility_code)
    # Named by the outcome's id: the same outcome saved twice in one second is one file.
    return _outcome_path(
        outbound, str(db.scalar("SELECT station_code FROM screenings WHERE key = ?", (key,))), outcome_id
    )


def write_pending(db: Database, outbound: Path, *, facility: str, facility_code: str) -> dict[str, Path]:
    """Write every outcome whose NDJSON is not out yet (after a crash between commit and write, too)."""
    rows = db.query(
        "SELECT o.id, o.outcome, o.seen_on, o.biopsy, o.note, o.recorded_at, o.recorded_by,"
        " s.screening_id, s.station_code, s.code, s.referred"
        " FROM outcomes o JOIN screenings s ON s.key = o.screening_key"
        " WHERE o.written_at IS NULL ORDER BY o.recorded_at"
    )
    written: dict[str, Path] = {}
    for row in rows:
        path = _outcome_path(outbound, row["station_code"], row["id"])
        line = json.dumps(outcome_line(row, facility=facility, facility_code=facility_code), sort_keys=True) + "\n"
        atomic_write_bytes(path, line.encode(), mode=0o640)
        with db.transaction() as cur:
            cur.execute("UPDATE outcomes SET written_at = ? WHERE id = ?", (datetime.now(UTC).isoformat(), row["id"]))
        written[row["id"]] = path
    return written
