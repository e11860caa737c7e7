"""What the panel's physical button does to the station: screen a photo, warn while held, power off.

>>> actions = ButtonActions(station, shutdown_command=("true",))  # doctest: +SKIP
>>> actions.capture()   # returns at once; the screening runs in a background thread  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import subprocess
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from . import systemd
from .reasons import KioskError

if TYPE_CHECKING:
    from .station import Station

__all__ = ["POWEROFF_COMMAND", "POWEROFF_TIMEOUT", "ButtonActions"]

_LOG = logging.getLogger(__name__)

POWEROFF_COMMAND: tuple[str, ...] = ("systemctl", "poweroff")  # polkit lets the kiosk user (systemd/README.md)
POWEROFF_TIMEOUT = 60.0


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

    def __init__(
        self,
        station: Station,
        *,
        shutdown_command: Sequence[str] = POWEROFF_COMMAND,
        log: Callable[[str], None] = _LOG.info,
        timeout: float = POWEROFF_TIMEOUT,
    ) -> None:
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
            done = subprocess.run(
                self._command,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,  # noqa: S603
                timeout=self._timeout,
                check=False,
            )
            failure = (
                None
                if done.returncode == 0
                else (f"exit {done.returncode}: {' '.join((done.stderr or done.stdout).split())[:200]}")
            )
        except (OSError, subprocess.SubprocessError) as exc:
            failure = f"{type(exc).__name__}: {exc}"
        if failure is None:
            return  # systemd stops the kiosk next (SIGTERM)
        self._log(f"button: the shutdown failed ({failure}); the kiosk keeps running")
        systemd.status(f"the shutdown failed ({failure})")
        with self._lock:
            self._shutting_down = False  # another hold may try again
            self._station.set_notice(None)
