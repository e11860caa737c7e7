"""The composition root: every long-lived part of the kiosk, built once, in one place.

:func:`build_kiosk` turns :class:`~kiosk.config.Settings` into a
:class:`Kiosk`: the model, the screener (built once, shared by everything
that screens), the records, the station (camera + screener + records), the
GPIO panel and a slot for the model-update service. Every command that needs
these parts builds them here (``kiosk screen``, ``evaluate``, ``bench``,
``demo --text`` take only the screener; ``kiosk serve`` takes them all), so
no two commands wire the pipeline differently.

>>> from kiosk.config import ModelSettings, Settings
>>> settings = Settings(model=ModelSettings(path="models/melanoma_int8.tflite"))
>>> kiosk = build_kiosk(settings, camera_spec="synthetic", data_dir="/tmp/kiosk-doc", gpio=False)  # doctest: +SKIP
>>> with kiosk:  # doctest: +SKIP
...     kiosk.station.capture_and_screen()[1].status, kiosk.model.sha256 == kiosk.screener.model.sha256
('ok', True)
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .buttons import POWEROFF_COMMAND, ButtonActions
from .camera import Camera, camera_from_settings
from .config import Settings
from .model import Model
from .reasons import ConfigError
from .records import RecordStore
from .screening import Screener
from .station import Station
from .vision.quality import QualityThresholds

if TYPE_CHECKING:
    from .gpio import Panel
    from .updates import UpdateService

__all__ = ["Kiosk", "build_kiosk", "build_screener", "open_records"]

_LOG = logging.getLogger(__name__)


def build_screener(
    settings: Settings, *, model: Model | None = None, data_dir: str | os.PathLike[str] | None = None
) -> Screener:
    """The screener ``settings`` describe (quality gate, camera calibration) around ``model``.

    ``model`` defaults to ``settings.model.path`` loaded with ``settings.model.threads``;
    a model update passes the new model here, so it is screened exactly like the old one.
    ``data_dir``: the records folder whose ``calibration.json`` (the settings page's
    calibration, :mod:`kiosk.calibration`) overrides ``camera.mm_per_pixel``.
    """
    from .calibration import current_scale

    if model is None:
        model = Model.load(settings.model.path, threads=settings.model.threads)
    return Screener(
        model,
        thresholds=QualityThresholds(min_side=settings.vision.min_side),
        mm_per_pixel=current_scale(data_dir, default=settings.camera.mm_per_pixel),
    )


def open_records(
    settings: Settings, *, data_dir: str | os.PathLike[str] | None = None, log: Callable[[str], None] = _LOG.info
) -> RecordStore:
    """The records store in ``data_dir`` (default ``records.data_dir``), expired screenings removed."""
    folder = Path(data_dir).expanduser() if data_dir is not None else settings.records.data_dir
    try:
        records = RecordStore(
            folder,
            retention_days=settings.records.retention_days,
            photo_retention_days=settings.records.photo_retention_days,
            keep_images=settings.records.keep_images,
            station_code=settings.station.code,
        )
    except OSError as exc:  # a read-only card, a folder owned by someone else
        raise ConfigError(
            "config_invalid", key="records.data_dir", detail=f"cannot use {folder} ({exc.strerror or exc})"
        ) from None
    try:
        purged = records.purge_expired()
    except BaseException:
        records.close()
        raise
    if purged:
        log(f"records: removed {purged} screenings older than {settings.records.retention_days} days")
    return records


@dataclass(kw_only=True, eq=False)
class Kiosk:
    """The kiosk's parts; a context manager that closes what it opened (panel, station, records).

    ``station``, ``records``, ``panel`` and ``buttons`` are None when not
    built (no station asked for, GPIO off or absent). ``updates`` is the
    model-update service (:class:`kiosk.updates.UpdateService`, built with the
    station, which it swaps the screener of); the web page gets it through
    ``create_app(updates=...)``.
    """

    settings: Settings
    screener: Screener
    station: Station | None = None
    records: RecordStore | None = None
    panel: Panel | None = None
    buttons: ButtonActions | None = None
    updates: UpdateService | None = None
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack, repr=False)

    @property
    def model(self) -> Model:
        """The model in use now (the station's, which a model update may have swapped)."""
        return self.station.screener.model if self.station is not None else self.screener.model

    def close(self) -> None:
        """Close the panel, then the station, then the records. Safe to call twice."""
        self._stack.close()

    def __enter__(self) -> Kiosk:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def build_kiosk(
    settings: Settings,
    *,
    camera_spec: str | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    pin_factory: Any = None,
    station: bool = True,
    gpio: bool = True,
    log: Callable[[str], None] = _LOG.info,
    progress: Callable[[str], object] = lambda line: None,
    shutdown_command: Sequence[str] = POWEROFF_COMMAND,
    camera_factory: Callable[[], Camera] | None = None,
) -> Kiosk:
    """Build the kiosk ``settings`` describe; see :class:`Kiosk`.

    ``station=False`` builds the screener only (commands that screen files).
    ``camera_spec`` and ``data_dir`` default to ``camera.source`` and
    ``records.data_dir``; ``camera_factory`` replaces the camera altogether
    (tests). ``gpio=False`` (or ``gpio.enabled = false``) leaves the panel
    out; ``pin_factory`` is gpiozero's (``MockFactory()`` in tests).
    ``progress`` hears each step ("loading the model", "opening the camera")
    for systemd's STATUS line. Expected failures (no model, bad camera spec,
    unusable data folder) raise :class:`~kiosk.reasons.KioskError`, with
    whatever was opened already closed again.
    """
    progress("loading the model")
    folder = Path(data_dir).expanduser() if data_dir is not None else settings.records.data_dir
    screener = build_screener(settings, data_dir=folder if station else None)  # the kiosk's own camera scale
    kiosk = Kiosk(settings=settings, screener=screener)
    if not station:
        return kiosk
    with contextlib.ExitStack() as opened:
        kiosk.records = opened.enter_context(open_records(settings, data_dir=data_dir, log=log))
        progress("opening the camera")
        if camera_factory is None:
            spec = camera_spec or settings.camera.source

            def camera_factory() -> Camera:
                return camera_from_settings(settings.camera, spec=spec, log=log)

        kiosk.station = opened.enter_context(
            Station(screener=screener, camera_factory=camera_factory, records=kiosk.records, log=log)
        )
        from .updates import LOG_FILE, UpdateService

        # Signed model updates (settings page): installed on disk, then swapped into the station live.
        kiosk.updates = UpdateService.from_settings(
            settings,
            log=kiosk.records.data_dir / LOG_FILE,
            load_screener=lambda: build_screener(settings, data_dir=folder),
            swap=kiosk.station.swap_screener,
        )
        if gpio:
            from .gpio import open_panel  # gpiozero only for the commands that use a panel

            kiosk.buttons = ButtonActions(kiosk.station, shutdown_command=shutdown_command, log=log)
            kiosk.panel = open_panel(
                settings.gpio,
                on_capture=kiosk.buttons.capture,
                on_shutdown_request=kiosk.buttons.request_shutdown,
                on_hold_notice=kiosk.buttons.hold_notice,
                log=log,
                pin_factory=pin_factory,
            )
            if kiosk.panel is not None:
                opened.callback(kiosk.panel.close)  # first to close: no press starts a screening after it
                opened.callback(kiosk.station.subscribe(kiosk.panel.follow))
        kiosk._stack = opened.pop_all()
    return kiosk
