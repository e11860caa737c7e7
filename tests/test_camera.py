"""Camera backends and ``open_camera``: real behaviour with fakes only where hardware is needed."""

from __future__ import annotations

import itertools
import sys
import types
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

import kiosk.camera as camera_pkg
from kiosk.camera import (
    Camera,
    Exposure,
    OpenCVCamera,
    PiCamera,
    ReplayCamera,
    SyntheticCamera,
    camera_from_settings,
    open_camera,
)
from kiosk.camera.base import fit_size, fit_within
from kiosk.camera.opencv import to_rgb
from kiosk.camera.pi import NOT_INSTALLED, yuv420_to_rgb
from kiosk.reasons import CameraError, ConfigError
from kiosk.synthetic import demo_lesion, random_lesion


def assert_rgb_frame(frame: np.ndarray, shape: tuple[int, int] | None = None) -> None:
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    if shape is not None:
        assert frame.shape[:2] == shape


def write_image(path: Path, rgb: np.ndarray) -> None:
    ok, data = cv2.imencode(path.suffix, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    path.write_bytes(data.tobytes())


def solid(rgb: tuple[int, int, int], size: tuple[int, int] = (80, 60)) -> np.ndarray:
    image = np.empty((size[1], size[0], 3), np.uint8)
    image[:] = rgb
    return image


# --- helpers ----------------------------------------------------------------------


def test_fit_within_keeps_aspect_and_never_upscales() -> None:
    assert fit_within(np.zeros((960, 1280, 3), np.uint8), (640, 480)).shape == (480, 640, 3)
    assert fit_within(np.zeros((1080, 1920, 3), np.uint8), (640, 480)).shape == (360, 640, 3)
    small = np.zeros((100, 50, 3), np.uint8)
    assert fit_within(small, (640, 480)) is small
    assert fit_size((2028, 1520), (640, 480)) == (640, 480)


def test_opencv_frames_are_converted_to_rgb() -> None:
    bgr = solid((10, 20, 200))  # B, G, R as OpenCV stores them
    assert tuple(to_rgb(bgr)[0, 0]) == (200, 20, 10)
    grey = np.full((4, 4), 77, np.uint8)
    assert tuple(to_rgb(grey)[0, 0]) == (77, 77, 77)
    bgra = np.dstack([bgr, np.full(bgr.shape[:2], 255, np.uint8)])
    assert tuple(to_rgb(bgra)[0, 0]) == (200, 20, 10)


# --- synthetic ----------------------------------------------------------------------


def test_synthetic_capture_draws_a_new_lesion_each_time() -> None:
    with SyntheticCamera(width=320, height=240, preview_size=(160, 120), seed=5, fps=None) as cam:
        assert isinstance(cam, Camera) and cam.name == "synthetic"
        first, second = cam.capture(), cam.capture()
        assert_rgb_frame(first, (240, 320))
        # Stills are the preview-size drawing scaled up (cheap in time and memory).
        for still, seed in ((first, 5), (second, 6)):
            expected = cv2.resize(demo_lesion(seed, width=160, height=120), (320, 240), interpolation=cv2.INTER_CUBIC)
            assert np.array_equal(still, expected)
        assert not np.array_equal(first, second)
        assert cam.seed == 7


def test_synthetic_preview_is_small_live_and_shows_the_next_capture() -> None:
    cam = SyntheticCamera(width=640, height=480, preview_size=(320, 320), seed=3, fps=None)
    frames = list(itertools.islice(cam.frames(), 6))
    for frame in frames:
        assert_rgb_frame(frame, (240, 320))  # fits 320x320 with the stills' 4:3 aspect
    assert any(not np.array_equal(frames[0], f) for f in frames[1:])  # jitters like a live view
    # What the preview shows is what the next capture returns.
    still = cv2.resize(cam.capture(), (320, 240), interpolation=cv2.INTER_AREA).astype(float)
    assert np.abs(still - frames[0].astype(float)).mean() < 12
    other = cv2.resize(demo_lesion(99, width=640, height=480), (320, 240), interpolation=cv2.INTER_AREA)
    assert np.abs(other.astype(float) - frames[0].astype(float)).mean() > 12
    # After a capture the preview moves on to the next lesion.
    after = next(cam.frames()).astype(float)
    assert np.abs(after - frames[0].astype(float)).mean() > 12


def test_synthetic_close_stops_frames_and_captures() -> None:
    cam = SyntheticCamera(width=64, height=48, preview_size=(32, 24), fps=None)
    stream = cam.frames()
    next(stream)
    cam.close()
    assert list(stream) == []  # the generator ends cleanly
    with pytest.raises(CameraError) as info:
        cam.capture()
    assert info.value.code == "camera_unavailable"


# --- replay -------------------------------------------------------------------------


@pytest.fixture
def replay_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "fotos_ñ"  # non-ASCII path on purpose: cv2.imread would fail on some platforms
    folder.mkdir()
    write_image(folder / "b.png", solid((0, 200, 0)))
    write_image(folder / "a.jpg", solid((200, 30, 30)))
    (folder / "b_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    write_image(folder / "c_ä.BMP", solid((20, 40, 220), size=(1280, 960)))
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_replay_cycles_in_sorted_order_and_skips_corrupt_files(replay_dir: Path) -> None:
    with ReplayCamera(replay_dir, fps=None) as cam:
        assert [p.name for p in cam.files] == ["a.jpg", "b.png", "b_corrupt.png", "c_ä.BMP"]
        colours = [tuple(int(v) for v in cam.capture()[5, 5]) for _ in range(4)]
        assert cam.skipped == [replay_dir / "b_corrupt.png"]
    expected = [(200, 30, 30), (0, 200, 0), (20, 40, 220), (200, 30, 30)]  # RGB, not BGR
    for got, want in zip(colours, expected, strict=True):
        assert np.allclose(got, want, atol=6)  # JPEG is lossy


def test_replay_preview_shows_the_next_capture_downscaled(replay_dir: Path) -> None:
    cam = ReplayCamera(replay_dir, preview_size=(640, 480), fps=None)
    cam.capture()
    cam.capture()  # next is the 1280x960 blue image
    preview = next(cam.frames())
    assert_rgb_frame(preview, (480, 640))
    assert tuple(preview[10, 10]) == (20, 40, 220)
    still = cam.capture()
    assert_rgb_frame(still, (960, 1280))  # full resolution
    cam.close()
    with pytest.raises(CameraError):
        cam.capture()


def test_replay_empty_folder_raises(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(CameraError) as info:
        ReplayCamera(tmp_path)
    assert info.value.code == "camera_unavailable"
    assert str(tmp_path) in str(info.value)


def test_replay_missing_folder_raises(tmp_path: Path) -> None:
    with pytest.raises(CameraError, match="not found"):
        ReplayCamera(tmp_path / "nope")


def test_replay_with_only_unreadable_images_raises_on_capture(tmp_path: Path) -> None:
    (tmp_path / "x.jpg").write_bytes(b"")
    (tmp_path / "y.png").write_bytes(b"garbage")
    cam = ReplayCamera(tmp_path, fps=None)
    with pytest.raises(CameraError, match="can be decoded"):
        cam.capture()


# --- OpenCV --------------------------------------------------------------------------


def test_opencv_nonexistent_device_raises() -> None:
    with pytest.raises(CameraError) as info:
        OpenCVCamera(99)
    assert info.value.code == "camera_unavailable"
    assert "99" in str(info.value)
    with pytest.raises(CameraError):
        open_camera("opencv:99")
    with pytest.raises(CameraError):
        open_camera("opencv:/dev/video-does-not-exist")


class FakeCapture:
    """Stands in for cv2.VideoCapture: numbered BGR frames, records calls."""

    opened: list[FakeCapture] = []

    def __init__(self, device: Any, api: int = 0) -> None:
        self.device, self.api = device, api
        self.count = 0
        self.grabs = 0
        self.props: dict[int, float] = {}
        self.released = False
        FakeCapture.opened.append(self)

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return True

    def set(self, prop: int, value: float) -> bool:
        self.props[prop] = value
        return True

    def grab(self) -> bool:
        self.count += 1
        self.grabs += 1
        return True

    def read(self) -> tuple[bool, np.ndarray]:
        self.count += 1
        frame = np.zeros((960, 1280, 3), np.uint8)
        frame[..., 0] = 200  # blue in BGR
        frame[..., 1] = self.count  # frame number, to see flushing
        return True, frame

    def release(self) -> None:
        self.released = True


def test_opencv_keeps_device_open_flushes_and_converts(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeCapture.opened = []
    monkeypatch.setattr(cv2, "VideoCapture", FakeCapture)
    cam = OpenCVCamera("/dev/video2", width=1280, height=960, fourcc="MJPG")
    assert cam.name == "opencv:/dev/video2"
    cap = FakeCapture.opened[0]
    assert cap.props[cv2.CAP_PROP_FRAME_WIDTH] == 1280 and cap.props[cv2.CAP_PROP_FOURCC]
    first = cam.capture()
    assert_rgb_frame(first, (960, 1280))
    assert tuple(first[0, 0]) == (0, 4, 200)  # RGB; frame 4 = probe read + 2 flushed + this one
    preview = next(cam.frames())
    assert_rgb_frame(preview, (480, 640))
    cam.capture()
    assert len(FakeCapture.opened) == 1  # one VideoCapture for all calls
    assert cap.grabs == 4
    cam.close()
    assert cap.released
    with pytest.raises(CameraError):
        cam.capture()


def test_opencv_read_failure_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    class Dying(FakeCapture):
        def read(self) -> tuple[bool, Any]:
            self.count += 1
            return (self.count == 1, super().read()[1] if self.count == 1 else None)

    monkeypatch.setattr(cv2, "VideoCapture", Dying)
    cam = OpenCVCamera(0)
    with pytest.raises(CameraError, match="stopped delivering frames"):
        cam.capture()


def test_opencv_open_without_frames_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    class Silent(FakeCapture):
        def read(self) -> tuple[bool, Any]:
            return False, None

    monkeypatch.setattr(cv2, "VideoCapture", Silent)
    with pytest.raises(CameraError, match="returned no frame"):
        OpenCVCamera(0)


# --- picamera2 ----------------------------------------------------------------------


def i420_with_padding(rgb: np.ndarray, stride: int) -> np.ndarray:
    """Lay out an image the way picamera2 returns a YUV420 lores array: (h*3/2) x stride."""
    height, width = rgb.shape[:2]
    planar = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).reshape(-1)
    y = planar[: width * height].reshape(height, width)
    u = planar[width * height : width * height * 5 // 4].reshape(height // 2, width // 2)
    v = planar[width * height * 5 // 4 :].reshape(height // 2, width // 2)
    pad = np.zeros((height, stride), np.uint8)
    pad[:, :width] = y
    upad = np.zeros((height // 2, stride // 2), np.uint8)
    upad[:, : width // 2] = u
    vpad = np.zeros((height // 2, stride // 2), np.uint8)
    vpad[:, : width // 2] = v
    return np.concatenate([pad.reshape(-1), upad.reshape(-1), vpad.reshape(-1)]).reshape(height * 3 // 2, stride)


class FakePicamera2:
    """Records how the backend drives picamera2; frames are synthetic."""

    instances: list[FakePicamera2] = []

    def __init__(self, camera_num: int = 0) -> None:
        self.calls: list[tuple[str, Any]] = [("init", camera_num)]
        self.config: dict[str, Any] | None = None
        self.started = False
        # (min, max, default) per control, as libcamera advertises them; the IMX477's AGC has all three.
        self.camera_controls: dict[str, tuple[Any, Any, Any]] = {
            "AeMeteringMode": (0, 3, 0),
            "AeConstraintMode": (0, 3, 0),
            "ExposureValue": (-8.0, 8.0, 0.0),
            "ExposureTime": (1, 66666, 20000),
        }
        self.controls: dict[str, Any] = {}
        FakePicamera2.instances.append(self)

    def set_controls(self, controls: dict[str, Any]) -> None:
        unknown = set(controls) - set(self.camera_controls)
        assert not unknown, f"picamera2 raises on controls the camera does not advertise: {unknown}"
        self.calls.append(("set_controls", dict(controls)))
        self.controls.update(controls)

    def create_preview_configuration(self, main: Any = None, lores: Any = None, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("create_preview_configuration", (main, lores)))
        return {"main": dict(main), "lores": dict(lores), **kwargs}

    def create_still_configuration(self, main: Any = None, lores: Any = None, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("create_still_configuration", (main, lores)))
        return {"main": dict(main), "lores": dict(lores), **kwargs}

    def configure(self, config: dict[str, Any]) -> None:
        assert not self.started, "reconfigured while running"
        self.calls.append(("configure", config))
        self.config = config

    def camera_configuration(self) -> dict[str, Any]:
        assert self.config is not None
        return self.config

    def start(self) -> None:
        self.calls.append(("start", None))
        self.started = True

    def capture_array(self, name: str = "main") -> np.ndarray:
        assert self.started and self.config is not None
        self.calls.append(("capture_array", name))
        width, height = self.config[name]["size"]
        if name == "main":
            bgr = np.zeros((height, width, 3), np.uint8)
            bgr[..., 0], bgr[..., 2] = 10, 240  # "RGB888" arrays are B, G, R in memory
            return bgr
        rgb = np.zeros((height, width, 3), np.uint8)
        rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 120, 40
        return i420_with_padding(rgb, stride=width + 64)

    def switch_mode(self, *args: Any, **kwargs: Any) -> None:
        self.calls.append(("switch_mode", None))

    def switch_mode_and_capture_array(self, *args: Any, **kwargs: Any) -> None:
        self.calls.append(("switch_mode_and_capture_array", None))

    def stop(self) -> None:
        self.calls.append(("stop", None))
        self.started = False

    def close(self) -> None:
        self.calls.append(("close", None))


@pytest.fixture
def fake_picamera2(monkeypatch: pytest.MonkeyPatch) -> type[FakePicamera2]:
    FakePicamera2.instances = []
    module = types.ModuleType("picamera2")
    module.Picamera2 = FakePicamera2  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "picamera2", module)
    return FakePicamera2


def names(cam: FakePicamera2) -> list[str]:
    return [name for name, _ in cam.calls]


def test_picamera2_configures_once_and_never_switches_mode(fake_picamera2: type[FakePicamera2]) -> None:
    cam = PiCamera(main_size=(1024, 768), lores_size=(320, 240))
    fake = fake_picamera2.instances[0]
    stills = [cam.capture() for _ in range(3)]
    previews = list(itertools.islice(cam.frames(), 5))
    stills.append(cam.capture())

    calls = names(fake)
    assert calls.count("configure") == 1 and calls.count("start") == 1
    assert "switch_mode" not in calls and "switch_mode_and_capture_array" not in calls
    assert calls.index("start") < calls.index("capture_array")
    config = dict(fake.calls)["configure"]
    assert config["main"] == {"size": (1024, 768), "format": "RGB888"}
    assert config["lores"] == {"size": (320, 240), "format": "YUV420"}
    assert [arg for name, arg in fake.calls if name == "capture_array"] == ["main"] * 3 + ["lores"] * 5 + ["main"]

    for still in stills:
        assert_rgb_frame(still, (768, 1024))
        assert tuple(still[0, 0]) == (240, 0, 10)  # BGR bytes swapped to RGB
    for frame in previews:
        assert_rgb_frame(frame, (240, 320))  # stride padding cropped
        assert np.allclose(frame[100, 100], (200, 120, 40), atol=4)

    cam.close()
    assert names(fake)[-2:] == ["stop", "close"]
    with pytest.raises(CameraError):
        cam.capture()
    assert list(cam.frames()) == []


def test_picamera2_exposure_protects_highlights_by_default(fake_picamera2: type[FakePicamera2]) -> None:
    with PiCamera(main_size=(640, 480), lores_size=(320, 240)) as cam:
        fake = fake_picamera2.instances[0]
        calls = names(fake)
        assert calls.index("configure") < calls.index("set_controls") < calls.index("start")
        assert fake.controls == {"AeMeteringMode": 0, "AeConstraintMode": 1, "ExposureValue": 0.0}
        assert cam.applied_controls == fake.controls


def test_picamera2_exposure_from_the_settings(fake_picamera2: type[FakePicamera2]) -> None:
    from kiosk.config import CameraSettings

    settings = CameraSettings(source="picamera2", metering="spot", exposure_value=-0.7, protect_highlights=False)
    with camera_from_settings(settings):
        assert fake_picamera2.instances[0].controls == {
            "AeMeteringMode": 1,
            "AeConstraintMode": 0,
            "ExposureValue": -0.7,
        }


def test_picamera2_sets_only_the_exposure_controls_the_sensor_has(fake_picamera2: type[FakePicamera2]) -> None:
    class NoAgcCamera(FakePicamera2):
        def __init__(self, camera_num: int = 0) -> None:
            super().__init__(camera_num)
            self.camera_controls = {"ExposureTime": (1, 66666, 20000)}

    sys.modules["picamera2"].Picamera2 = NoAgcCamera  # type: ignore[attr-defined]
    with PiCamera(main_size=(640, 480), lores_size=(320, 240)) as cam:
        assert cam.applied_controls == {}
        assert "set_controls" not in names(fake_picamera2.instances[0])
        assert_rgb_frame(cam.capture(), (480, 640))


def test_picamera2_exposure_nudges_stay_within_a_stop_of_the_setting(fake_picamera2: type[FakePicamera2]) -> None:
    with PiCamera(main_size=(640, 480), lores_size=(320, 240), exposure=Exposure(exposure_value=-1.5)) as cam:
        fake = fake_picamera2.instances[0]
        assert [cam.nudge_exposure(-0.5) for _ in range(3)] == [-2.0, -2.0, -2.0]  # -2 is the floor
        assert cam.nudge_exposure(0.5) == -1.5
        assert [cam.nudge_exposure(0.5) for _ in range(4)] == [-1.0, -0.5, -0.5, -0.5]  # one stop above -1.5 at most
        assert fake.controls["ExposureValue"] == -0.5 and cam.applied_controls["ExposureValue"] == -0.5
        assert_rgb_frame(cam.capture(), (480, 640))
    assert cam.nudge_exposure(-0.5) is None  # closed


def test_picamera2_without_exposure_value_cannot_be_nudged(fake_picamera2: type[FakePicamera2]) -> None:
    class NoEvCamera(FakePicamera2):
        def __init__(self, camera_num: int = 0) -> None:
            super().__init__(camera_num)
            del self.camera_controls["ExposureValue"]

    sys.modules["picamera2"].Picamera2 = NoEvCamera  # type: ignore[attr-defined]
    with PiCamera(main_size=(640, 480), lores_size=(320, 240)) as cam:
        assert cam.nudge_exposure(-0.5) is None
        assert "ExposureValue" not in fake_picamera2.instances[0].controls


def test_other_cameras_have_no_exposure_to_nudge() -> None:
    with open_camera("synthetic") as cam:
        assert cam.nudge_exposure(-0.5) is None


@pytest.mark.parametrize(
    ("options", "words"),
    [({"metering": "average"}, "metering must be one of centre, spot, matrix"), ({"exposure_value": 3.0}, "-2..2")],
)
def test_exposure_refuses_a_bad_option(options: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        Exposure(**options)


def test_picamera2_missing_module_is_a_camera_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)  # import now raises ImportError
    with pytest.raises(CameraError) as info:
        PiCamera()
    assert info.value.code == "camera_unavailable"
    assert info.value.params["detail"] == NOT_INSTALLED
    assert "apt install python3-picamera2" in str(info.value)


def test_picamera2_without_a_camera_is_a_camera_error(
    fake_picamera2: type[FakePicamera2], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_camera(camera_num: int = 0) -> None:
        raise IndexError("list index out of range")

    monkeypatch.setattr(sys.modules["picamera2"], "Picamera2", no_camera)
    with pytest.raises(CameraError, match="no Raspberry Pi camera"):
        PiCamera()


def test_yuv420_conversion_matches_opencv() -> None:
    rgb = cv2.resize(random_lesion(1, width=64, height=48), (64, 48))
    back = yuv420_to_rgb(i420_with_padding(rgb, stride=128), (64, 48))
    assert back.shape == rgb.shape
    assert np.abs(back.astype(int) - rgb.astype(int)).mean() < 4


# --- open_camera ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "webcam",
        "usb:0",
        "opencv",
        "opencv:",
        "opencv:abc",
        "opencv:-1",
        "replay",
        "replay:",
        "picamera2:0",
        "synthetic:3",
    ],
)
def test_bad_spec_is_a_config_error_naming_the_setting(spec: str) -> None:
    with pytest.raises(ConfigError) as info:
        open_camera(spec)
    assert info.value.code == "config_invalid"
    assert info.value.params["key"] == "camera.source"
    assert "camera.source" in str(info.value)
    assert repr(spec) in str(info.value)


def test_spec_selects_the_backend(tmp_path: Path, fake_picamera2: type[FakePicamera2]) -> None:
    write_image(tmp_path / "one.png", solid((1, 2, 3)))
    with open_camera(" Synthetic ") as cam:
        assert isinstance(cam, SyntheticCamera)
    with open_camera(f"replay:{tmp_path}") as cam:
        assert isinstance(cam, ReplayCamera) and cam.directory == tmp_path
    with open_camera("picamera2") as cam:
        assert isinstance(cam, PiCamera)


def test_replay_spec_with_missing_folder_is_a_camera_error(tmp_path: Path) -> None:
    with pytest.raises(CameraError):
        open_camera(f"replay:{tmp_path / 'missing'}")


def test_auto_falls_back_to_synthetic_and_logs_why(monkeypatch: pytest.MonkeyPatch) -> None:
    if any(Path("/dev").glob("video*")):
        pytest.skip("this machine has a video device; the fallback is tested with fakes below")
    monkeypatch.setitem(sys.modules, "picamera2", None)
    lines: list[str] = []
    cam = open_camera("auto", log=lines.append)
    assert isinstance(cam, SyntheticCamera)
    assert len(lines) == 1
    assert "synthetic" in lines[0]
    assert "picamera2 is not installed" in lines[0]
    assert "opencv:0" in lines[0] and "cannot open camera 0" in lines[0]


def test_auto_falls_back_to_synthetic_with_fakes(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_usb(device: int | str, **sizes: Any) -> None:
        raise CameraError("camera_unavailable", detail=f"cannot open camera {device!r}")

    monkeypatch.setitem(sys.modules, "picamera2", None)
    monkeypatch.setattr(camera_pkg, "OpenCVCamera", no_usb)
    lines: list[str] = []
    assert isinstance(open_camera("auto", log=lines.append), SyntheticCamera)
    assert lines == [
        f"camera: using synthetic (demo images, not a real camera); skipped picamera2: "
        f"{NOT_INSTALLED}; opencv:0: cannot open camera 0"
    ]


def test_auto_prefers_picamera2(fake_picamera2: type[FakePicamera2]) -> None:
    lines: list[str] = []
    cam = open_camera("auto", log=lines.append)
    assert isinstance(cam, PiCamera)
    assert lines == ["camera: using picamera2"]


def test_auto_uses_a_working_usb_camera(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeCapture.opened = []
    monkeypatch.setitem(sys.modules, "picamera2", None)
    monkeypatch.setattr(cv2, "VideoCapture", FakeCapture)
    lines: list[str] = []
    cam = open_camera("auto", log=lines.append)
    assert isinstance(cam, OpenCVCamera) and FakeCapture.opened[0].device == 0
    assert lines[0].startswith("camera: using opencv:0; skipped picamera2: picamera2 is not installed")


# --- sizes from the settings ------------------------------------------------------------

SIZED = {"still_width": 1024, "still_height": 768, "preview_width": 320, "preview_height": 240}


def test_every_backend_gets_its_sizes_from_the_settings(
    tmp_path: Path, fake_picamera2: type[FakePicamera2], monkeypatch: pytest.MonkeyPatch
) -> None:
    from kiosk.camera import camera_from_settings
    from kiosk.config import Settings, load_settings

    config = tmp_path / "kiosk.toml"
    config.write_text("[camera]\n" + "".join(f"{k} = {v}\n" for k, v in SIZED.items()))
    settings = load_settings(config).camera
    assert (settings.still_width, settings.preview_height) == (1024, 240)
    assert Settings().camera.still_width == 2028  # the default, so the test sees the file's values arrive

    with camera_from_settings(settings, spec="synthetic") as cam:
        assert_rgb_frame(cam.capture(), (768, 1024))
        assert_rgb_frame(next(cam.frames()), (240, 320))

    with camera_from_settings(settings, spec="picamera2") as cam:
        config_used = dict(fake_picamera2.instances[-1].calls)["configure"]
        assert config_used["main"]["size"] == (1024, 768) and config_used["lores"]["size"] == (320, 240)
        assert_rgb_frame(cam.capture(), (768, 1024))
        assert_rgb_frame(next(cam.frames()), (240, 320))

    FakeCapture.opened = []
    monkeypatch.setattr(cv2, "VideoCapture", FakeCapture)
    with camera_from_settings(settings, spec="opencv:0") as cam:
        props = FakeCapture.opened[0].props
        assert (props[cv2.CAP_PROP_FRAME_WIDTH], props[cv2.CAP_PROP_FRAME_HEIGHT]) == (1024, 768)
        assert_rgb_frame(next(cam.frames()), (240, 320))  # the fake's 1280x960 frames, fitted to the preview

    folder = tmp_path / "replay"
    folder.mkdir()
    write_image(folder / "big.png", solid((10, 200, 10), size=(2048, 1536)))
    with camera_from_settings(settings, spec=f"replay:{folder}") as cam:
        assert_rgb_frame(next(cam.frames()), (240, 320))
        assert_rgb_frame(cam.capture(), (768, 1024))  # capped like a real camera's still mode


def test_replay_notices_its_only_image_was_deleted(tmp_path: Path) -> None:
    write_image(tmp_path / "only.png", solid((0, 0, 200)))
    with ReplayCamera(tmp_path, fps=None) as cam:
        assert_rgb_frame(cam.capture(), (60, 80))
        assert_rgb_frame(cam.capture(), (60, 80))  # served from the decoded cache
        (tmp_path / "only.png").unlink()
        with pytest.raises(CameraError, match="gone from"):
            cam.capture()
        with pytest.raises(CameraError, match="gone from"):
            next(cam.frames())


def test_replay_drops_a_deleted_image_and_keeps_the_others(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png", solid((200, 0, 0)))
    write_image(tmp_path / "b.png", solid((0, 200, 0)))
    with ReplayCamera(tmp_path, fps=None) as cam:
        (tmp_path / "a.png").unlink()
        assert tuple(int(v) for v in cam.capture()[5, 5]) == (0, 200, 0)
        assert [p.name for p in cam.files] == ["b.png"]
