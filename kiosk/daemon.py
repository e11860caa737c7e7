"""``kiosk serve``: model, camera, records and GPIO panel wired into a :class:`~kiosk.station.Station`, served by waitress.

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
  (:meth:`Health.problems`): the serving loop turns, the station's threads run
  and no screening is stuck. Otherwise systemd restarts the service.
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
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from waitress import wasyncore
from waitress.server import create_server

from . import systemd
from .camera import open_camera
from .config import Settings
from .gpio import open_panel
from .model import Model
from .reasons import ConfigError, KioskError
from .records import RecordStore
from .screening import Screener
from .station import Station, StationEvent
from .vision.quality import QualityThresholds
from .web import SERVER_LIMITS, create_app

__all__ = ["POWEROFF_COMMAND", "ButtonActions", "Health", "build_screener", "run_server"]

_LOG = logging.getLogger(__name__)

SERVER_THREADS = 8  # each MJPEG viewer holds one for as long as it watches
LOOP_TIMEOUT = 0.25  # seconds: how soon the serving loop notices a stop request
SHUTDOWN_GRACE = 2.0  # seconds running requests get to finish at shutdown
STUCK_SCREENING = 20.0  # seconds one screening may run before the kiosk counts as unhealthy
LOOP_STALL = 5.0  # seconds the serving loop may go without turning before the kiosk counts as unhealthy
POWEROFF_COMMAND: tuple[str, ...] = ("systemctl", "poweroff")  # polkit lets the kiosk user (systemd/README.md)
POWEROFF_TIMEOUT = 60.0
# glibc hands memory blocks of this size and more straight back to the system when freed.
MMAP_THRESHOLD = 128 * 1024


def build_screener(settings: Settings) -> Screener:
    """The screener ``settings`` describe (model path and threads, quality gate, camera calibration)."""
    model = Model.load(settings.model.path, threads=settings.model.threads)
    return Screener(model, thresholds=QualityThresholds(min_side=settings.vision.min_side),
                    mm_per_pixel=settings.camera.mm_per_pixel)


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
    """
    spec = camera_spec or settings.camera.source
    host = host or settings.web.host
    port = settings.web.port if port is None else port
    folder = Path(data_dir).expanduser() if data_dir is not None else settings.records.data_dir
    stop = stop_event or threading.Event()
    _return_big_blocks_to_the_system()

    systemd.status("loading the model")
    screener = build_screener(settings)
    try:
        records = RecordStore(folder, retention_days=settings.records.retention_days,
                              keep_images=settings.records.keep_images)
    except OSError as exc:  # a read-only card, a folder owned by someone else
        raise ConfigError("config_invalid", key="records.data_dir",
                          detail=f"cannot use {folder} ({exc.strerror or exc})") from None
    try:
        purged = records.purge_expired()
        if purged:
            log(f"records: removed {purged} screenings older than {settings.records.retention_days} days")
        systemd.status("opening the camera")
        with Station(screener=screener, camera_factory=lambda: open_camera(spec, log=log), records=records,
                     log=log) as station:
            app = create_app(settings=settings, station=station, host=host)
            socket_map: dict = {}
            try:
                server = create_server(app, map=socket_map, host=host, port=port, threads=SERVER_THREADS,
                                       ident="kiosk", clear_untrusted_proxy_headers=True,
                                       **SERVER_LIMITS)  # a body past the upload limit is refused, not spooled
            except OSError as exc:  # port taken, or an address this machine does not have
                raise ConfigError("config_invalid", key="web.port" if exc.errno == errno.EADDRINUSE else "web.host",
                                  detail=f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
            url = f"http://{host}:{getattr(server, 'effective_port', port)}"
            status = _StatusLine(url, log=log)
            health = Health(station, on_change=status.problems)
            button = ButtonActions(station, shutdown_command=shutdown_command, log=log)
            panel = open_panel(settings.gpio, on_capture=button.capture, on_shutdown_request=button.request_shutdown,
                               on_hold_notice=button.hold_notice, log=log, pin_factory=pin_factory)
            unsubscribe = [station.subscribe(status.follow)]
            if panel is not None:
                unsubscribe.append(station.subscribe(panel.follow))
            dog = systemd.Watchdog(healthy=health.healthy, log=log)
            with _stop_on_signals(stop):
                log(f"serving on {url} "
                    f"(model {screener.model.sha256[:12]}, camera {station.camera_name or station.camera_status})")
                systemd.ready()
                dog.start()
                if ready_callback is not None:
                    ready_callback()
                try:
                    while not stop.is_set():
                        health.beat()
                        wasyncore.loop(timeout=LOOP_TIMEOUT, map=socket_map, use_poll=True, count=1)
                finally:
                    dog.stop()
                    systemd.stopping()
                    systemd.status("stopping")
                    log("stopping")
                    for undo in unsubscribe:
                        undo()
                    if panel is not None:
                        panel.close()  # no press starts a screening from here on
                    station.close()  # ends the preview streams, so their worker threads return
                    server.task_dispatcher.shutdown(timeout=SHUTDOWN_GRACE)
                    wasyncore.close_all(socket_map)
    finally:
        records.close()
    return 0


class Health:
    """Whether the daemon works, for the systemd watchdog: :meth:`healthy` gates every ping.

    Healthy means: the serving loop (waitress's socket loop, on the main
    thread) has turned within ``LOOP_STALL`` seconds, and the station reports
    no problem (:meth:`Station.health`: its threads run, no screening has
    taken more than ``stuck_after`` seconds). A reconnecting camera is not
    unhealthy: the station is already on it and the page says so.
    ``on_change`` gets the new list of problems whenever it changes.
    """

    def __init__(self, station: Station, *, stuck_after: float = STUCK_SCREENING, loop_stall: float = LOOP_STALL,
                 on_change: Callable[[tuple[str, ...]], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._station = station
        self._stuck_after = stuck_after
        self._loop_stall = loop_stall
        self._on_change = on_change
        self._clock = clock
        self._beat = clock()
        self._last: tuple[str, ...] = ()

    def beat(self) -> None:
        """The serving loop calls this at every turn."""
        self._beat = self._clock()

    def problems(self) -> tuple[str, ...]:
        found = list(self._station.health(stuck_after=self._stuck_after))
        quiet = self._clock() - self._beat
        if quiet > self._loop_stall:
            found.insert(0, f"the web server loop has not turned for {quiet:.0f} s")
        return tuple(found)

    def healthy(self) -> bool:
        found = self.problems()
        # Compare without the running seconds, so "stuck for 21 s", "22 s" ... is one change.
        if _shape(found) != _shape(self._last) and self._on_change is not None:
            self._on_change(found)
        self._last = found
        return not found


def _shape(problems: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(re.sub(r"\d+", "#", p) for p in problems)


class ButtonActions:
    """What the panel's button does; both callbacks return at once (gpiozero's thread never waits).

    :meth:`capture` screens a photo in a background thread through the
    station, which merges it with a capture already running (the screen and
    the button pressed together give one photo). :meth:`hold_notice` puts
    "keep holding to turn off, let go to cancel" on the screen while the
    button is held. :meth:`request_shutdown` says so on the screen, to
    systemd and the log, then runs ``shutdown_command`` in a background
    thread; a second hold while it runs does nothing.
    """

    def __init__(self, station: Station, *, shutdown_command: Sequence[str] = POWEROFF_COMMAND,
                 log: Callable[[str], None] = _LOG.info, timeout: float = POWEROFF_TIMEOUT) -> None:
        self._station = station
        self._command = tuple(shutdown_command)
        self._log = log
        self._timeout = timeout
        self._lock = threading.Lock()
        self._shutting_down = False
        self.threads: list[threading.Thread] = []  # the latest ones, for tests to join

    def capture(self) -> None:
        thread = threading.Thread(target=self._capture, name="button-capture", daemon=True)
        self.threads = [t for t in self.threads if t.is_alive()] + [thread]
        thread.start()

    def _capture(self) -> None:
        try:
            sid, result = self._station.capture_and_screen()
        except KioskError as exc:  # the camera is reconnecting: the page and the amber LED say so
            self._log(f"button: no photo ({exc})")
        except Exception as exc:  # noqa: BLE001 - a thread of its own: say why, never die silently
            self._log(f"button: the screening failed ({type(exc).__name__}: {exc})")
        else:
            what = result.risk if result.status == "ok" else f"{result.status} ({result.reason})"
            self._log(f"button: screening {sid or '(not saved)'}: {what}")

    def hold_notice(self, shown: bool) -> None:
        with self._lock:
            if self._shutting_down:
                return  # "turning off" stays on the screen
            self._station.set_notice("power_hold" if shown else None)

    def request_shutdown(self) -> None:
        with self._lock:
            if self._shutting_down:
                return
            self._shutting_down = True
            self._station.set_notice("shutting_down")
        command = " ".join(self._command)
        self._log(f"button held: shutting the kiosk down ({command})")
        systemd.status("shutting down: the button was held")
        thread = threading.Thread(target=self._power_off, name="button-shutdown", daemon=True)
        self.threads = [t for t in self.threads if t.is_alive()] + [thread]
        thread.start()

    def _power_off(self) -> None:
        try:
            done = subprocess.run(self._command, stdin=subprocess.DEVNULL, capture_output=True, text=True,  # noqa: S603
                                  timeout=self._timeout, check=False)
            failure = None if done.returncode == 0 else (
                f"exit {done.returncode}: {' '.join((done.stderr or done.stdout).split())[:200]}")
        except (OSError, subprocess.SubprocessError) as exc:
            failure = f"{type(exc).__name__}: {exc}"
        if failure is None:
            return  # systemd stops the kiosk next (SIGTERM)
        self._log(f"button: the shutdown failed ({failure}); the kiosk keeps running")
        systemd.status(f"the shutdown failed ({failure})")
        with self._lock:
            self._shutting_down = False  # another hold may try again
            self._station.set_notice(None)


class _StatusLine:
    """The ``STATUS=`` line ``systemctl status`` shows, following the station's events."""

    def __init__(self, url: str, *, log: Callable[[str], None]) -> None:
        self._url = url
        self._log = log
        self._lock = threading.Lock()
        self._state = "starting"
        self._last = ""
        self._problems: tuple[str, ...] = ()

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

    def _send(self) -> None:
        with self._lock:
            text = f"{self._state}{self._last if self._state == 'ready' else ''}; serving {self._url}"
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
