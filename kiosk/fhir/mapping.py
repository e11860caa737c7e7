"""One stored screening -> its FHIR R4 resources, as plain JSON dicts (no I/O; docs/FHIR.md is the contract).

Every id and identifier is derived from the station code and the screening id,
so mapping the same screening twice gives the same resources, byte for byte.

>>> from datetime import UTC, datetime
>>> from kiosk.records import PatientInfo, StoredScreening
>>> from kiosk.result import ScreeningResult
>>> s = StoredScreening(id="20260301-021500-00k3", created_at=datetime(2026, 3, 1, 2, 15, tzinfo=UTC),
...     result=ScreeningResult(status="ok", malignant_probability=0.8, risk="refer", threshold=0.5),
...     patient=PatientInfo(age_band="45-59", sex="female", body_site="left-forearm"), image_path=None,
...     code="482193677", station_code="PH-LEY-0001")
>>> ctx = ExportContext(station=StationInfo(code="PH-LEY-0001"), kiosk_version="0.1.0")
>>> sorted({r["resourceType"] for r in screening_resources(s, ctx)})  # doctest: +NORMALIZE_WHITESPACE
['Device', 'Encounter', 'Location', 'Observation', 'Organization', 'Patient', 'Provenance', 'ServiceRequest']
>>> [r for r in screening_resources(s, ctx) if r["resourceType"] == "ServiceRequest"][0]["occurrencePeriod"]["end"]
'2026-03-15'
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..records.patient import PatientInfo
from ..records.store import StoredScreening
from . import codes
from .codes import system
from .ids import reference, resource_id

__all__ = [
    "ExportContext",
    "PhotoFile",
    "Resource",
    "StationInfo",
    "facility_organization",
    "kiosk_device",
    "screening_identifier",
    "screening_resources",
    "slip_identifier",
    "station_location",
    "station_organization",
]

Resource = dict[str, Any]

AGE_BAND_EXTENSION = f"{codes.BASE}:StructureDefinition:age-band"
FOLLOWUP_EXTENSION = f"{codes.BASE}:StructureDefinition:followup-of"
_FORCED_REFER = {"acral_site": "acral-site", "lesion_unclear": "lesion-unclear"}


@dataclass(frozen=True, kw_only=True)
class StationInfo:
    """The station that exports (``[station]`` settings)."""

    code: str
    name: str | None = None


@dataclass(frozen=True, kw_only=True)
class ExportContext:
    """What the export knows besides the records: the station, the software, the referral settings."""

    station: StationInfo
    kiosk_version: str
    referral_facility: str | None = None
    referral_within_days: int = 14
    time_zone: str = "Asia/Manila"  # the due date is a local calendar day, as on the slip


@dataclass(frozen=True, kw_only=True)
class PhotoFile:
    """The screening's photo as written beside the NDJSON."""

    url: str  # relative to the folder holding export.json, e.g. photos/<screening id>.jpg
    size: int
    sha1_base64: str  # Attachment.hash is SHA-1 in R4; the manifest has the sha256
    width: int | None = None
    height: int | None = None


# --- identifiers ------------------------------------------------------------------------


def _ident(kind: str, value: str) -> dict[str, str]:
    return {"system": system(kind), "value": value}


def _station_of(s: StoredScreening, ctx: ExportContext) -> str:
    return s.station_code or ctx.station.code


def screening_identifier(s: StoredScreening, ctx: ExportContext) -> dict[str, str]:
    """``urn:melanoma-kiosk:screening`` | ``<station>/<screening id>``."""
    return _ident("screening", f"{_station_of(s, ctx)}/{s.id}")


def slip_identifier(station_code: str, slip_code: str) -> dict[str, str]:
    """``urn:melanoma-kiosk:slip-code`` | ``<station>/<nine digits>``: what the doctor reads off the slip."""
    return _ident("slip-code", f"{station_code}/{slip_code}")


