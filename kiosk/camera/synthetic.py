"""The demo camera: drawn lesions instead of a sensor.

Each ``capture()`` returns a new varied lesion (the seed counts up), in the
demo mix of :func:`kiosk.synthetic.demo_lesion_params`: in every ten photos
some the model scores low, more it refers, and one too shaky to screen. The
preview shows the lesion the next capture will return, redrawn once per
seed at preview size and then only shifted by a pixel or two per frame so it
looks live at almost no cost.

>>> cam = SyntheticCamera(width=320, height=240, preview_size=(160, 120), fps=None)
>>> next(cam.frames()).shape, cam.capture().shape, cam.seed
((120, 160, 3), (240, 320, 3), 1)
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator

import cv2
import numpy as np

from ..synthetic import demo_lesion
from .base import Camera, Size, check_size, fit_size, unavailable


class SyntheticCamera(Camera):
    """Synthetic lesions at ``width`` x ``height``.

    ``fps`` paces ``frames()`` like a real sensor, so a preview loop does not
    spin a CPU core; None yields as fast as asked (tests).
    """

    name = "synthetic"

    def __init__(
        self,
        *,
        width: int = 1280,
        height: int = 960,
        preview_size: Size = (640, 480),
        seed: int = 0,
        fps: float | None = 15.0,
    ) -> None:
        self._size = check_size((width, height), "width/height")
        limit = check_size(preview_size, "preview_size")
        # Same aspect ratio as the stills, so the preview shows exactly what a capture frames.
        self._preview_size = fit_size(self._size, limit)
        self._seed = seed
        self._fps = fps
        self._lock = threading.Lock()
        self._closed = False
        self._preview: tuple[int, np.ndarray] | None = None  # (seed, frame) cache

    @property
    def seed(self) -> int:
        """The seed the next ``capture()`` draws."""
        return self._seed

    def capture(self) -> np.ndarray:
        with self._lock:
            if self._closed:
                raise unavailable("the synthetic camera is closed")
            seed = self._seed
            self._seed += 1
            base = self._preview_of(seed)
        # Drawn at preview size and scaled up: drawing a full-size still costs ~100 MB of
        # float buffers for a moment, which is most of the kiosk's peak memory otherwise.
        if base.shape[1::-1] == self._size:
            return base.copy()
        return cv2.resize(base, self._size, interpolation=cv2.INTER_CUBIC)

    def _preview_of(self, seed: int) -> np.ndarray:
        cached = self._preview
        if cached is not None and cached[0] == seed:
            return cached[1]
        frame = demo_lesion(seed, width=self._preview_size[0], height=self._preview_size[1])
        self._preview = (seed, frame)
        return frame

    def frames(self) -> Iterator[np.ndarray]:
        """Preview frames until the camera is closed."""
        period = 1.0 / self._fps if self._fps else 0.0
        deadline = time.monotonic()
        n = 0
        while True:
            with self._lock:
                if self._closed:
                    return
                base = self._preview_of(self._seed)
            # A slow sub-pixel wander, like a hand-held dermatoscope.
            dx, dy = 1.5 * math.sin(0.7 * n), 1.2 * math.cos(0.45 * n)
            shift = np.array([[1, 0, dx], [0, 1, dy]], np.float32)
            frame = cv2.warpAffine(base, shift, (base.shape[1], base.shape[0]), borderMode=cv2.BORDER_REFLECT_101)
            if period:
                deadline += period
                delay = deadline - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                else:
                    deadline = time.monotonic()  # fell behind: don't burst to catch up
            n += 1
            yield frame

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._preview = None
