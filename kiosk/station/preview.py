"""The live preview: one reader, JPEG-encoded once, fanned out to a few viewers.

Like picamera2's ``StreamingOutput``: a single thread reads the camera's
low-resolution frames (through the supervisor, so each read has a deadline)
and encodes each frame to JPEG once, however many viewers there are; it
stops reading when nobody watches. Viewers are capped (``max_viewers``):
each MJPEG viewer holds one web server thread, and the threads must stay
free for the API, so an extra viewer gets :class:`PreviewBusy` (the web
layer answers 503 with a one-line reason).

>>> from kiosk.camera import SyntheticCamera
>>> from kiosk.station.supervisor import CameraSupervisor
>>> supervisor = CameraSupervisor(SyntheticCamera, on_change=lambda: None)
>>> hub = PreviewHub(supervisor, max_viewers=1)
>>> viewer = hub.open_viewer()
>>> next(viewer)[:2], hub.viewers
(b'\\xff\\xd8', 1)
>>> hub.open_viewer()
Traceback (most recent call last):
...
kiosk.station.preview.PreviewBusy: The live preview is open on too many screens (at most 1); close one and try again.
>>> viewer.close(); hub.close(); supervisor.close()
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np

from ..reasons import CameraError, KioskError
from ..vision.loader import encode_jpeg
from .supervisor import CameraStream, CameraSupervisor

__all__ = ["MAX_VIEWERS", "PREVIEW_JPEG_QUALITY", "PreviewBusy", "PreviewHub", "Viewer"]

_LOG = logging.getLogger(__name__)

PREVIEW_JPEG_QUALITY = 70  # a preview only frames the lesion; small frames keep 15 fps cheap on a Pi
MAX_VIEWERS = 3  # the touchscreen, plus a technician or two; the web server keeps its other threads for the API


class PreviewBusy(KioskError):
    """Every preview slot is taken (code ``preview_busy``)."""


class PreviewHub:
    """One reader thread for ``supervisor``'s preview, JPEG frames for at most ``max_viewers`` viewers."""

    def __init__(
        self, supervisor: CameraSupervisor, *, max_viewers: int = MAX_VIEWERS, log: Callable[[str], None] = _LOG.info
    ) -> None:
        self._supervisor = supervisor
        self.max_viewers = max_viewers
        self._log = log
        self._cond = threading.Condition()
        self._closing = False
        self._viewers = 0
        self._frame: bytes | None = None
        self._seq = 0
        self._reading = False  # True while the reader pulls frames from the camera
        self._thread = threading.Thread(target=self._read, name="station-preview", daemon=True)
        self._thread.start()

    @property
    def viewers(self) -> int:
        with self._cond:
            return self._viewers

    @property
    def reading(self) -> bool:
        """True while frames are being read from the camera (somebody watches)."""
        with self._cond:
            return self._reading

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def open_viewer(self, *, keepalive: float = 2.0) -> Viewer:
        """A slot for one viewer (an iterator of JPEG bytes); ``PreviewBusy`` when all are taken.

        While no new frame comes (the camera is reconnecting) the last frame,
        or a plain grey one, is repeated every ``keepalive`` seconds: a web
        server only notices a viewer that went away when it writes. Close
        the viewer when done (a web server does, on disconnect).
        """
        with self._cond:
            if self._viewers >= self.max_viewers:
                raise PreviewBusy("preview_busy", limit=self.max_viewers)
            self._viewers += 1
            self._cond.notify_all()
            # A running reader's frame is fresh: show it at once. Otherwise wait for the next one.
            seen = -1 if self._reading else self._seq
        return Viewer(self, seen=seen, keepalive=keepalive)

    def _release(self) -> None:
        with self._cond:
            self._viewers -= 1

    def _next_frame(self, seen: int, keepalive: float) -> tuple[bytes, int] | None:
        with self._cond:
            self._cond.wait_for(lambda: self._seq != seen or self._closing, timeout=keepalive)
            if self._closing:
                return None
            return (self._frame if self._frame is not None else _placeholder()), self._seq

    def _read(self) -> None:
        stream: CameraStream | None = None
        try:
            while True:
                with self._cond:
                    if not self._cond.wait_for(lambda: self._viewers > 0 or self._closing, timeout=1.0):
                        if stream is not None:  # nobody watches: stop pulling frames from the sensor
                            stream.close()
                            stream = None
                        self._reading = False
                        self._frame = None  # never show the next viewer an old patient's frame
                        continue
                    if self._closing:
                        return
                if stream is None or not stream.alive:
                    if stream is not None:
                        stream.close()
                    stream = self._open_stream()
                    if stream is None:
                        continue
                try:
                    frame = stream.next()
                except CameraError:
                    stream = None  # the supervisor is rebuilding the camera and has said why
                    continue
                jpeg = encode_jpeg(np.ascontiguousarray(frame), quality=PREVIEW_JPEG_QUALITY)
                with self._cond:
                    self._frame = jpeg
                    self._seq += 1
                    self._reading = True
                    self._cond.notify_all()
        finally:
            if stream is not None:
                stream.close()
            with self._cond:
                self._reading = False

    def _open_stream(self) -> CameraStream | None:
        with self._cond:
            self._reading = False
        if not self._supervisor.wait_available(timeout=0.5):
            return None
        try:
            return self._supervisor.open_stream()
        except CameraError:
            time.sleep(0.05)  # it failed and is being rebuilt; wait_available paces the next try
            return None

    def close(self) -> None:
        """End every viewer's stream and stop the reader. Safe to call twice."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)


class Viewer(Iterator[bytes]):
    """One viewer's JPEG frames; ends when the hub closes. ``close()`` gives the slot back."""

    def __init__(self, hub: PreviewHub, *, seen: int, keepalive: float) -> None:
        self._hub = hub
        self._seen = seen
        self._keepalive = keepalive
        self._open = True
        self._lock = threading.Lock()

    def __iter__(self) -> Viewer:
        return self

    def __next__(self) -> bytes:
        if not self._open:
            raise StopIteration
        got = self._hub._next_frame(self._seen, self._keepalive)
        if got is None:
            self.close()
            raise StopIteration
        frame, self._seen = got
        return frame

    def close(self) -> None:
        with self._lock:
            if not self._open:
                return
            self._open = False
        self._hub._release()

    def __del__(self) -> None:  # a viewer dropped without close() must not keep its slot
        self.close()


@functools.cache
def _placeholder() -> bytes:
    """A plain dark-grey preview frame, for when there is no camera picture to show."""
    return encode_jpeg(np.full((240, 320, 3), 48, np.uint8), quality=PREVIEW_JPEG_QUALITY)
