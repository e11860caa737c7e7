"""The one camera interface every backend implements.

A camera gives full-resolution stills (``capture``) and an endless stream of
low-resolution preview frames (``frames``), both HxWx3 uint8 RGB. Failures
raise ``CameraError("camera_unavailable", detail=...)`` with a one-line
detail, so the kiosk can show a plain message instead of a traceback.

>>> class Grey(Camera):
...     name = "grey"
...     def capture(self):
...         return np.full((4, 6, 3), 128, np.uint8)
...     def frames(self):
...         while True:
...             yield self.capture()
>>> with Grey() as cam:
...     cam.capture().shape
(4, 6, 3)
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from types import TracebackType

import cv2
import numpy as np

from ..reasons import CameraError

Size = tuple[int, int]  # (width, height), OpenCV's order


class Camera(abc.ABC):
    """A source of RGB stills and preview frames; use as a context manager."""

    name: str = "camera"

    @abc.abstractmethod
    def capture(self) -> np.ndarray:
        """Return a fresh full-resolution still (HxWx3 uint8 RGB)."""

    @abc.abstractmethod
    def frames(self) -> Iterator[np.ndarray]:
        """Yield preview frames (HxWx3 uint8 RGB, low resolution) forever."""

    def close(self) -> None:  # noqa: B027 - optional: a camera with nothing to release keeps it
        """Release the device. Safe to call twice."""

    def nudge_exposure(self, stops: float) -> float | None:
        """Shift auto exposure by ``stops`` for the photos after this one.

        Returns the exposure compensation now in force, or None when this camera
        has no such control (the default: USB, replay and demo cameras).
        """
        return None

    def __enter__(self) -> Camera:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


def unavailable(detail: str) -> CameraError:
    """The error every backend raises: ``raise unavailable("...") from exc``."""
    return CameraError("camera_unavailable", detail=detail)


def fit_within(image: np.ndarray, size: Size) -> np.ndarray:
    """Downscale ``image`` to fit inside ``size`` (width, height), keeping its aspect ratio.

    Never upscales; a preview only needs to be small and undistorted.

    >>> fit_within(np.zeros((960, 1280, 3), np.uint8), (640, 640)).shape
    (480, 640, 3)
    """
    height, width = image.shape[:2]
    target = fit_size((width, height), size)
    if target == (width, height):
        return image
    return cv2.resize(image, target, interpolation=cv2.INTER_AREA)


def fit_size(size: Size, limit: Size) -> Size:
    """The largest (width, height) with the aspect of ``size`` that fits ``limit``, never larger than ``size``.

    >>> fit_size((2028, 1520), (640, 480))
    (640, 480)
    """
    width, height = size
    scale = min(limit[0] / width, limit[1] / height, 1.0)
    return max(1, round(width * scale)), max(1, round(height * scale))


def check_size(value: Size, what: str) -> Size:
    """Validate a (width, height) pair given by a caller (a programming error if wrong)."""
    width, height = value
    if int(width) <= 0 or int(height) <= 0:
        raise ValueError(f"{what} must be positive (width, height), got {value!r}")
    return int(width), int(height)
