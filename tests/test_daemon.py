"""The daemon's wiring: sd_notify (READY, STATUS, WATCHDOG, STOPPING) from a real ``kiosk serve``,
the health check that gates the watchdog, and the GPIO button on gpiozero's mock pins."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
from gpiozero.pins.mock import MockFactory

from kiosk.config import GpioSettings, ModelSettings, RecordsSettings, Settings
from kiosk.daemon import ButtonActions, Health, run_server
from kiosk.records import RecordStore
from kiosk.station import Station
from tests.conftest import REPO_ROOT, serve_command
from tests.web_conftest import FAST_RETRY, Rig, wait_until

pytestmark = pytest.mark.skipif(os.name != "posix", reason="sd_notify and SIGTERM are POSIX")

BUTTON, READY_LED = 17, 22


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get_json(url: str, timeout: float = 5.0) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - a local test URL
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


class FakeSystemd:
    """systemd's notify socket: collects every datagram with the time it arrived, in a thread."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        while not self._closed.is_set():
            try:
                data = self.sock.recv(4096)
            except (TimeoutError, OSError):
                continue
            with self._lock:
                self.messages.append((time.monotonic(), data.decode()))

    def seen(self) -> list[str]:
        with self._lock:
            return [m for _, m in self.messages]

    def first(self, message: str) -> float | None:
        with self._lock:
            return next((t for t, m in self.messages if m == message), None)

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def fake_systemd(short_dir):
    fake = FakeSystemd(str(short_dir / "notify"))
    yield fake
    fake.close()


def test_serve_talks_to_systemd_ready_watchdog_stopping(tiny_model_path, tmp_path, fake_systemd):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KIOSK_", "NOTIFY_", "WATCHDOG_"))}
    env.update(KIOSK_GPIO_ENABLED="false", NOTIFY_SOCKET=fake_systemd.path, WATCHDOG_USEC="1000000")
    cmd = serve_command(tiny_model_path, port=port, data_dir=tmp_path / "data")
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        # A cold start (imports, model) on a busy 2-core machine can take a while.
        assert wait_until(
            lambda: fake_systemd.first("READY=1") is not None or proc.poll() is not None, timeout=90, step=0.05
        ), "no READY=1"
        assert proc.poll() is None, proc.stderr.read()
        # READY=1 means ready: the page answers at once, camera and model up.
        status, body = get_json(f"{base}/healthz")
        assert status == 200 and body["status"] == "ok" and body["camera"] == "ok"

        seen = fake_systemd.seen()
        ready_at = seen.index("READY=1")
        assert "STATUS=loading the model" in seen[:ready_at]
        assert "STATUS=opening the camera" in seen[:ready_at]
        assert "WATCHDOG=1" not in seen[:ready_at]  # no ping before the kiosk is up

        # WatchdogSec=1 s: a ping every 0.5 s while healthy.
        assert wait_until(lambda: fake_systemd.seen().count("WATCHDOG=1") >= 3, timeout=10), fake_systemd.seen()
        assert any(m.startswith("STATUS=ready; serving http://127.0.0.1:") for m in fake_systemd.seen())

        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=10)
        elapsed = time.monotonic() - started
        assert code == 0, proc.stderr.read()
        assert elapsed < 5, f"took {elapsed:.1f} s to stop"
        assert wait_until(lambda: fake_systemd.first("STOPPING=1") is not None, timeout=2)
        seen = fake_systemd.seen()
        stopping_at = seen.index("STOPPING=1")
        assert "WATCHDOG=1" not in seen[stopping_at:]  # no ping once stopping
        log = proc.stderr.read()
        assert "Traceback" not in log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()


# --- health --------------------------------------------------------------------------


class StubStation:
    def __init__(self) -> None:
        self.problems: tuple[str, ...] = ()
        self.notices: list[str | None] = []

    def set_notice(self, notice: str | None) -> None:
        self.notices.append(notice)

    def health(self, *, stuck_after: float) -> tuple[str, ...]:
        return self.problems


def test_health_needs_a_turning_loop_and_a_healthy_station():
    now = [100.0]
    station = StubStation()
    changes: list[tuple[str, ...]] = []
    health = Health(station, loop_stall=5.0, on_change=changes.append, clock=lambda: now[0])  # type: ignore[arg-type]
    assert health.healthy()
    now[0] += 6  # the serving loop has not turned for 6 s
    assert not health.healthy()
    assert changes[-1] == ("the web server loop has not turned for 6 s",)
    now[0] += 1
    assert not health.healthy()
    assert len(changes) == 1  # "7 s" is the same problem: reported once
    health.beat()
    assert health.healthy() and changes[-1] == ()
    station.problems = ("a screening has been running for 25 s",)
    assert not health.healthy()
    assert changes[-1] == station.problems


