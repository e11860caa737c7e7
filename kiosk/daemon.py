"""``kiosk serve``: the parts :func:`kiosk.app.build_kiosk` builds, served by waitress.

:func:`run_server` is the whole daemon. It returns 0 after SIGTERM or SIGINT
(or after ``stop_event`` is set), within a couple of seconds: the preview
streams end, running requests get up to ``SHUTDOWN_GRACE`` seconds, the
camera and the records are closed. ``ready_callback`` runs once the socket
listens and the station is up.

What it tells systemd (``Type=notify``; all no-ops outside systemd, see :mod:`kiosk.systemd`):

- ``STATUS=`` lines as it starts (loading the model, opening the camera), then
  the station's state (ready, screening, camera reconnecting) and any health problem.
- ``READY=1`` once the model is loaded, the first camera attempt has finished
  (a missing camera does not hold the start up: the page says so and the
  station keeps trying) and the socket listens.
- ``WATCHDOG=1`` every ``WatchdogSec/2``, but only while the kiosk is healthy
  (:meth:`Health.problems`): the serving loop turns, the station's threads run,
  no screening is stuck and the camera has not been hung (not answering) for
  over 30 s. Otherwise systemd restarts the service.
- ``STOPPING=1`` as soon as SIGTERM (or SIGINT) ends the serving loop.

The physical panel (:mod:`kiosk.gpio`, when ``gpio.enabled`` and the pins open):
its LEDs follow the station; a short press screens a photo in a background
thread (the button thread never waits for a screening); holding the button
for ``gpio.shutdown_hold_seconds`` powers the Pi off with ``shutdown_command``
(``systemctl poweroff``; systemd then stops the kiosk cleanly).

>>> import threading
>>> stop = threading.Event(); stop.set()  # stops as soon as it is ready
>>> run_server(settings=settings, camera_spec="synthetic", host="127.0.0.1", port=0,  # doctest: +SKIP
...            data_dir="/tmp/kiosk-data", stop_event=stop)
0
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import platform
import re
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from waitress import wasyncore
from waitress.server import create_server

from . import systemd
from .app import build_kiosk, build_screener
from .buttons import POWEROFF_COMMAND, ButtonActions
from .config import Settings
from .reasons import ConfigError
from .station import Station, StationEvent
from .web import SERVER_LIMITS, create_app

__all__ = ["POWEROFF_COMMAND", "ButtonActions", "Health", "build_screener", "run_server"]

_LOG = logging.getLogger(__name__)

SERVER_THREADS = 8  # each MJPEG viewer holds one while it watches; the station caps viewers at 3
# Output a slow reader may leave queued before its stream is ended (kiosk.web.stream); waitress's own
# default (16 MB) would let a stalled viewer hold its thread for a minute before anything notices.
OUTBUF_HIGH_WATERMARK = 4 * 2**20
SEND_BUFFER = (socket.SOL_SOCKET, socket.SO_SNDBUF, 256 * 1024)  # the kernel queues little for a stalled reader
LOOP_TIMEOUT = 0.25  # seconds: how soon the serving loop notices a stop request
SHUTDOWN_GRACE = 2.0  # seconds running requests get to finish at shutdown
STUCK_SCREENING = 20.0  # seconds one screening may run before the kiosk counts as unhealthy
LOOP_STALL = 5.0  # seconds the serving loop may go without turning before the kiosk counts as unhealthy
# glibc hands memory blocks of this size and more straight back to the system when freed.
MMAP_THRESHOLD = 128 * 1024


def run_server(
    *,
    settings: Settings,
    camera_spec: str | None = None,
    host: str | None = None,
    port: int | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    ready_callback: Callable[[], None] | None = None,
    stop_event: threading.Event | None = None,
    log: Callable[[str], None] = _LOG.info,
    pin_factory: Any = None,
    shutdown_command: Sequence[str] = POWEROFF_COMMAND,
) -> int:
    """Serve the kiosk until SIGTERM/SIGINT or ``stop_event``; return the exit status (0).

    ``camera_spec``, ``host``, ``port`` and ``data_dir`` default to the
    settings' ``camera.source``, ``web.host``, ``web.port`` and
    ``records.data_dir``. Expected failures (no model, bad camera spec)
    raise :class:`~kiosk.reasons.KioskError` before anything listens.
    ``pin_factory`` is gpiozero's (``MockFactory()`` in tests; ``None``: the
    machine's own). ``shutdown_command`` runs when the button is held (tests
    pass a harmless one).

    A flat sequence of start steps, each registering its stop step on one
    ExitStack, so the stops run in reverse order however far the start got.
    """
    host = host or settings.web.host
    port = settings.web.port if port is None else port
    stop = stop_event or threading.Event()
    _return_big_blocks_to_the_system()
    with contextlib.ExitStack() as steps:
        # First in, last out: a SIGTERM while the model loads, or during the stop steps, is a clean stop too.
        steps.enter_context(_stop_on_signals(stop))
        kiosk = steps.enter_context(
            build_kiosk(
                settings,
                camera_spec=camera_spec,
                data_dir=data_dir,
                pin_factory=pin_factory,
                log=log,
                progress=systemd.status,
                shutdown_command=shutdown_command,
            )
        )
        station = kiosk.station
        assert station is not None  # build_kiosk(station=True)
        app = create_app(settings=settings, station=station, records=kiosk.records, updates=kiosk.updates, host=host)
        socket_map: dict[int, Any] = {}
        server = _listen(app, host=host, port=port, socket_map=socket_map)
        steps.callback(wasyncore.close_all, socket_map)
        steps.callback(server.task_dispatcher.shutdown, timeout=SHUTDOWN_GRACE)
        steps.callback(station.close)  # ends the preview streams, so their worker threads return
        if kiosk.panel is not None:
            steps.callback(kiosk.panel.close)  # no press starts a screening from here on
        url = f"http://{host}:{getattr(server, 'effective_port', port)}"
        status = _StatusLine(url, log=log)
        health = Health(station, on_change=status.problems, on_degraded=status.degraded)
        steps.callback(station.subscribe(status.follow))
        dog = systemd.Watchdog(healthy=health.healthy, log=log)
        camera = station.camera_name or station.camera_status
        log(f"serving on {url} (model {kiosk.model.sha256[:12]}, camera {camera})")
        systemd.ready()
        dog.start()
        steps.callback(_say_stopping, dog, log)
        if ready_callback is not None:
            ready_callback()
        while not stop.is_set():
            health.beat()
            wasyncore.loop(timeout=LOOP_TIMEOUT, map=socket_map, use_poll=True, count=1)
    return 0


def _listen(app: Any, *, host: str, port: int, socket_map: dict[int, Any]) -> Any:
    """A waitress server on ``host:port`` (not yet serving); a one-line ConfigError when it cannot listen."""
    try:
        server = create_server(
            app,
            map=socket_map,
            host=host,
            port=port,
            threads=SERVER_THREADS,
            ident="kiosk",
            clear_untrusted_proxy_headers=True,
            outbuf_high_watermark=OUTBUF_HIGH_WATERMARK,
            **SERVER_LIMITS,
        )  # a body past the upload limit is refused, not spooled
    except OSError as exc:  # port taken, or an address this machine does not have
        raise ConfigError(
            "config_invalid",
            key="web.port" if exc.errno == errno.EADDRINUSE else "web.host",
            detail=f"cannot listen on {host}:{port} ({exc.strerror or exc})",
        ) from None
    with contextlib.suppress(OSError, AttributeError):  # accepted connections inherit it (Linux)
        server.socket.setsockopt(*SEND_BUFFER)
    return server


def _say_stopping(dog: systemd.Watchdog, log: Callable[[str], None]) -> None:
    dog.stop()
    systemd.stopping()
    systemd.status("stopping")
    log("stopping")


class Health:
    """Whether the daemon works, for the systemd watchdog: :meth:`healthy` gates every ping.

    Healthy means: the serving loop (waitress's socket loop, on the main
    thread) has turned within ``LOOP_STALL`` seconds, and the station reports
    no problem (:meth:`Station.health`: its threads run, no screening has
    taken more than ``stuck_after`` seconds, the camera has not hung for over
    30 s without being rebuilt). An unplugged camera that is reconnecting is
    not unhealthy: the station is already on it and the page says so.
    ``on_change`` gets the new list of problems whenever it changes.
    """

    def __init__(
        self,
        station: Station,
        *,
        stuck_after: float = STUCK_SCREENING,
        loop_stall: float = LOOP_STALL,
        on_change: Callable[[tuple[str, ...]], None] | None = None,
        on_degraded: Callable[[tuple[str, ...]], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._station = station
        self._stuck_after = stuck_after
        self._loop_stall = loop_stall
        self._on_change = on_change
        self._clock = clock
        self._beat = clock()
        self._last: tuple[str, ...] = ()
        self._on_degraded = on_degraded
        self._last_degraded: tuple[str, ...] = ()

    def beat(self) -> None:
        """The serving loop calls this at every turn."""
        self._beat = self._clock()

    def problems(self) -> tuple[str, ...]:
        found = list(self._station.health(stuck_after=self._stuck_after))
        quiet = self._clock() - self._beat
        if quiet > self._loop_stall:
            found.insert(0, f"the web server loop has not turned for {quiet:.0f} s")
        return tuple(found)

    def degraded(self) -> tuple[str, ...]:
        """What the kiosk cannot do although it runs: reported, but the watchdog is still fed.

        A full disk is one: restarting the kiosk would not free it, and the
        health worker still gets each result on screen (marked "not saved").
        """
        records = getattr(self._station, "records", None)  # a station without records saves nothing anyway
        if records is not None and records.storage_full:
            return ("storage full, results are not being saved",)
        return ()

    def healthy(self) -> bool:
        degraded = self.degraded()
        if degraded != self._last_degraded and self._on_degraded is not None:
            self._on_degraded(degraded)
        self._last_degraded = degraded
        found = self.problems()
        # Compare without the running seconds, so "stuck for 21 s", "22 s" ... is one change.
        if _shape(found) != _shape(self._last) and self._on_change is not None:
            self._on_change(found)
        self._last = found
        return not found


def _shape(problems: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(re.sub(r"\d+", "#", p) for p in problems)


class _StatusLine:
    """The ``STATUS=`` line ``systemctl status`` shows, following the station's events."""

    def __init__(self, url: str, *, log: Callable[[str], None]) -> None:
        self._url = url
        self._log = log
        self._lock = threading.Lock()
        self._state = "starting"
        self._last = ""
        self._problems: tuple[str, ...] = ()
        self._degraded: tuple[str, ...] = ()

    def follow(self, event: StationEvent) -> None:
        if event.kind == "result" and event.screening is not None:
            result = event.screening.result
            with self._lock:
                self._last = f" (last screening: {result.risk if result.status == 'ok' else result.status})"
            return  # "ready" or "camera" follows at once
        if event.busy:
            state = "screening a photo"
        elif not event.camera_ok:
            state = f"camera {event.camera_status}"
        else:
            state = "ready"
        with self._lock:
            self._state = state
        self._send()

    def problems(self, problems: tuple[str, ...]) -> None:
        if problems:
            self._log("health: " + "; ".join(problems) + " (the systemd watchdog is not pinged)")
        elif self._problems:
            self._log("health: ok again")
        with self._lock:
            self._problems = problems
        self._send()

    def degraded(self, degraded: tuple[str, ...]) -> None:
        if degraded:
            self._log("health: degraded: " + "; ".join(degraded) + " (still serving; the watchdog is still pinged)")
        elif self._degraded:
            self._log("health: no longer degraded")
        with self._lock:
            self._degraded = degraded
        self._send()

    def _send(self) -> None:
        with self._lock:
            text = f"{self._state}{self._last if self._state == 'ready' else ''}; serving {self._url}"
            if self._degraded:
                text = "DEGRADED: " + "; ".join(self._degraded) + "; " + text
            if self._problems:
                text = "UNHEALTHY: " + "; ".join(self._problems) + "; " + text
        systemd.status(text)


def _return_big_blocks_to_the_system() -> bool:
    """Pin glibc's mmap threshold, so freed photo buffers go back to the system; True if set.

    By default glibc raises the threshold to the size of each large block
    freed (up to 32 MB): after the first photo every 9 MB still, its copies
    and JPEGs come from the heap of whichever worker thread screened it, and
    each of the server's threads keeps its own arena of them. Measured with
    ``scripts/bench_api.py`` (2028x1520 replay stills): steady RSS 231 MB
    without, 129 MB with, at the same latency. ``MALLOC_MMAP_THRESHOLD_`` in
    the environment wins; no-op off glibc.
    """
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    m_mmap_threshold = -3  # <malloc.h>
    return bool(mallopt(ctypes.c_int(m_mmap_threshold), ctypes.c_int(MMAP_THRESHOLD)))


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM (systemd stop) and SIGINT (Ctrl-C) set ``stop``; only the main thread can install handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, lambda signum, frame: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
