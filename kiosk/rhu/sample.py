"""Made-up kiosk exports for the console's tests and benchmark: no real patients, fixed seeds.

Each screening is the resources a kiosk exports for it (docs/FHIR.md):
Patient, Encounter, Observations (risk band, score, ABCD features, body site),
Media (a small generated photo, a file beside the NDJSON) and, when referred,
a ServiceRequest with its due date; plus the manifest with every file's sha256.

>>> import tempfile, pathlib, json
>>> folder = write_sample_export(pathlib.Path(tempfile.mkdtemp()), station_code="PH-LEY-0002", count=4, seed=7)
>>> manifest = json.loads((folder / "export.json").read_text())
>>> manifest["extension"]["station_code"], {o["type"]: o["count"] for o in manifest["output"]}["Encounter"]
('PH-LEY-0002', 4)
"""

from __future__ import annotations

import hashlib
import io
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ..records import codes
from ..storage import atomic_write_bytes
from .fhirmap import resource_id

__all__ = ["SampleScreening", "sample_screenings", "screening_resources", "write_sample_export"]

SITES = ("left-forearm", "right-sole", "trunk", "head_neck", "left-thigh", "right-palm")
BANDS = ("15-29", "30-44", "45-59", "60-74", "75-plus")
URN = "urn:melanoma-kiosk"
FACILITY = "Rural Health Unit"
MODEL_SHA = "0" * 64


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
        """The console's key: the Encounter's screening identifier."""
        return f"{self.station_code}/{self.screening_id}"

    @property
    def risk(self) -> str:
        return "refer" if self.probability >= self.threshold else "low"


def _fixed(digits: str) -> Callable[[int], str]:
    return lambda count: digits


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
                code=codes.new_code(random_digits=_fixed(body)),
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
    for _ in range(12):  # speckles: every screening's photo is a different file, as at a real kiosk
        image.putpixel((rng.randrange(size), rng.randrange(size)), (rng.randrange(256), 60, rng.randrange(256)))
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=70)
    return buf.getvalue()


def _concept(system: str, code: str, text: str | None = None) -> dict[str, Any]:
    concept: dict[str, Any] = {"coding": [{"system": system, "code": code}]}
    if text:
        concept["text"] = text
    return concept


def _obs_code(code: str) -> dict[str, Any]:
    return _concept(f"{URN}:CodeSystem:observation", code)


def _ref(kind: str, value: str) -> dict[str, str]:
    return {"reference": f"{kind}/{resource_id(kind, value)}"}


def _ident(kind: str, value: str) -> list[dict[str, str]]:
    return [{"system": f"{URN}:{kind}", "value": value}]


def shared_resources(station_code: str, *, facility: str = FACILITY) -> list[dict[str, Any]]:
    """The station's Organization and Location, the facility's Organization and the Device."""
    return [
        {"resourceType": "Organization", "id": resource_id("Organization", station_code),
         "identifier": _ident("station", station_code), "name": f"Health station {station_code}"},
        {"resourceType": "Location", "id": resource_id("Location", station_code),
         "identifier": _ident("station", station_code), "name": f"Health station {station_code}",
         "managingOrganization": _ref("Organization", station_code)},
        {"resourceType": "Organization", "id": resource_id("Organization", facility),
         "identifier": _ident("facility", facility), "name": facility},
        {"resourceType": "Device", "id": resource_id("Device", f"{station_code}/{MODEL_SHA}"),
         "identifier": _ident("device", f"{station_code}/{MODEL_SHA}"),
         "deviceName": [{"name": "melanoma screening kiosk", "type": "user-friendly-name"}]},
    ]  # fmt: skip


def _band_range(band: str) -> dict[str, Any]:
    low, _, high = band.partition("-")
    rng: dict[str, Any] = {"low": {"value": int(low), "unit": "a", "system": "http://unitsofmeasure.org", "code": "a"}}
    if high != "plus":
        rng["high"] = {"value": int(high), "unit": "a", "system": "http://unitsofmeasure.org", "code": "a"}
    return rng


