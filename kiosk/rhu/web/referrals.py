"""The doctor's pages: referred patients by station and due date, find by slip code, record the outcome."""

from __future__ import annotations

from datetime import date

from flask import Blueprint, Response, abort, redirect, request, session, url_for
from flask.typing import ResponseReturnValue

from ...records import OUTCOMES, InvalidOutcome
from ...records.codes import format_code
from ..outcomes import BIOPSY_RESULTS, record_outcome
from ..queries import find_by_code, referrals, screening, stations
from . import console, page

__all__ = ["bp"]

bp = Blueprint("referrals", __name__, template_folder="templates")
PAGE_SIZE = 100


@bp.app_template_filter("slip")
def _slip(code: str | None) -> str:
    return format_code(code) if code else "-"


@bp.get("/")
def index() -> ResponseReturnValue:
    station = request.args.get("station") or None
    show_all = request.args.get("all") == "1"
    page_no = max(0, request.args.get("page", 0, type=int) or 0)
    rows = referrals(
        console().db, station=station, open_only=not show_all, limit=PAGE_SIZE + 1, offset=page_no * PAGE_SIZE
    )
    return page(
        "rhu_referrals.html",
        rows=rows[:PAGE_SIZE],
        more=len(rows) > PAGE_SIZE,
        page_no=page_no,
        station=station,
        show_all=show_all,
        stations=stations(console().db),
        today=date.today().isoformat(),
        user=session.get("user"),
    )


@bp.get("/find")
def find() -> ResponseReturnValue:
    text = request.args.get("code", "")
    rows = find_by_code(console().db, text) if text else []
    if len(rows) == 1 and len(text.replace("-", "").replace(" ", "")) == 9:
        return redirect(url_for("referrals.detail", key=rows[0]["key"]))
    return page("rhu_find.html", rows=rows, code=text, user=session.get("user"))


@bp.get("/screenings/<path:key>")
def detail(key: str) -> ResponseReturnValue:
    row = screening(console().db, key)
    if row is None:
        abort(404)
    return page(
        "rhu_screening.html",
        s=row,
        outcomes=OUTCOMES,
        biopsies=BIOPSY_RESULTS,
        error=None,
        saved=request.args.get("saved") == "1",
        user=session.get("user"),
    )


@bp.get("/screenings/<path:key>/photo.jpg")
def photo(key: str) -> ResponseReturnValue:
    row = screening(console().db, key)
    data = console().photos.get(row["photo_sha256"]) if row and row["photo_sha256"] else None
    if data is None:
        abort(404)
    return Response(data, mimetype="image/jpeg")


@bp.post("/screenings/<path:key>/outcome")
def outcome(key: str) -> ResponseReturnValue:
    row = screening(console().db, key)
    if row is None:
        abort(404)
    form = request.form
    try:
        seen_text = form.get("seen_on", "").strip()
        seen_on = date.fromisoformat(seen_text) if seen_text else None
        if seen_on is not None and seen_on > date.today():
            raise InvalidOutcome("the 'seen on' date is in the future")
        record_outcome(
            console().db,
            console().outbound,
            key=key,
            outcome=form.get("outcome", ""),
            seen_on=seen_on,
            biopsy=form.get("biopsy") or None,
            note=form.get("note", "").strip() or None,
            recorded_by=str(session["user"]),
            facility=console().facility,
            facility_code=console().facility_code,
        )
    except (InvalidOutcome, ValueError) as exc:
        message = str(exc).splitlines()[0] if isinstance(exc, InvalidOutcome) else "the 'seen on' date is not a date"
        return page(
            "rhu_screening.html", s=row, outcomes=OUTCOMES, biopsies=BIOPSY_RESULTS, error=message, saved=False,
            user=session.get("user"),
        ), 400  # fmt: skip
    return redirect(url_for("referrals.detail", key=key, saved=1))
