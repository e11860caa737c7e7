"""Behind the PIN: record what the doctor found for a screening, and the local validation report.

``/screenings/<id>/outcome`` is a touch screen: an optional "seen on" date
(not known, today, yesterday, or a day stepped back to the screening's date),
then one big button per outcome (:data:`kiosk.records.OUTCOMES`); a tap saves
it with :meth:`RecordStore.record_outcome` (source ``kiosk``) and shows the
confirmation. ``/settings/validation`` shows :mod:`kiosk.validation`'s
report. Both need an unlocked PIN session; the form carries the CSRF token.
An unknown outcome or a date outside the screening's date..today is a 400
with one translated line, and nothing is stored.

>>> OUTCOME_WORDS["melanoma"]
'Biopsy: melanoma'
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from flask import Blueprint, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from ..reasons import N_
from ..records import OUTCOMES, ClinicalOutcome, RecordStore, RecordStoreError, StoredScreening
from ..records.codes import format_code
from ..validation import ValidationReport, cases_from_records, validation_report
from .access import require_pin
from .context import kiosk
from .errors import WebError
from .i18n import translate

__all__ = ["OUTCOME_WORDS", "bp"]

bp = Blueprint("outcomes", __name__)

#: What each outcome button says (translated at render time).
OUTCOME_WORDS: dict[str, str] = {
    "not_seen": N_("Not seen yet"),
    "benign": N_("Seen: benign"),
    "melanoma": N_("Biopsy: melanoma"),
    "other_skin_cancer": N_("Other skin cancer"),
    "other": N_("Other"),
}
assert tuple(OUTCOME_WORDS) == OUTCOMES, "one button per outcome, in the records' order"
#: The report's row names: body-site groups (kiosk.records.BODY_SITE_GROUPS) and Fitzpatrick skin types.
GROUP_WORDS: dict[str, str] = {
    "head_neck": N_("Head and neck"),
    "trunk": N_("Trunk"),
    "upper_limb": N_("Arm and hand"),
    "lower_limb": N_("Leg and foot"),
    "palm_sole": N_("Palm or sole"),
    "nail": N_("Nail"),
    "genital": N_("Genital area"),
    "other": N_("Other site"),
    "not_recorded": N_("Not recorded"),
}
PENDING_SHOWN = 20  # referred screenings still waiting for an outcome, listed on the report page


@bp.app_context_processor
def _globals() -> dict[str, object]:
    return {
        "outcome_url": outcome_url,
        "outcome_words": outcome_words,
        "group_name": group_name,
        "format_code": format_code,
    }


def outcome_url(screening_id: str | None) -> str | None:
    """Where to record this screening's outcome, or None (not saved, or no PIN session: no button)."""
    if not screening_id or kiosk().records is None or not kiosk().pin.session_unlocked():
        return None
    return url_for("outcomes.outcome_form", sid=screening_id)


def outcome_words(kind: str) -> str:
    return translate(OUTCOME_WORDS.get(kind, kind))


def group_name(group: str) -> str:
    """A report row's name: a body-site group, a skin type ("1" -> "Type I") or "not recorded"."""
    if group in SKIN_TYPE_NAMES:
        return translate(N_("Type %(numeral)s"), numeral=SKIN_TYPE_NAMES[group])
    return translate(GROUP_WORDS.get(group, group))


SKIN_TYPE_NAMES = {"1": "I", "2": "II", "3": "III", "4": "IV", "5": "V", "6": "VI"}


def _guard() -> ResponseReturnValue | None:
    return require_pin(request.path)


def _records() -> RecordStore:
    records = kiosk().records
    if records is None:
        raise WebError(404, "not_found")
    return records


def _screening(sid: str) -> StoredScreening:
    found = _records().get(sid)
    if found is None:
        raise WebError(404, "not_found")
    return found


def _zone() -> ZoneInfo:
    return ZoneInfo(kiosk().settings.station.time_zone)


def _today() -> date:
    return datetime.now(UTC).astimezone(_zone()).date()


