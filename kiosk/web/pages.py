"""The touchscreen pages: home, live preview and capture, result or retake, slip, PIN, history, settings.

The settings page (behind the PIN) also lists the signed model updates on an
inserted USB stick, installs one with a tap and rolls back to the kept
previous model (:class:`kiosk.updates.UpdateService`).

The pages work without JavaScript (the capture button is a plain form post);
``static/kiosk.js`` makes them smoother: it captures through the JSON API,
shows a busy screen, follows the physical button through ``/api/state`` and
drives the PIN pad.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlencode
from zoneinfo import ZoneInfo

from flask import Blueprint, current_app, redirect, render_template, request, send_from_directory, session, url_for
from flask.typing import ResponseReturnValue

from .. import __version__
from ..clock import local_time
from ..reasons import N_, CameraError, KioskError
from ..records import InvalidPatientInfo, StoredScreening, codes
from ..result import ScreeningResult
from ..updates import UpdateOutcome, UpdateService
from .access import may_read, may_read_last, remember, require_pin
from .context import kiosk
from .details import patient_from_form
from .errors import WebError
from .i18n import LANGUAGES, current_language, reason_message, translate
from .present import ResultView, referral_facility, result_view
from .slip import SlipView, in_language, slip_view

bp = Blueprint("pages", __name__)

PAPERS = ("58", "80", "a6")
DEFAULT_PAPER = "80"
HISTORY_PAGE = 20
LAST_RESULT_MAX_AGE = timedelta(minutes=30)  # "last" is for the screen in front of the worker, not a history


@bp.app_context_processor
def _globals() -> dict[str, object]:
    return {
        "languages": LANGUAGES,
        "language": current_language(),
        "language_url": language_url,
        "camera_status_text": camera_status_text,
        "camera_ok": lambda: kiosk().station.camera_ok,
        "reason_message": reason_message,
    }


def language_url(code: str) -> str:
    """This page in another language (its other query parameters kept)."""
    args = request.args.to_dict()
    args["lang"] = code
    return f"{request.path}?{urlencode(args)}"


def camera_status_text() -> str:
    station = kiosk().station
    status = station.camera_status
    if status == "ok":
        return translate(N_("Camera ready"))
    if station.camera_reason == "camera_not_answering":  # it hung; the kiosk is rebuilding it, or restarting
        return reason_message("camera_not_answering", detail=status.partition(": ")[2])
    return translate(N_("Camera reconnecting: %(reason)s"), reason=status.partition(": ")[2])


@bp.get("/")
def home() -> ResponseReturnValue:
    return render_template("home.html", last_seq=_last_seq())


@bp.get("/screen")
def screen() -> ResponseReturnValue:
    return render_template("screen.html", last_seq=_last_seq(), error=None)


@bp.post("/screen")
def capture() -> ResponseReturnValue:
    """The capture button without JavaScript: take the photo, then show its result."""
    station = kiosk().station
    try:
        patient = patient_from_form(request.form)  # the details step's choices (kiosk/web/details.py)
    except InvalidPatientInfo:
        return render_template("screen.html", last_seq=_last_seq(), error=reason_message("invalid_patient")), 400
    try:
        sid, result = station.capture_and_screen(patient=patient)
    except CameraError as exc:
        return render_template("screen.html", last_seq=_last_seq(), error=reason_message(exc.code, **exc.params)), 503
    last = station.last
    remember(sid, seq=last.seq if last is not None and last.result is result else None)
    return redirect(url_for("pages.result", sid=sid or "last"), code=303)


def _last_seq() -> int:
    last = kiosk().station.last
    return last.seq if last else 0


def _find(sid: str) -> tuple[str | None, ScreeningResult, datetime | None]:
    """(id, result, when) of a stored screening, or of the station's last one for ``sid == "last"``."""
    station = kiosk().station
    if sid == "last":
        last = station.last
        if last is None or datetime.now(UTC) - last.at > LAST_RESULT_MAX_AGE or not may_read_last(last):
            raise WebError(404, "not_found")
        return last.id, last.result, last.at
    if not may_read(sid):
        raise WebError(404, "not_found")  # not 403: another patient's id is not confirmed to exist
    records = kiosk().records
    stored: StoredScreening | None = records.get(sid) if records is not None else None
    if stored is None:
        raise WebError(404, "not_found")
    return stored.id, stored.result, stored.created_at


def _view(sid: str) -> ResultView:
    ctx = kiosk()
    found_id, result, at = _find(sid)
    web = ctx.settings.web
    return result_view(
        found_id,
        result,
        at=at,
        facility=web.referral_facility,
        days=web.referral_within_days,
        min_side=ctx.min_side,
        zone=ctx.settings.station.time_zone,
    )