def test_station_health_reports_a_stuck_screening(screener, tmp_path):
    rig = Rig()
    rig.hold_capture = threading.Event()
    with Station(
        screener=screener, camera_factory=rig.factory, records=None, capture_timeout=30, **FAST_RETRY
    ) as station:
        assert station.health() == ()
        worker = threading.Thread(target=station.capture_and_screen, daemon=True)
        worker.start()
        assert rig.capture_entered.wait(5)
        assert wait_until(lambda: station.health(stuck_after=0.05) != ())
        assert station.health(stuck_after=0.05)[0].startswith("a screening has been running for")
        assert station.health(stuck_after=60) == ()  # not stuck yet by the real measure
        rig.hold_capture.set()
        worker.join(10)
        assert station.health(stuck_after=0.0) == ()


# --- the button ----------------------------------------------------------------------


def test_button_press_screens_once_and_hold_runs_the_shutdown_command(tiny_model_path, tmp_path):
    factory = MockFactory()
    marker = tmp_path / "poweroff-called"
    # A harmless stand-in for "systemctl poweroff": appends one line per run.
    command = [sys.executable, "-c", "import sys; open(sys.argv[1], 'a').write('poweroff\\n')", str(marker)]
    settings = Settings(
        model=ModelSettings(path=tiny_model_path),
        gpio=GpioSettings(enabled=True, shutdown_hold_seconds=2.0),
        records=RecordsSettings(data_dir=tmp_path / "unused"),
    )
    port = free_port()
    ready, stop = threading.Event(), threading.Event()
    lines: list[str] = []
    outcome: list[int] = []

    def serve() -> None:
        outcome.append(
            run_server(
                settings=settings,
                camera_spec="synthetic",
                host="127.0.0.1",
                port=port,
                data_dir=tmp_path / "data",
                ready_callback=ready.set,
                stop_event=stop,
                log=lines.append,
                pin_factory=factory,
                shutdown_command=command,
            )
        )

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        assert ready.wait(60), lines
        pin = factory.pin(BUTTON)
        assert wait_until(lambda: factory.pin(READY_LED).state)  # the panel follows the station

        def screenings() -> int:
            last = get_json(f"http://127.0.0.1:{port}/api/state")[1]["last"]
            return last["seq"] if last else 0

        # A short press: one screening, taken in the background.
        pin.drive_low()
        time.sleep(0.15)
        pin.drive_high()
        assert wait_until(lambda: screenings() == 1, timeout=30), lines
        assert any(line.startswith("button: screening ") for line in lines), lines

        # A hold: first the screen is warned, then the shutdown command runs once, and no photo is taken.
        def notice():
            return get_json(f"http://127.0.0.1:{port}/api/state")[1]["notice"]

        assert notice() is None
        pin.drive_low()
        assert wait_until(lambda: notice() == "power_hold", timeout=5), lines
        assert wait_until(marker.exists, timeout=10), lines
        assert notice() == "shutting_down"
        pin.drive_high()
        time.sleep(0.5)
        assert marker.read_text() == "poweroff\n"
        assert screenings() == 1
        assert any("button held: shutting the kiosk down" in line for line in lines)
    finally:
        stop.set()
        server.join(15)
        factory.reset()
    assert outcome == [0]
    with RecordStore(tmp_path / "data") as store:
        assert store.count() == 1


def test_shutdown_failure_is_logged_and_a_second_hold_may_retry():
    lines: list[str] = []
    actions = ButtonActions(
        StubStation(),
        shutdown_command=[sys.executable, "-c", "import sys; sys.exit(3)"],  # type: ignore[arg-type]
        log=lines.append,
    )
    actions.request_shutdown()
    actions.request_shutdown()  # while the first runs: ignored
    for thread in actions.threads:
        thread.join(30)
    assert sum("button held" in line for line in lines) == 1
    assert any("the shutdown failed (exit 3" in line for line in lines), lines
    actions.request_shutdown()  # after a failure another hold tries again
    for thread in actions.threads:
        thread.join(30)
    assert sum("button held" in line for line in lines) == 2


def test_the_screen_is_warned_while_the_button_is_held_and_told_when_the_kiosk_turns_off():
    station = StubStation()
    actions = ButtonActions(
        station,
        shutdown_command=[sys.executable, "-c", "import sys; sys.exit(3)"],  # type: ignore[arg-type]
        log=lambda line: None,
    )
    actions.hold_notice(True)
    actions.hold_notice(False)  # let go in time
    assert station.notices == ["power_hold", None]
    actions.hold_notice(True)
    actions.request_shutdown()
    actions.hold_notice(False)  # while turning off, the screen keeps saying so
    assert station.notices == ["power_hold", None, "power_hold", "shutting_down"]
    for thread in actions.threads:
        thread.join(30)
    assert station.notices[-1] is None  # the shutdown failed: the kiosk carries on, the notice goes


def test_a_button_capture_without_a_camera_is_logged_not_raised():
    from kiosk.reasons import CameraError

    class NoCamera:
        def capture_and_screen(self):
            raise CameraError("camera_unavailable", detail="unplugged")

    lines: list[str] = []
    actions = ButtonActions(NoCamera(), log=lines.append)  # type: ignore[arg-type]
    actions.capture()
    for thread in actions.threads:
        thread.join(5)
    assert len(lines) == 1 and lines[0].startswith("button: no photo (")
