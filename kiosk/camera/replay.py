"""Replay camera: serves the images in a folder, in name order, round and round.

For demos and field tests with photos taken elsewhere. Files are decoded
from their bytes with ``cv2.imdecode`` (``cv2.imread`` fails on non-ASCII
paths on some platforms); unreadable files are skipped and listed in
``skipped``. The preview shows the image the next ``capture()`` returns.
A file (or the whole folder) deleted while the camera runs is noticed: it
is dropped from the cycle, and when none is left the camera raises
``CameraError`` like an unplugged one, so the station says so.
``still_size`` caps the stills like a real camera's mode (never upscaled).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from .base import Camera, Size, check_size, fit_within, unavailable

#: File name endings the replay camera serves (compared case-insensitively).
EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})


def _decode(path: Path) -> np.ndarray | None:
    """RGB uint8 image, or None if the file cannot be read or decoded."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError:
        return None
    if data.size == 0:
        return None
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)  # 3 channels, EXIF orientation applied
    if bgr is None:
        return None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class ReplayCamera(Camera):
    """Cycle through the images of ``directory``; ``fps`` paces ``frames()`` (None: unpaced)."""

    name = "replay"

    def __init__(
        self,
        directory: str | Path,
        *,
        preview_size: Size = (640, 480),
        still_size: Size | None = None,
        fps: float | None = 15.0,
    ) -> None:
        self.directory = Path(directory)
        self._preview_size = check_size(preview_size, "preview_size")
        self._still_size = check_size(still_size, "still_size") if still_size is not None else None
        self._fps = fps
        if not self.directory.is_dir():
            raise unavailable(f"replay folder not found: {self.directory}")
        self.files = sorted(
            (p for p in self.directory.iterdir() if p.suffix.lower() in EXTENSIONS and p.is_file()),
            key=lambda p: p.name,
        )
        if not self.files:
            raise unavailable(f"no .jpg/.jpeg/.png/.webp/.bmp images in replay folder {self.directory}")
        self.skipped: list[Path] = []
        self._index = 0
        self._lock = threading.Lock()
        self._closed = False
        self._current: tuple[int, np.ndarray] | None = None  # decoded image at _index
        self._preview: tuple[int, np.ndarray] | None = None
        self._checked = 0.0  # monotonic time the preview last made sure its file still exists

    def _still_there(self) -> None:
        """Drop the current file from the cycle if it was deleted; raise when none is left (lock held)."""
        if not self.files:
            raise unavailable(f"the replay images are gone from {self.directory}")
        path = self.files[self._index]
        try:
            os.stat(path)
            return
        except OSError:
            pass
        del self.files[self._index]
        self._current = self._preview = None
        if not self.files:
            raise unavailable(f"the replay images are gone from {self.directory}")
        self._index %= len(self.files)

    def _load_current(self) -> tuple[int, np.ndarray]:
        """Decode the image at ``_index``, moving past unreadable files (lock held)."""
        if self._closed:
            raise unavailable(f"the replay camera ({self.directory}) is closed")
        if self._current is not None and self._current[0] == self._index:
            return self._current
        for _ in range(len(self.files)):
            path = self.files[self._index]
            if path not in self.skipped:
                image = _decode(path)
                if image is not None and self._still_size is not None:
                    image = fit_within(image, self._still_size)
                if image is not None:
                    self._current = (self._index, image)
                    return self._current
                self.skipped.append(path)
            self._index = (self._index + 1) % len(self.files)
        raise unavailable(f"none of the {len(self.files)} images in {self.directory} can be decoded")

    def capture(self) -> np.ndarray:
        with self._lock:
            if self._closed:
                raise unavailable(f"the replay camera ({self.directory}) is closed")
            self._still_there()
            index, image = self._load_current()
            self._index = (index + 1) % len(self.files)
            return image.copy()  # callers may draw on it; the cache stays clean

    def frames(self) -> Iterator[np.ndarray]:
        """Preview frames until the camera is closed."""
        period = 1.0 / self._fps if self._fps else 0.0
        while True:
            with self._lock:
                if self._closed:
                    return
                if time.monotonic() - self._checked >= 1.0:  # a stat per second, not per frame
                    self._still_there()
                    self._checked = time.monotonic()
                index, image = self._load_current()
                if self._preview is None or self._preview[0] != index:
                    self._preview = (index, fit_within(image, self._preview_size))
                frame = self._preview[1]
            yield frame.copy()
            if period:
                time.sleep(period)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._current = self._preview = None
