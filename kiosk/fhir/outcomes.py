"""The RHU's outcomes back into the kiosk: ``outcomes/*.ndjson`` of Observations (docs/FHIR.md, section 5).

Each line names its screening by station code + slip code; a kiosk takes the
lines for its own station and stores each with
:meth:`RecordStore.record_outcome` (source ``rhu:<RHU code>``), which keeps
one copy of the same outcome however often it is imported. A bad line is
counted and skipped; it never stops the others.

>>> line = outcome_observation(station_code="PH-LEY-0001", slip_code="482193677", outcome="benign",
...     recorded_at=datetime(2026, 3, 9, 1, 20, tzinfo=UTC), rhu_code="RHU-PALO")
>>> parsed = parse_outcome(line, station_code="PH-LEY-0001")
>>> parsed.slip_code, parsed.outcome, parsed.source
('482193677', 'benign', 'rhu:RHU-PALO')
>>> parse_outcome(line, station_code="PH-LEY-0002").kind
'other_station'
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

from ..records import codes as slip_codes
from ..records.outcomes import MAX_NOTE_CHARS, OUTCOMES, ClinicalOutcome, InvalidOutcome
from ..records.store import RecordStore
from .codes import system
from .ids import resource_id

__all__ = [
    "ImportSummary",
    "ParsedOutcome",
    "import_outcomes",
    "outcome_files",
    "outcome_observation",
    "parse_outcome",
]

MAX_LINE_BYTES = 64 * 1024  # an outcome is a few hundred bytes; a longer line is not one
MAX_FILES = 1000
Kind = Literal["ok", "other_station", "invalid"]


@dataclass(frozen=True, kw_only=True)
class ParsedOutcome:
    """One line, understood: ``kind`` ok (the rest is set), other_station or invalid (``problem`` says why)."""

    kind: Kind
    problem: str | None = None
    slip_code: str | None = None
    screening_id: str | None = None  # when the line named the screening by id (focus) instead
    outcome: str | None = None
    recorded_at: datetime | None = None
    seen_on: date | None = None
    note: str | None = None
    source: str | None = None


@dataclass(frozen=True, kw_only=True)
class ImportSummary:
    """Counts of one import (``outcomes_imported``'s numbers)."""

    imported: int = 0
    already: int = 0
    other: int = 0  # lines for other stations
    unknown: int = 0  # this station's, but no screening has that slip code
    invalid: int = 0
    files: int = 0

    def params(self) -> dict[str, int]:
        return {
            "imported": self.imported,
            "already": self.already,
            "other": self.other,
            "unknown": self.unknown,
            "invalid": self.invalid,
        }


def outcome_observation(
    *,
    station_code: str,
    slip_code: str,
    outcome: str,
    recorded_at: datetime,
    rhu_code: str,
    rhu_name: str | None = None,
    seen_on: date | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    """The Observation the RHU writes for one outcome (the RHU console and the tests use this)."""
    issued = recorded_at.isoformat()
    value = f"{station_code}/{slip_code}/{rhu_code}/{issued}"
    performer: dict[str, Any] = {"identifier": {"system": system("facility"), "value": rhu_code}}
    if rhu_name:
        performer["display"] = rhu_name
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "id": resource_id("Observation", value),
        "identifier": [{"system": system("outcome"), "value": value}],
        "status": "final",
        "code": {"coding": [{"system": system("CodeSystem:observation"), "code": "clinical-outcome"}]},
        "subject": {"identifier": {"system": system("slip-code"), "value": f"{station_code}/{slip_code}"}},
        "valueCodeableConcept": {"coding": [{"system": system("CodeSystem:outcome"), "code": outcome}]},
        "issued": issued,
        "performer": [performer],
    }
    if seen_on is not None:
        obs["effectiveDateTime"] = seen_on.isoformat()
    if note:
        obs["note"] = [{"text": note}]
    return obs


def _invalid(problem: str) -> ParsedOutcome:
    return ParsedOutcome(kind="invalid", problem=problem)


def _identifier(ref: Any, wanted: str) -> str | None:
    if isinstance(ref, Mapping):
        ident = ref.get("identifier")
        if isinstance(ident, Mapping) and ident.get("system") == system(wanted) and isinstance(ident.get("value"), str):
            return str(ident["value"])
    return None


def _coded(concept: Any, wanted: str) -> str | None:
    if isinstance(concept, Mapping) and isinstance(concept.get("coding"), list):
        for coding in concept["coding"]:
            if isinstance(coding, Mapping) and coding.get("system") == system(wanted):
                code = coding.get("code")
                return code if isinstance(code, str) else None
    return None


def parse_outcome(obj: Any, *, station_code: str) -> ParsedOutcome:
    """Understand one outcome Observation (already parsed from JSON) for the kiosk of ``station_code``."""
    if not isinstance(obj, Mapping) or obj.get("resourceType") != "Observation":
        return _invalid("not an Observation")
    if _coded(obj.get("code"), "CodeSystem:observation") != "clinical-outcome":
        return _invalid("not a clinical-outcome Observation")
    slip = _identifier(obj.get("subject"), "slip-code")
    focus = obj.get("focus")
    by_id = _identifier(focus[0], "screening") if isinstance(focus, list) and focus else None
    named = slip or by_id
    if named is None:
        return _invalid("no slip code (subject.identifier) or screening (focus.identifier)")
    station, _, rest = named.rpartition("/") if slip else named.partition("/")
    if slip and by_id and by_id.partition("/")[0] != station:
        return _invalid("subject and focus name different stations")
    if station != station_code:
        return ParsedOutcome(kind="other_station")
    if slip and not slip_codes.is_valid(rest):
        return _invalid(f"{rest!r} is not a slip code")
    outcome = _coded(obj.get("valueCodeableConcept"), "CodeSystem:outcome")
    if outcome not in OUTCOMES:
        return _invalid(f"outcome must be one of {', '.join(OUTCOMES)}")
    issued = obj.get("issued")
    try:
        recorded_at = datetime.fromisoformat(issued) if isinstance(issued, str) else None
    except ValueError:
        recorded_at = None
    if recorded_at is None or recorded_at.tzinfo is None:
        return _invalid("issued must be an instant with a time zone")
    performers = obj.get("performer")
    rhu = _identifier(performers[0], "facility") if isinstance(performers, list) and performers else None
    if not rhu or len(rhu) > 90 or not rhu.isprintable():
        return _invalid("performer[0].identifier (the RHU's code) is missing")
    seen_on = None
    effective = obj.get("effectiveDateTime")
    if effective is not None:
        try:
            seen_on = date.fromisoformat(str(effective)[:10])
        except ValueError:
            return _invalid("effectiveDateTime is not a date")
    note = None
    notes = obj.get("note")
    if isinstance(notes, list) and notes and isinstance(notes[0], Mapping) and isinstance(notes[0].get("text"), str):
        note = notes[0]["text"]
        if len(note) > MAX_NOTE_CHARS:
            return _invalid(f"the note is longer than {MAX_NOTE_CHARS} characters")
    return ParsedOutcome(
        kind="ok",
        slip_code=slip_codes.normalise(rest) if slip else None,
        screening_id=by_id.partition("/")[2] if by_id else None,
        outcome=outcome,
        recorded_at=recorded_at.astimezone(UTC),
        seen_on=seen_on,
        note=note,
        source=f"rhu:{rhu}",
    )


def outcome_files(folder: str | os.PathLike[str], *, station_code: str | None = None) -> list[Path]:
    """The outcome files under ``folder`` (sorted, no dot-files, at most :data:`MAX_FILES`).

    ``folder/outcomes/*.ndjson`` and ``folder/<station code>/outcomes/*.ndjson`` (the RHU console's
    per-station layout); ``folder/*.ndjson`` when neither folder exists.
    """
    root = Path(folder)
    places = [root / "outcomes"] + ([root / station_code / "outcomes"] if station_code else [])
    places = [p for p in places if p.is_dir()] or [root]
    found: list[Path] = []
    for where in places:
        if where.is_dir():
            found += sorted(p for p in where.glob("*.ndjson") if not p.name.startswith(".") and p.is_file())
    return found[:MAX_FILES]


def _lines(path: Path) -> Iterator[bytes | None]:
    """Each line's bytes; None for a line too long to be an outcome (the rest of it is skipped)."""
    with open(path, "rb") as f:
        while True:
            line = f.readline(MAX_LINE_BYTES + 1)
            if not line:
                return
            if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
                while (more := f.readline(MAX_LINE_BYTES)) and not more.endswith(b"\n"):
                    pass
                yield None
                continue
            yield line


def import_outcomes(store: RecordStore, folder: str | os.PathLike[str], *, station_code: str) -> ImportSummary:
    """Store every outcome in the folder's NDJSON files that belongs to this station; count what happened.

    Raises OSError only when a file cannot be read at all (the caller says so in one line).
    """
    counts = {"imported": 0, "already": 0, "other": 0, "unknown": 0, "invalid": 0}
    files = outcome_files(folder, station_code=station_code)
    for path in files:
        for raw in _lines(path):
            if raw is not None and not raw.strip():
                continue
            try:
                obj = json.loads(raw) if raw is not None else None
            except ValueError:
                obj = None
            parsed = parse_outcome(obj, station_code=station_code)
            if parsed.kind != "ok":
                counts["other" if parsed.kind == "other_station" else "invalid"] += 1
                continue
            screening = (
                store.get_by_code(parsed.slip_code) if parsed.slip_code else store.get(parsed.screening_id or "")
            )
            if screening is None:
                counts["unknown"] += 1
                continue
            if parsed.slip_code and parsed.screening_id and screening.id != parsed.screening_id:
                counts["invalid"] += 1  # the slip code and the screening id name different screenings
                continue
            assert parsed.outcome is not None and parsed.recorded_at is not None and parsed.source is not None
            try:
                outcome = ClinicalOutcome(
                    screening_id=screening.id,
                    outcome=parsed.outcome,  # type: ignore[arg-type]  # checked against OUTCOMES above
                    recorded_at=parsed.recorded_at,
                    seen_on=parsed.seen_on,
                    note=parsed.note,
                    source=parsed.source,
                )
            except InvalidOutcome:
                counts["invalid"] += 1
                continue
            try:
                new = store.record_outcome(outcome)
            except ValueError:  # purged between the look-up and the write
                counts["unknown"] += 1
                continue
            counts["imported" if new else "already"] += 1
    return ImportSummary(files=len(files), **counts)
