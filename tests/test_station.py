"""The station: one capture per tap, saved records, observers, the camera watchdog and the preview."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import cv2
import numpy as np
import pytest

from kiosk.camera import Camera, open_camera
from kiosk.reasons import CameraError
from kiosk.records import PatientInfo
from kiosk.station import Station, backoff_delay
from kiosk.synthetic import random_lesion
from kiosk.vision.loader import load_image
from tests.web_conftest import FAST_RETRY, wait_until

#: The tiny model on the rig's first photo (random_lesion seed 5, 640x480), exactly.
FIRST_CAPTURE = ("ok", None, 0.4414, "low")


def png_of(image) -> bytes:
    ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    assert ok
    return data.tobytes()


def test_capture_screens_saves_and_tells_observers(station, rig, records):
    events = []
    station.subscribe(lambda e: events.append((e.kind, e.busy, e.screening.id if e.screening else None)))
    sid, result = station.capture_and_screen(patient=PatientInfo(age=61, body_site="trunk"))
    assert rig.captures == 1
    assert (
        result.status,
        result.reason,
        result.malignant_probability,
        result.risk,
    ) == FIRST_CAPTURE and result.model_sha256 == station.model_sha256
    stored = records.get(sid)
    assert stored is not None and stored.result == result and stored.patient.age == 61
    assert stored.image_path is not None and load_image(stored.image_path).shape == (480, 640, 3)
    assert events == [("ready", False, None), ("busy", True, None), ("result", False, sid), ("ready", False, None)]
    assert station.last.id == sid and station.last.seq == 1 and station.last.source == "camera"


def test_two_simultaneous_taps_take_one_photo(station, rig, records):
    rig.hold_capture = threading.Event()
    outcomes = []
    taps = [threading.Thread(target=lambda: outcomes.append(station.capture_and_screen())) for _ in range(2)]
    taps[0].start()
    assert rig.capture_entered.wait(5)
    taps[1].start()
    assert wait_until(lambda: station.pending_requests == 2), "the second tap did not join the first"
    assert station.busy
    rig.hold_capture.set()
    for tap in taps:
        tap.join(10)
    assert rig.captures == 1
    assert len(outcomes) == 2 and outcomes[0] == outcomes[1]
    assert records.count() == 1
    # Once the first capture is over, a new tap is a new photo (a deliberate retake).
    station.capture_and_screen()
    assert rig.captures == 2 and records.count() == 2


def test_upload_is_screened_and_saved_without_its_metadata(station, records):
    sid, result = station.screen_upload(png_of(random_lesion(5, width=640, height=480)))
    assert result.status == "ok" and sid is not None
    stored = records.get(sid)
    assert stored.image_path.read_bytes()[:3] == b"\xff\xd8\xff"  # re-encoded from pixels: no upload EXIF kept
    assert station.last.source == "upload"


def test_unreadable_upload_is_an_error_and_not_saved(station, records):
    sid, result = station.screen_upload(b"this is not a photo")
    assert (sid, result.status, result.reason) == (None, "error", "not_an_image")
    assert records.count() == 0


def test_without_records_results_are_still_returned(screener, rig):
    with Station(screener=screener, camera_factory=rig.factory, records=None, **FAST_RETRY) as st:
        sid, result = st.capture_and_screen()
    assert sid is None and (result.status, result.reason, result.malignant_probability, result.risk) == FIRST_CAPTURE


def test_a_failing_save_loses_the_record_not_the_result(screener, rig, tmp_path):
    from kiosk.records import RecordStore

    store = RecordStore(tmp_path / "data")
    store.close()  # every save now raises RecordStoreError
    lines = []
    with Station(screener=screener, camera_factory=rig.factory, records=store, log=lines.append, **FAST_RETRY) as st:
        sid, result = st.capture_and_screen()
    assert sid is None and (result.status, result.reason, result.malignant_probability, result.risk) == FIRST_CAPTURE
    assert any("could not save" in line for line in lines)


def test_a_broken_observer_does_not_break_screening(screener, rig):
    lines = []
    with Station(screener=screener, camera_factory=rig.factory, records=None, log=lines.append, **FAST_RETRY) as st:
        st.subscribe(lambda event: 1 / 0)
        _, result = st.capture_and_screen()
    assert (result.status, result.reason, result.malignant_probability, result.risk) == FIRST_CAPTURE
    assert any("ZeroDivisionError" in line for line in lines)


def test_backoff_doubles_to_the_cap():
    assert [backoff_delay(n) for n in range(7)] == [1, 2, 4, 8, 16, 30, 30]


def test_camera_missing_at_start_is_retried_until_it_works(screener, rig):
    rig.fail_open = True
    with Station(screener=screener, camera_factory=rig.factory, records=None, **FAST_RETRY) as st:
        assert st.camera_status == "reconnecting: fake camera unplugged"
        with pytest.raises(CameraError) as info:
            st.capture_and_screen()
        assert info.value.code == "camera_unavailable"
        assert wait_until(lambda: rig.open_attempts >= 3), "the watchdog is not retrying"
        rig.fail_open = False
        assert wait_until(lambda: st.camera_status == "ok")
        _, result = st.capture_and_screen()
        assert (result.status, result.reason, result.malignant_probability, result.risk) == FIRST_CAPTURE


def test_capture_failure_triggers_reconnect(station, rig):
    events = []
    station.subscribe(lambda e: events.append((e.kind, e.camera_status)))
    rig.fail_capture = True
    rig.fail_open = True
    with pytest.raises(CameraError):
        station.capture_and_screen()
    assert station.camera_status == "reconnecting: fake camera stopped"
    assert wait_until(lambda: rig.closed == 1)  # the broken camera was closed
    assert ("camera", "reconnecting: fake camera stopped") in events
    rig.fail_capture = False
    rig.fail_open = False
    assert wait_until(lambda: station.camera_status == "ok")
    assert rig.opened == 2
    assert wait_until(lambda: events[-2:] == [("camera", "ok"), ("ready", "ok")])
    station.capture_and_screen()


def test_a_hung_capture_counts_as_a_stalled_camera(screener, rig):
    rig.hold_capture = threading.Event()  # never set: the driver hangs
    with Station(screener=screener, camera_factory=rig.factory, records=None, capture_timeout=0.2, **FAST_RETRY) as st:
        started = time.monotonic()
        with pytest.raises(CameraError, match="stalled"):
            st.capture_and_screen()
        assert time.monotonic() - started < 3
        rig.hold_capture = None
        assert wait_until(lambda: st.camera_status == "ok" and rig.opened == 2)


def test_a_stalled_preview_is_reconnected(screener, rig):
    with Station(screener=screener, camera_factory=rig.factory, records=None, stall_timeout=0.2, **FAST_RETRY) as st:
        frames = st.preview_frames()
        assert next(frames)[:2] == b"\xff\xd8"
        rig.stall_frames = True
        assert wait_until(lambda: st.camera_status.startswith("reconnecting: no preview frame"))
        rig.stall_frames = False
        assert wait_until(lambda: st.camera_status == "ok")
        assert next(frames)[:2] == b"\xff\xd8"  # the same viewer gets frames from the new camera
        frames.close()


def test_preview_runs_at_least_10_fps_with_the_synthetic_camera(screener):
    with Station(screener=screener, camera_factory=lambda: open_camera("synthetic"), records=None) as st:
        frames = st.preview_frames()
        first = next(frames)
        assert first[:3] == b"\xff\xd8\xff" and load_image(first).shape == (480, 640, 3)
        started, count = time.monotonic(), 0
        while time.monotonic() - started < 1.0:
            next(frames)
            count += 1
        frames.close()
    assert count >= 10, f"{count} frames in 1 s"


def test_nobody_watching_stops_the_preview_reader(station, rig):
    frames = station.preview_frames()
    next(frames)
    frames.close()
    assert wait_until(lambda: not station.preview.reading), "still reading frames with no viewer"


def test_close_ends_preview_streams(screener, rig):
    st = Station(screener=screener, camera_factory=rig.factory, records=None, **FAST_RETRY)
    frames = st.preview_frames()
    next(frames)
    st.close()
    assert list(frames) == []  # the generator ends instead of blocking
    assert rig.closed == 1
    assert st.camera_status.startswith("reconnecting: ")


def test_without_a_camera_the_preview_still_sends_a_placeholder(screener, rig):
    # A silent stream would pin a web server thread until the camera returns.
    rig.fail_open = True
    with Station(screener=screener, camera_factory=rig.factory, records=None, **FAST_RETRY) as st:
        frames = st.preview_frames(keepalive=0.05)
        frame = next(frames)
        assert load_image(frame).shape == (240, 320, 3)
        frames.close()


def test_a_tap_that_joins_a_failing_capture_gets_the_same_error(screener, rig):
    rig.hold_capture = threading.Event()  # never set: the driver hangs, the capture times out
    with Station(screener=screener, camera_factory=rig.factory, records=None, capture_timeout=1.0, **FAST_RETRY) as st:
        errors = []

        def tap():
            try:
                st.capture_and_screen()
            except CameraError as exc:
                errors.append(exc)

        taps = [threading.Thread(target=tap) for _ in range(2)]
        taps[0].start()
        assert rig.capture_entered.wait(5)
        taps[1].start()
        assert wait_until(lambda: st.pending_requests == 2)
        for t in taps:
            t.join(10)
    assert rig.captures == 1
    assert len(errors) == 2 and errors[0] is not errors[1]
    assert all(e.code == "camera_not_answering" and "stalled" in str(e) for e in errors)


def test_a_slow_upload_decode_does_not_hold_up_a_capture(station, rig, records, monkeypatch):
    # A large photo takes a second or two to decode; a capture tapped meanwhile must not wait for it.
    import kiosk.screening
    import kiosk.station.station as station_module

    entered, release = threading.Event(), threading.Event()
    real = load_image

    def slow_decode(data):
        entered.set()
        assert release.wait(30)
        return real(data)

    # Wherever the upload is decoded (the station, or the screener inside the screening lock).
    monkeypatch.setattr(station_module, "load_image", slow_decode, raising=False)
    monkeypatch.setattr(kiosk.screening, "load_image", slow_decode)
    uploads = []
    upload = threading.Thread(
        target=lambda: uploads.append(station.screen_upload(png_of(random_lesion(5, width=640, height=480))))
    )
    upload.start()
    try:
        assert entered.wait(10)
        captured = []
        tap = threading.Thread(target=lambda: captured.append(station.capture_and_screen()))
        tap.start()
        tap.join(10)
        assert captured and captured[0][0] is not None, "the capture waited for the upload's decode"
        assert not upload.is_alive() or not uploads  # the upload is still decoding
    finally:
        release.set()
        upload.join(10)
    assert uploads and uploads[0][1].status == "ok"
    assert records.count() == 2


class ExposureCamera(Camera):
    """Hands out whichever photo the test puts in ``photo``; records the exposure nudges it is given."""

    name = "exposure"

    def __init__(self, photo: np.ndarray) -> None:
        self.photo = photo
        self.nudges: list[float] = []

    def capture(self) -> np.ndarray:
        return self.photo.copy()

    def frames(self) -> Iterator[np.ndarray]:
        while True:
            yield self.photo

    def nudge_exposure(self, stops: float) -> float | None:
        self.nudges.append(stops)
        return sum(self.nudges)


def test_a_photo_sent_back_for_its_exposure_moves_the_cameras_exposure(screener):
    lesion = random_lesion(5, width=640, height=480)
    blown = np.clip(lesion.astype(np.float32) * 3.0 + 40, 0, 255).astype(np.uint8)
    dim = (lesion.astype(np.float32) * 0.12).astype(np.uint8)
    camera = ExposureCamera(blown)
    lines: list[str] = []
    with Station(screener=screener, camera_factory=lambda: camera, records=None, log=lines.append, **FAST_RETRY) as st:
        assert st.capture_and_screen()[1].reason == "overexposed"
        assert camera.nudges == [-0.5]
        assert "exposure compensation now -0.5 stops" in lines[-1]
        camera.photo = dim
        assert st.capture_and_screen()[1].reason == "too_dark"
        assert camera.nudges == [-0.5, 0.5]
        camera.photo = lesion
        assert st.capture_and_screen()[1].status == "ok"
        assert camera.nudges == [-0.5, 0.5]  # a good photo leaves the exposure where it is
        st.screen_upload(png_of(blown))
        assert camera.nudges == [-0.5, 0.5]  # an upload says nothing about this camera


def test_a_camera_without_exposure_control_ignores_the_nudge(screener):
    photo = np.clip(random_lesion(5, width=640, height=480).astype(np.float32) * 3.0 + 40, 0, 255).astype(np.uint8)
    camera = ExposureCamera(photo)
    camera.nudge_exposure = Camera.nudge_exposure.__get__(camera)  # type: ignore[method-assign]
    lines: list[str] = []
    with Station(screener=screener, camera_factory=lambda: camera, records=None, log=lines.append, **FAST_RETRY) as st:
        assert st.capture_and_screen()[1].reason == "overexposed"
    assert not any("exposure compensation" in line for line in lines)
