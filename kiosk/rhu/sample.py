"""Made-up kiosk exports for the console's tests and benchmark: no real patients, fixed seeds.

Each screening is the resources a kiosk exports for it (docs/FHIR.md):
Patient, Encounter, Observations (risk band, score, ABCD features, body site),
Media (a small generated photo, a file beside the NDJSON) and, when referred,
a ServiceRequest with its due date; plus the manifest with every file's sha256.

>>> import tempfile, pathlib, json
>>> folder = write_sample_export(pathlib.Path(tempfile.mkdtemp()), station_code="PH-LEY-0002", count=4, seed=7)
>>> manifest = json.loads((folder / "export.json").read_text())
>>> manifest["station_code"], manifest["counts"]["Encounter"]
('PH-LEY-0002', 4)
"""

from __future__ import annotations

import hashlib
import io
import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ..records import codes
from ..storage import atomic_write_bytes

__all__ = ["SampleScreening", "sample_screenings", "screening_resources", "write_sample_export"]

SITES = ("left-forearm", "right-sole", "trunk", "head_neck", "left-thigh", "right-palm")
BANDS = ("15-29", "30-44", "45-59", "60-74", "75-plus")
SYSTEM = "urn:melanoma-kiosk"


@dataclass(frozen=True)
class SampleScreening:
    station_code: str
    screening_id: str
    code: str
    created_at: datetime
    probability: float
    threshold: float
    body_site: str
    age_band: str
    sex: str
    referral_days: int = 14

    @property
    def key(self) -> str:
        return f"{self.station_code}-{self.screening_id}"

    @property
    def risk(self) -> str:
        return "refer" if self.probability >= self.threshold else "low"


