"""The settings page's centre part (kiosk/web/centre.py): station, today's summary, the clock set by touch."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest

from kiosk.clock import ClockError, ClockGuard
from kiosk.config import RecordsSettings, Settings, StationSettings, WebSettings
from kiosk.web import create_app
from kiosk.web.centre import CLOCK_EXTENSION
from tests.test_clock import FLOOR, T, Wall, seed_week
from tests.web_conftest import FACILITY, PIN, csrf_of, pin_hash


def text_of(html: str, testid: str) -> str:
    match = re.search(rf'data-testid="{re.escape(testid)}"[^>]*>(.*?)</(?:dd|p|strong|output|dl|div)>', html, re.S)
    assert match, f"no {testid}"
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", match.group(1))).split())


@pytest.fixture()
def centre(tmp_path, station, clock):
    """(client, wall clock, calls to the fake setter): a provisioned station whose clock the test moves."""
    store = seed_week(tmp_path / "week")
    settings = Settings(
        station=StationSettings(name="Barangay San Jose Health Station", code="PH-LEY-0001"),
        web=WebSettings(pin=pin_hash(PIN), referral_facility=FACILITY),
        records=RecordsSettings(data_dir=tmp_path / "week" / "data"),
    )
    app = create_app(settings=settings, station=station, records=store, testing=True, clock=clock)
    wall = Wall(T)
    calls: list[datetime] = []
    app.extensions[CLOCK_EXTENSION] = ClockGuard(
        state_path=tmp_path / "clock.json", floor=FLOOR, now=wall, setter=calls.append
    )
    yield app.test_client(), wall, calls
    store.close()


def unlock(client) -> None:
    r = client.post("/pin", data={"pin": PIN, "next": "/settings", "csrf_token": csrf_of(client, "/pin")})
    assert r.status_code == 303


def tap(client, **form) -> None:
    r = client.post("/settings/clock", data={"csrf_token": csrf_of(client, "/settings"), **form})
    assert r.status_code == 303 and r.headers["Location"].endswith("/settings#clock")


def test_settings_page_shows_station_summary_and_clock(centre):
    client, wall, calls = centre
    unlock(client)
    html = client.get("/settings").get_data(as_text=True)
    assert 'data-testid="settings-station"' in html and 'data-testid="settings-clock"' in html
    assert text_of(html, "settings-station-name") == "Barangay San Jose Health Station"
    assert text_of(html, "settings-station-code") == "PH-LEY-0001"
    assert text_of(html, "settings-time-zone") == "Asia/Manila"
    # 01:30 UTC is 09:30 in Manila; the day is Manila's 2 December.
    assert text_of(html, "clock-now") == "2026-12-02 09:30"
    assert "Today (2026-12-02)" in html
    counts = {k: text_of(html, f"summary-{k}") for k in ("screenings", "referrals", "retakes", "pending")}
    assert counts == {"screenings": "3", "referrals": "2", "retakes": "1", "pending": "2"}
    assert 'data-testid="clock-warning"' not in html
    values = {f: text_of(html, f"clock-value-{f}") for f in ("year", "month", "day", "hour", "minute")}
    assert values == {"year": "2026", "month": "12", "day": "02", "hour": "09", "minute": "30"}
    assert calls == []


def test_the_time_is_set_by_touch(centre):
    client, wall, calls = centre
    unlock(client)
    proposed = "2026-12-02T09:30"
    for step in ("hour:+1", "minute:+10", "minute:+10", "minute:-1", "day:+1", "minute:+5"):  # +5: no such button
        tap(client, proposed=proposed, step=step)
        proposed = re.search(r'name="proposed" value="([^"]+)"', client.get("/settings").get_data(as_text=True))[1]
    assert proposed == "2026-12-03T10:49"
    tap(client, proposed=proposed, apply="1")
    assert calls == [datetime(2026, 12, 3, 2, 49, tzinfo=UTC)]  # Manila is UTC+8
    html = client.get("/settings").get_data(as_text=True)
    assert text_of(html, "clock-outcome") == "The clock is set to 2026-12-03 10:49."
    # The outcome is shown once, and the dial starts again from the clock.
    wall.now = calls[0]
    html = client.get("/settings").get_data(as_text=True)
    assert 'data-testid="clock-outcome"' not in html and text_of(html, "clock-value-minute") == "49"


def test_a_refused_time_says_why_and_keeps_the_dial(centre):
    client, wall, calls = centre
    unlock(client)
    tap(client, proposed="2026-12-02T09:30", step="year:-1")
    tap(client, proposed="2025-12-02T09:30", apply="1")
    html = client.get("/settings").get_data(as_text=True)
    assert text_of(html, "clock-outcome") == "That date is before this software was made (2026-12-01); check the year."
    assert text_of(html, "clock-value-year") == "2025" and calls == []

    def broken(moment):
        raise ClockError("clock_set_failed", detail="Access denied")

    client.application.extensions[CLOCK_EXTENSION]._setter = broken
    tap(client, proposed="2026-12-02T09:45", apply="1")
    html = client.get("/settings?lang=fil").get_data(as_text=True)
    outcome = text_of(html, "clock-outcome")
    assert (
        "Access denied" in outcome
        and outcome != "The clock could not be set (Access denied); the time was not changed."
    )


def test_setting_the_time_needs_the_pin(centre):
    client, wall, calls = centre
    r = client.post(
        "/settings/clock", data={"csrf_token": csrf_of(client), "proposed": "2026-12-02T09:30", "apply": "1"}
    )
    assert r.status_code == 303 and r.headers["Location"].startswith("/pin?next=")
    r = client.post("/settings/clock", data={"proposed": "2026-12-02T09:30", "apply": "1"})
    assert r.status_code == 400  # no CSRF token
    assert calls == []


def test_home_warns_when_the_clock_is_implausible(centre):
    client, wall, calls = centre
    assert 'data-testid="clock-warning"' not in client.get("/").get_data(as_text=True)
    wall.now = T - timedelta(hours=2)  # after a power cut: back to fake-hwclock's save
    html = client.get("/").get_data(as_text=True)
    assert text_of(html, "clock-warning") == (
        "The kiosk's clock went back (it says 2026-12-02 07:30, after 2026-12-02 09:30 before). "
        "Set the date and time in Settings."
    )
    wall.now = datetime(2024, 1, 1, tzinfo=UTC)
    html = client.get("/?lang=war").get_data(as_text=True)
    warning = text_of(html, "clock-warning")
    assert "2024-01-01 08:00" in warning and "2026-12-01" in warning and "Set the date" not in warning


def test_history_and_result_show_the_station_time_whatever_the_pi_zone(tmp_path, station, clock, monkeypatch):
    import time

    monkeypatch.setenv("TZ", "UTC")  # a Pi whose own zone was never set
    time.tzset()
    try:
        with seed_week(tmp_path / "week") as store:
            settings = Settings(
                station=StationSettings(time_zone="Asia/Tokyo"),
                web=WebSettings(pin=pin_hash(PIN)),
                records=RecordsSettings(data_dir=tmp_path / "week" / "data"),
            )
            client = create_app(
                settings=settings, station=station, records=store, testing=True, clock=clock
            ).test_client()
            unlock(client)
            history = client.get("/history").get_data(as_text=True)
            # The retake saved at 01:00 UTC is 10:00 in Tokyo; 15:30 UTC on 1 December is 00:30 on the 2nd there.
            assert "2026-12-02 10:00" in history and "2026-12-02 00:30" in history
            assert "2026-12-01 15:30" not in history
            newest = store.list(limit=1)[0]
            page = client.get(f"/screenings/{newest.id}/slip").get_data(as_text=True)
            assert "2026-12-03 01:05" in page  # 16:05 UTC on 2 December
    finally:
        monkeypatch.undo()
        time.tzset()


def test_the_configured_timedatectl_is_what_sets_the_clock(tmp_path, station, clock):
    """The real setter path (no fake guard): [clock] timedatectl names the program, here a stand-in that logs."""
    log = tmp_path / "timedatectl.log"
    program = tmp_path / "timedatectl"
    program.write_text(f'#!/bin/sh\necho "$@" >>{log}\n')
    program.chmod(0o755)
    from kiosk.config import ClockSettings

    settings = Settings(
        clock=ClockSettings(timedatectl=str(program)),
        web=WebSettings(pin=pin_hash(PIN)),
        records=RecordsSettings(data_dir=tmp_path / "data"),
    )
    client = create_app(settings=settings, station=station, testing=True, clock=clock).test_client()
    unlock(client)
    tap(client, proposed="2031-05-06T07:08", apply="1")
    assert log.read_text() == "set-ntp false\nset-time 2031-05-05 23:08:00 UTC\n"
    assert (
        text_of(client.get("/settings").get_data(as_text=True), "clock-outcome")
        == "The clock is set to 2031-05-06 07:08."
    )
