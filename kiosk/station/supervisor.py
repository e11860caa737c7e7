"""Camera supervision: every camera call under a deadline, reconnects with a growing back-off.

The shape of Frigate's camera watchdog, for one camera:

- **Every call has a deadline.** Each camera object gets one worker thread
  that makes all its calls (open, still, preview frame, close). The caller
  waits on a :class:`concurrent.futures.Future` for at most the deadline. A
  driver that stops answering (a picamera2 whose cable came loose hangs, it
  does not raise) hangs only that worker: the object and its thread are
  abandoned and a fresh camera is built from ``factory``.
- **Back-off that grows.** A camera that fails soon after it opened (a USB
  camera sending corrupt frames, a replay folder that vanished) is not
  reopened at once, again and again: the delay doubles at every failure
  (``retry_initial`` ... ``retry_max``) and starts afresh only after the
  camera has worked for ``healthy_after`` seconds.
- **A stall systemd can see.** A stalled camera that cannot be rebuilt within
  ``restart_after`` seconds is a :meth:`problems` entry; the daemon then stops
  feeding the systemd watchdog, and systemd restarts the kiosk, which frees
  whatever the hung driver holds. A camera that is merely unplugged is not a
  problem: a restart would not plug it back in.

>>> from kiosk.camera import SyntheticCamera
>>> supervisor = CameraSupervisor(SyntheticCamera, log=print, on_change=lambda: None)
>>> supervisor.status, supervisor.capture().shape
('ok', (960, 1280, 3))
>>> supervisor.close()

The back-off schedule on its own:

>>> [backoff_delay(n) for n in range(7)]
[1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from ..camera import Camera
from ..reasons import CameraError, KioskError

__all__ = ["NOT_ANSWERING", "UNAVAILABLE", "CameraStream", "CameraSupervisor", "backoff_delay"]

_LOG = logging.getLogger(__name__)
T = TypeVar("T")

UNAVAILABLE = "camera_unavailable"
NOT_ANSWERING = "camera_not_answering"  # it stalled: the page says so, and systemd restarts the kiosk if it lasts


def backoff_delay(failures: int, *, initial: float = 1.0, maximum: float = 30.0) -> float:
    """Seconds to wait before reconnect attempt number ``failures`` (0-based): doubling, capped.

    >>> backoff_delay(0, initial=0.01, maximum=0.05), backoff_delay(9, initial=0.01, maximum=0.05)
    (0.01, 0.05)
    """
    return float(min(maximum, initial * 2 ** min(max(failures, 0), 32)))


class _Stalled(Exception):
    """The call did not return within its deadline."""


class _Abandoned(Exception):
    """The camera's worker was given up before this call ran."""


@dataclass(eq=False)
class _Job:
    fn: Callable[[], Any]
    always: bool = False  # runs even after the worker is abandoned (the final close)
    future: Future[Any] = field(default_factory=Future)
    started: float | None = None