@bp.get("/screenings/<sid>")
def result(sid: str) -> ResponseReturnValue:
    view = _view(sid)
    return render_template("result.html", view=view, last_seq=_last_seq(), not_saved=_not_saved(view.id, view.result))


def _not_saved(found_id: str | None, result: ScreeningResult) -> str | None:
    """Why the result on screen is not in the records (disk full...), or None when it is saved."""
    records = kiosk().station.records
    if found_id is not None or records is None or result.status == "error":
        return None
    return reason_message(records.last_save_error or "not_saved")


@bp.get("/screenings/<sid>/slip")
def slip(sid: str) -> ResponseReturnValue:
    view = _view(sid)
    if view.result.status != "ok":
        return redirect(url_for("pages.result", sid=sid), code=303)  # a retake has nothing to refer
    paper = request.args.get("paper", DEFAULT_PAPER).lower()
    if paper not in PAPERS:
        paper = DEFAULT_PAPER
    with in_language("en"):  # the doctor's part also in English
        view_en = _view(sid)
    facility = referral_facility(kiosk().settings.web.referral_facility)
    return render_template(
        "slip.html", view=view, view_en=view_en, slip=_slip_of(view), facility=facility, paper=paper, papers=PAPERS
    )


def _slip_of(view: ResultView) -> SlipView:
    ctx = kiosk()
    stored = ctx.records.get(view.id) if ctx.records is not None and view.id else None
    model = ctx.model
    return slip_view(
        stored,
        at=view.at,
        refer=view.refer,
        station_name=ctx.settings.station.name,
        station_code=ctx.settings.station.code,
        zone=ZoneInfo(ctx.settings.station.time_zone),
        days=ctx.settings.web.referral_within_days,
        photo_url=url_for("thumbnails.photo", sid=stored.id, size="slip") if stored and stored.image_path else None,
        model_name=model.manifest.extra.get("name") if model.sha256 == view.result.model_sha256 else None,
    )


# --- PIN-guarded pages ----------------------------------------------------------------


@bp.get("/history")
def history() -> ResponseReturnValue:
    refused = require_pin(request.full_path.rstrip("?"))
    if refused is not None:
        return refused
    records = kiosk().records
    page = request.args.get("page", "1")
    # ASCII digits, bounded: "²".isdigit() is true, and a 30-digit offset overflows SQLite.
    page_no = int(page) if re.fullmatch(r"[0-9]{1,6}", page) and int(page) >= 1 else 1
    # ?code=482193: the screenings whose slip code starts with these digits (the keypad's search).
    code = codes.normalise(request.args.get("code", ""))[:9]
    code = code if re.fullmatch(r"[0-9]{1,9}", code) else ""
    if records is None:
        items, total = [], 0
    elif code:
        items = records.find_by_code_prefix(code, limit=HISTORY_PAGE)
        total, page_no = len(items), 1
    else:
        items = records.list(limit=HISTORY_PAGE, offset=(page_no - 1) * HISTORY_PAGE)
        total = records.count()
    zone = kiosk().settings.station.time_zone
    rows = [(s, local_time(s.created_at, zone)) for s in items]  # the station's time, whatever the Pi's zone
    return render_template(
        "history.html",
        rows=rows,
        page=page_no,
        total=total,
        has_more=not code and page_no * HISTORY_PAGE < total,
        records=records is not None,
        code=code,
        searching=request.args.get("search") == "1",
        format_code=codes.format_code,
    )


@bp.get("/settings")
def settings_page() -> ResponseReturnValue:
    refused = require_pin(request.path)
    if refused is not None:
        return refused
    ctx = kiosk()
    model = ctx.model  # read now: a model update swaps the station's screener live
    records = ctx.records
    updates = ctx.updates
    installed = updates.current() if updates is not None else None
    return render_template(
        "settings.html",
        settings=ctx.settings,
        model=model,
        manifest=model.manifest,
        camera_name=ctx.station.camera_name,
        records=records,
        record_count=records.count() if records is not None else 0,
        version=__version__,
        referral_facility=referral_facility,
        updates=updates,
        installed=installed if installed is not None and installed.sha256 == model.sha256 else None,
        on_disk=installed if installed is not None and installed.sha256 != model.sha256 else None,
        offers=updates.offers() if updates is not None else [],
        previous=updates.previous() if updates is not None else None,
        outcome=session.pop(UPDATE_OUTCOME, None),
    )


