"""The health centre on the settings page: which station this is, its clock, today's summary.

The settings page includes ``_centre_settings.html``, which asks :func:`centre_view`
for what it shows; the home page includes ``_clock_warning.html`` (:func:`clock_warning`).
The clock is set by touch, behind the PIN: steppers for year, month, day, hour and minute,
each a plain form button (no typing, no JavaScript needed), then *Set the clock*, applied by
the :class:`~kiosk.clock.ClockGuard`'s setter (``timedatectl set-time`` on the Pi).

>>> from datetime import datetime
>>> step_time(datetime(2026, 1, 31, 9, 30), "month", 1)
datetime.datetime(2026, 2, 28, 9, 30)
>>> step_time(datetime(2026, 12, 31, 23, 55), "minute", 10)
datetime.datetime(2027, 1, 1, 0, 5)
"""

from __future__ import annotations

import calendar
import re
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import Blueprint, Flask, current_app, redirect, request, session, url_for
from flask.typing import ResponseReturnValue

from ..clock import STATE_FILE, ClockCheck, ClockError, ClockGuard, set_system_time, station_zone
from ..daily import DailySummary, daily_summary
from .context import kiosk
from .i18n import reason_message

__all__ = ["CLOCK_EXTENSION", "CentreView", "centre_view", "clock_guard", "clock_warning", "init_centre", "step_time"]

bp = Blueprint("centre", __name__)

CLOCK_EXTENSION = "kiosk.clock"
PROPOSED_KEY = "clock_proposed"  # session: the time the worker is dialling in, between taps
OUTCOME_KEY = "clock_outcome"  # session: the one-line outcome shown after the redirect
FIELDS = ("year", "month", "day", "hour", "minute")
#: The stepper buttons: (field, delta) for each, in the order they are shown.
STEPS: dict[str, tuple[int, ...]] = {
    "year": (-1, 1),
    "month": (-1, 1),
    "day": (-1, 1),
    "hour": (-1, 1),
    "minute": (-10, -1, 1, 10),
}
_PROPOSED_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}")
_STEP_RE = re.compile(r"(year|month|day|hour|minute):([+-][0-9]{1,2})")


def init_centre(app: Flask, *, guard: ClockGuard | None = None) -> None:
    """Register the blueprint and the clock guard (default: last-seen time kept in the records folder)."""
    if guard is None:
        ctx = app.extensions["kiosk"]
        records = ctx.records
        program = ctx.settings.clock.timedatectl
        guard = ClockGuard(
            state_path=records.data_dir / STATE_FILE if records is not None else None,
            setter=lambda moment: set_system_time(moment, program=program),
            newest_record=(lambda: next((s.created_at for s in records.list(limit=1)), None)) if records else None,
        )
    app.extensions[CLOCK_EXTENSION] = guard
    app.register_blueprint(bp)


def clock_guard() -> ClockGuard:
    guard: ClockGuard = current_app.extensions[CLOCK_EXTENSION]
    return guard


def _show(moment: datetime | None) -> str:
    """A date and time in the station's zone, written the same way in every language."""
    if moment is None:
        return ""
    return moment.astimezone(station_zone(kiosk().settings.station.time_zone)).strftime("%Y-%m-%d %H:%M")


def _warning(check: ClockCheck) -> str | None:
    if check.reason is None:
        return None
    return reason_message(
        check.reason, now=_show(check.now), date=check.floor.date().isoformat(), last=_show(check.last_seen)
    )


def clock_warning() -> str | None:
    """The one-line warning for the page when the clock is implausible, else None."""
    return _warning(clock_guard().check())


@dataclass(frozen=True, kw_only=True)
class CentreView:
    """What the settings page's centre part shows."""

    station_name: str | None
    station_code: str | None
    time_zone: str
    host_name: str
    now: str  # the clock now, in the station's zone
    warning: str | None
    proposed: dict[str, str]  # field -> the value being dialled in, zero-padded
    proposed_value: str  # the same as YYYY-MM-DDTHH:MM, for the form
    steps: dict[str, tuple[int, ...]]
    outcome: tuple[bool, str] | None  # (ok, the one-line message in the page's language)
    summary: DailySummary | None


