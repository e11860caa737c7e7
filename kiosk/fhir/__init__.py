"""FHIR R4 records for the rural health unit: the export (NDJSON, Bulk Data layout) and the outcomes that come back.

- :mod:`kiosk.fhir.mapping`: a stored screening -> its resources (pure).
- :mod:`kiosk.fhir.export`: incremental, atomic exports into a folder, and their verification.
- :mod:`kiosk.fhir.outcomes`: the RHU's outcome Observations -> :class:`kiosk.records.ClinicalOutcome`.
- :mod:`kiosk.fhir.usb`: the same by USB stick (settings page).

The contract (layout, identifiers, codes) is docs/FHIR.md.
"""

from __future__ import annotations

from .mapping import ExportContext, PhotoFile, StationInfo, screening_resources

__all__ = ["ExportContext", "PhotoFile", "StationInfo", "screening_resources"]