# --- model updates (settings page, behind the PIN) ------------------------------------
UPDATE_OUTCOME = "update_outcome"  # session key: the one-line outcome shown after the redirect


def _update_action(run: Callable[[UpdateService], UpdateOutcome]) -> ResponseReturnValue:
    """Run an install or rollback for a PIN session, keep its one-line outcome, show the settings page."""
    refused = require_pin(url_for("pages.settings_page"))
    if refused is not None:
        return refused
    updates = kiosk().updates
    if updates is None:
        raise WebError(404, "not_found")
    try:
        outcome = run(updates)
    except KioskError as exc:  # every refusal leaves the model in use as it was
        session[UPDATE_OUTCOME] = {"ok": False, "code": exc.code, "params": _plain(exc.params)}
    except Exception as exc:  # noqa: BLE001 - a bug: still one line on the page, the traceback in the log
        current_app.logger.exception("model update failed")
        session[UPDATE_OUTCOME] = {
            "ok": False,
            "code": "update_install_failed",
            "params": {"detail": type(exc).__name__},
        }
    else:
        session[UPDATE_OUTCOME] = {"ok": True, "code": outcome.code, "params": outcome.params}
    return redirect(url_for("pages.settings_page"), code=303)


def _plain(params: Mapping[str, object]) -> dict[str, object]:
    # The session is JSON: paths become text, numbers stay numbers for the message's formats.
    return {k: v if isinstance(v, (int, float, str)) else str(v) for k, v in params.items()}


@bp.post("/settings/updates/apply")
def update_apply() -> ResponseReturnValue:
    token = request.form.get("package", "")
    return _update_action(lambda updates: updates.apply(token))


@bp.post("/settings/updates/rollback")
def update_rollback() -> ResponseReturnValue:
    return _update_action(lambda updates: updates.rollback())


#: The pages a correct PIN may lead to, and the query parameters each keeps.
NEXT_PAGES = {
    "/history": ("page", "lang", "code", "search"),
    "/settings": ("lang",),
    "/settings/validation": ("lang",),
}


def _safe_next(target: str | None) -> str:
    """A known page of this kiosk, rebuilt from its parts; anything else is the history.

    Never an open redirect: browsers drop tabs and newlines from a URL, so
    ``/<TAB>/evil`` would become ``//evil``; only a path from
    :data:`NEXT_PAGES` with plain values survives.
    """
    if not target:
        return url_for("pages.history")
    path, _, query = target.partition("?")
    keep = NEXT_PAGES.get(path)
    if keep is None:
        return url_for("pages.history")
    args = {k: v for k, v in parse_qsl(query) if k in keep and re.fullmatch(r"[0-9a-z]{1,9}", v)}
    return f"{path}?{urlencode(args)}" if args else path


@bp.get("/pin")
def pin_form() -> ResponseReturnValue:
    pin = kiosk().pin
    if not pin.configured:
        return render_template("pin_missing.html")
    left = pin.retry_after()
    return render_template(
        "pin.html",
        next=_safe_next(request.args.get("next")),
        message=_lockout_text(left) if left > 0 else None,
        retry_after=left,
    )


def _lockout_text(seconds: float) -> str:
    minutes = max(1, -(-int(seconds) // 60))  # round up: "try again in 0 minutes" would be wrong
    return translate(N_("Too many wrong PINs. Try again in %(minutes)s minutes."), minutes=minutes)


@bp.post("/pin")
def pin_submit() -> ResponseReturnValue:
    pin = kiosk().pin
    next_page = _safe_next(request.form.get("next"))
    outcome = pin.check(request.form.get("pin", ""))
    if outcome.status == "ok":
        pin.unlock_session()
        return redirect(next_page, code=303)
    if outcome.status == "not_configured":
        return render_template("pin_missing.html")
    if outcome.status == "locked":
        text = _lockout_text(outcome.retry_after)
    else:
        text = translate(N_("Wrong PIN. %(left)s tries left before a 5-minute lock."), left=outcome.attempts_left)
    # 200, not 403: the pad is shown again with the reason, like any form with a mistake in it
    # (and the browser's console stays clean for the page's tests).
    return render_template("pin.html", next=next_page, message=text, retry_after=pin.retry_after())


@bp.post("/pin/lock")
def pin_lock() -> ResponseReturnValue:
    kiosk().pin.lock_session()
    return redirect(url_for("pages.home"), code=303)


@bp.get("/favicon.ico")
def favicon() -> ResponseReturnValue:
    return send_from_directory(current_app.static_folder or "static", "favicon.ico", mimetype="image/x-icon")
