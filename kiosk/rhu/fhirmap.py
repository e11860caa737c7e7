"""From a kiosk's FHIR resources (docs/FHIR.md) to one row of the console's ``screenings`` table.

The export is Encounter-centred: one Encounter per screening, and that
screening's Observations, Media and ServiceRequest point at it (``encounter``),
its Patient is the Encounter's ``subject``. The row's key is the Encounter's
screening identifier, ``<station code>/<screening id>``: the resource ids are a
pure function of it (uuid5), so keying on either is the same upsert, and the
identifier is the one a person can read. The raw resources are kept beside the
row (``resources_json``) for audit and re-mapping.

>>> enc = {"resourceType": "Encounter", "id": "e1", "period": {"start": "2026-03-01T10:15:00+00:00"},
...        "identifier": [{"system": "urn:melanoma-kiosk:screening", "value": "PH-LEY-0001/20260301-101500-0001"}]}
>>> row = screening_row(enc, [], organizations={})
>>> row["key"], row["station_code"], row["screening_id"], row["referred"]
('PH-LEY-0001/20260301-101500-0001', 'PH-LEY-0001', '20260301-101500-0001', 0)
>>> age_band({"url": AGE_BAND_URL, "valueRange": {"low": {"value": 75}}})
'75-plus'
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

__all__ = [
    "AGE_BAND_URL",
    "DUE_DATE_ZONE",
    "age_band",
    "identifier",
    "reference_id",
    "resource_id",
    "resources_json",
    "screening_row",
]

URN = "urn:melanoma-kiosk"
SCREENING, SLIP_CODE, REFERRAL, FACILITY = (f"{URN}:{n}" for n in ("screening", "slip-code", "referral", "facility"))
OBSERVATION_CODES = f"{URN}:CodeSystem:observation"
BODY_SITE_CODES = f"{URN}:CodeSystem:body-site"
AGE_BAND_URL = f"{URN}:StructureDefinition:age-band"
#: A referral's due date is the end of its occurrencePeriod (a UTC instant), read as a day in the Philippines.
DUE_DATE_ZONE = ZoneInfo("Asia/Manila")
_NS = uuid.uuid5(uuid.NAMESPACE_URL, URN)

ScreeningResources = list[Mapping[str, Any]]


def resource_id(resource_type: str, identifier_value: str) -> str:
    """The export's id for a resource (docs/FHIR.md §2): ``uuid5(NS, "<type>/<identifier value>")``."""
    return str(uuid.uuid5(_NS, f"{resource_type}/{identifier_value}"))


def reference_id(ref: Any) -> str | None:
    """``{"reference": "Patient/abc"}`` -> ``abc``."""
    if isinstance(ref, Mapping) and isinstance(ref.get("reference"), str):
        return str(ref["reference"]).rsplit("/", 1)[-1]
    return None


def identifier(resource: Mapping[str, Any], system: str) -> str | None:
    for ident in resource.get("identifier") or ():
        if isinstance(ident, Mapping) and ident.get("system") == system and isinstance(ident.get("value"), str):
            return str(ident["value"])
    return None


def _code(concept: Any, system: str | None = None) -> str | None:
    """The first code of a CodeableConcept (of ``system`` when given)."""
    if isinstance(concept, Mapping):
        for coding in concept.get("coding") or ():
            if (
                isinstance(coding, Mapping)
                and coding.get("code")
                and (system is None or coding.get("system") == system)
            ):
                return str(coding["code"])
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, Mapping):
        value = value.get("value")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _component_value(comp: Mapping[str, Any]) -> Any:
    if "valueQuantity" in comp:
        return _number(comp["valueQuantity"])
    if "valueInteger" in comp:
        return comp["valueInteger"]
    if "valueString" in comp:
        return comp["valueString"]
    if "valueCodeableConcept" in comp:
        return [c.get("code") for c in comp["valueCodeableConcept"].get("coding") or () if isinstance(c, Mapping)]
    return None


def age_band(extension: Mapping[str, Any]) -> str | None:
    """The age band (``45-59``, ``75-plus``) from the Patient's age-band extension's ``valueRange``."""
    rng = extension.get("valueRange")
    if not isinstance(rng, Mapping):
        return None
    low, high = _number(rng.get("low")), _number(rng.get("high"))
    if low is None:
        return None
    return f"{int(low)}-plus" if high is None else f"{int(low)}-{int(high)}"


