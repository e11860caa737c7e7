"""Cameras: one interface (``Camera``), several backends, chosen by a spec string.

``camera.source`` in the settings is one of ``auto``, ``picamera2``,
``opencv:N`` / ``opencv:/dev/videoN``, ``replay:DIR`` or ``synthetic``.
``auto`` tries the Pi camera, then a USB camera, then falls back to the
synthetic demo camera, and says why in one log line.

>>> with open_camera("synthetic") as cam:
...     cam.name, cam.capture().shape
('synthetic', (960, 1280, 3))
"""

from __future__ import annotations

from collections.abc import Callable

from ..reasons import CameraError, ConfigError
from .base import Camera, fit_within
from .opencv import OpenCVCamera
from .pi import PiCamera
from .replay import ReplayCamera
from .synthetic import SyntheticCamera

__all__ = ["Camera", "CameraError", "OpenCVCamera", "PiCamera", "ReplayCamera", "SyntheticCamera",
           "fit_within", "open_camera"]

SPECS = "auto, picamera2, opencv:N, opencv:/dev/videoN, replay:DIR or synthetic"


def _bad(spec: str, why: str) -> ConfigError:
    return ConfigError("config_invalid", key="camera.source", detail=f"{why} {spec!r}; use {SPECS}")


def _auto(log: Callable[[str], None] | None) -> Camera:
    skipped: list[str] = []
    camera: Camera | None = None
    for label, make in (("picamera2", PiCamera), ("opencv:0", lambda: OpenCVCamera(0))):
        try:
            camera = make()
            break
        except CameraError as exc:
            skipped.append(f"{label}: {exc.params.get('detail', exc)}")
    if camera is None:
        camera = SyntheticCamera()
        chosen = "synthetic (demo images, not a real camera)"
    else:
        chosen = camera.name
    if log is not None:
        log(f"camera: using {chosen}" + (f"; skipped {'; '.join(skipped)}" if skipped else ""))
    return camera


def open_camera(spec: str, *, log: Callable[[str], None] | None = None) -> Camera:
    """Open the camera named by ``spec`` (see the module docstring).

    A malformed spec raises ``ConfigError`` naming ``camera.source``; a
    well-formed one whose device is missing raises ``CameraError``.
    """
    text = spec.strip()
    kind, sep, arg = text.partition(":")
    kind = kind.lower()
    if not sep:
        if kind == "auto":
            return _auto(log)
        if kind == "picamera2":
            return PiCamera()
        if kind == "synthetic":
            return SyntheticCamera()
        raise _bad(spec, "unknown camera source")
    arg = arg.strip()
    if kind == "opencv":
        if arg.isdigit():
            return OpenCVCamera(int(arg))
        if arg.startswith("/"):  # /dev/videoN, or a stable /dev/v4l/by-id/... link
            return OpenCVCamera(arg)
        raise _bad(spec, "opencv needs a camera index or an absolute device path, got")
    if kind == "replay":
        if not arg:
            raise _bad(spec, "replay needs a folder, got")
        return ReplayCamera(arg)
    raise _bad(spec, "unknown camera source")
