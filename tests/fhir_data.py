"""Helpers for the FHIR tests: a store with screenings of every kind, and checks an export must pass."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from PIL import Image

from kiosk.fhir.export import MANIFEST, read_ndjson
from kiosk.fhir.mapping import ExportContext, StationInfo
from kiosk.records import PatientInfo, RecordStore
from kiosk.result import ScreeningResult

STATION = "PH-LEY-0001"
FACILITY = "Eastern Visayas Medical Center"
MODEL_SHA = "ab" * 32
CONTEXT = ExportContext(
    station=StationInfo(code=STATION, name="Barangay San Jose Health Station"),
    kiosk_version="0.1.0",
    referral_facility=FACILITY,
    referral_within_days=14,
)
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
FEATURES = {
    "asymmetry": 0.31,
    "border_irregularity": 1.42,
    "colour_count": 2,
    "colours": ["dark_brown", "black"],
    "diameter_px": 118.5,
    "diameter_mm": None,
    "area_fraction": 0.12,
}
QUALITY = {"brightness": 120.5, "sharpness": 310.2, "lesion_centre_offset": 0.04}


def jpeg(seed: int, size: tuple[int, int] = (64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (100 + seed % 100, 80, 60)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def refer(**kw: Any) -> ScreeningResult:
    return ScreeningResult(
        status="ok",
        malignant_probability=0.83,
        risk="refer",
        threshold=0.5,
        model_sha256=MODEL_SHA,
        features=FEATURES,
        quality=QUALITY,
        **kw,
    )


def low() -> ScreeningResult:
    return ScreeningResult(
        status="ok",
        malignant_probability=0.07,
        risk="low",
        threshold=0.5,
        model_sha256=MODEL_SHA,
        features=FEATURES,
        quality=QUALITY,
    )


def fill(store: RecordStore, n: int = 0) -> dict[str, str]:
    """Screenings of every kind (plus ``n`` more low ones); name -> screening id."""
    ids = {
        "refer": store.save(
            refer(),
            image_jpeg=jpeg(1),
            patient=PatientInfo(age_band="45-59", sex="female", body_site="left-forearm", skin_type=4),
        ),
        "low": store.save(low(), image_jpeg=jpeg(2), patient=PatientInfo(age=61, sex="male", body_site="trunk-back")),
        "acral": store.save(refer(), image_jpeg=jpeg(3), patient=PatientInfo(body_site="right-sole")),
        "retake": store.save(ScreeningResult.retake("blurry", quality={"sharpness": 3.1}), image_jpeg=jpeg(4)),
        "bare": store.save(low()),  # no photo, no patient details
    }
    ids["followup"] = store.save(
        low(),
        image_jpeg=jpeg(5),
        patient=PatientInfo(body_site="left-forearm"),
        followup_of=ids["refer"],
        followup={"diameter_px": -3.0},
    )
    for i in range(n):
        store.save(low(), image_jpeg=jpeg(10 + i))
    return ids


def walk_references(obj: Any) -> Iterator[str]:
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key == "reference" and isinstance(value, str):
                yield value
            else:
                yield from walk_references(value)
    elif isinstance(obj, list):
        for item in obj:
            yield from walk_references(item)


def validate(resources: list[dict[str, Any]]) -> None:
    """Every resource validates with fhir.resources (R4B) and every reference resolves among them."""
    from fhir.resources.R4B import get_fhir_model_class

    have = {(r["resourceType"], r["id"]) for r in resources}
    assert len(have) == len(resources), "a resource appears twice"
    for r in resources:
        get_fhir_model_class(r["resourceType"]).model_validate(r)
        # What fhir.resources does not check: id length and the required bindings the kiosk uses.
        assert _FHIR_ID.fullmatch(r["id"]), r["id"]
        if r["resourceType"] == "Patient":
            assert r.get("gender", "unknown") in ("male", "female", "other", "unknown")
            assert "name" not in r
        for ref in walk_references(r):
            rtype, _, rid = ref.partition("/")
            assert (rtype, rid) in have, f"{r['resourceType']}/{r['id']} refers to {ref}, not in the export"


def read_export(folder: Path) -> list[dict[str, Any]]:
    return [r for f in sorted(folder.glob("*.ndjson")) for r in read_ndjson(f)]


def is_complete(folder: Path) -> bool:
    return (folder / MANIFEST).is_file()
