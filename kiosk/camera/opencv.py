"""USB cameras and USB dermatoscopes through ``cv2.VideoCapture``.

The device stays open between calls: opening a UVC camera takes up to a
second and resets its exposure. ``capture()`` first discards a couple of
buffered frames, because the driver queues frames taken before the button
was pressed; preview frames are the same stream, downscaled.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator

import cv2
import numpy as np

from .base import Camera, Size, check_size, fit_within, unavailable


def to_rgb(frame: np.ndarray) -> np.ndarray:
    """Convert an OpenCV frame (BGR, BGRA or grey) to RGB uint8."""
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


class OpenCVCamera(Camera):
    """Camera ``device`` (index such as 0, or a path such as /dev/video0).

    ``width``/``height`` request a capture mode (the driver may pick the
    nearest); ``fourcc`` such as "MJPG" selects a compressed mode, which
    many UVC cameras need for full resolution at a usable frame rate;
    ``flush`` is how many queued frames ``capture()`` drops.
    """

    def __init__(
        self,
        device: int | str,
        *,
        width: int | None = None,
        height: int | None = None,
        preview_size: Size = (640, 480),
        fourcc: str | None = None,
        flush: int = 2,
    ) -> None:
        if isinstance(device, str) and device.strip().isdigit():
            device = int(device)
        self.device = device
        self.name = f"opencv:{device}"
        self._preview_size = check_size(preview_size, "preview_size")
        self._flush = max(0, flush)
        self._lock = threading.Lock()
        # V4L2 directly on Linux for indexes and /dev nodes: CAP_ANY may try GStreamer first.
        v4l2 = sys.platform.startswith("linux") and (isinstance(device, int) or device.startswith("/dev/"))
        try:
            cap = cv2.VideoCapture(device, cv2.CAP_V4L2 if v4l2 else cv2.CAP_ANY)
        except cv2.error as exc:
            raise unavailable(f"cannot open camera {device!r}: {exc}") from exc
        if not cap.isOpened():
            cap.release()
            raise unavailable(f"cannot open camera {device!r} (not connected, or in use by another program)")
        if fourcc:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*fourcc))
        if width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        if height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # honoured by V4L2 only; capture() flushes anyway
        ok, frame = cap.read()
        if not ok or frame is None:
            cap.release()
            raise unavailable(f"camera {device!r} opened but returned no frame")
        self._cap: cv2.VideoCapture | None = cap

    def _read(self) -> np.ndarray:
        """One BGR frame (lock held)."""
        if self._cap is None:
            raise unavailable(f"camera {self.device!r} is closed")
        ok, frame = self._cap.read()
        if not ok or frame is None:
            raise unavailable(f"camera {self.device!r} stopped delivering frames (unplugged?)")
        return frame

    def capture(self) -> np.ndarray:
        with self._lock:
            if self._cap is not None:
                for _ in range(self._flush):
                    self._cap.grab()
            return to_rgb(self._read())

    def frames(self) -> Iterator[np.ndarray]:
        """Preview frames, paced by the camera, until it is closed."""
        while True:
            with self._lock:
                if self._cap is None:
                    return
                frame = self._read()
            yield fit_within(to_rgb(frame), self._preview_size)

    def close(self) -> None:
        with self._lock:
            if self._cap is not None:
                self._cap.release()
                self._cap = None
