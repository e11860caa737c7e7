"""Camera supervision without a model: deadlines on a hung picamera2, back-off that grows, capped previews.

None of these tests needs TensorFlow or the tiny model: the supervisor and
the preview hub run on their own, and the station runs with a stub screener.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from kiosk.camera import Camera, ReplayCamera, open_camera
from kiosk.daemon import Health
from kiosk.reasons import CameraError
from kiosk.station import PreviewBusy, Station
from kiosk.station.preview import PreviewHub
from kiosk.station.supervisor import NOT_ANSWERING, CameraSupervisor
from kiosk.web.stream import MAX_QUEUED, SLOW_READER_TIMEOUT, mjpeg_parts
from tests.web_conftest import FakeClock, make_settings, wait_until

FAST = {"retry_initial": 0.05, "retry_max": 0.1, "interval": 0.02}


class HangingPicamera2:
    """A picamera2 whose calls stop returning while ``hang`` is set (a loose ribbon cable), like the real one.

    It never raises: ``capture_array`` and the constructor simply block until
    the cable is "plugged back" (``hang`` cleared and ``release`` set).
    """

    instances: list[HangingPicamera2] = []
    hang = False
    release = threading.Event()

    def __init__(self, camera_num: int = 0) -> None:
        self.calls: list[str] = ["init"]
        self.config: dict[str, Any] = {}
        HangingPicamera2.instances.append(self)
        self._block()

    @classmethod
    def _block(cls) -> None:
        while cls.hang:
            cls.release.wait(0.05)

    def create_preview_configuration(self, main: Any = None, lores: Any = None, **kwargs: Any) -> dict[str, Any]:
        return {"main": dict(main), "lores": dict(lores)}

    def configure(self, config: dict[str, Any]) -> None:
        self.config = config

    def camera_configuration(self) -> dict[str, Any]:
        return self.config

    def start(self) -> None:
        self.calls.append("start")

    def capture_array(self, name: str = "main") -> np.ndarray:
        self.calls.append(f"capture_array {name}")
        self._block()
        width, height = self.config[name]["size"]
        if name == "main":
            return np.full((height, width, 3), 90, np.uint8)
        return np.full((height * 3 // 2, width), 120, np.uint8)

    def stop(self) -> None:
        self.calls.append("stop")

    def close(self) -> None:
        self.calls.append("close")


@pytest.fixture
def hanging_picamera2(monkeypatch: pytest.MonkeyPatch) -> type[HangingPicamera2]:
    HangingPicamera2.instances = []
    HangingPicamera2.hang = False
    HangingPicamera2.release = threading.Event()
    module = types.ModuleType("picamera2")
    module.Picamera2 = HangingPicamera2  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "picamera2", module)
    yield HangingPicamera2
    HangingPicamera2.hang = False  # free any thread still blocked in the fake driver
    HangingPicamera2.release.set()


class StubModel:
    sha256 = "5" * 64


class StubScreener:
    model = StubModel()


def test_a_hung_picamera2_is_rebuilt_and_starves_the_watchdog_until_it_is(hanging_picamera2, tmp_path):
    def factory():
        return open_camera("picamera2", still_size=(320, 240), preview_size=(160, 120))

    with Station(
        screener=StubScreener(),
        camera_factory=factory,
        records=None,
        capture_timeout=0.3,  # type: ignore[arg-type]
        open_timeout=0.3,
        restart_after=1.0,
        retry_initial=0.05,
        retry_max=0.1,
        watchdog_interval=0.02,
    ) as station:
        health = Health(station)
        assert station.camera.capture().shape == (240, 320, 3)
        assert station.health() == () and health.healthy()

        hanging_picamera2.hang = True  # the cable comes loose: every call, and every new Picamera2(), blocks
        with pytest.raises(CameraError) as info:
            station.camera.capture()
        assert info.value.code == NOT_ANSWERING and "stalled" in str(info.value)
        assert station.camera_reason == NOT_ANSWERING
        assert station.camera_status == "reconnecting: no photo within 0.3 s (camera stalled)"

        # The page says so, and /healthz names the reason.
        from kiosk.web import create_app

        client = create_app(settings=make_settings(tmp_path), station=station, testing=True).test_client()
        r = client.get("/healthz")
        assert r.status_code == 503 and r.get_json()["reason"] == NOT_ANSWERING
        assert "The camera is not answering" in client.get("/").get_data(as_text=True)

        # Rebuilding keeps failing (the new object hangs as it opens); after restart_after the watchdog starves.
        assert wait_until(lambda: len(hanging_picamera2.instances) >= 2, timeout=5), "no fresh camera was built"
        assert wait_until(lambda: station.health() != (), timeout=5)
        assert "the camera has not answered for" in station.health()[0]
        assert not health.healthy()

        hanging_picamera2.hang = False  # plugged back in
        hanging_picamera2.release.set()
        assert wait_until(lambda: station.camera_status == "ok", timeout=5), station.camera_status
        assert station.health() == () and health.healthy()
        assert station.camera.capture().shape == (240, 320, 3)
        first = hanging_picamera2.instances[0]
        assert wait_until(lambda: "close" in first.calls), "the abandoned camera was never closed"
        assert station.camera_name == "picamera2"


def test_an_unplugged_camera_does_not_starve_the_watchdog():
    # A camera that raises (not hangs) is waited for: a restart would not plug it back in.
    attempts = []

    def unplugged():
        attempts.append(1)
        raise CameraError("camera_unavailable", detail="no Raspberry Pi camera 0 found")

    with CameraSupervisor(unplugged, on_change=lambda: None, restart_after=0.0, **FAST) as supervisor:
        assert wait_until(lambda: len(attempts) >= 3)
        assert supervisor.problems() == ()
        assert supervisor.reason_code == "camera_unavailable"
        assert supervisor.status == "reconnecting: no Raspberry Pi camera 0 found"


def write_corrupt_folder(folder: Path) -> Path:
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    return folder


class CorruptCapture:
    """cv2.VideoCapture of a USB camera that opens, gives one frame, then only corrupt reads."""

    def __init__(self, device: Any, api: int = 0) -> None:
        self.reads = 0

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return True

    def set(self, prop: int, value: float) -> bool:
        return True

    def grab(self) -> bool:
        return True

    def read(self) -> tuple[bool, Any]:
        self.reads += 1
        return (True, np.zeros((48, 64, 3), np.uint8)) if self.reads == 1 else (False, None)

    def release(self) -> None:
        pass


@pytest.mark.parametrize("kind", ["replay", "opencv"])
def test_a_camera_that_fails_right_after_opening_backs_off_more_each_time(kind, tmp_path, monkeypatch):
    if kind == "replay":
        folder = write_corrupt_folder(tmp_path / "corrupt")

        def factory():
            return ReplayCamera(folder, fps=None)
    else:
        monkeypatch.setattr(cv2, "VideoCapture", CorruptCapture)

        def factory():
            return open_camera("opencv:0")

    lines: list[str] = []
    with CameraSupervisor(
        factory, log=lines.append, on_change=lambda: None, retry_initial=0.05, retry_max=10, interval=0.02
    ) as supervisor:
        for _ in range(5):
            assert wait_until(lambda: supervisor.status == "ok", timeout=5)
            with pytest.raises(CameraError):
                supervisor.capture()
    delays = [float(line.rsplit("reconnecting in ", 1)[1].split()[0]) for line in lines if "reconnecting in" in line]
    assert delays == [0.05, 0.1, 0.2, 0.4, 0.8]


def test_the_back_off_starts_afresh_after_the_camera_worked_a_while(tmp_path):
    folder = write_corrupt_folder(tmp_path / "corrupt")
    lines: list[str] = []
    with CameraSupervisor(
        lambda: ReplayCamera(folder, fps=None),
        log=lines.append,
        on_change=lambda: None,
        retry_initial=0.05,
        retry_max=10,
        interval=0.02,
        healthy_after=0.0,
    ) as supervisor:
        for _ in range(3):
            assert wait_until(lambda: supervisor.status == "ok", timeout=5)
            with pytest.raises(CameraError):
                supervisor.capture()
    assert [line.rsplit("reconnecting in ", 1)[1] for line in lines if "reconnecting in" in line] == ["0.05 s"] * 3


def test_a_deleted_replay_folder_is_noticed_by_the_station(tmp_path):
    folder = tmp_path / "one"
    folder.mkdir()
    ok, data = cv2.imencode(".png", np.full((60, 80, 3), 128, np.uint8))
    (folder / "only.png").write_bytes(data.tobytes())
    with CameraSupervisor(lambda: ReplayCamera(folder, fps=None), on_change=lambda: None, **FAST) as supervisor:
        assert supervisor.capture().shape == (60, 80, 3)
        shutil.rmtree(folder)
        with pytest.raises(CameraError, match="gone"):
            supervisor.capture()
        assert supervisor.status.startswith("reconnecting: ")
        assert wait_until(lambda: "not found" in supervisor.status), supervisor.status


# --- the preview ---------------------------------------------------------------------------------------------


def test_preview_viewers_are_capped_and_a_closed_one_frees_its_slot():
    with CameraSupervisor(
        lambda: open_camera("synthetic", preview_size=(160, 120)), on_change=lambda: None, **FAST
    ) as supervisor:
        hub = PreviewHub(supervisor, max_viewers=2)
        try:
            first, second = hub.open_viewer(), hub.open_viewer()
            assert next(first)[:2] == b"\xff\xd8" and next(second)[:2] == b"\xff\xd8"
            with pytest.raises(PreviewBusy) as info:
                hub.open_viewer()
            assert info.value.code == "preview_busy" and info.value.params == {"limit": 2}
            first.close()
            third = hub.open_viewer()
            assert next(third)[:2] == b"\xff\xd8" and hub.viewers == 2
            del second  # dropped without close(): the slot comes back all the same
            assert hub.viewers == 1
            third.close()
        finally:
            hub.close()


def test_an_extra_viewer_gets_a_503_with_a_one_line_reason(tmp_path):
    from kiosk.web import create_app

    with Station(
        screener=StubScreener(),
        camera_factory=lambda: open_camera("synthetic"),
        records=None,  # type: ignore[arg-type]
        preview_viewers=1,
    ) as station:
        client = create_app(settings=make_settings(tmp_path), station=station, testing=True).test_client()
        watching = client.get("/stream.mjpg", buffered=False)
        assert watching.status_code == 200
        next(watching.response)
        r = client.get("/stream.mjpg", headers={"Accept": "application/json"})
        assert r.status_code == 503
        assert r.get_json()["reason"] == "preview_busy"
        assert "\n" not in r.get_json()["message"]
        watching.close()
        assert wait_until(lambda: station.preview.viewers == 0)


def test_a_viewer_that_stops_reading_is_skipped_then_dropped():
    clock = FakeClock()
    queued = [0]
    closed = []

    class Frames:
        def __init__(self) -> None:
            self.n = 0

        def __iter__(self):
            return self

        def __next__(self) -> bytes:
            self.n += 1
            clock.advance(1.0)
            return b"\xff\xd8%d" % self.n

        def close(self) -> None:
            closed.append(True)

    lines: list[str] = []
    parts = mjpeg_parts(Frames(), backlog=lambda: queued[0], clock=clock, log=lines.append)
    assert next(parts).endswith(b"\xff\xd81\r\n")
    queued[0] = MAX_QUEUED + 1  # the viewer stopped reading: frames are skipped, none queued
    sent = list(parts)
    assert sent == [] and closed == [True]
    assert lines == [f"preview: a viewer stopped reading for {SLOW_READER_TIMEOUT:g} s; its stream was ended"]


def test_a_call_queued_behind_a_hung_close_does_not_wait_forever():
    # A viewer left: the preview iterator's close runs on the camera's thread, nobody waits for it, and it hangs.
    release = threading.Event()

    class HangsOnClose(Camera):
        name = "hangs-on-close"

        def capture(self) -> np.ndarray:
            return np.zeros((4, 4, 3), np.uint8)

        def frames(self):
            try:
                while True:
                    yield np.zeros((4, 4, 3), np.uint8)
            finally:
                release.wait(10)

    with CameraSupervisor(HangsOnClose, on_change=lambda: None, call_timeout=0.3, **FAST) as supervisor:
        stream = supervisor.open_stream()
        assert stream.next().shape == (4, 4, 3)
        stream.close()
        started = time.monotonic()
        with pytest.raises(CameraError) as info:
            supervisor.capture()
        assert info.value.code == NOT_ANSWERING and time.monotonic() - started < 2
        release.set()
        assert wait_until(lambda: supervisor.status == "ok")
        assert supervisor.capture().shape == (4, 4, 3)


def test_an_exposure_nudge_reaches_the_camera_and_a_failing_one_rebuilds_it():
    class Nudgeable(Camera):
        name = "nudgeable"
        opened = 0

        def __init__(self) -> None:
            Nudgeable.opened += 1
            self.broken = Nudgeable.opened == 1  # the first camera fails its nudge; the rebuilt one works

        def capture(self) -> np.ndarray:
            return np.full((48, 64, 3), 128, np.uint8)

        def frames(self):
            while True:
                yield self.capture()

        def nudge_exposure(self, stops: float) -> float | None:
            if self.broken:
                raise CameraError("camera_unavailable", detail="control refused")
            return stops

    lines: list[str] = []
    with CameraSupervisor(
        Nudgeable, log=lines.append, on_change=lambda: None, retry_initial=0.05, interval=0.02
    ) as supervisor:
        assert wait_until(lambda: supervisor.status == "ok", timeout=5)
        assert supervisor.nudge_exposure(-0.5) is None  # the photo was taken already: no error to the caller
        assert wait_until(lambda: supervisor.status == "ok" and Nudgeable.opened == 2, timeout=5)
        assert supervisor.nudge_exposure(-0.5) == -0.5
    assert any("control refused" in line for line in lines)
