"""From a kiosk's FHIR resources to one row of the console's ``screenings`` table.

The kiosk's export (docs/FHIR.md) is Encounter-centred: one Encounter per
screening, and the Patient, Observations, Media and ServiceRequest of that
screening point at it (``encounter`` / ``subject``). The Encounter's id is the
stable key (station code + screening id), so a second import of the same
screening updates its row instead of adding one.

The mapping reads codes where the export has them and falls back on the
resource's text, so a small change in the exporter's coding does not lose a
field; the raw resources are kept beside the row (``resources_json``).

>>> enc = {"resourceType": "Encounter", "id": "PH-LEY-0001-20260301-101500-0001",
...        "period": {"start": "2026-03-01T10:15:00+00:00"}, "subject": {"reference": "Patient/p1"}}
>>> row = screening_row(enc, [], station_code="PH-LEY-0001")
>>> row["key"], row["created_at"], row["referred"]
('PH-LEY-0001-20260301-101500-0001', '2026-03-01T10:15:00+00:00', 0)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

__all__ = ["ScreeningResources", "reference_id", "screening_row"]

ScreeningResources = list[Mapping[str, Any]]


def reference_id(ref: Any) -> str | None:
    """``{"reference": "Patient/abc"}`` -> ``abc``."""
    if isinstance(ref, Mapping) and isinstance(ref.get("reference"), str):
        return str(ref["reference"]).rsplit("/", 1)[-1]
    return None


def _codes(concept: Any) -> list[str]:
    """Every code and the text of a CodeableConcept, lowercased."""
    found: list[str] = []
    if isinstance(concept, Mapping):
        for coding in concept.get("coding") or ():
            if isinstance(coding, Mapping):
                found += [str(coding.get(k, "")).lower() for k in ("code", "display") if coding.get(k)]
        if concept.get("text"):
            found.append(str(concept["text"]).lower())
    return found


def _first_code(concept: Any) -> str | None:
    if isinstance(concept, Mapping):
        for coding in concept.get("coding") or ():
            if isinstance(coding, Mapping) and coding.get("code"):
                return str(coding["code"])
        if concept.get("text"):
            return str(concept["text"])
    return None


def _value(resource: Mapping[str, Any]) -> Any:
    for key in ("valueQuantity", "valueCodeableConcept", "valueString", "valueBoolean", "valueInteger"):
        if key in resource:
            value = resource[key]
            if key == "valueQuantity":
                return value.get("value") if isinstance(value, Mapping) else None
            if key == "valueCodeableConcept":
                return _first_code(value)
            return value
    return None


def _identifier(resource: Mapping[str, Any], *words: str) -> str | None:
    for ident in resource.get("identifier") or ():
        if isinstance(ident, Mapping) and any(w in str(ident.get("system", "")).lower() for w in words):
            value = ident.get("value")
            return str(value) if value is not None else None
    return None


def _utc_iso(text: Any) -> str | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


def screening_row(
    encounter: Mapping[str, Any], related: Iterable[Mapping[str, Any]], *, station_code: str | None
) -> dict[str, Any]:
    """The ``screenings`` row for one Encounter and the resources that point at it."""
    related = list(related)
    key = str(encounter["id"])
    row: dict[str, Any] = {
        "key": key,
        "station_code": station_code or _identifier(encounter, "station") or key.rsplit("-", 4)[0],
        "screening_id": _identifier(encounter, "screening") or key,
        "code": None,
        "created_at": _utc_iso((encounter.get("period") or {}).get("start")) or "",
        "status": None,
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
        "photo": None,  # the Media's attachment: {"data": base64} or {"url": file beside the export}
    }
    for resource in related:
        kind = resource.get("resourceType")
        if kind == "Patient":
            row["code"] = _identifier(resource, "slip", "code") or row["code"]
            row["sex"] = resource.get("gender") or row["sex"]
            for ext in resource.get("extension") or ():
                if isinstance(ext, Mapping) and "age" in str(ext.get("url", "")).lower():
                    row["age_band"] = _value(ext) or ext.get("valueString") or _first_code(ext.get("valueCoding"))
        elif kind == "Observation":
            _observation(row, resource)
        elif kind == "ServiceRequest":
            row["referred"] = 1
            occurrence = resource.get("occurrencePeriod") or {}
            due = resource.get("occurrenceDateTime") or occurrence.get("end") or occurrence.get("start")
            row["due_date"] = str(due)[:10] if due else None
            for performer in resource.get("performer") or ():
                if isinstance(performer, Mapping):
                    row["facility"] = performer.get("display") or reference_id(performer)
            if resource.get("bodySite") and not row["body_site"]:
                row["body_site"] = _first_code(resource["bodySite"][0])
        elif kind == "Media":
            content = resource.get("content")
            if isinstance(content, Mapping):
                row["photo"] = content
            if resource.get("bodySite") and not row["body_site"]:
                row["body_site"] = _first_code(resource["bodySite"])
    return row


def _observation(row: dict[str, Any], obs: Mapping[str, Any]) -> None:
    words = _codes(obs.get("code"))
    value = _value(obs)
    if obs.get("bodySite") and not row["body_site"]:
        row["body_site"] = _first_code(obs["bodySite"])
    if any("risk" in w for w in words):
        row["risk"] = value
    elif any("probab" in w or "score" in w for w in words):
        row["probability"] = float(value) if isinstance(value, int | float) else None
    elif any("threshold" in w for w in words):
        row["threshold"] = float(value) if isinstance(value, int | float) else None
    elif any("quality" in w or "status" in w for w in words) and isinstance(value, str):
        row["status"] = value
    elif any("abcd" in w or "feature" in w for w in words) or obs.get("component"):
        for comp in obs.get("component") or ():
            if isinstance(comp, Mapping):
                name = _first_code(comp.get("code"))
                if name:
                    row["features"][name] = _value(comp)
    if obs.get("component") and any("risk" in w for w in words):
        for comp in obs["component"]:
            name = _first_code(comp.get("code")) or ""
            if "probab" in name.lower() or "score" in name.lower():
                comp_value = _value(comp)
                row["probability"] = float(comp_value) if isinstance(comp_value, int | float) else row["probability"]


def resources_json(resources: Iterable[Mapping[str, Any]]) -> str:
    """The raw resources, photo data left out (the photo is a file)."""
    slim = []
    for r in resources:
        if r.get("resourceType") == "Media" and isinstance(r.get("content"), Mapping) and "data" in r["content"]:
            r = {**r, "content": {k: v for k, v in r["content"].items() if k != "data"}}
        slim.append(r)
    return json.dumps(slim, separators=(",", ":"), sort_keys=True)