def screening_resources(s: SampleScreening, *, photo_url: str, facility: str = FACILITY) -> list[dict[str, Any]]:
    """The resources of one screening as docs/FHIR.md §3-4 lays them out (photo as a file at ``photo_url``)."""
    value = f"{s.station_code}/{s.screening_id}"
    enc, pat = _ref("Encounter", value), _ref("Patient", value)
    when = s.created_at.isoformat()
    site = _concept(f"{URN}:CodeSystem:body-site", s.body_site, s.body_site.replace("-", " "))
    common = {"subject": pat, "encounter": enc, "effectiveDateTime": when, "issued": when, "bodySite": site}

    def observation(code: str, **fields: Any) -> dict[str, Any]:
        ov = f"{value}/{code}"
        return {"resourceType": "Observation", "id": resource_id("Observation", ov),
                "identifier": _ident("observation", ov), "status": "final", "code": _obs_code(code),
                **common, **fields}  # fmt: skip

    def quantity(v: float, code: str = "1") -> dict[str, Any]:
        return {"value": v, "unit": code, "system": "http://unitsofmeasure.org", "code": code}

    resources: list[dict[str, Any]] = [
        {"resourceType": "Patient", "id": resource_id("Patient", value),
         "identifier": [*_ident("slip-code", f"{s.station_code}/{s.code}"), *_ident("screening", value)],
         "gender": s.sex,
         "extension": [{"url": f"{URN}:StructureDefinition:age-band", "valueRange": _band_range(s.age_band)}],
         "managingOrganization": _ref("Organization", s.station_code)},
        {"resourceType": "Encounter", "id": resource_id("Encounter", value), "identifier": _ident("screening", value),
         "status": "finished", "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
         "subject": pat, "period": {"start": when, "end": when},
         "serviceProvider": _ref("Organization", s.station_code)},
        observation("risk-band", valueCodeableConcept=_concept(f"{URN}:CodeSystem:risk", s.risk)),
        observation("malignant-probability", valueQuantity=quantity(s.probability),
                    component=[{"code": _obs_code("decision-threshold"), "valueQuantity": quantity(s.threshold)}]),
        observation("abcd-features", component=[
            {"code": _obs_code("asymmetry"), "valueQuantity": quantity(round(s.probability * 0.8, 3))},
            {"code": _obs_code("border-irregularity"), "valueQuantity": quantity(round(1 + s.probability, 3))},
            {"code": _obs_code("colour-count"), "valueInteger": 1 + int(s.probability * 4)},
            {"code": _obs_code("diameter-px"), "valueQuantity": quantity(80 + int(s.probability * 100), "{pixel}")},
        ]),
        {"resourceType": "Media", "id": resource_id("Media", f"{value}/photo"),
         "identifier": _ident("media", f"{value}/photo"), "status": "completed", "subject": pat, "encounter": enc,
         "createdDateTime": when, "bodySite": site, "content": {"contentType": "image/jpeg", "url": photo_url}},
    ]  # fmt: skip
    if s.risk == "refer":
        due = s.created_at + timedelta(days=s.referral_days)
        resources.append(
            {"resourceType": "ServiceRequest", "id": resource_id("ServiceRequest", value),
             "identifier": _ident("referral", value), "status": "active", "intent": "order",
             "code": _concept("http://snomed.info/sct", "3457005", "Patient referral"),
             "subject": pat, "encounter": enc, "authoredOn": when, "bodySite": [site],
             "occurrencePeriod": {"start": when, "end": due.isoformat()},
             "requester": _ref("Organization", s.station_code), "performer": [_ref("Organization", facility)]}
        )  # fmt: skip
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
    """Write one export folder ``<station>-<time>-<batch>`` under ``parent``; manifest last, as the kiosk does."""
    screenings = screenings if screenings is not None else sample_screenings(station_code, count, seed=seed)
    folder = Path(parent) / f"{station_code}-20260301T023015Z-{seed % 10000:04d}"
    (folder / "photos").mkdir(parents=True, exist_ok=True)
    by_type: dict[str, list[str]] = {}
    photos: list[dict[str, Any]] = []
    for resource in shared_resources(station_code):
        by_type.setdefault(resource["resourceType"], []).append(json.dumps(resource, separators=(",", ":")))
    for s in screenings:
        url = f"photos/{s.screening_id}.jpg"
        photo = _photo(s.key, photo_size)
        (folder / url).write_bytes(photo)
        photos.append({"url": url, "sha256": hashlib.sha256(photo).hexdigest(), "bytes": len(photo)})
        for resource in screening_resources(s, photo_url=url):
            by_type.setdefault(resource["resourceType"], []).append(json.dumps(resource, separators=(",", ":")))
    output = []
    for kind, lines in by_type.items():
        data = ("\n".join(lines) + "\n").encode()
        (folder / f"{kind}.ndjson").write_bytes(data)
        output.append({"type": kind, "url": f"{kind}.ndjson", "count": len(lines),
                       "extension": {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}})  # fmt: skip
    manifest = {
        "transactionTime": datetime.now(UTC).isoformat(),
        "request": "kiosk export fhir",
        "requiresAccessToken": False,
        "output": output,
        "error": [],
        "extension": {"format": 1, "export_id": folder.name, "station_code": station_code,
                      "screenings": len(screenings), "photos": photos},
    }  # fmt: skip
    atomic_write_bytes(folder / "export.json", json.dumps(manifest, indent=1).encode())
    return folder
