"""Incremental, atomic FHIR exports: each batch a folder of NDJSON, photos and a manifest (docs/FHIR.md).

A batch is first entered in the export log (:meth:`RecordStore.open_export`),
then written into ``.<export-id>.partial/`` (every file fsync'd, the manifest
``export.json`` last), renamed to ``<export-id>/``, re-read and checked against
the manifest's sha256s, and only then marked finished. A power cut at any point
leaves either nothing, a ``.partial`` folder (removed and redone, same id and
content), or a complete folder whose batch is still open (found, verified,
marked finished): nothing lost, nothing exported twice.

>>> import tempfile
>>> from kiosk.records import RecordStore
>>> from kiosk.result import ScreeningResult
>>> from kiosk.fhir import ExportContext, StationInfo
>>> with tempfile.TemporaryDirectory() as tmp, RecordStore(Path(tmp) / "data", station_code="PH-LEY-0001") as store:
...     _ = store.save(ScreeningResult(status="ok", malignant_probability=0.1, risk="low", threshold=0.5))
...     ctx = ExportContext(station=StationInfo(code="PH-LEY-0001"), kiosk_version="0.1.0")
...     first = export_fhir(store, Path(tmp) / "out", context=ctx)
...     again = export_fhir(store, Path(tmp) / "out", context=ctx)
...     first.screenings, len(first.batches), again.screenings, verify_export(first.folders[0]).ok
(1, 1, 0, True)
"""

from __future__ import annotations

import base64
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..reasons import KioskError
from ..records.store import ExportBatch, RecordStore
from ..storage import fsync_directory
from .mapping import ExportContext, PhotoFile, Resource, screening_resources

__all__ = [
    "BATCH_LIMIT",
    "DEFAULT_CHANNEL",
    "FORMAT",
    "MANIFEST",
    "ExportSummary",
    "Verification",
    "complete_exports",
    "export_fhir",
    "export_id_for",
    "read_ndjson",
    "verify_export",
]

MANIFEST = "export.json"
FORMAT = 1  # docs/FHIR.md's contract; a change to it is a new number
DEFAULT_CHANNEL = "outbox"
#: Screenings per batch: a few hundred photos, so a batch copies in a minute or two to a slow stick.
BATCH_LIMIT = 500
PARTIAL_SUFFIX = ".partial"
EXPORT_LOCK = "export.lock"  # in the records folder: the kernel drops it when the process dies
_CHUNK = 1 << 20
#: The order the NDJSON files are listed in (referenced before referring; an importer may rely on none).
TYPE_ORDER = (
    "Organization",
    "Location",
    "Device",
    "Patient",
    "Encounter",
    "Media",
    "Observation",
    "ServiceRequest",
    "Provenance",
)


@dataclass(frozen=True, kw_only=True)
class ExportSummary:
    """What one :func:`export_fhir` call wrote (batches it found already complete count too)."""

    batches: list[str] = field(default_factory=list)  # export ids, oldest first
    folders: list[Path] = field(default_factory=list)
    screenings: int = 0
    photos: int = 0
    resources: dict[str, int] = field(default_factory=dict)  # resource type -> lines written


@dataclass(frozen=True)
class Verification:
    """:func:`verify_export`'s answer: ok, or the first problem found (one line)."""

    ok: bool
    problem: str | None = None
    manifest: dict[str, Any] | None = None


def export_id_for(station_code: str, number: int, opened_at: datetime) -> str:
    """``PH-LEY-0001-20260301T023015Z-0007``: sorts in the order batches were made."""
    return f"{station_code}-{opened_at:%Y%m%dT%H%M%SZ}-{number:04d}"