def _instant(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _due_date(text: Any) -> str | None:
    if isinstance(text, str) and len(text) == 10:  # a plain date
        return text
    moment = _instant(text)
    return moment.astimezone(DUE_DATE_ZONE).date().isoformat() if moment else None


def screening_row(
    encounter: Mapping[str, Any],
    related: Iterable[Mapping[str, Any]],
    *,
    organizations: Mapping[str, Mapping[str, Any]],
    station_code: str | None = None,
) -> dict[str, Any]:
    """The ``screenings`` row for one Encounter and the resources of its screening."""
    key = identifier(encounter, SCREENING) or str(encounter["id"])
    station, _, screening_id = key.partition("/")
    started = _instant((encounter.get("period") or {}).get("start"))
    row: dict[str, Any] = {
        "key": key,
        "station_code": station if screening_id else (station_code or ""),
        "screening_id": screening_id or key,
        "code": None,
        "created_at": started.isoformat() if started else "",
        "status": "ok",
        "risk": None,
        "probability": None,
        "threshold": None,
        "features": {},
        "body_site": None,
        "age_band": None,
        "sex": None,
        "referred": 0,
        "due_date": None,
        "facility": None,
        "photo": None,  # the Media's attachment: {"url": file beside the export} (or inline "data")
    }
    for resource in related:
        kind = resource.get("resourceType")
        site = resource.get("bodySite")
        site = site[0] if isinstance(site, list) and site else site
        if site and not row["body_site"]:
            row["body_site"] = _code(site, BODY_SITE_CODES) or _code(site)
        if kind == "Patient":
            slip = identifier(resource, SLIP_CODE)
            row["code"] = slip.rsplit("/", 1)[-1] if slip else None
            row["sex"] = resource.get("gender")
            for ext in resource.get("extension") or ():
                if isinstance(ext, Mapping) and ext.get("url") == AGE_BAND_URL:
                    row["age_band"] = age_band(ext)
        elif kind == "Observation":
            _observation(row, resource)
        elif kind == "ServiceRequest":
            row["referred"] = 1
            row["due_date"] = _due_date((resource.get("occurrencePeriod") or {}).get("end"))
            for performer in resource.get("performer") or ():
                org = organizations.get(reference_id(performer) or "")
                row["facility"] = (org or {}).get("name") or (performer or {}).get("display") or row["facility"]
        elif kind == "Media" and isinstance(resource.get("content"), Mapping):
            row["photo"] = resource["content"]
    return row


def _observation(row: dict[str, Any], obs: Mapping[str, Any]) -> None:
    code = _code(obs.get("code"), OBSERVATION_CODES)
    if code == "risk-band":
        if obs.get("status") == "cancelled":  # a retake or an error: no result
            notes = [n.get("text") for n in obs.get("note") or () if isinstance(n, Mapping)]
            row["status"] = "retake" if _code(obs.get("dataAbsentReason")) == "not-performed" else "error"
            row["features"]["reason"] = notes[0] if notes else None
        else:
            row["risk"] = _code(obs.get("valueCodeableConcept"))
    elif code == "malignant-probability":
        row["probability"] = _number(obs.get("valueQuantity"))
        for comp in obs.get("component") or ():
            if _code(comp.get("code")) == "decision-threshold":
                row["threshold"] = _number(comp.get("valueQuantity"))
    elif code == "abcd-features":
        for comp in obs.get("component") or ():
            name = _code(comp.get("code"))
            if name:
                row["features"][name] = _component_value(comp)
    elif code == "fitzpatrick-skin-type":
        row["features"]["skin-type"] = obs.get("valueInteger")


def resources_json(resources: Iterable[Mapping[str, Any]]) -> str:
    """The raw resources, inline photo data left out (the photo is a file)."""
    slim = []
    for r in resources:
        if r.get("resourceType") == "Media" and isinstance(r.get("content"), Mapping) and "data" in r["content"]:
            r = {**r, "content": {k: v for k, v in r["content"].items() if k != "data"}}
        slim.append(r)
    return json.dumps(slim, separators=(",", ":"), sort_keys=True)
