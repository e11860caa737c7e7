"""Returning patients: find the earlier screening by its slip code, photograph the same spot again, compare.

=============================  ===============================================================
``GET /followup``              the code entry: an on-screen keypad (digits only)
``POST /followup``             look the code up (a few wrong codes per session, then a pause:
                               :mod:`.lookups`); found: this session may open that screening
``POST /followup/scan``        the same, reading the slip's QR code through the camera
``GET /followup/<id>``         the earlier photo beside the live preview, and *Capture*
``POST /followup/<id>``        capture the same spot (its body site and details carry over),
                               store what changed (:mod:`kiosk.followup`), show the comparison
``GET /followup/<id>/compare`` the follow-up screening ``id`` beside the earlier one, with what changed
=============================  ===============================================================

A slip code is the patient's key to their earlier screening, so a right code
gives this browser session what taking the screening gives (:mod:`.access`);
a mistyped code says so in one line and never opens anyone else's record (the
code's check digit catches a wrong digit or two swapped ones).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue

from ..followup import FollowupPlan, LesionMeasures, measure
from ..reasons import N_, CameraError
from ..records import StoredScreening, codes
from ..vision.loader import load_image
from ..vision.slipcode import read_slip_code
from .access import may_read, remember
from .context import kiosk
from .errors import WebError
from .i18n import reason_message, translate
from .lookups import CodeLookupLimiter
from .present import COLOUR_NAMES, referral_facility, result_view
from .slip import body_site_name

__all__ = ["ChangeLine", "bp", "change_lines"]

bp = Blueprint("followup", __name__)

LIMITER = "kiosk_code_lookups"  # app.extensions key
SESSION_KEY = "lookup_key"  # a random name for this session's wrong-code count (not the code itself)


def _limiter() -> CodeLookupLimiter:
    limiter = current_app.extensions.get(LIMITER)
    if limiter is None:
        limiter = current_app.extensions.setdefault(LIMITER, CodeLookupLimiter())
    assert isinstance(limiter, CodeLookupLimiter)
    return limiter


def _session_key() -> str:
    key = session.get(SESSION_KEY)
    if not isinstance(key, str):
        key = session[SESSION_KEY] = secrets.token_hex(8)
    return key


def _mm_per_pixel() -> float | None:
    ctx = kiosk()
    screener_scale = getattr(ctx.station.screener, "mm_per_pixel", None)  # a calibration applies live
    return screener_scale if screener_scale else ctx.settings.camera.mm_per_pixel


# --- finding the earlier screening ----------------------------------------------------------


def _code_page(message: str | None = None, status: int = 200) -> ResponseReturnValue:
    return render_template("followup_code.html", message=message), status


@bp.get("/followup")
def code_form() -> ResponseReturnValue:
    if kiosk().records is None:
        raise WebError(404, "not_found")
    return _code_page()


def _look_up(code: str) -> ResponseReturnValue:
    """The lookup both the keypad and the QR scan end in: rate-limited, one line when wrong."""
    records = kiosk().records
    if records is None:
        raise WebError(404, "not_found")
    limiter, key = _limiter(), _session_key()
    wait = limiter.retry_after(key)
    if wait > 0:
        return _code_page(reason_message("code_paused", seconds=int(wait + 0.999)))
    if not codes.is_valid(code):
        limiter.failed(key)
        return _code_page(reason_message("code_mistyped"))
    stored = records.get_by_code(code)
    if stored is None:
        limiter.failed(key)
        return _code_page(reason_message("code_not_found"))
    limiter.succeeded(key)
    remember(stored.id)  # the slip is the patient's key to it
    return redirect(url_for("followup.capture_form", sid=stored.id), code=303)


@bp.post("/followup")
def code_submit() -> ResponseReturnValue:
    return _look_up(request.form.get("code", "")[:32])


@bp.post("/followup/scan")
def code_scan() -> ResponseReturnValue:
    """Read the slip's QR code from one camera picture (held in front of the lens)."""
    if kiosk().records is None:
        raise WebError(404, "not_found")
    try:
        frame = kiosk().station.camera.capture()
    except CameraError as exc:
        return _code_page(reason_message(exc.code, **exc.params))
    code = read_slip_code(frame)
    if code is None:
        return _code_page(reason_message("code_not_in_photo"))
    return _look_up(code)


# --- the same spot again --------------------------------------------------------------------


def _readable(sid: str) -> StoredScreening:
    records = kiosk().records
    if records is None or not may_read(sid):
        raise WebError(404, "not_found")  # not 403: another patient's id is not confirmed to exist
    stored = records.get(sid)
    if stored is None:
        raise WebError(404, "not_found")
    return stored


def _capture_page(earlier: StoredScreening, *, error: str | None = None, status: int = 200) -> ResponseReturnValue:
    site = earlier.patient.body_site if earlier.patient is not None else None
    return (
        render_template(
            "followup.html",
            earlier=earlier,
            earlier_at=earlier.created_at.astimezone(_zone()).strftime("%Y-%m-%d"),
            earlier_code=codes.format_code(earlier.code) if earlier.code else None,
            body_site=body_site_name(site),
            error=error,
        ),
        status,
    )