def export_fhir(
    store: RecordStore,
    out_dir: str | os.PathLike[str],
    *,
    context: ExportContext,
    channel: str = DEFAULT_CHANNEL,
    limit: int = BATCH_LIMIT,
) -> ExportSummary:
    """Export every screening not yet exported on ``channel`` into ``out_dir``, one folder per batch.

    Raises :class:`KioskError` (``export_no_space``, ``export_read_only``,
    ``export_failed``, ``export_verify_failed``) with the batch left open, so
    the next call redoes it; batches finished before the failure stay finished.
    """
    out = Path(out_dir)
    with _exclusive(store.data_dir / EXPORT_LOCK):
        return _export(store, out, context=context, channel=channel, limit=limit)


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """One export at a time per kiosk (two taps, or the command beside the web page): the second is refused."""
    with open(lock_path, "a+b") as lock:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise KioskError("export_busy") from None
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _export(store: RecordStore, out: Path, *, context: ExportContext, channel: str, limit: int) -> ExportSummary:
    code = context.station.code
    batches: list[str] = []
    folders: list[Path] = []
    screenings = photos = 0
    resources: dict[str, int] = {}
    with _os_errors(out):
        out.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    while True:
        batch = store.open_export(channel, limit=limit, export_id=lambda n, at: export_id_for(code, n, at))
        if batch is None:
            break
        if batch.export_id in seen:  # finish_export did not take: never loop forever
            raise KioskError("export_failed", path=str(out), detail=f"batch {batch.export_id} did not finish")
        seen.add(batch.export_id)
        folder = out / batch.export_id
        manifest = _existing(folder)
        if manifest is None:
            with _os_errors(out):
                manifest = _write_batch(store, batch, out, context)
            check = verify_export(folder)
            if not check.ok:
                raise KioskError("export_verify_failed", path=str(folder), detail=check.problem or "")
        store.finish_export(batch.export_id)
        batches.append(batch.export_id)
        folders.append(folder)
        ext = manifest["extension"]
        screenings += int(ext["screenings"])
        photos += len(ext["photos"])
        for item in manifest["output"]:
            resources[item["type"]] = resources.get(item["type"], 0) + int(item["count"])
    return ExportSummary(batches=batches, folders=folders, screenings=screenings, photos=photos, resources=resources)


def _existing(folder: Path) -> dict[str, Any] | None:
    """The manifest of a complete earlier copy of this batch (renamed before a power cut); else None.

    A damaged copy is removed so it is written again.
    """
    if not folder.exists():
        return None
    check = verify_export(folder)
    if check.ok and check.manifest is not None:
        return check.manifest
    with _os_errors(folder.parent):
        shutil.rmtree(folder)
    return None


def _write_batch(store: RecordStore, batch: ExportBatch, out: Path, ctx: ExportContext) -> dict[str, Any]:
    partial = out / f".{batch.export_id}{PARTIAL_SUFFIX}"
    if partial.exists():  # a batch cut short: start it again from nothing
        shutil.rmtree(partial)
    partial.mkdir()
    try:
        manifest = _fill(store, batch, partial, ctx)
        os.rename(partial, out / batch.export_id)
    except BaseException:
        # Best effort, so a full stick gets its space back; a power cut leaves it for the next run.
        with contextlib.suppress(OSError):
            shutil.rmtree(partial)
        raise
    fsync_directory(out)
    return manifest


