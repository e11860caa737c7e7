"""Import kiosks' FHIR NDJSON exports into the console's database, idempotently.

An export folder (a USB stick's, or a station's Syncthing folder) holds
``export.json`` (the manifest: counts and sha256 of each file) and one
``<ResourceType>.ndjson`` per type. Every file is checked against the
manifest before anything is read, so a half-copied stick is refused whole.
Rows are upserted by the Encounter's screening identifier (station code + screening id):
importing the same export twice adds nothing, and an import cut short by a
power cut (kill -9) is simply run again. Photos go to the
:class:`~kiosk.rhu.photos.PhotoStore` before their rows are committed.

>>> import tempfile, pathlib
>>> from kiosk.rhu.db import Database
>>> from kiosk.rhu.sample import write_sample_export
>>> tmp = pathlib.Path(tempfile.mkdtemp())
>>> export = write_sample_export(tmp / "stick", station_code="PH-LEY-0001", count=3, seed=1)
>>> db = Database.open(f"sqlite:///{tmp}/rhu.sqlite3")
>>> first = import_export(db, PhotoStore(tmp / "photos"), export)
>>> again = import_export(db, PhotoStore(tmp / "photos"), export)
>>> first.screenings, first.new, again.new, db.scalar("SELECT count(*) FROM screenings")
(3, 3, 0, 3)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .db import Cursor, Database
from .fhirmap import reference_id, resources_json, screening_row
from .photos import PhotoStore

__all__ = ["BATCH", "ExportError", "ImportSummary", "find_exports", "import_export", "import_tree"]

MANIFEST = "export.json"
BATCH = 500  # screenings per transaction: a cut import keeps what it committed, and re-running adds the rest
MAX_LINE_BYTES = 32 * 2**20  # one resource with an inline photo; anything larger is not a kiosk's

_UPSERT = """INSERT INTO screenings (key, station_code, screening_id, code, created_at, status, risk, probability,
        threshold, features_json, body_site, age_band, sex, referred, due_date, facility, photo_sha256,
        resources_json, imported_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (key) DO UPDATE SET station_code = excluded.station_code, screening_id = excluded.screening_id,
        code = excluded.code, created_at = excluded.created_at, status = excluded.status, risk = excluded.risk,
        probability = excluded.probability, threshold = excluded.threshold, features_json = excluded.features_json,
        body_site = excluded.body_site, age_band = excluded.age_band, sex = excluded.sex,
        referred = excluded.referred, due_date = excluded.due_date, facility = excluded.facility,
        photo_sha256 = excluded.photo_sha256, resources_json = excluded.resources_json"""


class ExportError(ValueError):
    """The folder is not a complete kiosk export (one line: what is wrong, and where)."""


@dataclass(frozen=True)
class ImportSummary:
    folder: Path
    station_code: str | None
    screenings: int  # in the export
    new: int  # not in the database before
    skipped: bool = False  # this exact export (same manifest) was imported before


def find_exports(root: Path) -> list[Path]:
    """Every folder under ``root`` (itself included) that holds a manifest, sorted."""
    root = Path(root)
    found = set()
    for manifest in root.rglob(MANIFEST):
        # .<export-id>.partial/ is a batch still being written (docs/FHIR.md §1): never read it.
        if not any(part.startswith(".") for part in manifest.relative_to(root).parts):
            found.add(manifest.parent)
    return sorted(found)


def import_tree(db: Database, photos: PhotoStore, root: Path) -> list[ImportSummary]:
    """Import every export under ``root`` (e.g. a stick with one folder per station)."""
    return [import_export(db, photos, folder) for folder in find_exports(root)]


def _manifest_files(manifest: Mapping[str, Any]) -> dict[str, str]:
    """File name -> sha256: ``output[].url`` with ``extension.sha256``, and ``extension.photos[]``."""
    output = manifest.get("output")
    extension = manifest.get("extension")
    if not isinstance(output, list) or not isinstance(extension, Mapping):
        raise ExportError("the manifest has no output list: not a kiosk export (docs/FHIR.md)")
    photos = extension.get("photos") or []
    found: dict[str, str] = {}
    for entry in [*output, *(photos if isinstance(photos, list) else [])]:
        if not isinstance(entry, Mapping):
            raise ExportError("the manifest has an entry that is not an object")
        name = entry.get("url")
        sha = entry.get("sha256") or (entry.get("extension") or {}).get("sha256")
        if not isinstance(name, str) or not name or not isinstance(sha, str):
            raise ExportError(f"the manifest entry for {name or '?'} has no url or no sha256")
        found[name] = sha.lower()
    return found


def _verify(folder: Path) -> tuple[dict[str, Any], str]:
    path = folder / MANIFEST
    try:
        raw = path.read_bytes()
        manifest = json.loads(raw)
    except FileNotFoundError:
        raise ExportError(f"no {MANIFEST} in {folder}: not an export, or not finished copying") from None
    except (OSError, ValueError) as exc:
        raise ExportError(f"{path} cannot be read: {exc}") from None
    if not isinstance(manifest, dict):
        raise ExportError(f"{path} is not a JSON object")
    for name, sha in _manifest_files(manifest).items():
        file = (folder / name).resolve()
        if folder.resolve() not in file.parents:
            raise ExportError(f"the manifest names a file outside the export: {name}")
        try:
            digest = hashlib.file_digest(file.open("rb"), "sha256").hexdigest()
        except OSError:
            raise ExportError(f"{name} is missing from {folder}: the export is incomplete; copy it again") from None
        if digest != sha:
            raise ExportError(f"{name} in {folder} does not match its sha256: the export is damaged; copy it again")
    return manifest, hashlib.sha256(raw).hexdigest()


def _resources(folder: Path) -> Iterator[dict[str, Any]]:
    for file in sorted(folder.glob("*.ndjson")):
        with file.open("rb") as f:
            for number, line in enumerate(f, 1):
                if len(line) > MAX_LINE_BYTES:
                    raise ExportError(f"{file.name} line {number} is too long to be a kiosk's resource")
                if not line.strip():
                    continue
                try:
                    resource = json.loads(line)
                except ValueError:
                    raise ExportError(f"{file.name} line {number} is not JSON") from None
                if not isinstance(resource, dict) or not isinstance(resource.get("id"), str):
                    raise ExportError(f"{file.name} line {number} is not a FHIR resource with an id")
                yield resource


def _photo_bytes(folder: Path, content: Mapping[str, Any]) -> bytes | None:
    if isinstance(content.get("data"), str):
        try:
            return base64.b64decode(content["data"], validate=True)
        except (binascii.Error, ValueError):
            raise ExportError("a photo's inline data is not base64") from None
    url = content.get("url")
    if isinstance(url, str) and "://" not in url:
        path = (folder / url).resolve()
        if folder.resolve() not in path.parents:
            raise ExportError(f"a photo lies outside the export: {url}")
        try:
            return path.read_bytes()
        except OSError:
            raise ExportError(f"the photo {url} is missing from {folder}") from None
    return None


def import_export(db: Database, photos: PhotoStore, folder: Path, *, batch: int = BATCH) -> ImportSummary:
    """Import one export folder; see the module's docstring."""
    folder = Path(folder)
    manifest, manifest_sha = _verify(folder)
    station_code = manifest["extension"].get("station_code")
    station_code = station_code if isinstance(station_code, str) else None
    if db.scalar("SELECT count(*) FROM imports WHERE manifest_sha256 = ?", (manifest_sha,)):
        count = db.scalar("SELECT screenings FROM imports WHERE manifest_sha256 = ?", (manifest_sha,))
        return ImportSummary(folder, station_code, int(count), 0, skipped=True)
    photos.repair()
    encounters: dict[str, dict[str, Any]] = {}
    by_encounter: dict[str, list[dict[str, Any]]] = defaultdict(list)
    by_patient: dict[str, dict[str, Any]] = {}
    organizations: dict[str, dict[str, Any]] = {}
    for resource in _resources(folder):
        kind = resource.get("resourceType")
        if kind == "Encounter":
            encounters[resource["id"]] = resource
        elif kind == "Patient":
            by_patient[resource["id"]] = resource
        elif kind == "Organization":
            organizations[resource["id"]] = resource
        else:
            enc = reference_id(resource.get("encounter"))
            if enc is not None:
                by_encounter[enc].append(resource)
    keys = sorted(encounters)
    new = 0
    now = datetime.now(UTC).isoformat()
    for start in range(0, len(keys), batch):
        rows = []
        pending: list[bytes] = []
        for key in keys[start : start + batch]:
            encounter = encounters[key]
            related = list(by_encounter.get(key, ()))
            patient = by_patient.get(reference_id(encounter.get("subject")) or "")
            if patient is not None:
                related.insert(0, patient)
            row = screening_row(encounter, related, organizations=organizations, station_code=station_code)
            data = _photo_bytes(folder, row["photo"]) if row["photo"] else None
            sha = hashlib.sha256(data).hexdigest() if data else None
            if data:
                pending.append(data)
            rows.append(
                (
                    row["key"], row["station_code"], row["screening_id"], row["code"], row["created_at"],
                    row["status"], row["risk"], row["probability"], row["threshold"],
                    json.dumps(row["features"], sort_keys=True), row["body_site"], row["age_band"], row["sex"],
                    row["referred"], row["due_date"], row["facility"], sha,
                    resources_json([encounter, *related]), now,
                )
            )  # fmt: skip
        photos.put_many(pending)  # every photo of the batch is on disk before its rows are committed
        with db.transaction() as cur:
            new += _count_new(cur, [r[0] for r in rows])
            cur.executemany(_UPSERT, rows)
    with db.transaction() as cur:
        cur.execute(
            "INSERT INTO imports (manifest_sha256, station_code, screenings, imported_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (manifest_sha256) DO NOTHING",
            (manifest_sha, station_code, len(keys), now),
        )
    return ImportSummary(folder, station_code, len(keys), new)


def _count_new(cur: Cursor, keys: list[str]) -> int:
    if not keys:
        return 0
    cur.execute(f"SELECT count(*) FROM screenings WHERE key IN ({', '.join('?' * len(keys))})", keys)
    return len(keys) - int(cur.fetchone()[0])
