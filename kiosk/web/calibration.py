"""The settings page's calibration step (behind the PIN): print the card, photograph it, keep the scale.

``/settings/calibration/card`` is the printable A6 card (the ArUco grid at its
true size, a 50 mm line to check the print with a ruler);
``POST /settings/calibration/measure`` takes one photo with the kiosk's
camera, measures it (:func:`kiosk.calibration.measure_scale`), stores the
scale in the records folder and hands it to the running screener, so the
next screening reports the diameter in mm; ``POST
/settings/calibration/lens-changed`` records a lens change, which makes the
old scale stale (and unused). The outcome is one line on the settings page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue

from ..calibration import TARGET, Calibration, CalibrationState, CalibrationStore, measure_scale, target_png
from ..reasons import KioskError
from .access import require_pin
from .context import kiosk
from .errors import WebError

__all__ = ["CalibrationView", "bp"]

bp = Blueprint("calibration", __name__)
OUTCOME_KEY = "calibration_outcome"  # session: the one-line result shown after the redirect
CARD_MARGIN_MM = 3.0  # render_target's default white margin, printed at its true size too


@dataclass(frozen=True, kw_only=True)
class CalibrationView:
    """What the settings page shows about the camera's scale."""

    state: CalibrationState
    mm_per_pixel: float | None  # in use now
    calibration: Calibration
    calibrated_at: datetime | None  # station time
    lens_changed_at: datetime | None


def _store() -> CalibrationStore | None:
    records = kiosk().records
    return CalibrationStore(records.data_dir) if records is not None else None


def _local(moment: datetime | None) -> datetime | None:
    return moment.astimezone(ZoneInfo(kiosk().settings.station.time_zone)) if moment is not None else None


def calibration_view() -> CalibrationView:
    store = _store()
    default = kiosk().settings.camera.mm_per_pixel
    calibration = store.load() if store is not None else Calibration()
    return CalibrationView(
        state=calibration.state(default=default),
        mm_per_pixel=calibration.scale(default=default),
        calibration=calibration,
        calibrated_at=_local(calibration.calibrated_at),
        lens_changed_at=_local(calibration.lens_changed_at),
    )


@bp.app_context_processor
def _globals() -> dict[str, object]:
    return {"calibration_view": calibration_view, "calibration_outcome": lambda: session.pop(OUTCOME_KEY, None)}


def _guard() -> ResponseReturnValue | None:
    return require_pin(url_for("pages.settings_page"))


def _apply(calibration: Calibration) -> None:
    """The running screener uses the new scale from the next screening on (None: no mm)."""
    ctx = kiosk()
    screener = getattr(ctx.station, "screener", None)
    if screener is not None:
        screener.mm_per_pixel = calibration.scale(default=ctx.settings.camera.mm_per_pixel)


def _back(ok: bool, code: str, **params: object) -> ResponseReturnValue:
    session[OUTCOME_KEY] = {"ok": ok, "code": code, "params": {k: str(v) for k, v in params.items()}}
    return redirect(url_for("pages.settings_page") + "#calibration", code=303)


@bp.post("/settings/calibration/measure")
def measure() -> ResponseReturnValue:
    refused = _guard()
    if refused is not None:
        return refused
    store = _store()
    if store is None:
        raise WebError(404, "not_found")
    station = kiosk().station
    try:
        frame = station.camera.capture()
        found = measure_scale(frame)
    except KioskError as exc:  # no camera, no card, a tilted card: nothing stored
        return _back(False, exc.code, **exc.params)
    try:
        calibration = store.record(found, camera=station.camera_name)
    except OSError as exc:
        return _back(False, "calibration_not_saved", detail=exc.strerror or type(exc).__name__)
    _apply(calibration)
    return _back(True, "calibration_saved", mm=f"{found.mm_per_pixel:.4f}", markers=found.markers)


@bp.post("/settings/calibration/lens-changed")
def lens_changed() -> ResponseReturnValue:
    refused = _guard()
    if refused is not None:
        return refused
    store = _store()
    if store is None:
        raise WebError(404, "not_found")
    try:
        calibration = store.lens_changed()
    except OSError as exc:
        return _back(False, "calibration_not_saved", detail=exc.strerror or type(exc).__name__)
    _apply(calibration)
    return _back(True, "calibration_lens_noted")


@bp.get("/settings/calibration/card")
def card() -> ResponseReturnValue:
    refused = _guard()
    if refused is not None:
        return refused
    width, height = TARGET.size_mm
    return render_template(
        "calibration_card.html",
        target=TARGET,
        card_mm=(width + 2 * CARD_MARGIN_MM, height + 2 * CARD_MARGIN_MM),
        today=datetime.now(UTC).astimezone(ZoneInfo(kiosk().settings.station.time_zone)).date(),
        print_now=request.args.get("print") == "1",
    )


@bp.get("/settings/calibration/card.png")
def card_png() -> ResponseReturnValue:
    # Not health data: the same card on every kiosk (a technician may save it to print elsewhere).
    return Response(target_png(target=TARGET), mimetype="image/png", headers={"Cache-Control": "max-age=86400"})
