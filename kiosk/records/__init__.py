"""Screening records on the kiosk: the store, what is known of the patient, slip codes and outcomes.

- :mod:`kiosk.records.store`: :class:`RecordStore`, SQLite that survives a power cut.
- :mod:`kiosk.records.patient`: :class:`PatientInfo` and the body map's regions.
- :mod:`kiosk.records.codes`: the nine-digit slip code that finds a screening again.
- :mod:`kiosk.records.outcomes`: :class:`ClinicalOutcome`, what the doctor found.
"""

from __future__ import annotations

from . import codes
from .outcomes import OUTCOMES, ClinicalOutcome, InvalidOutcome
from .patient import (
    ACRAL_GROUPS,
    AGE_BANDS,
    BODY_REGIONS,
    BODY_SITE_GROUPS,
    BODY_SITES,
    SEXES,
    InvalidPatientInfo,
    PatientInfo,
)
from .store import ExportBatch, RecordStore, RecordStoreError, RepairSummary, StorageFullError, StoredScreening

__all__ = [
    "ACRAL_GROUPS",
    "AGE_BANDS",
    "BODY_REGIONS",
    "BODY_SITES",
    "BODY_SITE_GROUPS",
    "OUTCOMES",
    "SEXES",
    "ClinicalOutcome",
    "ExportBatch",
    "InvalidOutcome",
    "InvalidPatientInfo",
    "PatientInfo",
    "RecordStore",
    "RecordStoreError",
    "RepairSummary",
    "StorageFullError",
    "StoredScreening",
    "codes",
]
