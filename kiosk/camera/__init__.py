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
from typing import TYPE_CHECKING

from ..reasons import CameraError, ConfigError
from .base import Camera, Size, fit_within
from .opencv import OpenCVCamera
from .pi import Exposure, PiCamera
from .replay import ReplayCamera
from .synthetic import SyntheticCamera

if TYPE_CHECKING:
    from ..config import CameraSettings

__all__ = [
    "Camera",
    "CameraError",
    "Exposure",
    "OpenCVCamera",
    "PiCamera",
    "ReplayCamera",
    "SyntheticCamera",
    "camera_from_settings",
    "fit_within",
    "open_camera",
]

SPECS = "auto, picamera2, opencv:N, opencv:/dev/videoN, replay:DIR or synthetic"


def _bad(spec: str, why: str) -> ConfigError:
    return ConfigError("config_invalid", key="camera.source", detail=f"{why} {spec!r}; use {SPECS}")


def _auto(log: Callable[[str], None] | None, sizes: _Options) -> Camera:
    skipped: list[str] = []
    camera: Camera | None = None
    makers: tuple[tuple[str, Callable[[], Camera]], ...] = (
        ("picamera2", lambda: _pi(sizes)),
        ("opencv:0", lambda: _opencv(0, sizes)),
    )
    for label, make in makers:
        try:
            camera = make()
            break
        except CameraError as exc:
            skipped.append(f"{label}: {exc.params.get('detail', exc)}")
    if camera is None:
        camera = _synthetic(sizes)
        chosen = "synthetic (demo images, not a real camera)"
    else:
        chosen = camera.name
    if log is not None:
        log(f"camera: using {chosen}" + (f"; skipped {'; '.join(skipped)}" if skipped else ""))
    return camera


class _Options:
    """The still and preview sizes a backend is asked for (still None: the backend's own default),
    and the Pi camera's auto exposure."""

    def __init__(self, still: Size | None, preview: Size | None, exposure: Exposure | None = None) -> None:
        self.still = still
        self.preview: Size = preview if preview is not None else (640, 480)  # every backend's default
        self.exposure = exposure


def _pi(sizes: _Options) -> Camera:
    if sizes.still is None:
        return PiCamera(lores_size=sizes.preview, exposure=sizes.exposure)
    return PiCamera(main_size=sizes.still, lores_size=sizes.preview, exposure=sizes.exposure)


def _opencv(device: int | str, sizes: _Options) -> Camera:
    width, height = sizes.still if sizes.still is not None else (None, None)
    return OpenCVCamera(device, width=width, height=height, preview_size=sizes.preview)


def _synthetic(sizes: _Options) -> Camera:
    if sizes.still is None:
        return SyntheticCamera(preview_size=sizes.preview)
    return SyntheticCamera(width=sizes.still[0], height=sizes.still[1], preview_size=sizes.preview)


def open_camera(
    spec: str,
    *,
    log: Callable[[str], None] | None = None,
    still_size: Size | None = None,
    preview_size: Size | None = None,
    exposure: Exposure | None = None,
) -> Camera:
    """Open the camera named by ``spec`` (see the module docstring).

    ``still_size`` and ``preview_size`` (width, height) ask the backend for
    its still and preview resolutions (``camera.still_*``/``camera.preview_*``;
    see :func:`camera_from_settings`); ``exposure`` is the Pi camera's auto
    exposure (``camera.metering`` and friends; other backends ignore it).
    A malformed spec raises ``ConfigError`` naming ``camera.source``; a
    well-formed one whose device is missing raises ``CameraError``.
    """
    sizes = _Options(still_size, preview_size, exposure)
    text = spec.strip()
    kind, sep, arg = text.partition(":")
    kind = kind.lower()
    if not sep:
        if kind == "auto":
            return _auto(log, sizes)
        if kind == "picamera2":
            return _pi(sizes)
        if kind == "synthetic":
            return _synthetic(sizes)
        raise _bad(spec, "unknown camera source")
    arg = arg.strip()
    if kind == "opencv":
        if arg.isdigit():
            return _opencv(int(arg), sizes)
        if arg.startswith("/"):  # /dev/videoN, or a stable /dev/v4l/by-id/... link
            return _opencv(arg, sizes)
        raise _bad(spec, "opencv needs a camera index or an absolute device path, got")
    if kind == "replay":
        if not arg:
            raise _bad(spec, "replay needs a folder, got")
        return ReplayCamera(arg, still_size=sizes.still, preview_size=sizes.preview)
    raise _bad(spec, "unknown camera source")


def camera_from_settings(
    settings: CameraSettings, *, spec: str | None = None, log: Callable[[str], None] | None = None
) -> Camera:
    """Open ``spec`` (default ``settings.source``) at the settings' still and preview sizes.

    >>> from kiosk.config import CameraSettings
    >>> with camera_from_settings(CameraSettings(source="synthetic", still_width=640, still_height=480,
    ...                                          preview_width=320, preview_height=240)) as cam:
    ...     cam.capture().shape, next(cam.frames()).shape
    ((480, 640, 3), (240, 320, 3))
    """
    return open_camera(
        spec or settings.source,
        log=log,
        still_size=(settings.still_width, settings.still_height),
        preview_size=(settings.preview_width, settings.preview_height),
        exposure=Exposure(
            metering=settings.metering,
            exposure_value=settings.exposure_value,
            protect_highlights=settings.protect_highlights,
        ),
    )
