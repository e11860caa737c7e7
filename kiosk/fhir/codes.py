"""Code systems, identifier systems and profiles the FHIR export uses (docs/FHIR.md is the contract).

Local systems are URNs under ``urn:melanoma-kiosk`` until the DOH assigns
namespaces; PH Core profile URLs are those of the draft PH Core IG 0.2.0.

>>> profile("Patient")
'http://doh.gov.ph/fhir/ph-core/StructureDefinition/ph-core-patient'
>>> profile("Media") is None  # PH Core has no profile for images
True
>>> snomed_body_structure("left-palm")
('21547004', 'Palm (region) structure')
"""

from __future__ import annotations

from ..records.patient import body_site_group

__all__ = [
    "BASE",
    "OBSERVATION_CODES",
    "PH_CORE",
    "SNOMED",
    "UCUM",
    "body_site_text",
    "profile",
    "snomed_body_structure",
    "system",
]

BASE = "urn:melanoma-kiosk"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
LOINC = "http://loinc.org"
DICOM = "http://dicom.nema.org/resources/ontology/DCM"
V3_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
V3_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
DATA_ABSENT_REASON = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
MEDIA_TYPE = "http://terminology.hl7.org/CodeSystem/media-type"
ORGANIZATION_TYPE = "http://terminology.hl7.org/CodeSystem/organization-type"
PROVENANCE_AGENT_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"

PH_CORE = "http://doh.gov.ph/fhir/ph-core/StructureDefinition/"
_PH_CORE_PROFILES = {
    "Patient": "ph-core-patient",
    "Encounter": "ph-core-encounter",
    "Observation": "ph-core-observation",
    "Organization": "ph-core-organization",
    "Location": "ph-core-location",
    "Provenance": "ph-core-provenance",
    "ServiceRequest": "ph-core-serviceRequest",  # sic: the IG's id is camel-case
}

#: Observation codes (local: no LOINC code exists for an AI model's photo measures).
OBSERVATION_CODES = {
    "risk-band": "Skin lesion referral risk band (screening model)",
    "malignant-probability": "Model probability of malignancy (screening model)",
    "abcd-features": "ABCD features of the lesion measured on the photo",
    "image-quality": "Photo quality measures (quality gate)",
    "fitzpatrick-skin-type": "Fitzpatrick skin type (as given by the health worker)",
    "clinical-outcome": "What the doctor found (outcome of the referral)",
}

# SNOMED CT body structures for the body map's groups (regions add laterality in the local code and text).
_SNOMED_GROUPS = {
    "head_neck": ("774007", "Structure of head and/or neck"),
    "trunk": ("22943007", "Trunk structure"),
    "upper_limb": ("53120007", "Upper limb structure"),
    "lower_limb": ("61685007", "Lower limb structure"),
}
_SNOMED_ACRAL = {
    "palm": ("21547004", "Palm (region) structure"),
    "sole": ("76986006", "Skin structure of sole of foot"),
}


def system(name: str) -> str:
    """A local identifier or code system: ``system("screening")`` -> ``urn:melanoma-kiosk:screening``."""
    return f"{BASE}:{name}"


def profile(resource_type: str) -> str | None:
    """The PH Core profile for a resource type, or None where PH Core has none (Media, Device)."""
    name = _PH_CORE_PROFILES.get(resource_type)
    return PH_CORE + name if name else None


def snomed_body_structure(site: str) -> tuple[str, str] | None:
    """SNOMED CT (code, display) for a body-map region or group; None for nail, genital and other."""
    for part, coded in _SNOMED_ACRAL.items():
        if site.endswith(part):
            return coded
    group = body_site_group(site)
    return _SNOMED_GROUPS.get(group) if group else None


def body_site_text(site: str) -> str:
    """English words for a region or group: ``left-forearm`` -> ``left forearm``, ``head_neck`` -> ``head and neck``."""
    return (
        site.replace("head-neck", "head and neck")
        .replace("head_neck", "head and neck")
        .replace("-", " ")
        .replace("_", " ")
    )