def _fill(store: RecordStore, batch: ExportBatch, folder: Path, ctx: ExportContext) -> dict[str, Any]:
    lines: dict[str, list[str]] = {}
    written: set[tuple[str, str]] = set()
    photos: list[dict[str, Any]] = []
    count = 0
    for sid in batch.screening_ids:
        screening = store.get(sid)
        if screening is None:  # purged (retention) since the batch was opened
            continue
        count += 1
        photo = None
        if screening.image_path is not None:
            photo, entry = _copy_photo(screening.image_path, folder, sid)
            if entry is not None:
                photos.append(entry)
        for resource in screening_resources(screening, ctx, photo=photo):
            key = (resource["resourceType"], resource["id"])
            if key not in written:  # the shared ones (station, device) once per batch
                written.add(key)
                lines.setdefault(resource["resourceType"], []).append(_json_line(resource))
    output = []
    for rtype in sorted(lines, key=lambda t: (TYPE_ORDER.index(t) if t in TYPE_ORDER else len(TYPE_ORDER), t)):
        data = "".join(lines[rtype]).encode()
        name = f"{rtype}.ndjson"
        _write_durably(folder / name, [data])
        output.append(
            {
                "type": rtype,
                "url": name,
                "count": len(lines[rtype]),
                "extension": {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)},
            }
        )
    if photos:
        fsync_directory(folder / "photos")
    manifest = {
        "transactionTime": batch.opened_at.isoformat(),
        "request": "kiosk export fhir",
        "requiresAccessToken": False,
        "output": output,
        "error": [],
        "extension": {
            "format": FORMAT,
            "export_id": batch.export_id,
            "station_code": ctx.station.code,
            "station_name": ctx.station.name,
            "kiosk_version": ctx.kiosk_version,
            "screenings": count,
            "photos": photos,
        },
    }
    _write_durably(folder / MANIFEST, [json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"])
    fsync_directory(folder)
    return manifest


def _copy_photo(source: Path, folder: Path, sid: str) -> tuple[PhotoFile | None, dict[str, Any] | None]:
    """Copy the photo (hashing it on the way); (None, None) when it went meanwhile (photo retention)."""
    url = f"photos/{sid}.jpg"
    target = folder / url
    target.parent.mkdir(exist_ok=True)
    sha256, sha1 = hashlib.sha256(), hashlib.sha1()  # noqa: S324 - SHA-1 is what R4's Attachment.hash holds
    try:
        src = open(source, "rb")  # noqa: SIM115 - closed below; FileNotFoundError is an expected race
    except FileNotFoundError:
        return None, None
    with src, open(target, "wb") as dst:
        size = 0
        while chunk := src.read(_CHUNK):
            sha256.update(chunk)
            sha1.update(chunk)
            dst.write(chunk)
            size += len(chunk)
        dst.flush()
        os.fsync(dst.fileno())
    width = height = None
    with contextlib.suppress(Exception):  # a photo Pillow cannot read still travels, without its size
        from PIL import Image

        with Image.open(target) as im:
            width, height = im.size
    photo = PhotoFile(
        url=url, size=size, sha1_base64=base64.b64encode(sha1.digest()).decode(), width=width, height=height
    )
    return photo, {"url": url, "sha256": sha256.hexdigest(), "bytes": size}


def _json_line(resource: Resource) -> str:
    # Sorted keys, no spaces: the same screening gives the same bytes at every export.
    return json.dumps(resource, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"


def _write_durably(path: Path, chunks: Iterable[bytes]) -> None:
    with open(path, "wb") as f:
        for chunk in chunks:
            f.write(chunk)
        f.flush()
        os.fsync(f.fileno())


@contextlib.contextmanager
def _os_errors(where: Path) -> Iterator[None]:
    """A full or read-only stick as a one-line reason, not a traceback."""
    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise KioskError("export_no_space", path=str(where)) from None
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise KioskError("export_read_only", path=str(where)) from None
        raise KioskError("export_failed", path=str(where), detail=exc.strerror or type(exc).__name__) from None


# --- reading an export back ----------------------------------------------------------------


def _sha256_of(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        # Drop the cached pages first, so the check reads what is on the stick, not what is in memory.
        with contextlib.suppress(AttributeError, OSError):
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def verify_export(folder: str | os.PathLike[str]) -> Verification:
    """Re-read every file a batch's manifest lists and compare sizes and sha256s.

    >>> verify_export("/nonexistent").problem
    'no export.json (an incomplete export)'
    """
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Verification(False, f"no {MANIFEST} (an incomplete export)")
    except (OSError, ValueError) as exc:
        return Verification(False, f"{MANIFEST} cannot be read ({exc})")
    try:
        ext = manifest["extension"]
        if ext["format"] != FORMAT:
            return Verification(False, f"format {ext['format']} (this kiosk reads {FORMAT})")
        files = [(o["url"], o["extension"]["sha256"], o["extension"]["bytes"]) for o in manifest["output"]]
        files += [(p["url"], p["sha256"], p["bytes"]) for p in ext["photos"]]
    except (KeyError, TypeError) as exc:
        return Verification(False, f"{MANIFEST} lacks {exc}")
    for url, sha, size in files:
        path = folder / url
        if Path(url).is_absolute() or ".." in Path(url).parts:
            return Verification(False, f"{url}: not inside the export")
        try:
            got_sha, got_size = _sha256_of(path)
        except OSError as exc:
            return Verification(False, f"{url}: {exc.strerror or exc}")
        if got_size != size or got_sha != sha:
            return Verification(False, f"{url}: sha256 differs from the manifest")
    return Verification(True, None, manifest)


def complete_exports(out_dir: str | os.PathLike[str]) -> list[Path]:
    """The batch folders in ``out_dir`` that have a manifest (sorted; dot-folders are unfinished)."""
    out = Path(out_dir)
    if not out.is_dir():
        return []
    return sorted(p for p in out.iterdir() if not p.name.startswith(".") and (p / MANIFEST).is_file())


def read_ndjson(path: str | os.PathLike[str]) -> list[Resource]:
    """Every resource in one NDJSON file (tests, tools)."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
