"""The follow-through figures page, its CSV and its chart."""

from __future__ import annotations

from flask import Blueprint, Response, request, session
from flask.typing import ResponseReturnValue

from ..figures import chart_svg, follow_through, to_csv, totals
from ..queries import stations
from . import console, page

__all__ = ["bp"]

bp = Blueprint("figures", __name__, template_folder="templates")


@bp.get("/figures")
def index() -> ResponseReturnValue:
    station = request.args.get("station") or None
    rows = follow_through(console().db, station=station)
    return page(
        "rhu_figures.html",
        rows=rows,
        total=totals(rows),
        station=station,
        stations=stations(console().db),
        user=session.get("user"),
    )


@bp.get("/figures.csv")
def csv() -> ResponseReturnValue:
    rows = follow_through(console().db, station=request.args.get("station") or None)
    return Response(
        to_csv(rows),
        mimetype="text/csv",
        headers={"Content-Disposition": "attachment; filename=follow-through.csv"},
    )


@bp.get("/figures.svg")
def chart() -> ResponseReturnValue:
    rows = follow_through(console().db, station=request.args.get("station") or None)
    return Response(chart_svg(rows), mimetype="image/svg+xml")
