"""Talking to systemd: readiness, status and the watchdog, without any dependency.

The service runs as ``Type=notify`` with ``WatchdogSec=``: systemd waits for
``READY=1`` before it counts the kiosk as started, and restarts it when the
``WATCHDOG=1`` pings stop. This module speaks the sd_notify protocol itself
(one datagram of ``KEY=value`` lines to ``$NOTIFY_SOCKET``) so the kiosk
needs neither libsystemd nor a Python binding for it. Outside systemd every
call is a harmless no-op that returns ``False``.

>>> import os, socket, tempfile
>>> folder = tempfile.TemporaryDirectory()
>>> path = os.path.join(folder.name, "notify")
>>> systemd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
>>> systemd.bind(path)
>>> notify("READY=1", env={"NOTIFY_SOCKET": path})
True
>>> systemd.recv(4096)
b'READY=1'
>>> notify("READY=1", env={})  # not started by systemd
False
>>> systemd.close(); folder.cleanup()
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Self

__all__ = ["Watchdog", "notify", "ready", "status", "stopping", "watchdog", "watchdog_interval"]

Log = Callable[[str], None]


def _address(value: str) -> str | None:
    """The socket address named by ``$NOTIFY_SOCKET``; ``None`` for kinds we do not speak."""
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]  # Linux abstract namespace: no file behind it
    return None  # e.g. "vsock:...", used only for virtual machines


def notify(message: str, *, env: Mapping[str, str] | None = None) -> bool:
    """Send ``message`` (``KEY=value`` lines) to systemd; ``True`` if it was sent.

    ``False`` when ``$NOTIFY_SOCKET`` is unset (not run by systemd, or not
    ``Type=notify``) or the datagram could not be sent. Never raises: a
    kiosk must not stop because its supervisor did not hear it.
    ``env`` defaults to ``os.environ``.
    """
    environ = os.environ if env is None else env
    address = _address(environ.get("NOTIFY_SOCKET", ""))
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode("utf-8"))
    except OSError:
        return False
    return True


def ready(*, env: Mapping[str, str] | None = None) -> bool:
    """Tell systemd the kiosk is up: model loaded, camera open, web page serving."""
    return notify("READY=1", env=env)


def stopping(*, env: Mapping[str, str] | None = None) -> bool:
    """Tell systemd the kiosk has begun a clean shutdown."""
    return notify("STOPPING=1", env=env)


def watchdog(*, env: Mapping[str, str] | None = None) -> bool:
    """One watchdog ping: "still alive and working"."""
    return notify("WATCHDOG=1", env=env)


def status(text: str, *, env: Mapping[str, str] | None = None) -> bool:
    """A one-line status that ``systemctl status`` shows.

    Line breaks become spaces: each line of a notification is a separate
    assignment, so a newline in the text could otherwise send, say, READY=1.

    >>> status("screening\\nREADY=1", env={})
    False
    """
    return notify("STATUS=" + " ".join(text.splitlines()), env=env)


def watchdog_interval(*, env: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """Seconds within which systemd expects a ping, or ``None`` if no watchdog watches us.

    From ``$WATCHDOG_USEC``; when ``$WATCHDOG_PID`` is set it must be this
    process (``pid`` defaults to ``os.getpid()``), else the watchdog belongs
    to another process, e.g. a parent that started us.

    >>> watchdog_interval(env={"WATCHDOG_USEC": "30000000"})
    30.0
    >>> watchdog_interval(env={"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, pid=2) is None
    True
    """
    environ = os.environ if env is None else env
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    owner = environ.get("WATCHDOG_PID")
    if owner is not None:
        try:
            if int(owner) != (os.getpid() if pid is None else pid):
                return None
        except ValueError:
            return None
    return usec / 1_000_000


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class Watchdog:
    """Ping systemd's watchdog at half the interval, but only while ``healthy()`` says so.

    A watchdog thread that pinged unconditionally would keep a kiosk with a
    dead camera or a stuck pipeline "alive" forever. Here every ping first
    asks ``healthy()`` (quick, no blocking I/O); while it returns false,
    raises or hangs, no ping is sent, and after ``WatchdogSec=`` systemd
    restarts the service (``Restart=on-failure``). Pinging resumes by itself
    if the kiosk recovers before that.

    ``interval`` defaults to :func:`watchdog_interval`; with no watchdog
    configured, :meth:`start` does nothing. ``log`` gets one line when the
    kiosk turns unhealthy and one when it recovers.

    >>> with Watchdog(healthy=lambda: True, env={}) as dog:
    ...     dog.interval is None  # not under systemd: nothing to ping
    True
    """

    def __init__(
        self,
        *,
        healthy: Callable[[], bool],
        interval: float | None = None,
        env: Mapping[str, str] | None = None,
        log: Log | None = None,
    ) -> None:
        self._healthy = healthy
        self._env = env
        self._log = log or _stderr
        self.interval = watchdog_interval(env=env) if interval is None else interval
        if self.interval is not None and self.interval <= 0:
            raise ValueError("interval must be positive")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._was_healthy = True

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Self:
        """Start pinging (the first check and ping happen at once)."""
        if self.interval is None or self._thread is not None:
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="systemd-watchdog", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop pinging; call before :func:`stopping` on a clean shutdown."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def check(self) -> bool:
        """Run the health check once and ping if it passes; returns whether it passed."""
        try:
            ok = bool(self._healthy())
            why = "health check failed"
        except Exception as exc:  # noqa: BLE001 - a crashing check is an unhealthy kiosk
            ok = False
            why = f"health check raised {type(exc).__name__}: {exc}"
        if ok:
            watchdog(env=self._env)
            if not self._was_healthy:
                self._log("watchdog: healthy again; pinging systemd")
        elif self._was_healthy:
            within = f" if this lasts {self.interval:g} s" if self.interval else ""
            self._log(f"watchdog: {why}; not pinging systemd, which restarts the kiosk{within}")
        self._was_healthy = ok
        return ok

    def _run(self) -> None:
        assert self.interval is not None  # start() checked it
        period = self.interval / 2
        while not self._stop.is_set():
            self.check()
            self._stop.wait(period)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
