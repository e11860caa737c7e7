"""What the blueprints share (one object per app): settings, the station, records, the model, the PIN guard, updates.

>>> from kiosk.config import Settings
>>> ctx = KioskContext(settings=Settings(), station=None, records=None, pin=PinGuard(None))
>>> ctx.settings.web.language, ctx.pin.configured, ctx.updates, ctx.min_side
('en', False, None, 128)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import current_app

from ..config import Settings
from .pin import PinGuard

if TYPE_CHECKING:
    from ..model import Model
    from ..records import RecordStore
    from ..station import Station
    from ..updates import UpdateService

EXTENSION = "kiosk"


@dataclass(frozen=True, kw_only=True)
class KioskContext:
    """``station`` screens; ``records`` is the store to read back (None: nothing is kept);
    ``current_model()`` is the model in use *now* (a model update swaps it while the kiosk runs);
    ``updates`` is the model-update service, when the kiosk has one (:mod:`kiosk.updates`)."""

    settings: Settings
    station: Station
    records: RecordStore | None
    pin: PinGuard
    current_model: Callable[[], Model] | None = None
    updates: UpdateService | None = None  # None: the settings page shows no update controls

    @property
    def model(self) -> Model:
        if self.current_model is not None:
            return self.current_model()
        return self.station.screener.model

    @property
    def min_side(self) -> int:
        return self.settings.vision.min_side


def kiosk() -> KioskContext:
    """The current app's kiosk context."""
    context: KioskContext = current_app.extensions[EXTENSION]
    return context
