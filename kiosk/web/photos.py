"""The photo a screening scored, for the result page, and what the page draws over it.

``GET /screenings/<id>/photo.jpg`` serves the stored photo to whoever may read
that screening (:mod:`.access`: the session that took it, the kiosk's own
screen for its last one, or a PIN session), else 404 like any unknown id. It is
never cached. The page draws the square the model saw (``quality["crop"]``,
:class:`kiosk.screening.Screener`) as an SVG outline over the photo, so no
second image is made.

>>> crop_outline({"crop": {"x": 10, "y": 0, "side": 480, "width": 640, "height": 480}})
PhotoCrop(x=10, y=0, side=480, width=640, height=480)
>>> crop_outline({}) is None
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import Blueprint, send_file, url_for
from flask.typing import ResponseReturnValue

from .access import may_read, may_read_last
from .context import kiosk
from .details import CHOSEN_FIELDS
from .errors import WebError

if TYPE_CHECKING:
    from ..records import StoredScreening
    from .present import ResultView

__all__ = ["PhotoCrop", "bp", "crop_outline", "stored_screening"]

bp = Blueprint("photos", __name__)


@dataclass(frozen=True)
class PhotoCrop:
    """The model's square in the photo's pixels, with the photo's size (the SVG's viewBox)."""

    x: int
    y: int
    side: int
    width: int
    height: int


def crop_outline(quality: dict[str, Any]) -> PhotoCrop | None:
    """The crop a result carries, or None (an older record, a retake, or a damaged value)."""
    crop = quality.get("crop") if isinstance(quality, dict) else None
    if not isinstance(crop, dict):
        return None
    try:
        box = PhotoCrop(**{k: int(crop[k]) for k in ("x", "y", "side", "width", "height")})
    except (KeyError, TypeError, ValueError):
        return None
    inside = 0 <= box.x and 0 <= box.y and box.x + box.side <= box.width and box.y + box.side <= box.height
    return box if box.side > 0 and inside else None


def stored_screening(sid: str | None) -> StoredScreening | None:
    """The record behind a result the page already may show (None: unsaved, or records are off)."""
    records = kiosk().records
    return records.get(sid) if sid and records is not None else None


def _readable(sid: str) -> str:
    """The stored id behind ``sid`` ("last" included) when this request may read it; else 404."""
    if sid == "last":
        last = kiosk().station.last
        if last is None or last.id is None or not may_read_last(last):
            raise WebError(404, "not_found")
        return last.id
    if not may_read(sid):
        raise WebError(404, "not_found")  # not 403: another patient's id is not confirmed to exist
    return sid


@bp.get("/screenings/<sid>/photo.jpg")
def photo(sid: str) -> ResponseReturnValue:
    stored = stored_screening(_readable(sid))
    if stored is None or stored.image_path is None or not stored.image_path.is_file():
        raise WebError(404, "not_found")
    response = send_file(stored.image_path, mimetype="image/jpeg", conditional=False, max_age=0)
    response.headers["Cache-Control"] = "no-store"  # health data: never kept by the browser
    return response


@bp.app_context_processor
def _globals() -> dict[str, object]:
    return {"result_photo": result_photo}


def result_photo(view: ResultView) -> dict[str, Any] | None:
    """The result's record as the page shows it: the photo's URL (None when no photo was kept), the model's
    square and the details chosen before the capture; None for a result that was not saved."""
    stored = stored_screening(view.id)
    if stored is None:
        return None
    patient = stored.patient
    return {
        "url": url_for("photos.photo", sid=stored.id) if stored.image_path is not None else None,
        "crop": crop_outline(stored.result.quality),
        "details": {k: v for k, v in (patient.to_dict() if patient else {}).items() if k in CHOSEN_FIELDS and v},
    }
