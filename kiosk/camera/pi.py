"""Raspberry Pi camera modules through picamera2 (libcamera).

One configuration runs for the camera's whole life: a ``main`` stream at
still resolution and a ``lores`` stream for the preview, started once.
Switching modes per capture would cost about a second and re-run auto
exposure; with both streams running a still is just the next main frame.

picamera2 comes from Raspberry Pi OS (apt), not PyPI, so it is imported only
when a ``PiCamera`` is made. This module is ``pi``, not ``picamera2``, so it
never shadows the real package.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from .base import Camera, Size, check_size, unavailable

NOT_INSTALLED = "picamera2 is not installed (Raspberry Pi OS: apt install python3-picamera2)"

#: libcamera's ``AeMeteringMode`` values, by the names the settings use.
METERING_MODES = {"centre": 0, "spot": 1, "matrix": 2}
_AE_CONSTRAINT_NORMAL, _AE_CONSTRAINT_HIGHLIGHT = 0, 1  # libcamera's ``AeConstraintMode``
#: How far the quality gate's nudges may move exposure from the configured compensation, in stops.
NUDGE_LIMIT = 1.0


@dataclass(frozen=True, kw_only=True)
class Exposure:
    """How auto exposure meters a dermatoscope photo.

    A clip-on lens puts a black ring round the lit skin, and an average over the
    whole frame then opens up until the skin near the LEDs clips (the quality gate
    sends such photos back). ``protect_highlights`` asks libcamera's
    highlight-constraint mode (the Raspberry Pi tuning files' "highlight": the
    brightest 2% of pixels held below 0.8) to stop short of that;
    ``exposure_value`` shifts the target by whole or part stops (-2..2);
    ``metering`` is ``centre`` (libcamera's default), ``spot`` or ``matrix``.
    Chosen by reasoning, not yet measured on a Pi camera.

    >>> Exposure(metering="spot", exposure_value=-0.5).controls()
    {'AeMeteringMode': 1, 'AeConstraintMode': 1, 'ExposureValue': -0.5}
    """

    metering: str = "centre"
    exposure_value: float = 0.0
    protect_highlights: bool = True

    def __post_init__(self) -> None:
        if self.metering not in METERING_MODES:
            raise ValueError(f"metering must be one of {', '.join(METERING_MODES)}, got {self.metering!r}")
        if not -2.0 <= self.exposure_value <= 2.0:
            raise ValueError(f"exposure_value must be within -2..2 stops, got {self.exposure_value!r}")

    def controls(self) -> dict[str, int | float]:
        """The libcamera controls, by name, that ``picamera2.set_controls`` takes."""
        constraint = _AE_CONSTRAINT_HIGHLIGHT if self.protect_highlights else _AE_CONSTRAINT_NORMAL
        return {
            "AeMeteringMode": METERING_MODES[self.metering],
            "AeConstraintMode": constraint,
            "ExposureValue": float(self.exposure_value),
        }


def supported_controls(wanted: Mapping[str, int | float], available: Any) -> dict[str, int | float]:
    """The ``wanted`` controls this camera advertises (``Picamera2.camera_controls``); a USB or odd sensor
    without auto exposure takes none, rather than failing to start.

    >>> supported_controls({"AeMeteringMode": 1, "ExposureValue": 0.0}, {"ExposureValue": (-8.0, 8.0, 0.0)})
    {'ExposureValue': 0.0}
    """
    try:
        names = set(available)
    except TypeError:
        return {}
    return {name: value for name, value in wanted.items() if name in names}


def yuv420_to_rgb(array: np.ndarray, size: Size) -> np.ndarray:
    """Convert picamera2's YUV420 array ((h*3/2) x stride) to RGB, cropping row padding.

    libcamera's YUV420 is I420 (Y, then U, then V planes; picamera2's own
    converters read it so). Not cv2.COLOR_YUV420p2RGB: that is YV12, V first,
    and swaps red and blue. OpenCV assumes limited-range BT.601 while the Pi's
    preview stream is full-range sYCC, so the preview is slightly more
    contrasty than the still; fine for framing, and stills come from main.
    """
    width, height = size
    return cv2.cvtColor(array, cv2.COLOR_YUV2RGB_I420)[:height, :width]


class PiCamera(Camera):
    """A CSI camera module: ``main_size`` stills, ``lores_size`` preview (both (width, height)).

    2028x1520 is the HQ camera's (IMX477) full field of view, 2x2 binned:
    3 MP is plenty for a 224-pixel model input, cheaper to move than 12 MP,
    and 4:3 like the 640x480 preview (lores is scaled from the same field of
    view, so matching aspects keep the preview undistorted).
    """

    name = "picamera2"

    def __init__(
        self,
        *,
        main_size: Size = (2028, 1520),
        lores_size: Size = (640, 480),
        camera_num: int = 0,
        exposure: Exposure | None = None,
    ) -> None:
        self._main_size = check_size(main_size, "main_size")
        self.exposure = exposure if exposure is not None else Exposure()
        #: The exposure controls the camera took (those it advertises), set once at start.
        self.applied_controls: dict[str, int | float] = {}
        self._lores_size = check_size(lores_size, "lores_size")
        try:
            from picamera2 import Picamera2
        except ImportError as exc:
            raise unavailable(NOT_INSTALLED) from exc
        self._lock = threading.Lock()
        # Hardware boundary: libcamera raises assorted types (IndexError when no camera
        # is attached, RuntimeError when busy), so anything here means "unavailable".
        try:
            cam: Any = Picamera2(camera_num)
        except Exception as exc:
            raise unavailable(f"no Raspberry Pi camera {camera_num} found ({type(exc).__name__}: {exc})") from exc
        try:
            # "RGB888" is libcamera's name; in memory the bytes are B, G, R (picamera2
            # manual, and its make_image maps RGB888 to PIL "BGR"), so capture() swaps.
            # A preview configuration keeps ~15+ fps; a still one allows 1 s frames in the dark.
            config = cam.create_preview_configuration(
                main={"size": self._main_size, "format": "RGB888"},
                lores={"size": self._lores_size, "format": "YUV420"},  # Pi 4's ISP wants YUV for lores
            )
            cam.configure(config)
            # Set once, before start: auto exposure then converges on the first preview frames.
            self.applied_controls = supported_controls(self.exposure.controls(), getattr(cam, "camera_controls", {}))
            if self.applied_controls:
                cam.set_controls(self.applied_controls)
            cam.start()
            self._lores_size = self._configured_size(cam, "lores", self._lores_size)
        except Exception as exc:
            cam.close()
            raise unavailable(f"cannot start the Raspberry Pi camera ({type(exc).__name__}: {exc})") from exc
        self._cam: Any | None = cam

    @staticmethod
    def _configured_size(cam: Any, stream: str, requested: Size) -> Size:
        # libcamera may round a requested size to what the ISP supports.
        try:
            width, height = cam.camera_configuration()[stream]["size"]
            return int(width), int(height)
        except Exception:
            return requested

    def _array(self, stream: str) -> np.ndarray:
        if self._cam is None:
            raise unavailable("the Raspberry Pi camera is closed")
        try:
            frame: np.ndarray = self._cam.capture_array(stream)
            return frame
        except Exception as exc:  # hardware boundary, as above
            raise unavailable(f"the Raspberry Pi camera stopped ({type(exc).__name__}: {exc})") from exc

    def capture(self) -> np.ndarray:
        with self._lock:
            bgr = self._array("main")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def frames(self) -> Iterator[np.ndarray]:
        """Preview frames from the lores stream, paced by the sensor, until closed."""
        while True:
            with self._lock:
                if self._cam is None:
                    return
                yuv = self._array("lores")
            yield yuv420_to_rgb(yuv, self._lores_size)

    def nudge_exposure(self, stops: float) -> float | None:
        """Move ``ExposureValue`` by ``stops``, at most :data:`NUDGE_LIMIT` from the configured value and
        within -2..2; the value now set, or None when the sensor has no ``ExposureValue``."""
        with self._lock:
            if self._cam is None or "ExposureValue" not in self.applied_controls:
                return None
            base = self.exposure.exposure_value
            nudge = min(max(self.applied_controls["ExposureValue"] - base + stops, -NUDGE_LIMIT), NUDGE_LIMIT)
            value = round(min(max(base + nudge, -2.0), 2.0), 3)
            try:
                self._cam.set_controls({"ExposureValue": value})
            except Exception as exc:  # hardware boundary, as in _array
                raise unavailable(f"the Raspberry Pi camera stopped ({type(exc).__name__}: {exc})") from exc
            self.applied_controls["ExposureValue"] = value
            return value

    def close(self) -> None:
        with self._lock:
            cam, self._cam = self._cam, None
        if cam is not None:
            try:
                cam.stop()
            finally:
                cam.close()
