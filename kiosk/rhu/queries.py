"""The console's reads: the referral list, a slip code, one screening, the stations.

>>> import tempfile, pathlib
>>> from kiosk.rhu.db import Database
>>> from kiosk.rhu.importer import import_export
>>> from kiosk.rhu.photos import PhotoStore
>>> from kiosk.rhu.sample import write_sample_export
>>> tmp = pathlib.Path(tempfile.mkdtemp()); db = Database.open(f"sqlite:///{tmp}/rhu.sqlite3")
>>> _ = import_export(db, PhotoStore(tmp / "p"), write_sample_export(tmp, station_code="PH-LEY-0001", count=20, seed=3))
>>> rows = referrals(db)
>>> len(rows), rows == sorted(rows, key=lambda r: (r["station_code"], r["due_date"], r["key"]))
(2, True)
>>> [r["key"] for r in find_by_code(db, rows[0]["code"][:9])] == [rows[0]["key"]]
True
"""

from __future__ import annotations

import json
from typing import Any

from ..records import codes
from .db import Database

__all__ = ["find_by_code", "referrals", "screening", "stations"]

_LATEST = "(SELECT o.{col} FROM outcomes o WHERE o.screening_key = s.key ORDER BY o.recorded_at DESC LIMIT 1)"
_FIELDS = (
    "s.key, s.station_code, s.screening_id, s.code, s.created_at, s.status, s.risk, s.probability, s.threshold,"
    " s.features_json, s.body_site, s.age_band, s.sex, s.referred, s.due_date, s.facility, s.photo_sha256, "
    + ", ".join(f"{_LATEST.format(col=c)} AS outcome_{c}" for c in ("outcome", "recorded_at", "seen_on", "biopsy"))
)
#: A referral stays on the open list until the doctor records something other than "not seen".
_OPEN = "NOT EXISTS (SELECT 1 FROM outcomes o WHERE o.screening_key = s.key AND o.outcome <> 'not_seen')"


def _decode(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for row in rows:
        row["features"] = json.loads(row.pop("features_json") or "{}")
    return rows


def referrals(
    db: Database, *, station: str | None = None, open_only: bool = True, limit: int = 200, offset: int = 0
) -> list[dict[str, Any]]:
    """Referred screenings by station, then due date (soonest first)."""
    where, params = ["s.referred = 1"], []
    if station:
        where.append("s.station_code = ?")
        params.append(station)
    if open_only:
        where.append(_OPEN)
    sql = (
        f"SELECT {_FIELDS} FROM screenings s WHERE {' AND '.join(where)}"
        " ORDER BY s.station_code, s.due_date, s.key LIMIT ? OFFSET ?"
    )
    return _decode(db.query(sql, [*params, int(limit), int(offset)]))


def find_by_code(db: Database, text: str, *, limit: int = 20) -> list[dict[str, Any]]:
    """Screenings whose slip code is ``text`` (dashes and spaces allowed) or starts with it (3+ digits)."""
    code = codes.normalise(text)
    if not code.isdigit() or not 3 <= len(code) <= codes.CODE_DIGITS:
        return []
    if len(code) == codes.CODE_DIGITS:
        sql, params = "s.code = ?", [code]
    else:  # a range, not LIKE: the btree index answers it on both engines, in any collation of digits
        sql, params = "s.code >= ? AND s.code < ?", [code, code[:-1] + chr(ord(code[-1]) + 1)]
    rows = db.query(
        f"SELECT {_FIELDS} FROM screenings s WHERE {sql} ORDER BY s.code, s.station_code LIMIT ?", [*params, limit]
    )
    return _decode(rows)


def screening(db: Database, key: str) -> dict[str, Any] | None:
    rows = _decode(db.query(f"SELECT {_FIELDS} FROM screenings s WHERE s.key = ?", [key]))
    if not rows:
        return None
    row = rows[0]
    row["outcomes"] = db.query(
        "SELECT outcome, seen_on, biopsy, note, recorded_at, recorded_by FROM outcomes"
        " WHERE screening_key = ? ORDER BY recorded_at DESC",
        [key],
    )
    return row


def stations(db: Database) -> list[str]:
    return [r["station_code"] for r in db.query("SELECT DISTINCT station_code FROM screenings ORDER BY station_code")]
