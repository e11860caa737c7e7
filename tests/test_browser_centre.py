"""The settings page's station and clock in a real browser at 800x480: the time set by touch alone.

``kiosk serve`` runs as in tests/test_browser.py, with a provisioned station and a stand-in for
``timedatectl`` (``[clock] timedatectl``) that only logs what it was asked, so the test machine's
clock is never touched.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from kiosk.pinhash import DEMO_PIN_HASH
from tests.conftest import REPO_ROOT, serve_command

CHROMIUM = Path(os.environ.get("KIOSK_TEST_CHROMIUM", "/usr/bin/chromium"))
if not CHROMIUM.exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the [test] extra)")

from tests.test_browser import CHROMIUM_ARGS, PIN, Screen, enter_pin, free_port  # noqa: E402

pytestmark = pytest.mark.skipif(os.name != "posix", reason="kiosk serve is stopped with SIGTERM")


def test_settings_show_the_station_and_set_the_clock_by_touch(tiny_model_path, tmp_path):
    log = tmp_path / "timedatectl.log"
    program = tmp_path / "timedatectl"
    program.write_text(f'#!/bin/sh\necho "$@" >>{log}\n')
    program.chmod(0o755)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KIOSK_", "NOTIFY_", "WATCHDOG_"))}
    env.update(
        KIOSK_GPIO_ENABLED="false",
        KIOSK_WEB_PIN=DEMO_PIN_HASH,
        KIOSK_STATION_NAME="Barangay San Jose Health Station",
        KIOSK_STATION_CODE="PH-LEY-0001",
        KIOSK_CLOCK_TIMEDATECTL=str(program),
    )
    with open(tmp_path / "serve.log", "w") as out:
        proc = subprocess.Popen(
            serve_command(tiny_model_path, port=port, data_dir=tmp_path / "data"),
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2) as response:  # noqa: S310 - local URL
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.2)

        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
            screen = Screen(browser, "800x480", tmp_path)
            screen.goto(f"{base}/settings?lang=en")
            screen.page.wait_for_url(re.compile(r"/pin\?next="))
            enter_pin(screen, PIN)
            screen.page.wait_for_url(re.compile(r"/settings(\?|$)"))
            station = screen.testid("settings-station")
            assert "Barangay San Jose Health Station" in station.inner_text()
            assert "PH-LEY-0001" in station.inner_text() and "Asia/Manila" in station.inner_text()
            screen.testid("settings-clock").scroll_into_view_if_needed()
            assert screen.testid("settings-clock").is_visible()
            screen.assert_fits("settings-clock")
            screen.shot("settings-clock")
            start = {f: int(screen.testid(f"clock-value-{f}").inner_text()) for f in ("year", "hour", "minute")}
            # Two years on, an hour back, ten minutes on: taps only, no keyboard.
            for button in ("clock-year-plus", "clock-year-plus", "clock-hour-minus", "clock-minute-plus10"):
                with screen.page.expect_navigation():  # each tap posts the form: tap the next on the new page
                    screen.testid(button).tap()
            year, hour = start["year"] + 2, start["hour"]
            minute = start["minute"] + 10
            hour = (hour - 1 + minute // 60) % 24  # minutes past 60 carry into the hour, hours wrap the day
            minute %= 60
            assert int(screen.testid("clock-value-year").inner_text()) == year
            assert (
                int(screen.testid("clock-value-hour").inner_text()),
                int(screen.testid("clock-value-minute").inner_text()),
            ) == (hour, minute)
            shown = {
                f: screen.testid(f"clock-value-{f}").inner_text() for f in ("year", "month", "day", "hour", "minute")
            }
            screen.testid("clock-apply").tap()
            screen.testid("clock-outcome").wait_for(state="visible")
            local = f"{shown['year']}-{shown['month']}-{shown['day']} {shown['hour']}:{shown['minute']}"
            assert screen.testid("clock-outcome").inner_text().strip() == f"The clock is set to {local}."
            lines = log.read_text().splitlines()
            utc = datetime.strptime(local, "%Y-%m-%d %H:%M").replace(tzinfo=ZoneInfo("Asia/Manila")).astimezone(UTC)
            assert lines == ["set-ntp false", f"set-time {utc:%Y-%m-%d %H:%M}:00 UTC"]
            screen.assert_clean()
            screen.close()
            browser.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert "Traceback" not in (tmp_path / "serve.log").read_text()
