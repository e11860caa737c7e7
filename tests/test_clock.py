"""kiosk/clock.py and kiosk/daily.py: is the clock plausible, setting it, and today's summary."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from datetime import UTC, date, datetime, timedelta

import pytest

from kiosk.clock import ClockError, ClockGuard, local_time, set_system_time, software_date
from kiosk.daily import daily_summary
from kiosk.records import RecordStore
from kiosk.records.outcomes import ClinicalOutcome
from kiosk.result import ScreeningResult
from kiosk.web.centre import step_time

FLOOR = datetime(2026, 12, 1, tzinfo=UTC)
T = datetime(2026, 12, 2, 1, 30, tzinfo=UTC)


class Wall:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def guard_at(tmp_path, wall, **kwargs) -> ClockGuard:
    return ClockGuard(state_path=tmp_path / "clock.json", floor=FLOOR, now=wall, **kwargs)


def saved(tmp_path) -> datetime:
    return datetime.fromisoformat(json.loads((tmp_path / "clock.json").read_text())["last_seen"])


def test_a_clock_before_the_build_date_is_implausible_and_not_remembered(tmp_path):
    wall = Wall(datetime(2024, 1, 1, tzinfo=UTC))  # fake-hwclock missing: the image's date
    check = guard_at(tmp_path, wall).check()
    assert (check.plausible, check.reason, check.floor) == (False, "clock_before_build", FLOOR)
    assert not (tmp_path / "clock.json").exists()
    wall.now = T
    assert guard_at(tmp_path, wall).check().plausible
    assert saved(tmp_path) == T


def test_a_clock_that_went_back_after_a_restart_is_caught(tmp_path):
    wall = Wall(T)
    assert guard_at(tmp_path, wall).check().plausible
    # A power cut on a Pi 4: fake-hwclock brings back its save of an hour ago.
    wall.now = T - timedelta(hours=1)
    check = guard_at(tmp_path, wall).check()
    assert (check.reason, check.last_seen) == ("clock_jumped_back", T)
    assert saved(tmp_path) == T  # the reference stays: the clock is still wrong after another restart
    wall.now = T - timedelta(minutes=4)  # within the tolerance: two page loads, a second apart, not a jump
    assert guard_at(tmp_path, wall).check().plausible


def test_the_last_seen_time_is_written_at_most_once_a_minute(tmp_path):
    wall = Wall(T)
    guard = guard_at(tmp_path, wall)
    guard.check()
    wall.now = T + timedelta(seconds=30)
    guard.check()
    assert saved(tmp_path) == T
    wall.now = T + timedelta(seconds=61)
    guard.check()
    assert saved(tmp_path) == T + timedelta(seconds=61)
    assert [p.name for p in tmp_path.iterdir()] == ["clock.json"]  # no temporary file left behind


def test_setting_the_time_by_hand_becomes_the_reference(tmp_path):
    ahead = T + timedelta(days=400)  # the clock had run ahead; records were dated a year early
    wall = Wall(ahead)
    set_to = []
    guard = guard_at(tmp_path, wall, setter=set_to.append)
    assert guard.check().plausible
    guard.set_time(T)
    assert set_to == [T] and saved(tmp_path) == T
    wall.now = T + timedelta(seconds=5)
    assert guard_at(tmp_path, wall).check().plausible  # not "jumped back": the worker set it

    with pytest.raises(ClockError) as early:
        guard.set_time(datetime(2025, 12, 2, tzinfo=UTC))
    assert early.value.code == "clock_set_too_early" and early.value.params == {"date": "2026-12-01"}
    with pytest.raises(ClockError) as late:
        guard.set_time(datetime(2090, 1, 1, tzinfo=UTC))
    assert late.value.code == "clock_set_too_late"
    assert set_to == [T]  # refused times never reach the system clock
    with pytest.raises(ValueError):
        guard.set_time(datetime(2026, 12, 2, 9, 30))


def test_a_failing_setter_changes_no_reference(tmp_path):
    def refuse(moment):
        raise ClockError("clock_set_failed", detail="Access denied")

    wall = Wall(T)
    guard = guard_at(tmp_path, wall, setter=refuse)
    guard.check()
    with pytest.raises(ClockError, match="Access denied"):
        guard.set_time(T + timedelta(hours=3))
    assert saved(tmp_path) == T


def test_the_newest_record_is_the_reference_until_the_state_file_exists(tmp_path):
    wall = Wall(T)
    newest = T + timedelta(days=3)
    check = guard_at(tmp_path, wall, newest_record=lambda: newest).check()
    assert check.reason == "clock_jumped_back" and check.last_seen == newest
    (tmp_path / "clock.json").write_text("{not json")  # damaged: ignored, the check still answers
    assert guard_at(tmp_path, wall, newest_record=lambda: None).check().plausible


def test_software_date_prefers_the_build_stamp(monkeypatch):
    monkeypatch.setitem(sys.modules, "kiosk._build", types.SimpleNamespace(BUILD_DATE="2026-11-30T08:00:00+00:00"))
    assert software_date() == datetime(2026, 11, 30, 8, tzinfo=UTC)
    monkeypatch.delitem(sys.modules, "kiosk._build")
    import kiosk.clock

    newest = max(p.stat().st_mtime for p in __import__("pathlib").Path(kiosk.clock.__file__).parent.glob("*.py"))
    assert software_date() == datetime.fromtimestamp(newest, UTC)


def test_set_system_time_asks_timedated_in_utc(monkeypatch):
    calls = []

    def fake_run(cmd, **kwargs):
        calls.append(cmd)
        if cmd[1] == "set-time" and len(calls) > 2:
            return subprocess.CompletedProcess(cmd, 1, "", "Failed to set time: Access denied\n")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    set_system_time(datetime(2026, 12, 2, 9, 30, tzinfo=local_time(T, "Asia/Manila").tzinfo))
    assert calls == [["timedatectl", "set-ntp", "false"], ["timedatectl", "set-time", "2026-12-02 01:30:00 UTC"]]
    with pytest.raises(ClockError) as failed:
        set_system_time(T)
    assert failed.value.code == "clock_set_failed" and failed.value.params == {
        "detail": "Failed to set time: Access denied"
    }


def test_step_time_keeps_a_real_date():
    assert step_time(datetime(2028, 2, 29, 8), "year", 1) == datetime(2029, 2, 28, 8)
    assert step_time(datetime(2026, 3, 31, 8), "month", -1) == datetime(2026, 2, 28, 8)
    assert step_time(datetime(2026, 1, 15, 8), "month", -1) == datetime(2025, 12, 15, 8)
    assert step_time(datetime(2026, 12, 31, 23, 59), "minute", 1) == datetime(2027, 1, 1, 0, 0)
    assert step_time(datetime(2026, 3, 1, 0, 5), "hour", -1) == datetime(2026, 2, 28, 23, 5)


def seed_week(tmp_path) -> RecordStore:
    """Screenings around Manila's midnight: 15:30 UTC on 1 December is 23:30 local, still the day before."""
    wall = Wall(T)
    store = RecordStore(tmp_path / "data", clock=wall)
    refer = ScreeningResult(status="ok", malignant_probability=0.9, risk="refer", threshold=0.5)
    low = ScreeningResult(status="ok", malignant_probability=0.1, risk="low", threshold=0.5)
    ids = {}
    for name, at, result in (
        ("yesterday_refer", datetime(2026, 12, 1, 15, 30, tzinfo=UTC), refer),
        ("today_refer_seen", datetime(2026, 12, 1, 16, 30, tzinfo=UTC), refer),
        ("today_low", datetime(2026, 12, 2, 0, 0, tzinfo=UTC), low),
        ("today_retake", datetime(2026, 12, 2, 1, 0, tzinfo=UTC), ScreeningResult.retake("blurry")),
        ("today_refer_not_seen", datetime(2026, 12, 2, 1, 10, tzinfo=UTC), refer),
        ("tomorrow_refer", datetime(2026, 12, 2, 16, 5, tzinfo=UTC), refer),  # 00:05 on 3 December in Manila
    ):
        wall.now = at
        ids[name] = store.save(result)
    wall.now = T
    store.record_outcome(ClinicalOutcome(screening_id=ids["today_refer_seen"], outcome="benign", recorded_at=T))
    store.record_outcome(ClinicalOutcome(screening_id=ids["today_refer_not_seen"], outcome="not_seen", recorded_at=T))
    return store


def test_daily_summary_counts_the_station_day(tmp_path):
    with seed_week(tmp_path) as store:
        day = daily_summary(store, zone="Asia/Manila", now=T)
        assert (day.day, day.screenings, day.referrals, day.retakes, day.outcomes_pending) == (
            date(2026, 12, 2),
            3,
            2,
            1,
            2,
        )
        # The same records counted by the UTC day give other numbers: the zone matters.
        utc = daily_summary(store, zone="UTC", now=T)
        assert (utc.day, utc.screenings, utc.referrals, utc.retakes, utc.outcomes_pending) == (
            date(2026, 12, 2),
            3,
            2,
            1,
            3,
        )
