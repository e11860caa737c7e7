"""What the blueprints share: settings, the station, the PIN guard, model updates (one object per app).

>>> from kiosk.config import Settings
>>> ctx = KioskContext(settings=Settings(), station=None, pin=PinGuard(None))
>>> ctx.settings.web.language, ctx.pin.configured
('en', False)
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from ..config import Settings
from ..station import Station
from ..updates import UpdateService
from .pin import PinGuard

EXTENSION = "kiosk"


@dataclass(frozen=True, kw_only=True)
class KioskContext:
    settings: Settings
    station: Station
    pin: PinGuard
    updates: UpdateService | None = None  # None: the settings page shows no update controls

    @property
    def min_side(self) -> int:
        return self.station.screener.thresholds.min_side


def kiosk() -> KioskContext:
    """The current app's kiosk context."""
    context: KioskContext = current_app.extensions[EXTENSION]
    return context
