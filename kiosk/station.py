"""The station: the one long-lived object the web page and the GPIO button share.

It owns the camera and the screener and is the only place a screening is
started, so the touchscreen and the physical button can never run two at once:

- **One capture per tap, however many taps.** ``capture_and_screen`` while a
  capture is already running does *not* take a second photo: the caller waits
  for the running one and receives the same ``(id, result)``. A double tap,
  or the screen and the button pressed together, gives one photo, one record.
  (A second photo a moment later is a deliberate retake and is allowed.)
- **A camera watchdog.** A capture or preview that raises ``CameraError``, or
  stalls, marks the camera ``reconnecting: <reason>``; a background thread
  closes it and reopens it through ``camera_factory`` with exponential
  back-off (1, 2, 4 ... 30 s), as Frigate does for its cameras. The kiosk
  keeps running meanwhile and says so (``camera_status``, ``/healthz``).
- **One preview reader.** A single thread reads the camera's low-resolution
  frames and encodes each to JPEG once, however many MJPEG viewers there are;
  it stops reading when nobody watches.
- **A notice for the screen.** ``set_notice("power_hold")`` or
  ``"shutting_down"`` (the physical button being held) shows on every page
  until cleared, so nobody is surprised by a kiosk turning itself off.
- **Observers.** ``subscribe(callback)`` gets a :class:`StationEvent` at each
  change ("busy", "result", "ready", "camera"), so the GPIO LEDs can follow
  without this module knowing about gpiozero. Data flows one way: the station
  calls observers; observers never reach into a screening.

>>> from kiosk.camera import SyntheticCamera
>>> from kiosk.model import Model                                   # doctest: +SKIP
>>> screener = Screener(Model.load("models/melanoma_int8.tflite"))  # doctest: +SKIP
>>> with Station(screener=screener, camera_factory=SyntheticCamera, records=None) as station:  # doctest: +SKIP
...     sid, result = station.capture_and_screen()
...     station.camera_status, sid, result.status
('ok', None, 'ok')

The back-off schedule on its own:

>>> [backoff_delay(n) for n in range(7)]
[1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

import numpy as np

from .camera import Camera
from .reasons import CameraError, ImageError, KioskError
from .records import PatientInfo, RecordStore, RecordStoreError
from .result import ScreeningResult
from .screening import Screener
from .vision.loader import encode_jpeg, load_image

__all__ = ["Screening", "Station", "StationEvent", "backoff_delay"]

_LOG = logging.getLogger(__name__)

EventKind = Literal["busy", "result", "ready", "camera"]
#: "power_hold": the button is held and will turn the kiosk off; "shutting_down": it is turning off.
Notice = Literal["power_hold", "shutting_down"]
NOTICES: tuple[Notice, ...] = ("power_hold", "shutting_down")

PREVIEW_JPEG_QUALITY = 70  # a preview only frames the lesion; small frames keep 15 fps cheap on a Pi
STILL_JPEG_QUALITY = 90


def backoff_delay(failures: int, *, initial: float = 1.0, maximum: float = 30.0) -> float:
    """Seconds to wait before reconnect attempt number ``failures`` (0-based): doubling, capped.

    >>> backoff_delay(0, initial=0.01, maximum=0.05), backoff_delay(9, initial=0.01, maximum=0.05)
    (0.01, 0.05)
    """
    return float(min(maximum, initial * 2 ** min(failures, 32)))


@dataclass(frozen=True, kw_only=True)
class Screening:
    """One screening the station ran: ``id`` is None when it was not saved (no store, or saving failed)."""

    seq: int  # counts up from 1 per station; lets a page notice a new result
    id: str | None
    result: ScreeningResult
    at: datetime  # UTC
    source: str  # "camera" or "upload"


@dataclass(frozen=True, kw_only=True)
class StationEvent:
    """What observers receive.

    ``kind`` is "busy" (a screening started), "result" (it finished;
    ``screening`` is set), "ready" (idle with a working camera) or "camera"
    (the camera failed or came back; see ``camera_status``).

    >>> StationEvent(kind="ready", busy=False, camera_status="ok").ready
    True
    >>> StationEvent(kind="camera", busy=False, camera_status="reconnecting: unplugged").ready
    False
    """

    kind: EventKind
    busy: bool
    camera_status: str
    screening: Screening | None = None

    @property
    def camera_ok(self) -> bool:
        return self.camera_status == "ok"

    @property
    def ready(self) -> bool:
        """True when a capture would start now: idle and the camera works."""
        return not self.busy and self.camera_ok


@dataclass(frozen=True)
class _Decoded:
    """An upload decoded before the screening lock: the pixels, or the error result, and the decode time."""

    image: np.ndarray | None
    error: ScreeningResult | None
    decode_ms: float


@dataclass
class _Job:
    """A capture in flight; callers that arrive meanwhile wait for it."""

    done: threading.Event = field(default_factory=threading.Event)
    waiters: int = 1
    outcome: tuple[str | None, ScreeningResult] | None = None
    error: BaseException | None = None


class Station:
    """Camera + screener + records, shared by the web page and the GPIO button.

    Live from construction (the camera is opened, the watchdog starts) until
    :meth:`close`; use it as a context manager. When the camera cannot be
    opened at start the station still starts, and keeps trying.

    ``camera_factory`` opens a camera (say ``lambda: open_camera("auto")``);
    it is called again for every reconnect. ``retry_initial``/``retry_max``
    shape the back-off, ``stall_timeout`` is how long the preview may go
    without a frame (while someone watches) and ``capture_timeout`` how long
    a still may take before the camera counts as stalled.
    """

    def __init__(
        self,
        *,
        screener: Screener,
        camera_factory: Callable[[], Camera],
        records: RecordStore | None,
        log: Callable[[str], None] = _LOG.info,
        retry_initial: float = 1.0,
        retry_max: float = 30.0,
        stall_timeout: float = 5.0,
        capture_timeout: float = 10.0,
        watchdog_interval: float = 0.5,
    ) -> None:
        self.screener = screener
        self.records = records
        self._factory = camera_factory
        self._log = log
        self._retry = (retry_initial, retry_max)
        self._stall_timeout = stall_timeout
        self._capture_timeout = capture_timeout
        self._watchdog_interval = watchdog_interval

        self._lock = threading.Lock()  # camera, generation, status, job, last
        self._screen_lock = threading.Lock()  # the Screener runs one photo at a time
        # Uploads decode one at a time (memory: one decode budget) and outside _screen_lock,
        # so a capture never waits behind a large photo's decode.
        self._decode_lock = threading.Lock()
        self._closing = threading.Event()
        self._wake = threading.Event()  # a failure wakes the watchdog early
        self._camera: Camera | None = None
        self._generation = 0  # bumps at every failure and reopen; stale threads compare and quit
        self._camera_reason = "starting"
        self._job: _Job | None = None
        self._busy = False
        self._busy_since: float | None = None  # monotonic start of the running screening
        self._pump_thread: threading.Thread | None = None  # the current camera generation's preview reader
        self._seq = 0
        self._last: Screening | None = None
        self._observers: list[Callable[[StationEvent], None]] = []
        self._notice: Notice | None = None

        # Preview: one reader thread per camera generation, frames handed over under this condition.
        self._frames = threading.Condition()
        self._clients = 0
        self._frame: bytes | None = None
        self._frame_seq = 0
        self._pump_since: float | None = None  # monotonic time of the last frame, or of the pump's start

        try:
            camera = camera_factory()
        except CameraError as exc:
            self._camera_reason = _detail(exc)
            self._log(f"camera: not available at start ({self._camera_reason}); retrying in the background")
        else:
            self._install(camera)
        self._watchdog = threading.Thread(target=self._watch, name="station-watchdog", daemon=True)
        self._watchdog.start()

    # --- state ---------------------------------------------------------------

    @property
    def camera_status(self) -> str:
        """``"ok"`` or ``"reconnecting: <reason>"``."""
        with self._lock:
            return self._status_locked()

    def _status_locked(self) -> str:
        return "ok" if self._camera is not None else f"reconnecting: {self._camera_reason}"

    @property
    def camera_ok(self) -> bool:
        return self.camera_status == "ok"

    @property
    def camera_name(self) -> str | None:
        with self._lock:
            return self._camera.name if self._camera is not None else None

    @property
    def busy(self) -> bool:
        """True while a screening (capture or upload) runs."""
        with self._lock:
            return self._busy

    @property
    def notice(self) -> Notice | None:
        """What the screen should announce now (see :data:`NOTICES`), or ``None``."""
        with self._lock:
            return self._notice

    def set_notice(self, notice: Notice | None) -> None:
        """Announce ``notice`` on the screen (``None`` clears it).

        >>> from kiosk.camera import SyntheticCamera
        >>> with Station(screener=None, camera_factory=SyntheticCamera, records=None) as station:
        ...     station.set_notice("power_hold"); station.notice
        'power_hold'
        """
        if notice is not None and notice not in NOTICES:
            raise ValueError(f"unknown notice {notice!r}; expected one of {', '.join(NOTICES)}")
        with self._lock:
            self._notice = notice

    @property
    def pending_requests(self) -> int:
        """Callers waiting on the capture in flight, its owner included (0 when none)."""
        with self._lock:
            return self._job.waiters if self._job is not None else 0

    @property
    def last(self) -> Screening | None:
        """The most recent screening (kept in memory only; saved ones are also in the records)."""
        with self._lock:
            return self._last

    @property
    def model_sha256(self) -> str:
        """The sha256 of the model screening now (read at each call: a model update swaps it live)."""
        return self.screener.model.sha256

    def swap_screener(self, screener: Screener) -> Screener:
        """Screen with ``screener`` from the next photo on; returns the one it replaces.

        Takes the screening lock, so it waits for a screening in progress and
        never changes the model during one (a model update from the settings page).
        """
        with self._screen_lock:
            old, self.screener = self.screener, screener
        self._log(f"model: now {screener.model.sha256[:12]} (was {old.model.sha256[:12] if old else 'none'})")
        return old

    def health(self, *, stuck_after: float = 20.0) -> tuple[str, ...]:
        """What is wrong with the station's own machinery; empty when it is healthy.

        For a supervisor (the systemd watchdog): the camera watchdog thread
        has died, the current camera's preview reader has died, or one
        screening has run for more than ``stuck_after`` seconds. A camera
        that is reconnecting is *not* a problem here: the station is already
        dealing with it, and restarting the kiosk would not plug it back in.
        Quick and non-blocking apart from the station's own short lock.
        """
        problems = []
        if not self._closing.is_set() and not self._watchdog.is_alive():
            problems.append("the camera watchdog thread has stopped")
        with self._lock:
            camera, pump, since = self._camera, self._pump_thread, self._busy_since
        if camera is not None and pump is not None and not pump.is_alive():
            problems.append("the preview reader thread has stopped")
        if since is not None and time.monotonic() - since > stuck_after:
            problems.append(f"a screening has been running for {time.monotonic() - since:.0f} s")
        return tuple(problems)

    # --- observers -------------------------------------------------------------

    def subscribe(self, callback: Callable[[StationEvent], None]) -> Callable[[], None]:
        """Call ``callback(event)`` at every change; returns a function that unsubscribes.

        The callback first receives the current state ("ready", "busy" or
        "camera"). It runs in the station's threads: keep it short and do not
        call back into the station's screening methods from it.

        >>> from kiosk.camera import SyntheticCamera
        >>> with Station(screener=None, camera_factory=SyntheticCamera, records=None) as station:  # no screening here
        ...     unsubscribe = station.subscribe(lambda event: print(event.kind, event.camera_status))
        ...     unsubscribe()
        ready ok
        """
        with self._lock:
            self._observers.append(callback)
            status, busy = self._status_locked(), self._busy
        kind: EventKind = "busy" if busy else ("ready" if status == "ok" else "camera")
        self._call(callback, StationEvent(kind=kind, busy=busy, camera_status=status))

        def unsubscribe() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._observers.remove(callback)

        return unsubscribe

    def _emit(self, kind: EventKind, screening: Screening | None = None) -> None:
        with self._lock:
            observers = list(self._observers)
            event = StationEvent(kind=kind, busy=self._busy, camera_status=self._status_locked(), screening=screening)
        for callback in observers:
            self._call(callback, event)

    def _call(self, callback: Callable[[StationEvent], None], event: StationEvent) -> None:
        try:
            callback(event)
        except Exception as exc:  # noqa: BLE001 - a broken LED must never break a screening
            self._log(f"station: observer {callback!r} failed on {event.kind!r}: {type(exc).__name__}: {exc}")

    # --- screening -------------------------------------------------------------

    def capture_and_screen(self, *, patient: PatientInfo | None = None) -> tuple[str | None, ScreeningResult]:
        """Take a still, screen it, save it; return ``(id, result)`` (``id`` None when not saved).

        If a capture is already running, wait for it and return *its* outcome
        (``patient`` is then ignored): two taps give one photo. Raises
        ``CameraError`` when no photo could be taken; the watchdog is already
        reconnecting by then.
        """
        with self._lock:
            job = self._job
            if job is not None:
                job.waiters += 1
                owner = False
            else:
                job = self._job = _Job()
                owner = True
        if not owner:
            job.done.wait()
            error = job.error
            if isinstance(error, KioskError):  # each caller gets its own exception object
                raise type(error)(error.code, **error.params) from error
            if error is not None:
                raise error
            assert job.outcome is not None
            return job.outcome
        try:
            job.outcome = self._run(lambda: self._capture_still(), patient=patient, source="camera")
            return job.outcome
        except BaseException as exc:
            job.error = exc
            raise
        finally:
            with self._lock:
                self._job = None
            job.done.set()

    def screen_upload(self, data: bytes, *, patient: PatientInfo | None = None) -> tuple[str | None, ScreeningResult]:
        """Screen an uploaded photo's bytes and save it like a capture; return ``(id, result)``.

        An unreadable file gives an ``error`` result (reason ``not_an_image``,
        ``empty_file`` ...), which is not saved.
        """
        with self._decode_lock:
            decoded = self._decode(bytes(data))
        return self._run(lambda: decoded, patient=patient, source="upload")

    def _run(self, get_photo: Callable[[], np.ndarray | _Decoded], *, patient: PatientInfo | None,
             source: str) -> tuple[str | None, ScreeningResult]:
        with self._screen_lock:
            with self._lock:
                self._busy = True
                self._busy_since = time.monotonic()
            self._emit("busy")
            screening: Screening | None = None
            try:
                photo = get_photo()
                image, result = self._screen(photo)
                sid = self._save(result, image, patient)
                with self._lock:
                    self._seq += 1
                    screening = self._last = Screening(seq=self._seq, id=sid, result=result,
                                                       at=datetime.now(timezone.utc), source=source)
                return sid, result
            finally:
                with self._lock:
                    self._busy = False
                    self._busy_since = None
                if screening is not None:
                    self._emit("result", screening)
                self._emit("ready" if self.camera_ok else "camera")

    def _screen(self, photo: np.ndarray | _Decoded) -> tuple[np.ndarray | None, ScreeningResult]:
        if isinstance(photo, np.ndarray):
            return photo, self.screener.screen_image(photo)
        if photo.image is None:
            assert photo.error is not None
            return None, photo.error
        # "total" counts the decode too, as for a file, though it ran before the screening lock.
        started = time.perf_counter() - photo.decode_ms / 1000
        return photo.image, self.screener.screen_image(photo.image, _started=started, _decode_ms=photo.decode_ms)

    def _decode(self, data: bytes) -> _Decoded:
        # Decode here rather than in screen_file, so the stored JPEG is re-encoded from
        # the upright pixels: the upload's own EXIF (GPS, camera serial) never reaches the disk.
        started = time.perf_counter()
        try:
            image = load_image(data)
        except ImageError as exc:
            total = round((time.perf_counter() - started) * 1000, 2)
            error = ScreeningResult.error(exc.code, model_sha256=self.model_sha256,
                                          timings_ms={"decode": total, "total": total})
            return _Decoded(image=None, error=error, decode_ms=total)
        return _Decoded(image=image, error=None, decode_ms=(time.perf_counter() - started) * 1000)

    def _save(self, result: ScreeningResult, image: np.ndarray | None, patient: PatientInfo | None) -> str | None:
        if self.records is None or result.status == "error":
            return None  # an error result has no usable photo; nothing to keep
        jpeg = encode_jpeg(image, quality=STILL_JPEG_QUALITY) if image is not None and self.records.keep_images else None
        try:
            return self.records.save(result, image_jpeg=jpeg, patient=patient)
        except (OSError, sqlite3.Error, RecordStoreError) as exc:
            # The health worker still sees the result; only the record is lost, and the log says why.
            self._log(f"records: could not save a screening ({type(exc).__name__}: {exc})")
            return None

    # --- camera ----------------------------------------------------------------

    def _capture_still(self) -> np.ndarray:
        """A still from the current camera, within ``capture_timeout`` (else the camera counts as stalled)."""
        with self._lock:
            camera, generation, reason = self._camera, self._generation, self._camera_reason
        if camera is None:
            raise CameraError("camera_unavailable", detail=f"reconnecting ({reason})")
        box: dict[str, Any] = {}
        done = threading.Event()

        def work() -> None:
            try:
                box["frame"] = camera.capture()
            except BaseException as exc:  # noqa: BLE001 - handed to the caller below
                box["error"] = exc
            finally:
                done.set()

        # A thread of its own, so a hung driver cannot hang the caller: after the timeout it is abandoned.
        threading.Thread(target=work, name="station-capture", daemon=True).start()
        if not done.wait(self._capture_timeout):
            detail = f"no photo within {self._capture_timeout:g} s (camera stalled)"
            self._camera_failed(generation, detail)
            raise CameraError("camera_unavailable", detail=detail)
        error = box.get("error")
        if isinstance(error, CameraError):
            self._camera_failed(generation, _detail(error))
            raise error
        if isinstance(error, Exception):  # hardware boundary: any backend failure means "reconnect"
            detail = f"{type(error).__name__}: {error}"
            self._camera_failed(generation, detail)
            raise CameraError("camera_unavailable", detail=detail) from error
        if error is not None:
            raise error  # KeyboardInterrupt and friends
        frame: np.ndarray = box["frame"]
        return frame

    def _install(self, camera: Camera) -> None:
        """Make ``camera`` current and start its preview reader."""
        with self._lock:
            self._camera = camera
            self._generation += 1
            self._camera_reason = ""
            generation = self._generation
            # Started under the lock, so health() never sees a camera whose reader is not running yet.
            self._pump_thread = threading.Thread(target=self._pump, args=(camera, generation),
                                                 name=f"station-preview-{generation}", daemon=True)
            self._pump_thread.start()

    def _camera_failed(self, generation: int, reason: str) -> None:
        """Drop the camera of ``generation`` (once) and let the watchdog reopen it."""
        with self._lock:
            if generation != self._generation or self._camera is None or self._closing.is_set():
                return  # someone already reported it, or we are shutting down
            camera, self._camera = self._camera, None
            self._generation += 1
            self._camera_reason = reason
        with self._frames:
            self._frames.notify_all()
        self._log(f"camera: {camera.name} failed ({reason}); reconnecting")
        # Closing may block on a hung device: never on the caller's thread.
        threading.Thread(target=_close_quietly, args=(camera,), name="station-camera-close", daemon=True).start()
        self._wake.set()
        self._emit("camera")

    def _watch(self) -> None:
        """Reopen a failed camera with back-off; spot a preview that stopped delivering frames."""
        failures = 0
        while not self._closing.is_set():
            with self._lock:
                missing = self._camera is None
                generation = self._generation
            if not missing:
                self._check_stall(generation)
                self._wake.wait(self._watchdog_interval)
                self._wake.clear()
                continue
            delay = backoff_delay(failures, initial=self._retry[0], maximum=self._retry[1])
            if self._closing.wait(delay):
                return
            try:
                camera = self._factory()
            except Exception as exc:  # noqa: BLE001 - hardware boundary: keep trying, say why
                failures += 1
                reason = _detail(exc) if isinstance(exc, CameraError) else f"{type(exc).__name__}: {exc}"
                with self._lock:
                    changed, self._camera_reason = reason != self._camera_reason, reason
                next_delay = backoff_delay(failures, initial=self._retry[0], maximum=self._retry[1])
                self._log(f"camera: still unavailable ({reason}); next try in {next_delay:g} s")
                if changed:
                    self._emit("camera")
                continue
            if self._closing.is_set():
                _close_quietly(camera)
                return
            failures = 0
            self._install(camera)
            self._log(f"camera: {camera.name} reconnected")
            self._emit("camera")
            if not self.busy:
                self._emit("ready")

    def _check_stall(self, generation: int) -> None:
        with self._frames:
            since, watched = self._pump_since, self._clients > 0
        if watched and since is not None and time.monotonic() - since > self._stall_timeout:
            self._camera_failed(generation, f"no preview frame for {self._stall_timeout:g} s (camera stalled)")

    # --- preview ---------------------------------------------------------------

    def _pump(self, camera: Camera, generation: int) -> None:
        """Read preview frames of one camera generation while anybody watches; JPEG-encode each once."""
        frames: Iterator[np.ndarray] | None = None

        def current() -> bool:
            return self._generation == generation and not self._closing.is_set()

        try:
            while current():
                with self._frames:
                    idle = self._clients == 0
                if idle:
                    if frames is not None:  # nobody watches: stop pulling frames from the sensor
                        _close_iterator(frames)
                        frames = None
                        with self._frames:
                            self._pump_since = None
                            self._frame = None  # never show the next viewer an old patient's frame
                    with self._frames:
                        self._frames.wait_for(lambda: self._clients > 0 or not current(), timeout=1.0)
                    continue
                if frames is None:
                    frames = iter(camera.frames())
                    with self._frames:
                        self._pump_since = time.monotonic()
                try:
                    frame = next(frames)
                except StopIteration:
                    frames = None
                    self._camera_failed(generation, "the preview stopped")
                    return
                except Exception as exc:  # noqa: BLE001 - hardware boundary, as in _capture_still
                    frames = None
                    self._camera_failed(generation, _detail(exc) if isinstance(exc, CameraError)
                                        else f"{type(exc).__name__}: {exc}")
                    return
                jpeg = encode_jpeg(np.ascontiguousarray(frame), quality=PREVIEW_JPEG_QUALITY)
                with self._frames:
                    if not current():
                        return
                    self._frame = jpeg
                    self._frame_seq += 1
                    self._pump_since = time.monotonic()
                    self._frames.notify_all()
        finally:
            if frames is not None:
                _close_iterator(frames)
            with self._frames:
                if self._generation == generation or self._closing.is_set():
                    self._pump_since = None

    def preview_frames(self, *, keepalive: float = 2.0) -> Generator[bytes]:
        """Yield JPEG bytes of live preview frames until the station closes (for MJPEG).

        While no new frame comes (the camera is reconnecting) the last frame,
        or a plain grey one, is repeated every ``keepalive`` seconds: a web
        server only notices a viewer that went away when it writes, and a
        silent stream would hold one of its threads until the camera returns.
        Close the generator when done (a web server does, on disconnect).
        """
        with self._frames:
            self._clients += 1
            self._frames.notify_all()
            # A running pump's frame is fresh: show it at once. Otherwise wait for the next one.
            seen = -1 if self._pump_since is not None else self._frame_seq
        try:
            while not self._closing.is_set():
                with self._frames:
                    self._frames.wait_for(lambda: self._frame_seq != seen or self._closing.is_set(),  # noqa: B023 - called here
                                         timeout=keepalive)
                    if self._closing.is_set():
                        return
                    frame, seen = self._frame, self._frame_seq
                yield frame if frame is not None else _placeholder()
        finally:
            with self._frames:
                self._clients -= 1

    # --- lifetime ----------------------------------------------------------------

    def close(self) -> None:
        """Stop the watchdog and the preview, close the camera. Safe to call twice.

        Does not close ``records``: whoever opened the store closes it.
        """
        self._closing.set()
        self._wake.set()
        with self._lock:
            camera, self._camera = self._camera, None
            self._generation += 1
            self._camera_reason = "the kiosk is shutting down"
        with self._frames:
            self._frames.notify_all()
        if camera is not None:
            _close_quietly(camera)
        if self._watchdog is not threading.current_thread():
            self._watchdog.join(timeout=2.0)

    def __enter__(self) -> Station:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@functools.cache
def _placeholder() -> bytes:
    """A plain dark-grey preview frame, for when there is no camera picture to show."""
    return encode_jpeg(np.full((240, 320, 3), 48, np.uint8), quality=PREVIEW_JPEG_QUALITY)


def _detail(exc: BaseException) -> str:
    """The one-line detail of a CameraError (its ``detail`` parameter), else its message."""
    params = getattr(exc, "params", None)
    if isinstance(params, dict) and params.get("detail"):
        return str(params["detail"])
    return str(exc) or type(exc).__name__


def _close_quietly(camera: Camera) -> None:
    try:
        camera.close()
    except Exception as exc:  # noqa: BLE001 - a camera that fails to close is already being replaced
        _LOG.warning("camera: closing %s failed: %s: %s", camera.name, type(exc).__name__, exc)


def _close_iterator(frames: Iterator[np.ndarray]) -> None:
    close = getattr(frames, "close", None)
    if close is not None:
        with contextlib.suppress(Exception):
            close()