def _seen_range(screening: StoredScreening) -> tuple[date, date]:
    """A doctor sees the patient on or after the screening's (local) day, and not after today."""
    first = screening.created_at.astimezone(_zone()).date()
    return first, max(first, _today())


def _parse_day(text: str | None, screening: StoredScreening) -> date | None:
    """``YYYY-MM-DD`` inside the screening's seen range; None for none; WebError for anything else."""
    if not text:
        return None
    try:
        day = date.fromisoformat(text) if len(text) == 10 else None
    except ValueError:
        day = None
    first, last = _seen_range(screening)
    if day is None or not first <= day <= last:
        raise WebError(400, "invalid_outcome_date", first=first.isoformat(), last=last.isoformat())
    return day


@bp.get("/screenings/<sid>/outcome")
def outcome_form(sid: str) -> ResponseReturnValue:
    refused = _guard()
    if refused is not None:
        return refused
    screening = _screening(sid)
    first, last = _seen_range(screening)
    try:
        seen = _parse_day(request.args.get("seen"), screening)
    except WebError:
        seen = None  # a stepper link past either end: show "not known" rather than an error page
    step_from = seen or last
    return render_template(
        "outcome.html",
        s=screening,
        at=screening.created_at.astimezone(_zone()),
        latest=_records().latest_outcome(sid),
        outcomes=OUTCOMES,
        seen=seen,
        today=last,
        yesterday=last - timedelta(days=1) if last - timedelta(days=1) >= first else None,
        earlier=step_from - timedelta(days=1) if step_from > first else None,
        later=seen + timedelta(days=1) if seen is not None and seen < last else None,
    )


@bp.post("/screenings/<sid>/outcome")
def outcome_save(sid: str) -> ResponseReturnValue:
    refused = _guard()
    if refused is not None:
        return refused
    screening = _screening(sid)
    kind = request.form.get("outcome", "")
    if kind not in OUTCOMES:
        raise WebError(400, "invalid_outcome")
    seen = _parse_day(request.form.get("seen_on"), screening)
    outcome = ClinicalOutcome(
        screening_id=screening.id,
        outcome=kind,  # type: ignore[arg-type]  # checked against OUTCOMES above
        recorded_at=datetime.now(UTC),
        seen_on=None if kind == "not_seen" else seen,  # not seen: there is no day it was seen
        source="kiosk",
    )
    try:
        _records().record_outcome(outcome)
    except (OSError, sqlite3.Error, RecordStoreError, ValueError):
        raise WebError(503, "outcome_not_saved") from None  # nothing is acknowledged that was not stored
    return redirect(url_for("outcomes.outcome_saved", sid=screening.id), code=303)


@bp.get("/screenings/<sid>/outcome/saved")
def outcome_saved(sid: str) -> ResponseReturnValue:
    refused = _guard()
    if refused is not None:
        return refused
    screening = _screening(sid)
    latest = _records().latest_outcome(sid)
    if latest is None:
        return redirect(url_for("outcomes.outcome_form", sid=sid), code=303)
    return render_template(
        "outcome_saved.html", s=screening, at=screening.created_at.astimezone(_zone()), latest=latest
    )


@bp.get("/settings/validation")
def validation_page() -> ResponseReturnValue:
    refused = _guard()
    if refused is not None:
        return refused
    records = kiosk().records
    report: ValidationReport | None = None
    pending: list[StoredScreening] = []
    if records is not None:
        everything = records.between(datetime(1970, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC))
        latest = records.latest_outcomes()
        report = validation_report(cases_from_records(everything, latest))
        pending = [
            s
            for s in reversed(everything)
            if s.result.status == "ok"
            and s.result.risk == "refer"
            and (s.id not in latest or latest[s.id].outcome == "not_seen")
        ][:PENDING_SHOWN]
    return render_template(
        "validation_report.html",
        report=report,
        pending=[(s, s.created_at.astimezone(_zone())) for s in pending],
    )
