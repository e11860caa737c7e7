"""The station: camera, screener and records behind one small facade, shared by the web page and the button.

- :mod:`.station`: :class:`Station`, the facade (capture and screen, screen an upload, swap the screener).
- :mod:`.events`: :class:`StationEvent` and the observers that receive it (the GPIO panel imports only this).
- :mod:`.supervisor`: the camera under deadlines, rebuilt with a growing back-off.
- :mod:`.preview`: one preview reader, JPEG frames for a capped number of viewers.

>>> from kiosk.camera import SyntheticCamera
>>> with Station(screener=None, camera_factory=SyntheticCamera, records=None) as station:
...     station.camera_status, station.camera_name
('ok', 'synthetic')
"""

from __future__ import annotations

from .events import NOTICES, Notice, Screening, StationEvent
from .preview import PreviewBusy
from .station import Station
from .supervisor import NOT_ANSWERING, backoff_delay

__all__ = ["NOTICES", "NOT_ANSWERING", "Notice", "PreviewBusy", "Screening", "Station", "StationEvent", "backoff_delay"]
