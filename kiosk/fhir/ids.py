"""Stable FHIR ids: a pure function of the identifier, so a second export of a screening is the same resource.

``resource_id(type, value) = uuid5(NS, f"{type}/{value}")`` with
``NS = uuid5(NAMESPACE_URL, "urn:melanoma-kiosk")``; the RHU console can
compute the same id from an identifier (docs/FHIR.md, section 2).

>>> value = "PH-LEY-0001/20260301-021500-00k3"
>>> resource_id("Patient", value) == resource_id("Patient", value), resource_id("Patient", value)[:8]
(True, 'd1db715d')
>>> len(resource_id("Encounter", "x" * 200))  # always a valid FHIR id (at most 64 characters)
36
"""

from __future__ import annotations

import uuid

from .codes import BASE

__all__ = ["NAMESPACE", "reference", "resource_id"]

NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, BASE)


def resource_id(resource_type: str, identifier_value: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{resource_type}/{identifier_value}"))


def reference(resource_type: str, identifier_value: str) -> str:
    """The relative reference (``Patient/<id>``) to the resource with this identifier value."""
    return f"{resource_type}/{resource_id(resource_type, identifier_value)}"