@bp.get("/followup/<sid>")
def capture_form(sid: str) -> ResponseReturnValue:
    return _capture_page(_readable(sid))


def _earlier_measures(earlier: StoredScreening) -> LesionMeasures | str:
    """The earlier photo's lesion, or the reason code why there is none to compare with."""
    if earlier.image_path is None or not earlier.image_path.exists():
        return "followup_no_photo"
    try:
        found = measure(load_image(earlier.image_path))
    except Exception:  # noqa: BLE001 - a damaged photo: say so in one line, log the cause
        current_app.logger.exception("the earlier photo %s could not be read", earlier.id)
        return "followup_no_photo"
    return found if found is not None else "followup_no_lesion"


@bp.post("/followup/<sid>")
def capture(sid: str) -> ResponseReturnValue:
    earlier = _readable(sid)
    measures = _earlier_measures(earlier)
    if isinstance(measures, str):
        return _capture_page(earlier, error=reason_message(measures))
    plan = FollowupPlan(earlier_id=earlier.id, earlier=measures, mm_per_pixel=_mm_per_pixel())
    station = kiosk().station
    try:
        new_id, result = station.capture_and_screen(patient=earlier.patient, followup=plan)
    except CameraError as exc:
        return _capture_page(earlier, error=reason_message(exc.code, **exc.params), status=503)
    last = station.last
    remember(new_id, seq=last.seq if last is not None and last.result is result else None)
    if result.status != "ok":  # a retake (or error): say what to fix, and stay on the same spot
        view = result_view(new_id, result, at=None, facility=None, days=0, min_side=kiosk().min_side)
        return _capture_page(earlier, error=view.reason_text)
    if new_id is None:  # shown, not saved (disk full): the result page says so
        return redirect(url_for("pages.result", sid="last"), code=303)
    return redirect(url_for("followup.compare", sid=new_id), code=303)


# --- the comparison -------------------------------------------------------------------------


@dataclass(frozen=True)
class ChangeLine:
    """One row of what changed: label, before, after, the change, and whether it is significant."""

    key: str
    label: str
    before: str
    after: str
    change: str
    significant: bool


def _signed_percent(value: float) -> str:
    return f"{value * 100:+.0f}%"


def change_lines(followup: dict[str, Any]) -> list[ChangeLine]:
    """The stored ``followup`` (kiosk.followup.FollowupChange.to_dict) as translated rows."""
    reasons = set(followup.get("reasons") or [])
    before, after = followup["before"], followup["after"]
    lines = []
    if followup.get("area_mm2_before") is not None:
        area = (f"{followup['area_mm2_before']:.1f} mm²", f"{followup['area_mm2_after']:.1f} mm²")
    else:
        area = ("100%", f"{(1 + followup['area_change']) * 100:.0f}%")
    lines.append(
        ChangeLine(
            "area", translate(N_("Area")), *area, _signed_percent(followup["area_change"]), "area_changed" in reasons
        )
    )
    if followup.get("diameter_mm_before") is not None:
        diameter = (f"{followup['diameter_mm_before']:.1f} mm", f"{followup['diameter_mm_after']:.1f} mm")
    else:
        diameter = ("100%", f"{(1 + followup['diameter_change']) * 100:.0f}%")
    lines.append(
        ChangeLine(
            "diameter",
            translate(N_("Diameter")),
            *diameter,
            _signed_percent(followup["diameter_change"]),
            "diameter_changed" in reasons,
        )
    )
    new = [translate(COLOUR_NAMES.get(c, c)) for c in followup.get("new_colours") or []]
    lines.append(
        ChangeLine(
            "colours",
            translate(N_("Colours")),
            str(followup["colour_count_before"]),
            str(followup["colour_count_after"]),
            translate(N_("new: %(colours)s"), colours=", ".join(new)) if new else "=",
            "new_colour" in reasons,
        )
    )
    lines.append(
        ChangeLine(
            "asymmetry",
            translate(N_("Asymmetry")),
            f"{before['asymmetry']:.2f}",
            f"{after['asymmetry']:.2f}",
            f"{followup['asymmetry_change']:+.2f}",
            "asymmetry_grew" in reasons,
        )
    )
    return lines


def _zone() -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo(kiosk().settings.station.time_zone)


@bp.get("/followup/<sid>/compare")
def compare(sid: str) -> ResponseReturnValue:
    now = _readable(sid)
    if now.followup_of is None:
        raise WebError(404, "not_found")
    earlier = _readable(now.followup_of)
    web = kiosk().settings.web
    view = result_view(
        now.id,
        now.result,
        at=now.created_at,
        facility=web.referral_facility,
        days=web.referral_within_days,
        min_side=kiosk().min_side,
    )
    zone = _zone()
    followup = now.followup
    return render_template(
        "followup_compare.html",
        view=view,
        now=now,
        earlier=earlier,
        now_at=now.created_at.astimezone(zone).strftime("%Y-%m-%d"),
        earlier_at=earlier.created_at.astimezone(zone).strftime("%Y-%m-%d"),
        lines=change_lines(followup) if followup else [],
        significant=bool(followup and followup.get("significant")),
        calibrated=bool(followup and followup.get("mm_per_pixel")),
        changed_text=reason_message("lesion_changed"),
        facility=referral_facility(web.referral_facility),
    )