class _CameraThread:
    """The one thread that talks to one camera object, so a hung driver hangs this thread only."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._abandoned = threading.Event()
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    @property
    def abandoned(self) -> bool:
        return self._abandoned.is_set()

    def call(self, fn: Callable[[], T], *, timeout: float) -> T:
        """``fn()`` on this thread; raises ``_Stalled`` once it has *run* ``timeout`` s without returning.

        It also gives up when it waited ``timeout`` s without even starting: the
        call ahead of it (a preview iterator's close, which nobody waits for)
        has hung the thread.
        """
        job = _Job(fn)
        queued = time.monotonic()
        self._jobs.put(job)
        while True:
            started = job.started
            if started is None:
                if self._abandoned.is_set():
                    job.future.cancel()  # the worker skips it if it ever gets that far
                    raise _Abandoned
                if time.monotonic() - queued > timeout and job.future.cancel():
                    raise _Stalled
                wait = 0.05  # queued behind another call, which has a deadline of its own
            else:
                wait = started + timeout - time.monotonic()
                if wait <= 0:
                    raise _Stalled
            try:
                return job.future.result(timeout=wait)  # type: ignore[no-any-return]
            except FutureTimeout:
                continue

    def post(self, fn: Callable[[], object]) -> None:
        """Run ``fn()`` on this thread without waiting for it (closing an iterator)."""
        if not self._abandoned.is_set():
            self._jobs.put(_Job(fn))

    def abandon(self, cleanup: Callable[[], object] | None = None) -> None:
        """Give up on this thread: queued calls fail; ``cleanup`` runs last, if the thread ever gets there."""
        self._abandoned.set()
        if cleanup is not None:
            self._jobs.put(_Job(cleanup, always=True))
        self._jobs.put(None)

    def join(self, timeout: float) -> None:
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            if self._abandoned.is_set() and not job.always:
                if job.future.set_running_or_notify_cancel():
                    job.future.set_exception(_Abandoned())
                continue
            if not job.future.set_running_or_notify_cancel():
                continue
            job.started = time.monotonic()
            try:
                result = job.fn()
            except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
                job.future.set_exception(exc)
            else:
                job.future.set_result(result)


class CameraStream:
    """Preview frames of one camera generation, each read under the supervisor's deadline."""

    def __init__(self, supervisor: CameraSupervisor, slot: _Slot, frames: Iterator[np.ndarray]) -> None:
        self._supervisor = supervisor
        self._slot = slot
        self._frames = frames

    @property
    def alive(self) -> bool:
        """False once its camera failed or was replaced."""
        return self._supervisor.generation == self._slot.generation

    def next(self) -> np.ndarray:
        """The next preview frame; ``CameraError`` when the camera failed (it is being rebuilt by then)."""
        frame = self._supervisor._attempt(
            self._slot, lambda: next(self._frames, None), timeout=self._supervisor.stall_timeout, what="preview frame"
        )
        if frame is None:
            self._supervisor.failed(self._slot.generation, "the preview stopped")
            raise CameraError(UNAVAILABLE, detail="the preview stopped")
        return frame

    def close(self) -> None:
        close = getattr(self._frames, "close", None)
        if close is not None:
            self._slot.worker.post(close)


@dataclass(frozen=True)
class _Slot:
    camera: Camera
    worker: _CameraThread
    generation: int


class CameraSupervisor:
    """Owns the camera: opens it through ``factory``, makes every call under a deadline, rebuilds it on failure.

    ``call_timeout`` bounds a still, ``stall_timeout`` a preview frame,
    ``open_timeout`` opening a camera. ``on_change()`` runs (on the
    supervisor's threads) whenever :attr:`status` changes.
    """

    def __init__(
        self,
        factory: Callable[[], Camera],
        *,
        log: Callable[[str], None] = _LOG.info,
        on_change: Callable[[], None],
        retry_initial: float = 1.0,
        retry_max: float = 30.0,
        call_timeout: float = 10.0,
        stall_timeout: float = 5.0,
        open_timeout: float = 20.0,
        healthy_after: float = 30.0,
        restart_after: float = 30.0,
        interval: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._factory = factory
        self._log = log
        self._on_change = on_change
        self._retry = (retry_initial, retry_max)
        self.call_timeout = call_timeout
        self.stall_timeout = stall_timeout
        self._open_timeout = open_timeout
        self._healthy_after = healthy_after
        self._restart_after = restart_after
        self._interval = interval
        self._clock = clock

        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._wake = threading.Event()  # a failure wakes the reconnect loop early
        self._available = threading.Condition(self._lock)
        self._slot: _Slot | None = None
        self._generation = 0  # bumps at every failure and reopen; stale callers compare and give up
        self._reason = "starting"
        self._code = UNAVAILABLE
        self._failures = 0  # since the camera last worked for healthy_after seconds
        self._installed_at = clock()
        self._stalled_since: float | None = None

        if not self._open(first=True):  # the first attempt on the caller's thread: READY=1 comes after it
            self._log(f"camera: not available at start ({self._reason}); retrying in the background")
        self._thread = threading.Thread(target=self._reconnect_loop, name="station-camera", daemon=True)
        self._thread.start()

    # --- state -------------------------------------------------------------------

    @property
    def status(self) -> str:
        """``"ok"`` or ``"reconnecting: <reason>"``."""
        with self._lock:
            return "ok" if self._slot is not None else f"reconnecting: {self._reason}"

    @property
    def reason_code(self) -> str | None:
        """None while the camera works, else ``camera_unavailable`` or ``camera_not_answering``."""
        with self._lock:
            return None if self._slot is not None else self._code

    @property
    def name(self) -> str | None:
        with self._lock:
            return self._slot.camera.name if self._slot is not None else None

    @property
    def generation(self) -> int:
        with self._lock:
            return self._generation

    def problems(self) -> tuple[str, ...]:
        """Why the kiosk should be restarted (for the systemd watchdog); empty when it should not."""
        found = []
        if not self._closing.is_set() and not self._thread.is_alive():
            found.append("the camera supervisor thread has stopped")
        with self._lock:
            since = self._stalled_since
        if since is not None and self._clock() - since > self._restart_after:
            found.append(
                f"the camera has not answered for {self._clock() - since:.0f} s (a restart frees the hung driver)"
            )
        return tuple(found)

    def wait_available(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for a working camera; True when there is one."""
        with self._available:
            return (
                self._available.wait_for(lambda: self._slot is not None or self._closing.is_set(), timeout)
                and self._slot is not None
            )

    # --- calls ---------------------------------------------------------------------

    def capture(self) -> np.ndarray:
        """A still from the current camera within ``call_timeout``; ``CameraError`` otherwise."""
        slot = self._current()
        return self._attempt(slot, slot.camera.capture, timeout=self.call_timeout, what="photo")

    def nudge_exposure(self, stops: float) -> float | None:
        """Shift the current camera's exposure (``Camera.nudge_exposure``) within ``call_timeout``.

        None when there is no camera now or it has no exposure control; a camera that fails here is
        rebuilt like one whose still failed, and the caller still gets None (the photo was already taken).
        """
        try:
            slot = self._current()
            return self._attempt(
                slot, lambda: slot.camera.nudge_exposure(stops), timeout=self.call_timeout, what="exposure change"
            )
        except CameraError:
            return None

    def open_stream(self) -> CameraStream:
        """Start reading preview frames from the current camera; ``CameraError`` when there is none."""
        slot = self._current()
        frames = self._attempt(slot, lambda: iter(slot.camera.frames()), timeout=self.call_timeout, what="preview")
        return CameraStream(self, slot, frames)

    def _current(self) -> _Slot:
        with self._lock:
            if self._slot is not None:
                return self._slot
            raise CameraError(self._code, detail=f"reconnecting ({self._reason})")

    def _attempt(self, slot: _Slot, fn: Callable[[], T], *, timeout: float, what: str) -> T:
        try:
            return slot.worker.call(fn, timeout=timeout)
        except _Stalled:
            detail = f"no {what} within {timeout:g} s (camera stalled)"
            self.failed(slot.generation, detail, stalled=True)
            raise CameraError(NOT_ANSWERING, detail=detail) from None
        except _Abandoned:
            with self._lock:
                code, reason = self._code, self._reason
            raise CameraError(code, detail=f"reconnecting ({reason})") from None
        except CameraError as exc:
            self.failed(slot.generation, _detail(exc))
            raise
        except Exception as exc:  # hardware boundary: any backend failure means "rebuild the camera"
            detail = f"{type(exc).__name__}: {exc}"
            self.failed(slot.generation, detail)
            raise CameraError(UNAVAILABLE, detail=detail) from exc

    # --- failure and reconnection --------------------------------------------------------

    def failed(self, generation: int, reason: str, *, stalled: bool = False) -> None:
        """Drop the camera of ``generation`` (once) and let the reconnect loop rebuild it."""
        now = self._clock()
        with self._lock:
            slot = self._slot
            if slot is None or generation != self._generation or self._closing.is_set():
                return  # someone already reported it, or we are shutting down
            self._slot = None
            self._generation += 1
            self._reason, self._code = reason, NOT_ANSWERING if stalled else UNAVAILABLE
            if stalled and self._stalled_since is None:
                self._stalled_since = now
            # A camera that worked for a while starts the back-off afresh; one that failed soon keeps it growing.
            self._failures = 1 if now - self._installed_at >= self._healthy_after else self._failures + 1
            delay = self._delay_locked()
        self._log(f"camera: {slot.camera.name} failed ({reason}); reconnecting in {delay:g} s")
        # A hung driver may never close: the close waits on its own (abandoned) thread, never on ours.
        slot.worker.abandon(cleanup=lambda: _close_quietly(slot.camera))
        self._wake.set()
        self._on_change()

    def _delay_locked(self) -> float:
        return backoff_delay(self._failures - 1, initial=self._retry[0], maximum=self._retry[1])

    def _reconnect_loop(self) -> None:
        while not self._closing.is_set():
            with self._lock:
                missing, delay = self._slot is None, self._delay_locked()
            if not missing:
                self._wake.wait(self._interval)
                self._wake.clear()
                continue
            if self._closing.wait(delay):
                return
            if self._open():
                self._log(f"camera: {self.name} reconnected")
                self._on_change()

    def _open(self, *, first: bool = False) -> bool:
        """One attempt to build a camera (under ``open_timeout``); True when it is installed.

        At the ``first`` attempt an error other than ``CameraError`` (a malformed
        ``camera.source`` is a ``ConfigError``) is raised: retrying cannot mend it.
        """
        worker = _CameraThread(f"camera-{self._generation + 1}")

        def opening() -> Camera:
            camera = self._factory()
            if worker.abandoned:  # it came back after we gave up on it
                _close_quietly(camera)
            return camera

        stalled = False
        try:
            camera = worker.call(opening, timeout=self._open_timeout)
        except _Stalled:
            reason, stalled = f"opening the camera took over {self._open_timeout:g} s (camera stalled)", True
        except KioskError as exc:
            if first and not isinstance(exc, CameraError):
                worker.abandon()
                raise
            reason = _detail(exc)
        except Exception as exc:  # noqa: BLE001 - hardware boundary: keep trying, say why
            reason = _detail(exc) if isinstance(exc, CameraError) else f"{type(exc).__name__}: {exc}"
        else:
            with self._available:
                if not self._closing.is_set():
                    self._generation += 1
                    self._slot = _Slot(camera, worker, self._generation)
                    self._reason, self._installed_at, self._stalled_since = "", self._clock(), None
                    self._available.notify_all()
                    return True
            worker.abandon(cleanup=lambda: _close_quietly(camera))
            return False
        worker.abandon()
        with self._lock:
            self._failures += 1
            changed = reason != self._reason
            self._reason = reason
            if stalled:
                self._code = NOT_ANSWERING
                self._stalled_since = self._stalled_since or self._clock()
            elif self._stalled_since is None:
                self._code = UNAVAILABLE
            delay = self._delay_locked()
        if self._thread_started():
            self._log(f"camera: still unavailable ({reason}); next try in {delay:g} s")
            if changed:
                self._on_change()
        return False

    def _thread_started(self) -> bool:
        return hasattr(self, "_thread")

    # --- lifetime ----------------------------------------------------------------

    def close(self) -> None:
        """Stop reconnecting and close the camera (waiting a moment for it). Safe to call twice."""
        self._closing.set()
        self._wake.set()
        with self._available:
            slot, self._slot = self._slot, None
            self._generation += 1
            self._reason = "the kiosk is shutting down"
            self._available.notify_all()
        if slot is not None:
            slot.worker.abandon(cleanup=lambda: _close_quietly(slot.camera))
            slot.worker.join(timeout=2.0)
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)

    def __enter__(self) -> CameraSupervisor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


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
