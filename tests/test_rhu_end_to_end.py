"""A screening taken at a kiosk reaches the RHU console through a folder (the stick), its outcome comes back.

Uses the kiosk's own FHIR exporter and outcome importer (kiosk/fhir/, the ``fhir`` branch); skips until
they are in the tree. Runs on SQLite and on the PostgreSQL fixture.
"""

from __future__ import annotations

import json
import shutil
from datetime import date, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from kiosk.records import RecordStore
from kiosk.rhu.db import Database
from kiosk.rhu.importer import import_tree
from kiosk.rhu.outcomes import record_outcome
from kiosk.rhu.photos import PhotoStore
from kiosk.rhu.queries import find_by_code, referrals
from kiosk.validation import report_from_store
from tests.rhu_conftest import pg_url, rhu_db  # noqa: F401 - fixtures

fhir_export = pytest.importorskip("kiosk.fhir.export", reason="the kiosk's FHIR exporter (kiosk/fhir/) is not here")
fhir_outcomes = pytest.importorskip("kiosk.fhir.outcomes", reason="the kiosk's outcome import is not here")
fhir_data = pytest.importorskip("tests.fhir_data", reason="the FHIR test data (tests/fhir_data.py) is not here")


def test_kiosk_export_to_console_and_outcome_back(rhu_db: Database, tmp_path: Path) -> None:
    with RecordStore(tmp_path / "kiosk", station_code=fhir_data.STATION) as store:
        ids = fhir_data.fill(store)
        fhir_export.export_fhir(store, tmp_path / "stick" / "exports", context=fhir_data.CONTEXT)
        photos = PhotoStore(tmp_path / "rhu" / "photos")
        first = import_tree(rhu_db, photos, tmp_path / "stick")
        assert [(s.station_code, s.screenings, s.new) for s in first] == [(fhir_data.STATION, 6, 6)]
        again = import_tree(rhu_db, photos, tmp_path / "stick")
        assert [s.new for s in again] == [0]
        referred = store.get(ids["refer"])
        assert referred is not None and referred.code
        (row,) = [r for r in referrals(rhu_db) if r["screening_id"] == ids["refer"]]
        assert row["key"] == f"{fhir_data.STATION}/{ids['refer']}" and row["code"] == referred.code
        assert (row["risk"], row["body_site"], row["age_band"], row["sex"]) == (
            "refer",
            "left-forearm",
            "45-59",
            "female",
        )
        assert row["probability"] == pytest.approx(0.83) and row["threshold"] == pytest.approx(0.5)
        assert row["features"]["asymmetry"] == pytest.approx(0.31) and row["features"]["colour-count"] == 2
        assert row["facility"] == fhir_data.FACILITY
        due = (referred.created_at + timedelta(days=14)).astimezone(ZoneInfo("Asia/Manila")).date()
        assert row["due_date"] == due.isoformat()
        assert photos.get(row["photo_sha256"]) == referred.image_path.read_bytes()  # type: ignore[union-attr]
        assert [r["key"] for r in find_by_code(rhu_db, referred.code)] == [row["key"]]
        # The doctor records the outcome; the station's outbound folder goes back on the stick.
        record_outcome(
            rhu_db, tmp_path / "outbound", key=row["key"], outcome="melanoma", seen_on=date.today(),
            biopsy="melanoma", recorded_by="dr.cruz", facility="Palo RHU", facility_code="RHU-PALO",
        )  # fmt: skip
        stick_outcomes = tmp_path / "stick2"
        shutil.copytree(tmp_path / "outbound" / fhir_data.STATION, stick_outcomes)
        summary = fhir_outcomes.import_outcomes(store, stick_outcomes, station_code=fhir_data.STATION)
        assert summary.imported == 1
        latest = store.latest_outcome(ids["refer"])
        assert latest is not None and (latest.outcome, latest.source) == ("melanoma", "rhu:RHU-PALO")
        assert latest.note == "biopsy: melanoma"
        # ...and the kiosk's own validation report counts it as a referred, confirmed melanoma.
        report = report_from_store(store)
        assert report.overall.melanoma_referred == 1 and report.outcomes.get("melanoma") == 1
        assert report.confirmed == 1
        again_summary = fhir_outcomes.import_outcomes(store, stick_outcomes, station_code=fhir_data.STATION)
        assert again_summary.imported == 0
        assert report_from_store(store).confirmed == 1  # a second import counts nothing twice
        lines = [json.loads(p.read_text()) for p in (stick_outcomes / "outcomes").glob("*.ndjson")]
        assert len(lines) == 1