def centre_view() -> CentreView:
    ctx = kiosk()
    station = ctx.settings.station
    check = clock_guard().check()
    proposed = _proposed(check.now)
    outcome = session.pop(OUTCOME_KEY, None)
    records = ctx.records
    return CentreView(
        station_name=station.name,
        station_code=station.code,
        time_zone=station.time_zone,
        host_name=socket.gethostname(),
        now=_show(check.now),
        warning=_warning(check),
        proposed={f: f"{getattr(proposed, f):02d}" for f in FIELDS},
        proposed_value=proposed.strftime("%Y-%m-%dT%H:%M"),
        steps=STEPS,
        outcome=_outcome(outcome),
        summary=daily_summary(records, zone=station.time_zone, now=check.now) if records is not None else None,
    )


def _outcome(stored: object) -> tuple[bool, str] | None:
    if not isinstance(stored, dict) or not isinstance(stored.get("params"), dict):
        return None
    return bool(stored.get("ok")), reason_message(str(stored.get("code")), **stored["params"])


def _proposed(now: datetime) -> datetime:
    """The time being dialled in (naive, station zone): the session's, else the clock's now."""
    text = session.get(PROPOSED_KEY)
    if isinstance(text, str) and (parsed := _parse(text)) is not None:
        return parsed
    return now.astimezone(station_zone(kiosk().settings.station.time_zone)).replace(
        tzinfo=None, second=0, microsecond=0
    )


def _parse(text: str) -> datetime | None:
    if not _PROPOSED_RE.fullmatch(text):
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M")
    except ValueError:
        return None


def step_time(moment: datetime, field: str, delta: int) -> datetime:
    """``moment`` with one field moved by ``delta``; months and years keep the day where it exists."""
    if field in ("year", "month"):
        months = moment.month - 1 + delta * (12 if field == "year" else 1)
        year, month = moment.year + months // 12, months % 12 + 1
        if not 1 <= year <= 9998:
            return moment
        day = min(moment.day, calendar.monthrange(year, month)[1])
        return moment.replace(year=year, month=month, day=day)
    unit = {"day": timedelta(days=1), "hour": timedelta(hours=1), "minute": timedelta(minutes=1)}[field]
    try:
        return moment + delta * unit
    except OverflowError:
        return moment


@bp.post("/settings/clock")
def clock_set() -> ResponseReturnValue:
    """A stepper tap (``step=minute:+10``) dials the proposed time; ``apply`` sets the clock to it."""
    settings_url = url_for("pages.settings_page")
    pin = kiosk().pin
    if not pin.configured or not pin.session_unlocked():
        return redirect(url_for("pages.pin_form", next=settings_url), code=303)
    guard = clock_guard()
    proposed = _parse(request.form.get("proposed", "")) or _proposed(guard.now())
    step = _STEP_RE.fullmatch(request.form.get("step", ""))
    if step is not None:
        field, delta = step.group(1), int(step.group(2))
        if delta in STEPS[field]:
            proposed = step_time(proposed, field, delta)
        session[PROPOSED_KEY] = proposed.strftime("%Y-%m-%dT%H:%M")
        return redirect(f"{settings_url}#clock", code=303)
    if "apply" not in request.form:
        return redirect(f"{settings_url}#clock", code=303)
    zone = station_zone(kiosk().settings.station.time_zone)
    moment = proposed.replace(tzinfo=zone).astimezone(UTC)
    try:
        guard.set_time(moment)
    except ClockError as exc:
        current_app.logger.warning("clock not set: %s", exc)
        session[OUTCOME_KEY] = {"ok": False, "code": exc.code, "params": {k: str(v) for k, v in exc.params.items()}}
        session[PROPOSED_KEY] = proposed.strftime("%Y-%m-%dT%H:%M")  # keep what was dialled: fix, don't redo
    else:
        current_app.logger.info("clock set by hand to %s", moment.isoformat())
        session.pop(PROPOSED_KEY, None)
        session[OUTCOME_KEY] = {"ok": True, "code": "clock_set", "params": {"time": _show(moment)}}
    return redirect(f"{settings_url}#clock", code=303)


@bp.app_context_processor
def _globals() -> dict[str, object]:
    return {"centre_view": centre_view, "clock_warning": clock_warning}