def sample_screenings(
    station_code: str, count: int, *, seed: int, start: datetime | None = None, per_day: int = 30
) -> list[SampleScreening]:
    """``count`` screenings, ``per_day`` a day from ``start``; about one in four referred."""
    rng = random.Random(f"{station_code}:{seed}")
    start = start or datetime(2026, 1, 5, 1, 0, tzinfo=UTC)
    out = []
    for i in range(count):
        moment = start + timedelta(days=i // per_day, minutes=15 * (i % per_day))
        body = "".join(str(rng.randrange(10)) for _ in range(8))
        out.append(
            SampleScreening(
                station_code=station_code,
                screening_id=f"{moment:%Y%m%d-%H%M%S}-{i % 36**4:04d}",
                code=codes.new_code(random_digits=lambda n, b=body: b),
                created_at=moment,
                probability=round(rng.betavariate(1.2, 3.0), 4),
                threshold=0.5,
                body_site=rng.choice(SITES),
                age_band=rng.choice(BANDS),
                sex=rng.choice(("female", "male")),
            )
        )
    return out


def _photo(seed: str, size: int) -> bytes:
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    image = Image.new("RGB", (size, size), (200 + rng.randrange(40), 160 + rng.randrange(40), 140))
    r = size // 4 + rng.randrange(size // 8)
    ImageDraw.Draw(image).ellipse((size // 2 - r, size // 2 - r, size // 2 + r, size // 2 + r), fill=(90, 50, 40))
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=70)
    return buf.getvalue()


def _concept(code: str, display: str | None = None) -> dict[str, Any]:
    coding: dict[str, Any] = {"system": f"{SYSTEM}/codes", "code": code}
    if display:
        coding["display"] = display
    return {"coding": [coding], "text": display or code}


def screening_resources(s: SampleScreening, *, photo_url: str) -> list[dict[str, Any]]:
    """The resources of one screening (photo as a file at ``photo_url``, relative to the export)."""
    key = s.key
    enc_ref = {"reference": f"Encounter/{key}"}
    pat_ref = {"reference": f"Patient/{key}"}
    when = s.created_at.isoformat()
    site = _concept(s.body_site)
    resources: list[dict[str, Any]] = [
        {
            "resourceType": "Patient",
            "id": key,
            "identifier": [{"system": f"{SYSTEM}/slip-code/{s.station_code}", "value": s.code}],
            "gender": s.sex,
            "extension": [{"url": f"{SYSTEM}/age-band", "valueString": s.age_band}],
        },
        {
            "resourceType": "Encounter",
            "id": key,
            "identifier": [{"system": f"{SYSTEM}/screening/{s.station_code}", "value": s.screening_id}],
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": pat_ref,
            "period": {"start": when, "end": when},
        },
        {
            "resourceType": "Observation",
            "id": f"{key}-risk",
            "status": "final",
            "code": _concept("risk-band", "Melanoma referral risk band"),
            "subject": pat_ref,
            "encounter": enc_ref,
            "effectiveDateTime": when,
            "valueCodeableConcept": _concept(s.risk),
            "bodySite": site,
        },
        {
            "resourceType": "Observation",
            "id": f"{key}-score",
            "status": "final",
            "code": _concept("malignant-probability", "Model malignant probability"),
            "subject": pat_ref,
            "encounter": enc_ref,
            "valueQuantity": {"value": s.probability, "unit": "1"},
        },
        {
            "resourceType": "Observation",
            "id": f"{key}-abcd",
            "status": "final",
            "code": _concept("abcd-features", "ABCD features"),
            "subject": pat_ref,
            "encounter": enc_ref,
            "component": [
                {"code": _concept("asymmetry"), "valueQuantity": {"value": round(s.probability * 0.8, 3)}},
                {"code": _concept("border_irregularity"), "valueQuantity": {"value": round(1 + s.probability, 3)}},
                {"code": _concept("colour_count"), "valueInteger": 1 + int(s.probability * 4)},
                {"code": _concept("diameter_px"), "valueQuantity": {"value": 80 + int(s.probability * 100)}},
            ],
        },
        {
            "resourceType": "Media",
            "id": key,
            "status": "completed",
            "subject": pat_ref,
            "encounter": enc_ref,
            "bodySite": site,
            "content": {"contentType": "image/jpeg", "url": photo_url},
        },
    ]
    if s.risk == "refer":
        due = (s.created_at + timedelta(days=s.referral_days)).date().isoformat()
        resources.append(
            {
                "resourceType": "ServiceRequest",
                "id": key,
                "status": "active",
                "intent": "order",
                "subject": pat_ref,
                "encounter": enc_ref,
                "code": _concept("dermatology-referral", "Referral to a doctor for a skin lesion"),
                "bodySite": [site],
                "occurrencePeriod": {"start": when, "end": due},
                "performer": [{"display": "Rural Health Unit"}],
            }
        )
    return resources


def write_sample_export(
    parent: Path,
    *,
    station_code: str,
    count: int,
    seed: int,
    photo_size: int = 48,
    screenings: list[SampleScreening] | None = None,
) -> Path:
    """Write one export folder under ``parent`` and return it (manifest written last, as the kiosk does)."""
    screenings = screenings if screenings is not None else sample_screenings(station_code, count, seed=seed)
    folder = Path(parent) / f"{station_code}-export-{seed}"
    (folder / "photos").mkdir(parents=True, exist_ok=True)
    by_type: dict[str, list[str]] = {}
    files: dict[str, dict[str, Any]] = {}
    for s in screenings:
        url = f"photos/{s.key}.jpg"
        photo = _photo(s.key, photo_size)
        (folder / url).write_bytes(photo)
        files[url] = {"sha256": hashlib.sha256(photo).hexdigest()}
        for resource in screening_resources(s, photo_url=url):
            by_type.setdefault(resource["resourceType"], []).append(json.dumps(resource, separators=(",", ":")))
    for kind, lines in by_type.items():
        data = ("\n".join(lines) + "\n").encode()
        (folder / f"{kind}.ndjson").write_bytes(data)
        files[f"{kind}.ndjson"] = {"sha256": hashlib.sha256(data).hexdigest(), "count": len(lines)}
    manifest = {
        "station_code": station_code,
        "exported_at": datetime.now(UTC).isoformat(),
        "counts": {kind: len(lines) for kind, lines in by_type.items()},
        "files": files,
    }
    atomic_write_bytes(folder / "export.json", json.dumps(manifest, indent=1).encode())
    return folder
