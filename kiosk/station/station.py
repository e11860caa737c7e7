"""The station: the one long-lived object the web page and the GPIO button share.

It is the only place a screening is started, so the touchscreen and the
physical button can never run two at once:

- **One capture per tap, however many taps.** ``capture_and_screen`` while a
  capture is already running does *not* take a second photo: the caller waits
  on the running capture's :class:`concurrent.futures.Future` and receives the
  same ``(id, result)``. (A second photo a moment later is a deliberate retake.)
- **The camera** belongs to a :class:`~kiosk.station.supervisor.CameraSupervisor`
  (deadlines, reconnects, back-off) and the live preview to a
  :class:`~kiosk.station.preview.PreviewHub` (one reader, a few viewers).
- **A swappable screener.** :meth:`swap_screener` (a model update) takes
  effect between screenings, never during one.
- **Observers** (:mod:`kiosk.station.events`) get a :class:`StationEvent` at
  each change, so the GPIO LEDs follow without this package knowing gpiozero.

>>> from kiosk.camera import SyntheticCamera
>>> from kiosk.model import Model                                   # doctest: +SKIP
>>> screener = Screener(Model.load("models/melanoma_int8.tflite"))  # doctest: +SKIP
>>> with Station(screener=screener, camera_factory=SyntheticCamera, records=None) as station:  # doctest: +SKIP
...     sid, result = station.capture_and_screen()
...     station.camera_status, sid, result.status
('ok', None, 'ok')
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from ..camera import Camera
from ..followup import FollowupPlan
from ..reasons import ImageError, KioskError
from ..records import PatientInfo, RecordStore, RecordStoreError
from ..result import ScreeningResult
from ..screening import Screener
from ..vision.loader import encode_jpeg, load_image
from .events import NOTICES, EventKind, Notice, Observer, Observers, Screening, StationEvent
from .preview import MAX_VIEWERS, PreviewHub, Viewer
from .supervisor import CameraSupervisor

__all__ = ["STILL_JPEG_QUALITY", "Station"]

_LOG = logging.getLogger(__name__)
#: Stops the camera's exposure moves after a photo the quality gate sends back for its exposure.
EXPOSURE_NUDGES = {"overexposed": -0.5, "too_dark": 0.5}

STILL_JPEG_QUALITY = 90
Outcome = tuple[str | None, ScreeningResult]


@dataclass(frozen=True)
class _Decoded:
    """An upload decoded before the screening lock: the pixels, or the error result, and the decode time."""

    image: np.ndarray | None
    error: ScreeningResult | None
    decode_ms: float


class Station:
    """Camera + screener + records, shared by the web page and the GPIO button.

    Live from construction (the camera is opened, its supervisor starts) until
    :meth:`close`; use it as a context manager. When the camera cannot be
    opened at start the station still starts, and keeps trying.

    ``camera_factory`` opens a camera (say ``lambda: open_camera("auto")``);
    it is called again for every reconnect. ``retry_initial``/``retry_max``
    shape the back-off, ``stall_timeout`` is how long one preview frame may
    take, ``capture_timeout`` one still and ``open_timeout`` opening the
    camera; a stalled camera not rebuilt within ``restart_after`` seconds
    shows in :meth:`health`. ``preview_viewers`` caps the live previews.
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
        open_timeout: float = 20.0,
        restart_after: float = 30.0,
        healthy_after: float = 30.0,
        watchdog_interval: float = 0.5,
        preview_viewers: int = MAX_VIEWERS,
    ) -> None:
        self._screener = screener
        self.records = records
        self._log = log
        self._lock = threading.Lock()  # busy, capture in flight, last, notice
        self._screen_lock = threading.Lock()  # the Screener runs one photo at a time; a swap waits for it
        # Uploads decode one at a time (memory: one decode budget) and outside _screen_lock,
        # so a capture never waits behind a large photo's decode.
        self._decode_lock = threading.Lock()
        self._capture: Future[Outcome] | None = None
        self._waiters = 0
        self._busy_since: float | None = None  # monotonic start of the running screening
        self._seq = 0
        self._last: Screening | None = None
        self._notice: Notice | None = None
        self._observers = Observers(log=log)
        self._started = False  # no events before the constructor is done
        self._closing = False
        self.camera = CameraSupervisor(
            camera_factory,
            log=log,
            on_change=self._camera_changed,
            retry_initial=retry_initial,
            retry_max=retry_max,
            call_timeout=capture_timeout,
            stall_timeout=stall_timeout,
            open_timeout=open_timeout,
            healthy_after=healthy_after,
            restart_after=restart_after,
            interval=watchdog_interval,
        )
        self.preview = PreviewHub(self.camera, max_viewers=preview_viewers, log=log)
        self._started = True

    # --- state ---------------------------------------------------------------

    @property
    def screener(self) -> Screener:
        """The screener in use now (a model update swaps it; see :meth:`swap_screener`)."""
        return self._screener

    @property
    def model_sha256(self) -> str:
        return self._screener.model.sha256

    @property
    def camera_status(self) -> str:
        """``"ok"`` or ``"reconnecting: <reason>"``."""
        return self.camera.status

    @property
    def camera_ok(self) -> bool:
        return self.camera_status == "ok"

    @property
    def camera_reason(self) -> str | None:
        """None while the camera works, else ``camera_unavailable`` or ``camera_not_answering`` (a reason code)."""
        return self.camera.reason_code

    @property
    def camera_name(self) -> str | None:
        return self.camera.name

    @property
    def busy(self) -> bool:
        """True while a screening (capture or upload) runs."""
        with self._lock:
            return self._busy_since is not None

    @property
    def notice(self) -> Notice | None:
        """What the screen should announce now (see :data:`~kiosk.station.events.NOTICES`), or ``None``."""
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
            return self._waiters if self._capture is not None else 0

    @property
    def last(self) -> Screening | None:
        """The most recent screening (kept in memory only; saved ones are also in the records)."""
        with self._lock:
            return self._last

    def health(self, *, stuck_after: float = 20.0) -> tuple[str, ...]:
        """What is wrong with the station's own machinery; empty when it is healthy.

        For a supervisor (the systemd watchdog): a station thread has died,
        the camera stalled and could not be rebuilt within ``restart_after``
        seconds, or one screening has run for more than ``stuck_after``
        seconds. An unplugged camera that is reconnecting is *not* a problem:
        restarting the kiosk would not plug it back in.
        """
        problems = list(self.camera.problems())
        if not self._closing and not self.preview.alive:
            problems.append("the preview reader thread has stopped")
        with self._lock:
            since = self._busy_since
        if since is not None and time.monotonic() - since > stuck_after:
            problems.append(f"a screening has been running for {time.monotonic() - since:.0f} s")
        return tuple(problems)

    # --- observers -------------------------------------------------------------

    def subscribe(self, callback: Observer) -> Callable[[], None]:
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
        current = self._event("busy" if self.busy else ("ready" if self.camera_ok else "camera"))
        return self._observers.subscribe(callback, current=current)

    def _event(self, kind: EventKind, screening: Screening | None = None) -> StationEvent:
        return StationEvent(kind=kind, busy=self.busy, camera_status=self.camera_status, screening=screening)

    def _emit(self, kind: EventKind, screening: Screening | None = None) -> None:
        self._observers.emit(self._event(kind, screening))

    def _camera_changed(self) -> None:
        if not self._started:
            return
        self._emit("camera")
        if self.camera_ok and not self.busy:
            self._emit("ready")

    # --- screening -------------------------------------------------------------

    def capture_and_screen(
        self, *, patient: PatientInfo | None = None, followup: FollowupPlan | None = None
    ) -> Outcome:
        """Take a still, screen it, save it; return ``(id, result)`` (``id`` None when not saved).

        ``followup``: this photo is the same spot again; what changed is stored with the
        screening (``followup_of``), and a significant change refers (:mod:`kiosk.followup`).
        If a capture is already running, wait for it and return *its* outcome
        (``patient`` and ``followup`` are then ignored): two taps give one photo. Raises
        ``CameraError`` when no photo could be taken; the camera is being
        rebuilt by then.
        """
        with self._lock:
            future, owner = self._capture, self._capture is None
            if future is None:
                future = self._capture = Future()
                future.set_running_or_notify_cancel()
                self._waiters = 0
            self._waiters += 1
        if not owner:
            try:
                return future.result()
            except KioskError as error:  # each caller gets its own exception object
                raise type(error)(error.code, **error.params) from error
        try:
            outcome = self._run(self.camera.capture, patient=patient, source="camera", followup=followup)
        except BaseException as exc:
            self._finish_capture()
            future.set_exception(exc)
            raise
        self._finish_capture()
        future.set_result(outcome)
        self._nudge_exposure(outcome[1])
        return outcome

    def _nudge_exposure(self, result: ScreeningResult) -> None:
        # A photo sent back as too bright or too dark moves the camera's exposure half a stop, so the
        # retake the health worker takes anyway comes out better (a clip-on lens's black ring opens the
        # exposure until the skin by its LEDs blows out). Bounded in the camera; cameras without it ignore it.
        stops = EXPOSURE_NUDGES.get(result.reason or "") if result.status == "retake" else None
        if stops is None:
            return
        value = self.camera.nudge_exposure(stops)
        if value is not None:
            self._log(f"station: photo {result.reason}; exposure compensation now {value:+.1f} stops")

    def _finish_capture(self) -> None:
        with self._lock:
            self._capture = None

    def screen_upload(self, data: bytes, *, patient: PatientInfo | None = None) -> Outcome:
        """Screen an uploaded photo's bytes and save it like a capture; return ``(id, result)``.

        An unreadable file gives an ``error`` result (reason ``not_an_image``,
        ``empty_file`` ...), which is not saved. The stored JPEG is encoded
        from the decoded, upright pixels: the upload's own EXIF (GPS, camera
        serial) never reaches the disk.
        """
        with self._decode_lock:
            decoded = self._decode(bytes(data))
        return self._run(lambda: decoded, patient=patient, source="upload")

    def _decode(self, data: bytes) -> _Decoded:
        started = time.perf_counter()
        try:
            image = load_image(data)
        except ImageError as exc:
            total = round((time.perf_counter() - started) * 1000, 2)
            error = ScreeningResult.error(
                exc.code, model_sha256=self._screener.model.sha256, timings_ms={"decode": total, "total": total}
            )
            return _Decoded(image=None, error=error, decode_ms=total)
        return _Decoded(image=image, error=None, decode_ms=(time.perf_counter() - started) * 1000)

    def swap_screener(self, screener: Screener) -> Screener:
        """Use ``screener`` from the next screening on; returns the one it replaces.

        Waits for a screening in progress to finish first, so a photo is
        never screened by one model and saved under another's sha256.
        """
        with self._screen_lock:
            previous, self._screener = self._screener, screener
        self._log(f"station: now screening with model {screener.model.sha256[:12]}")
        return previous

    def _run(
        self,
        get_photo: Callable[[], np.ndarray | bytes | _Decoded],
        *,
        patient: PatientInfo | None,
        source: str,
        followup: FollowupPlan | None = None,
    ) -> Outcome:
        with self._screen_lock:
            with self._lock:
                self._busy_since = time.monotonic()
            self._emit("busy")
            screening: Screening | None = None
            acral = patient is not None and patient.acral  # palm, sole, nail: always refer (see Screener)
            try:
                photo = get_photo()
                if isinstance(photo, np.ndarray):
                    image: np.ndarray | None = photo
                    result = self._screener.screen_image(photo, acral_site=acral)
                elif isinstance(photo, _Decoded):
                    image = photo.image
                    if photo.image is None:
                        assert photo.error is not None
                        result = photo.error
                    else:  # "total" counts the decode too, though it ran before the screening lock
                        started = time.perf_counter() - photo.decode_ms / 1000
                        result = self._screener.screen_image(
                            photo.image, acral_site=acral, _started=started, _decode_ms=photo.decode_ms
                        )
                else:
                    image, result = self._screener.decode_and_screen(photo, acral_site=acral)
                change = None
                if followup is not None:
                    result, change = followup.assess(image, result)
                sid = self._save(
                    result,
                    image,
                    patient,
                    followup_of=followup.earlier_id if followup is not None and result.status == "ok" else None,
                    followup=change,
                )
                with self._lock:
                    self._seq += 1
                    screening = self._last = Screening(
                        seq=self._seq, id=sid, result=result, at=datetime.now(UTC), source=source
                    )
                return sid, result
            finally:
                with self._lock:
                    self._busy_since = None
                if screening is not None:
                    self._emit("result", screening)
                self._emit("ready" if self.camera_ok else "camera")

    def _save(
        self,
        result: ScreeningResult,
        image: np.ndarray | None,
        patient: PatientInfo | None,
        *,
        followup_of: str | None = None,
        followup: dict[str, Any] | None = None,
    ) -> str | None:
        if self.records is None or result.status == "error":
            return None  # an error result has no usable photo; nothing to keep
        keep = image is not None and self.records.keep_images
        jpeg = encode_jpeg(image, quality=STILL_JPEG_QUALITY) if keep and image is not None else None
        try:
            return self.records.save(
                result, image_jpeg=jpeg, patient=patient, followup_of=followup_of, followup=followup
            )
        except (OSError, sqlite3.Error, RecordStoreError) as exc:
            # The health worker still sees the result; only the record is lost, and the log says why.
            self._log(f"records: could not save a screening ({type(exc).__name__}: {exc})")
            return None

    # --- preview and lifetime ----------------------------------------------------------

    def preview_frames(self, *, keepalive: float = 2.0) -> Viewer:
        """JPEG frames of the live preview until the station closes (see :meth:`PreviewHub.open_viewer`).

        Raises :class:`~kiosk.station.preview.PreviewBusy` when every preview slot is taken.
        """
        return self.preview.open_viewer(keepalive=keepalive)

    def close(self) -> None:
        """Stop the preview and the camera supervisor, close the camera. Safe to call twice.

        Does not close ``records``: whoever opened the store closes it.
        """
        self._closing = True
        self.camera.close()
        self.preview.close()

    def __enter__(self) -> Station:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
