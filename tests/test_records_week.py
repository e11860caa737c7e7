"""The records a health centre's week needs: slip codes, body-map regions, follow-ups, outcomes, migration."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from kiosk.records import (
    BODY_REGIONS,
    ClinicalOutcome,
    InvalidOutcome,
    InvalidPatientInfo,
    PatientInfo,
    RecordStore,
    codes,
)
from kiosk.result import ScreeningResult

RESULT = ScreeningResult(status="ok", malignant_probability=0.7, risk="refer", threshold=0.14)


def test_check_digit_catches_every_single_error_and_neighbour_swap() -> None:
    code = codes.new_code()
    assert codes.is_valid(code) and len(code) == 9
    for i in range(9):
        for d in "0123456789":
            if d != code[i]:
                assert not codes.is_valid(code[:i] + d + code[i + 1 :])
    for i in range(8):
        if code[i] != code[i + 1]:
            assert not codes.is_valid(code[:i] + code[i + 1] + code[i] + code[i + 2 :])
    assert not codes.is_valid("12345678") and not codes.is_valid("abcdefghi") and not codes.is_valid(None)  # type: ignore[arg-type]


def test_body_map_covers_the_required_regions() -> None:
    required = {"head-neck", "trunk-front", "trunk-back", "genital"}
    for side in ("left", "right"):
        required |= {f"{side}-{p}" for p in ("upper-arm", "forearm", "hand", "palm", "thigh", "lower-leg", "foot")}
        required |= {f"{side}-{p}" for p in ("sole", "fingernail", "toenail")}
    assert required <= set(BODY_REGIONS)
    assert PatientInfo(body_site="right-sole").acral and PatientInfo(body_site="left-fingernail").acral
    assert not PatientInfo(body_site="left-forearm").acral
    with pytest.raises(InvalidPatientInfo, match="age 30 is not in the age band 60-74"):
        PatientInfo(age=30, age_band="60-74")
    with pytest.raises(InvalidPatientInfo, match="skin_type"):
        PatientInfo(skin_type=7)
    assert PatientInfo.from_dict({"skin_type": "4", "age_band": "15-29"}) == PatientInfo(skin_type=4, age_band="15-29")


def test_each_record_has_a_unique_code_and_is_found_by_it(tmp_path: Path) -> None:
    with RecordStore(tmp_path, station_code="PH-LEY-0001") as store:
        ids = [store.save(RESULT, patient=PatientInfo(body_site="left-palm", age_band="45-59")) for _ in range(30)]
        got = [store.get(sid) for sid in ids]
        assert all(g is not None and g.code and codes.is_valid(g.code) for g in got)
        assert len({g.code for g in got if g}) == 30
        first = got[0]
        assert first is not None and first.code is not None
        assert first.station_code == "PH-LEY-0001"
        assert first.patient == PatientInfo(body_site="left-palm", age_band="45-59")
        found = store.get_by_code(codes.format_code(first.code))
        assert found is not None and found.id == first.id
        wrong = first.code[:-1] + str((int(first.code[-1]) + 1) % 10)
        assert store.get_by_code(wrong) is None  # a mistyped digit finds nothing, not another patient
        assert [s.id for s in store.find_by_code_prefix(first.code[:9])] == [first.id]
        assert store.find_by_code_prefix("x1") == []


def test_followup_links_and_change_round_trip(tmp_path: Path) -> None:
    with RecordStore(tmp_path) as store:
        first = store.save(RESULT, patient=PatientInfo(body_site="trunk-back"))
        change = {"diameter_mm": [5.0, 6.5], "significant": True}
        second = store.save(RESULT, followup_of=first, followup=change)
        got = store.get(second)
        assert got is not None and got.followup_of == first and got.followup == change
        assert [s.id for s in store.followups(first)] == [second]
        with pytest.raises(ValueError, match="followup_of names no stored screening"):
            store.save(RESULT, followup_of="20250101-000000-0000")
        assert store.count() == 2


def test_outcomes_are_idempotent_and_the_newest_counts(tmp_path: Path) -> None:
    t0 = datetime(2026, 3, 1, 9, tzinfo=UTC)
    with RecordStore(tmp_path) as store:
        sid = store.save(RESULT)
        first = ClinicalOutcome(screening_id=sid, outcome="not_seen", recorded_at=t0)
        later = ClinicalOutcome(
            screening_id=sid,
            outcome="melanoma",
            recorded_at=t0 + timedelta(days=20),
            seen_on=date(2026, 3, 18),
            note="excision, Breslow 0.6 mm",
            source="rhu:Tacloban RHU",
        )
        assert store.record_outcome(first) and store.record_outcome(later)
        assert not store.record_outcome(later)  # imported twice: stored once
        assert store.outcomes(sid) == [first, later]
        assert store.latest_outcome(sid) == later and store.latest_outcomes() == {sid: later}
        with pytest.raises(ValueError, match="no screening"):
            store.record_outcome(ClinicalOutcome(screening_id="nope", outcome="benign", recorded_at=t0))
    with pytest.raises(InvalidOutcome, match="outcome must be one of"):
        ClinicalOutcome(screening_id=sid, outcome="cured", recorded_at=t0)  # type: ignore[arg-type]
    with pytest.raises(InvalidOutcome, match="time zone"):
        ClinicalOutcome(screening_id=sid, outcome="benign", recorded_at=datetime(2026, 1, 1))


def test_purge_removes_outcomes_with_their_screening(tmp_path: Path) -> None:
    now = datetime(2026, 6, 1, tzinfo=UTC)
    clock = [now - timedelta(days=400)]
    with RecordStore(tmp_path, retention_days=365, clock=lambda: clock[0]) as store:
        old = store.save(RESULT)
        store.record_outcome(ClinicalOutcome(screening_id=old, outcome="benign", recorded_at=clock[0]))
        clock[0] = now
        assert store.purge_expired(now) == 1
        assert store.latest_outcomes() == {}


def test_a_version_1_database_is_migrated_and_old_records_get_codes(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "records.sqlite3")
    conn.executescript(
        """CREATE TABLE screenings (id TEXT PRIMARY KEY, created_at TEXT NOT NULL, status TEXT NOT NULL,
        reason TEXT, malignant_probability REAL, risk TEXT, threshold REAL, model_sha256 TEXT,
        features_json TEXT NOT NULL, quality_json TEXT NOT NULL, timings_json TEXT NOT NULL, image_file TEXT,
        patient_age INTEGER, patient_sex TEXT, patient_body_site TEXT);
        INSERT INTO screenings VALUES ('20250314-093015-k3f9', '2025-03-14T09:30:15.000000+00:00', 'ok', NULL,
        0.1, 'low', 0.5, NULL, '{}', '{}', '{}', NULL, 54, 'female', 'trunk');
        PRAGMA user_version = 1;"""
    )
    conn.close()
    with RecordStore(tmp_path) as store:
        old = store.get("20250314-093015-k3f9")
        assert old is not None and old.code is not None and codes.is_valid(old.code)
        assert old.patient == PatientInfo(age=54, sex="female", body_site="trunk")
        assert store.get_by_code(old.code) == old
