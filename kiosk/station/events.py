"""What the station tells the rest of the kiosk: :class:`StationEvent` and the observers that receive it.

Data flows one way: the station calls observers; observers never reach into
a screening. :mod:`kiosk.gpio` and the daemon's status line import only this
module, so the LEDs can follow the station without knowing about cameras.

>>> seen = []
>>> observers = Observers(log=print)
>>> unsubscribe = observers.subscribe(seen.append, current=StationEvent(kind="ready", busy=False, camera_status="ok"))
>>> observers.emit(StationEvent(kind="busy", busy=True, camera_status="ok"))
>>> [event.kind for event in seen], seen[-1].ready
(['ready', 'busy'], False)
>>> unsubscribe()
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from ..result import ScreeningResult

__all__ = ["NOTICES", "EventKind", "Notice", "Observer", "Observers", "Screening", "StationEvent"]

EventKind = Literal["busy", "result", "ready", "camera"]
#: "power_hold": the button is held and will turn the kiosk off; "shutting_down": it is turning off.
Notice = Literal["power_hold", "shutting_down"]
NOTICES: tuple[Notice, ...] = ("power_hold", "shutting_down")


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


Observer = Callable[[StationEvent], None]


class Observers:
    """A list of callbacks that each get every event; a callback that raises is logged, never fatal."""

    def __init__(self, *, log: Callable[[str], None]) -> None:
        self._log = log
        self._lock = threading.Lock()
        self._callbacks: list[Observer] = []

    def subscribe(self, callback: Observer, *, current: StationEvent) -> Callable[[], None]:
        """Add ``callback``, hand it ``current`` at once; returns a function that unsubscribes."""
        with self._lock:
            self._callbacks.append(callback)
        self._call(callback, current)

        def unsubscribe() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._callbacks.remove(callback)

        return unsubscribe

    def emit(self, event: StationEvent) -> None:
        with self._lock:
            callbacks = list(self._callbacks)
        for callback in callbacks:
            self._call(callback, event)

    def _call(self, callback: Observer, event: StationEvent) -> None:
        try:
            callback(event)
        except Exception as exc:  # noqa: BLE001 - a broken LED must never break a screening
            self._log(f"station: observer {callback!r} failed on {event.kind!r}: {type(exc).__name__}: {exc}")
