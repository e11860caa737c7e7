"""``kiosk serve``: model, camera and records wired into a :class:`~kiosk.station.Station`, served by waitress.

:func:`run_server` is the whole daemon. It returns 0 after SIGTERM or SIGINT
(or after ``stop_event`` is set), within a couple of seconds: the preview
streams end, running requests get up to ``SHUTDOWN_GRACE`` seconds, the
camera and the records are closed. ``ready_callback`` runs once the socket
listens and the station is up (the place for ``sd_notify("READY=1")``).

>>> import threading
>>> stop = threading.Event(); stop.set()  # stops as soon as it is ready
>>> run_server(settings=settings, camera_spec="synthetic", host="127.0.0.1", port=0,  # doctest: +SKIP
...            data_dir="/tmp/kiosk-data", stop_event=stop)
0
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from waitress import wasyncore
from waitress.server import create_server

from .camera import open_camera
from .config import Settings
from .model import Model
from .reasons import ConfigError
from .records import RecordStore
from .screening import Screener
from .station import Station
from .vision.quality import QualityThresholds
from .web import create_app

__all__ = ["build_screener", "run_server"]

_LOG = logging.getLogger(__name__)

SERVER_THREADS = 8  # each MJPEG viewer holds one for as long as it watches
LOOP_TIMEOUT = 0.25  # seconds: how soon the serving loop notices a stop request
SHUTDOWN_GRACE = 2.0  # seconds running requests get to finish at shutdown


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
) -> int:
    """Serve the kiosk until SIGTERM/SIGINT or ``stop_event``; return the exit status (0).

    ``camera_spec``, ``host``, ``port`` and ``data_dir`` default to the
    settings' ``camera.source``, ``web.host``, ``web.port`` and
    ``records.data_dir``. Expected failures (no model, bad camera spec)
    raise :class:`~kiosk.reasons.KioskError` before anything listens.
    """
    spec = camera_spec or settings.camera.source
    host = host or settings.web.host
    port = settings.web.port if port is None else port
    folder = Path(data_dir).expanduser() if data_dir is not None else settings.records.data_dir
    stop = stop_event or threading.Event()

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
        with Station(screener=screener, camera_factory=lambda: open_camera(spec, log=log), records=records,
                     log=log) as station:
            app = create_app(settings=settings, station=station)
            socket_map: dict = {}
            try:
                server = create_server(app, map=socket_map, host=host, port=port, threads=SERVER_THREADS,
                                       ident="kiosk", clear_untrusted_proxy_headers=True)
            except OSError as exc:  # port taken, or an address this machine does not have
                raise ConfigError("config_invalid", key="web.port" if exc.errno == errno.EADDRINUSE else "web.host",
                                  detail=f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
            with _stop_on_signals(stop):
                log(f"serving on http://{host}:{getattr(server, 'effective_port', port)} "
                    f"(model {screener.model.sha256[:12]}, camera {station.camera_name or station.camera_status})")
                if ready_callback is not None:
                    ready_callback()
                try:
                    while not stop.is_set():
                        wasyncore.loop(timeout=LOOP_TIMEOUT, map=socket_map, use_poll=True, count=1)
                finally:
                    log("stopping")
                    station.close()  # ends the preview streams, so their worker threads return
                    server.task_dispatcher.shutdown(timeout=SHUTDOWN_GRACE)
                    wasyncore.close_all(socket_map)
    finally:
        records.close()
    return 0


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