def _ref(resource_type: str, value: str, display: str | None = None) -> dict[str, str]:
    ref = {"reference": reference(resource_type, value)}
    if display:
        ref["display"] = display
    return ref


def _resource(resource_type: str, value: str, **body: Any) -> Resource:
    """A resource with its stable id, PH Core profile (where there is one), then ``body``."""
    out: Resource = {"resourceType": resource_type, "id": resource_id(resource_type, value)}
    prof = codes.profile(resource_type)
    if prof:
        out["meta"] = {"profile": [prof]}
    out.update({k: v for k, v in body.items() if v is not None})
    return out


def _coding(system_url: str, code: str, display: str | None = None) -> dict[str, str]:
    c = {"system": system_url, "code": code}
    if display:
        c["display"] = display
    return c


def _local_code(kind: str, code: str, display: str | None = None) -> dict[str, Any]:
    return {"coding": [_coding(system(f"CodeSystem:{kind}"), code, display)]} | ({"text": display} if display else {})


def _quantity(value: float, unit: str, code: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": codes.UCUM, "code": code}


def _instant(moment: datetime) -> str:
    return moment.isoformat()


# --- the shared resources -------------------------------------------------------------------


def station_organization(ctx: ExportContext) -> Resource:
    code = ctx.station.code
    return _resource(
        "Organization",
        f"station/{code}",
        identifier=[_ident("station", code)],
        active=True,
        type=[{"coding": [_coding(codes.ORGANIZATION_TYPE, "prov", "Healthcare Provider")]}],
        name=ctx.station.name or code,
    )


def station_location(ctx: ExportContext) -> Resource:
    code = ctx.station.code
    return _resource(
        "Location",
        f"station/{code}",
        identifier=[_ident("station", code)],
        status="active",
        name=ctx.station.name or code,
        managingOrganization=_ref("Organization", f"station/{code}"),
    )


def facility_organization(name: str) -> Resource:
    """The facility a referral sends the patient to (no NHFR code: the kiosk knows only its name)."""
    return _resource(
        "Organization",
        f"facility/{name}",
        identifier=[_ident("facility", name)],
        active=True,
        type=[{"coding": [_coding(codes.ORGANIZATION_TYPE, "prov", "Healthcare Provider")]}],
        name=name,
    )


def _device_key(ctx: ExportContext, model_sha256: str | None) -> str:
    return f"{ctx.station.code}/{model_sha256 or 'unknown-model'}"


def kiosk_device(ctx: ExportContext, model_sha256: str | None) -> Resource:
    """The kiosk running one model: the software and model versions that produced a screening."""
    key = _device_key(ctx, model_sha256)
    versions: list[dict[str, Any]] = [{"type": {"text": "software"}, "value": f"melanoma-kiosk {ctx.kiosk_version}"}]
    if model_sha256:
        versions.append({"type": {"text": "model-sha256"}, "value": model_sha256})
    return _resource(
        "Device",
        key,
        identifier=[_ident("device", key)],
        status="active",
        deviceName=[{"name": "melanoma screening kiosk", "type": "user-friendly-name"}],
        type={"text": "Skin lesion screening kiosk (referral aid, not a diagnostic device)"},
        version=versions,
        owner=_ref("Organization", f"station/{ctx.station.code}"),
        location=_ref("Location", f"station/{ctx.station.code}"),
    )


# --- one screening ---------------------------------------------------------------------------


def _body_site(site: str | None) -> dict[str, Any] | None:
    if site is None:
        return None
    text = codes.body_site_text(site)
    coding = [_coding(system("CodeSystem:body-site"), site, text)]
    snomed = codes.snomed_body_structure(site)
    if snomed is not None:
        coding.append(_coding(codes.SNOMED, *snomed))
    return {"coding": coding, "text": text}


def _age_band_extension(band: str) -> dict[str, Any]:
    low, _, high = band.partition("-")
    value: dict[str, Any] = {"low": _quantity(int(low), "a", "a")}
    if high.isdigit():
        value["high"] = _quantity(int(high), "a", "a")
    return {"url": AGE_BAND_EXTENSION, "valueRange": value}


def _patient(s: StoredScreening, ctx: ExportContext, key: str) -> Resource:
    info = s.patient or PatientInfo()
    station = _station_of(s, ctx)
    identifiers = [screening_identifier(s, ctx)]
    if s.code:
        identifiers.insert(0, slip_identifier(station, s.code))
    band = info.effective_age_band
    link = None
    if s.followup_of:
        # A logical reference: the earlier screening may be in an earlier export.
        earlier = _ident("screening", f"{station}/{s.followup_of}")
        link = [{"type": "seealso", "other": {"identifier": earlier}}]
    return _resource(
        "Patient",
        key,
        extension=[_age_band_extension(band)] if band else None,
        identifier=identifiers,
        active=True,
        gender=info.sex,
        # PH Core: a birthDate from an age is the year only; a band alone gives none (it would be a false year).
        birthDate=f"{s.created_at.year - info.age:04d}" if info.age is not None else None,
        managingOrganization=_ref("Organization", f"station/{ctx.station.code}"),
        link=link,
    )


def _encounter(s: StoredScreening, ctx: ExportContext, key: str) -> Resource:
    at = _instant(s.created_at)
    extension = None
    if s.followup_of:
        earlier = _ident("screening", f"{_station_of(s, ctx)}/{s.followup_of}")
        extension = [{"url": FOLLOWUP_EXTENSION, "valueIdentifier": earlier}]
    return _resource(
        "Encounter",
        key,
        extension=extension,
        identifier=[screening_identifier(s, ctx)],
        status="finished",
        **{"class": _coding(codes.V3_ACT_CODE, "AMB", "ambulatory")},
        type=[_local_code("encounter-type", "skin-lesion-screening", "Skin lesion screening at a kiosk")],
        subject=_ref("Patient", key),
        period={"start": at, "end": at},
        location=[{"location": _ref("Location", f"station/{ctx.station.code}")}],
        serviceProvider=_ref("Organization", f"station/{ctx.station.code}"),
    )


def _observation(
    s: StoredScreening,
    ctx: ExportContext,
    key: str,
    code: str,
    *,
    photo: PhotoFile | None,
    status: str = "final",
    **body: Any,
) -> Resource:
    at = _instant(s.created_at)
    info = s.patient or PatientInfo()
    return _resource(
        "Observation",
        f"{key}/{code}",
        identifier=[_ident("observation", f"{key}/{code}")],
        status=status,
        category=[{"coding": [_coding(codes.OBSERVATION_CATEGORY, "imaging", "Imaging")]}],
        code=_local_code("observation", code, codes.OBSERVATION_CODES[code]),
        subject=_ref("Patient", key),
        encounter=_ref("Encounter", key),
        effectiveDateTime=at,
        issued=at,
        performer=[_ref("Organization", f"station/{ctx.station.code}")],
        **body,
        bodySite=_body_site(info.body_site) if code != "fitzpatrick-skin-type" else None,
        device=_ref("Device", _device_key(ctx, s.result.model_sha256)),
        derivedFrom=[_ref("Media", key)] if photo is not None and code != "fitzpatrick-skin-type" else None,
    )


def _component(code: str, **value: Any) -> dict[str, Any]:
    return {"code": _local_code("observation", code), **value}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _observations(s: StoredScreening, ctx: ExportContext, key: str, photo: PhotoFile | None) -> list[Resource]:
    r = s.result
    out: list[Resource] = []
    if r.status == "ok" and r.risk in ("low", "refer"):
        note = [{"text": f"reason: {r.reason}"}] if r.reason else None
        out.append(
            _observation(
                s,
                ctx,
                key,
                "risk-band",
                photo=photo,
                valueCodeableConcept=_local_code("risk", r.risk, "refer to a doctor" if r.risk == "refer" else "low"),
                interpretation=[
                    {"coding": [_coding(codes.V3_INTERPRETATION, "A" if r.risk == "refer" else "N")]},
                ],
                note=note,
            )
        )
    else:  # a retake or an error: the screening happened, no result came of it
        out.append(
            _observation(
                s,
                ctx,
                key,
                "risk-band",
                photo=photo,
                status="cancelled",
                dataAbsentReason={
                    "coding": [_coding(codes.DATA_ABSENT_REASON, "error" if r.status == "error" else "not-performed")]
                },
                note=[{"text": f"{r.status}: {r.reason}"}] if r.reason else None,
            )
        )
    probability = _number(r.malignant_probability)
    if r.status == "ok" and probability is not None:
        components = []
        threshold = _number(r.threshold)
        if threshold is not None:
            components.append(_component("decision-threshold", valueQuantity=_quantity(threshold, "probability", "1")))
        if r.model_sha256:
            components.append(_component("model-sha256", valueString=r.model_sha256))
        out.append(
            _observation(
                s,
                ctx,
                key,
                "malignant-probability",
                photo=photo,
                valueQuantity=_quantity(probability, "probability", "1"),
                component=components or None,
            )
        )
    features = r.features or {}
    if r.status == "ok" and features:
        out.append(
            _observation(s, ctx, key, "abcd-features", photo=photo, component=_feature_components(features) or None)
        )
    quality = _quality_components(r.quality or {})
    if quality:
        out.append(_observation(s, ctx, key, "image-quality", photo=photo, component=quality))
    skin = (s.patient or PatientInfo()).skin_type
    if skin is not None:
        out.append(_observation(s, ctx, key, "fitzpatrick-skin-type", photo=photo, valueInteger=skin))
    return out


def _feature_components(features: Mapping[str, Any]) -> list[dict[str, Any]]:
    comps = []
    for name, code in (("asymmetry", "asymmetry"), ("border_irregularity", "border-irregularity")):
        v = _number(features.get(name))
        if v is not None:
            comps.append(_component(code, valueQuantity=_quantity(v, "1", "1")))
    count = features.get("colour_count")
    if isinstance(count, int) and not isinstance(count, bool):
        comps.append(_component("colour-count", valueInteger=count))
    colours = features.get("colours")
    if isinstance(colours, list) and colours:
        coding = [_coding(system("CodeSystem:colour"), str(c), str(c).replace("_", " ")) for c in colours]
        comps.append(_component("colours", valueCodeableConcept={"coding": coding}))
    for name, code, unit, ucum in (
        ("diameter_px", "diameter-px", "pixels", "{pixel}"),
        ("diameter_mm", "diameter-mm", "mm", "mm"),
        ("area_fraction", "area-fraction", "1", "1"),
    ):
        v = _number(features.get(name))
        if v is not None:
            comps.append(_component(code, valueQuantity=_quantity(v, unit, ucum)))
    return comps


def _quality_components(quality: Mapping[str, Any]) -> list[dict[str, Any]]:
    comps = []
    for name in sorted(quality):
        v = _number(quality[name])
        if v is not None:
            comps.append(_component("quality-" + name.replace("_", "-"), valueQuantity=_quantity(v, "1", "1")))
    return comps


def _media(s: StoredScreening, ctx: ExportContext, key: str, photo: PhotoFile) -> Resource:
    info = s.patient or PatientInfo()
    return _resource(
        "Media",
        key,
        identifier=[_ident("media", f"{key}/photo")],
        status="completed",
        type={"coding": [_coding(codes.MEDIA_TYPE, "image", "Image")]},
        modality={"coding": [_coding(codes.DICOM, "XC", "External-camera Photography")]},
        subject=_ref("Patient", key),
        encounter=_ref("Encounter", key),
        createdDateTime=_instant(s.created_at),
        device=_ref("Device", _device_key(ctx, s.result.model_sha256)),
        bodySite=_body_site(info.body_site),
        height=photo.height,
        width=photo.width,
        content={
            "contentType": "image/jpeg",
            "url": photo.url,
            "size": photo.size,
            "hash": photo.sha1_base64,
            "title": f"{s.id}.jpg",
            "creation": _instant(s.created_at),
        },
    )


def _referral(s: StoredScreening, ctx: ExportContext, key: str, photo: PhotoFile | None) -> Resource:
    r = s.result
    info = s.patient or PatientInfo()
    reason_code = "acral-site" if info.acral else _FORCED_REFER.get(r.reason or "", "model-refer")
    reason_text = {
        "model-refer": "The screening model's probability was at or above its referral threshold",
        "acral-site": "Palm, sole or nail: outside what the model was trained on, so the kiosk always refers",
        "lesion-unclear": "The spot was hard to see in the photo, so the kiosk referred to be safe",
    }[reason_code]
    local = s.created_at.astimezone(zoneinfo.ZoneInfo(ctx.time_zone))
    due = (local + timedelta(days=ctx.referral_within_days)).date().isoformat()
    referral = {"coding": [_coding(codes.SNOMED, "3457005", "Patient referral")]}
    supporting = [_ref("Observation", f"{key}/risk-band")]
    if photo is not None:
        supporting.insert(0, _ref("Media", key))
    if r.features:
        supporting.append(_ref("Observation", f"{key}/abcd-features"))
    return _resource(
        "ServiceRequest",
        key,
        identifier=[_ident("referral", key)],
        status="active",
        intent="order",
        category=[referral],
        code=referral | {"text": "Referral to a doctor for a skin lesion (screening kiosk: referral aid)"},
        subject=_ref("Patient", key),
        encounter=_ref("Encounter", key),
        occurrencePeriod={"start": _instant(s.created_at), "end": due},
        authoredOn=_instant(s.created_at),
        requester=_ref("Organization", f"station/{ctx.station.code}"),
        performer=[_ref("Organization", f"facility/{ctx.referral_facility}")] if ctx.referral_facility else None,
        reasonCode=[_local_code("referral-reason", reason_code, reason_text)],
        reasonReference=[_ref("Observation", f"{key}/risk-band")],
        supportingInfo=supporting,
        bodySite=[_body_site(info.body_site)] if info.body_site else None,
    )


def _provenance(s: StoredScreening, ctx: ExportContext, key: str, targets: list[Resource]) -> Resource:
    entity = None
    if any(t["resourceType"] == "Media" for t in targets):
        entity = [{"role": "source", "what": _ref("Media", key)}]
    return _resource(
        "Provenance",
        key,
        target=[{"reference": f"{t['resourceType']}/{t['id']}"} for t in targets],
        recorded=_instant(s.created_at),
        agent=[
            {
                "type": {"coding": [_coding(codes.PROVENANCE_AGENT_TYPE, "performer", "Performer")]},
                "who": _ref("Device", _device_key(ctx, s.result.model_sha256)),
                "onBehalfOf": _ref("Organization", f"station/{ctx.station.code}"),
            }
        ],
        entity=entity,
    )


def screening_resources(s: StoredScreening, ctx: ExportContext, *, photo: PhotoFile | None = None) -> list[Resource]:
    """Every resource one screening needs, the shared ones (station, facility, device) included.

    The shared resources come first; they have the same id and content for
    every screening that refers to them, so a writer keeps one of each.
    """
    key = f"{_station_of(s, ctx)}/{s.id}"
    shared: list[Resource] = [station_organization(ctx), station_location(ctx)]
    refer = s.result.status == "ok" and s.result.risk == "refer"
    if refer and ctx.referral_facility:
        shared.append(facility_organization(ctx.referral_facility))
    shared.append(kiosk_device(ctx, s.result.model_sha256))
    own: list[Resource] = [_patient(s, ctx, key), _encounter(s, ctx, key)]
    if photo is not None:
        own.append(_media(s, ctx, key, photo))
    own.extend(_observations(s, ctx, key, photo))
    if refer:
        own.append(_referral(s, ctx, key, photo))
    own.append(_provenance(s, ctx, key, own))
    return shared + own
