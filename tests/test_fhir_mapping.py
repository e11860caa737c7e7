"""The FHIR mapping (kiosk/fhir/mapping.py): every resource validates, references resolve, ids are stable."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from kiosk.fhir.codes import PH_CORE, profile, system
from kiosk.fhir.ids import resource_id
from kiosk.fhir.mapping import ExportContext, PhotoFile, StationInfo, screening_resources
from kiosk.records import PatientInfo, RecordStore, StoredScreening
from kiosk.result import ScreeningResult
from tests.fhir_data import CONTEXT, FACILITY, MODEL_SHA, STATION, fill, validate

pytest.importorskip("fhir.resources", reason="fhir.resources validates the export (pip install fhir.resources)")

PHOTO = PhotoFile(url="photos/x.jpg", size=676, sha1_base64="2jmj7l5rSw0yVb/vlWAYkK/YBwk=", width=64, height=48)
AT = datetime(2026, 3, 1, 2, 15, tzinfo=UTC)  # 10:15 in Manila


def screening(**kw: object) -> StoredScreening:
    values: dict[str, object] = {
        "id": "20260301-021500-00k3-" + "0" * 32,
        "created_at": AT,
        "result": ScreeningResult(
            status="ok",
            malignant_probability=0.83,
            risk="refer",
            threshold=0.5,
            model_sha256=MODEL_SHA,
            features={"asymmetry": 0.3, "colours": ["black"], "colour_count": 1, "diameter_px": 90.0},
            quality={"sharpness": 300.0},
        ),
        "patient": PatientInfo(age_band="45-59", sex="female", body_site="left-forearm", skin_type=4),
        "image_path": None,
        "code": "482193677",
        "station_code": STATION,
    }
    values.update(kw)
    return StoredScreening(**values)  # type: ignore[arg-type]


def by_type(resources: list[dict], rtype: str) -> list[dict]:
    return [r for r in resources if r["resourceType"] == rtype]


def one(resources: list[dict], rtype: str) -> dict:
    found = by_type(resources, rtype)
    assert len(found) == 1, [r["resourceType"] for r in resources]
    return found[0]


def observation(resources: list[dict], code: str) -> dict:
    return next(r for r in by_type(resources, "Observation") if r["code"]["coding"][0]["code"] == code)


def test_a_referral_validates_and_every_reference_resolves() -> None:
    resources = screening_resources(screening(), CONTEXT, photo=PHOTO)
    validate(resources)
    assert sorted({r["resourceType"] for r in resources}) == [
        "Device",
        "Encounter",
        "Location",
        "Media",
        "Observation",
        "Organization",
        "Patient",
        "Provenance",
        "ServiceRequest",
    ]
    assert [o["code"]["coding"][0]["code"] for o in by_type(resources, "Observation")] == [
        "risk-band",
        "malignant-probability",
        "abcd-features",
        "image-quality",
        "fitzpatrick-skin-type",
    ]


def test_ph_core_profiles_where_the_guide_has_them_and_none_for_media_and_device() -> None:
    resources = screening_resources(screening(), CONTEXT, photo=PHOTO)
    for r in resources:
        expected = {
            "Patient": "ph-core-patient",
            "Encounter": "ph-core-encounter",
            "Observation": "ph-core-observation",
            "Organization": "ph-core-organization",
            "Location": "ph-core-location",
            "Provenance": "ph-core-provenance",
            "ServiceRequest": "ph-core-serviceRequest",
        }.get(r["resourceType"])
        if expected is None:
            assert "meta" not in r, r["resourceType"]  # Media, Device: PH Core has no profile
        else:
            assert r["meta"]["profile"] == [PH_CORE + expected]
    assert profile("Patient") == "http://doh.gov.ph/fhir/ph-core/StructureDefinition/ph-core-patient"


def test_patient_has_no_name_identifiers_from_station_and_slip_and_an_age_band_range() -> None:
    patient = one(screening_resources(screening(), CONTEXT), "Patient")
    assert patient["identifier"] == [
        {"system": "urn:melanoma-kiosk:slip-code", "value": "PH-LEY-0001/482193677"},
        {"system": "urn:melanoma-kiosk:screening", "value": "PH-LEY-0001/20260301-021500-00k3-" + "0" * 32},
    ]
    assert patient["gender"] == "female"
    assert "birthDate" not in patient  # a band gives no year
    (band,) = patient["extension"]
    assert band["url"] == "urn:melanoma-kiosk:StructureDefinition:age-band"
    assert (band["valueRange"]["low"]["value"], band["valueRange"]["high"]["value"]) == (45, 59)
    assert band["valueRange"]["low"]["code"] == "a"


def test_an_exact_age_gives_the_year_only_and_the_oldest_band_has_no_upper_bound() -> None:
    patient = one(screening_resources(screening(patient=PatientInfo(age=80)), CONTEXT), "Patient")
    assert patient["birthDate"] == "1946"  # PH Core: only the year known -> YYYY
    assert patient["extension"][0]["valueRange"] == {
        "low": {"value": 75, "unit": "a", "system": "http://unitsofmeasure.org", "code": "a"}
    }


def test_referral_due_date_facility_reason_and_body_site() -> None:
    resources = screening_resources(screening(), CONTEXT, photo=PHOTO)
    sr = one(resources, "ServiceRequest")
    assert sr["occurrencePeriod"] == {"start": "2026-03-01T02:15:00+00:00", "end": "2026-03-15"}
    assert sr["code"]["coding"] == [
        {"system": "http://snomed.info/sct", "code": "3457005", "display": "Patient referral"}
    ]
    facility = next(r for r in by_type(resources, "Organization") if r["name"] == FACILITY)
    assert sr["performer"] == [{"reference": f"Organization/{facility['id']}"}]
    assert sr["reasonCode"][0]["coding"][0]["code"] == "model-refer"
    assert sr["reasonReference"] == [{"reference": f"Observation/{observation(resources, 'risk-band')['id']}"}]
    site = sr["bodySite"][0]
    assert site["coding"][0] == {
        "system": "urn:melanoma-kiosk:CodeSystem:body-site",
        "code": "left-forearm",
        "display": "left forearm",
    }
    assert site["coding"][1]["code"] == "53120007"  # SNOMED CT upper limb structure


def test_due_date_is_the_local_day_in_the_station_time_zone() -> None:
    late = datetime(2026, 3, 1, 17, 0, tzinfo=UTC)  # already 2 March in Manila
    sr = one(screening_resources(screening(created_at=late), CONTEXT), "ServiceRequest")
    assert sr["occurrencePeriod"]["end"] == "2026-03-16"


def test_acral_site_is_the_referral_reason_and_gets_the_sole_code() -> None:
    s = screening(patient=PatientInfo(body_site="right-sole"))
    resources = screening_resources(s, CONTEXT)
    sr = one(resources, "ServiceRequest")
    assert sr["reasonCode"][0]["coding"][0]["code"] == "acral-site"
    assert [c["code"] for c in sr["bodySite"][0]["coding"]] == ["right-sole", "76986006"]


def test_low_risk_has_no_referral_and_interpretation_normal() -> None:
    result = ScreeningResult(status="ok", malignant_probability=0.1, risk="low", threshold=0.5, model_sha256=MODEL_SHA)
    resources = screening_resources(screening(result=result), CONTEXT)
    validate(resources)
    assert by_type(resources, "ServiceRequest") == []
    assert all(r.get("name") != FACILITY for r in by_type(resources, "Organization"))
    risk = observation(resources, "risk-band")
    assert risk["valueCodeableConcept"]["coding"][0]["code"] == "low"
    assert risk["interpretation"][0]["coding"][0]["code"] == "N"
    score = observation(resources, "malignant-probability")
    assert score["valueQuantity"]["value"] == 0.1
    assert score["component"][0]["valueQuantity"]["value"] == 0.5  # the threshold


def test_a_retake_is_a_cancelled_risk_observation_with_its_reason() -> None:
    result = ScreeningResult.retake("blurry", quality={"sharpness": 3.1})
    resources = screening_resources(screening(result=result, patient=None), CONTEXT, photo=PHOTO)
    validate(resources)
    risk = observation(resources, "risk-band")
    assert risk["status"] == "cancelled" and "valueCodeableConcept" not in risk
    assert risk["dataAbsentReason"]["coding"][0]["code"] == "not-performed"
    assert risk["note"] == [{"text": "retake: blurry"}]
    assert {o["code"]["coding"][0]["code"] for o in by_type(resources, "Observation")} == {"risk-band", "image-quality"}
    assert by_type(resources, "ServiceRequest") == []
    assert "gender" not in one(resources, "Patient")


def test_abcd_features_and_quality_are_components() -> None:
    resources = screening_resources(screening(), CONTEXT)
    abcd = {c["code"]["coding"][0]["code"]: c for c in observation(resources, "abcd-features")["component"]}
    assert abcd["asymmetry"]["valueQuantity"]["value"] == 0.3
    assert abcd["colour-count"]["valueInteger"] == 1
    assert abcd["colours"]["valueCodeableConcept"]["coding"][0]["code"] == "black"
    assert abcd["diameter-px"]["valueQuantity"]["code"] == "{pixel}"
    quality = observation(resources, "image-quality")["component"]
    assert [(c["code"]["coding"][0]["code"], c["valueQuantity"]["value"]) for c in quality] == [
        ("quality-sharpness", 300.0)
    ]


def test_media_points_at_the_photo_file_beside_the_ndjson() -> None:
    media = one(screening_resources(screening(), CONTEXT, photo=PHOTO), "Media")
    assert media["content"]["url"] == "photos/x.jpg"
    assert (media["content"]["size"], media["content"]["hash"]) == (676, PHOTO.sha1_base64)
    assert (media["width"], media["height"]) == (64, 48)
    assert media["modality"]["coding"][0]["code"] == "XC"


def test_device_carries_the_software_and_model_and_provenance_names_it() -> None:
    resources = screening_resources(screening(), CONTEXT, photo=PHOTO)
    device = one(resources, "Device")
    assert {v["type"]["text"]: v["value"] for v in device["version"]} == {
        "software": "melanoma-kiosk 0.1.0",
        "model-sha256": MODEL_SHA,
    }
    prov = one(resources, "Provenance")
    assert prov["agent"][0]["who"] == {"reference": f"Device/{device['id']}"}
    own = {
        f"{r['resourceType']}/{r['id']}"
        for r in resources
        if r["resourceType"] not in ("Organization", "Location", "Device", "Provenance")
    }
    assert {t["reference"] for t in prov["target"]} == own
    assert prov["entity"][0]["what"]["reference"].startswith("Media/")


def test_ids_are_stable_and_derived_from_the_identifiers() -> None:
    first = screening_resources(screening(), CONTEXT, photo=PHOTO)
    again = screening_resources(screening(), CONTEXT, photo=PHOTO)
    assert first == again
    encounter = one(first, "Encounter")
    assert encounter["id"] == resource_id("Encounter", encounter["identifier"][0]["value"])
    other = screening_resources(screening(id="20260301-021500-00k4-" + "0" * 32), CONTEXT)
    assert not {r["id"] for r in first if r["resourceType"] == "Patient"} & {
        r["id"] for r in other if r["resourceType"] == "Patient"
    }
    # The shared resources are the same for both screenings.
    assert one(first, "Device") == one(other, "Device")


def test_a_followup_links_the_earlier_screening_logically() -> None:
    earlier = "20260201-021500-00k3-" + "1" * 32
    resources = screening_resources(screening(followup_of=earlier), CONTEXT)
    validate(resources)  # the link does not need the earlier screening in this export
    patient = one(resources, "Patient")
    assert patient["link"] == [
        {"type": "seealso", "other": {"identifier": {"system": system("screening"), "value": f"{STATION}/{earlier}"}}}
    ]
    assert one(resources, "Encounter")["extension"][0]["valueIdentifier"]["value"] == f"{STATION}/{earlier}"


def test_old_records_without_a_station_code_take_the_exporting_station() -> None:
    ctx = ExportContext(station=StationInfo(code="PH-LEY-0009"), kiosk_version="0.1.0")
    patient = one(screening_resources(screening(station_code=None), ctx), "Patient")
    assert patient["identifier"][0]["value"] == "PH-LEY-0009/482193677"


def test_every_kind_of_stored_screening_validates(tmp_path: Path) -> None:
    with RecordStore(tmp_path, station_code=STATION) as store:
        fill(store)
        for s in store.list():
            validate(screening_resources(s, CONTEXT, photo=PHOTO if s.image_path else None))
