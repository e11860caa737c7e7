"""The HTTP API: health, screenings (capture or upload), the station's state, the MJPEG preview.

Every answer is JSON (the preview aside), errors included: see :mod:`.errors`.

==========================  =====================================================================
``GET /healthz``            200 ``{"status": "ok", "model_sha256", "camera"}``; 503 while the camera reconnects
``GET /api/state``          ``{"busy", "camera", "camera_ok", "notice", "last"}`` (the page polls it; ``notice``:
                            null, "power_hold" or "shutting_down"; ``last``: ``{"seq", "id", "status"}`` or null)
``POST /api/screenings``    capture and screen (or screen the multipart ``image``); 201 + the screening
``GET /api/screenings``     the history, newest first (PIN session); ``?limit=&offset=``
``GET /api/screenings/ID``  one stored screening
``GET /stream.mjpg``        ``multipart/x-mixed-replace`` JPEG preview; 503 ``preview_busy`` when 3 viewers watch
==========================  =====================================================================
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request, url_for
from flask.typing import ResponseReturnValue

from ..records import InvalidPatientInfo, PatientInfo
from ..station import PreviewBusy
from .context import kiosk
from .errors import WebError, error_response
from .present import screening_json
from .stream import BOUNDARY, mjpeg_parts, waitress_backlog

bp = Blueprint("api", __name__)

PATIENT_FIELDS = ("age", "sex", "body_site")


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    ctx = kiosk()
    camera = ctx.station.camera_status
    sha256 = ctx.model.sha256
    if camera != "ok":
        body = {"status": "error", "reason": ctx.station.camera_reason or "camera_unavailable", "camera": camera,
                "model_sha256": sha256}
        return jsonify(body), 503
    return jsonify({"status": "ok", "model_sha256": sha256, "camera": camera})


@bp.get("/api/state")
def state() -> ResponseReturnValue:
    station = kiosk().station
    last = station.last
    return jsonify({
        "busy": station.busy,
        "camera": station.camera_status,
        "camera_ok": station.camera_ok,
        "notice": station.notice,
        "last": {"seq": last.seq, "id": last.id, "status": last.result.status} if last else None,
    })


def _patient() -> PatientInfo | None:
    """Optional patient details: form fields ``age``, ``sex``, ``body_site``, or JSON ``{"patient": {...}}``."""
    if request.is_json:
        data = (request.get_json(silent=True) or {})
        fields = data.get("patient") if isinstance(data, dict) else None
        if fields is None:
            return None
        if not isinstance(fields, dict):
            raise WebError(400, "invalid_patient", detail="patient must be an object")
    else:
        fields = {k: request.form[k] for k in PATIENT_FIELDS if k in request.form}
    try:
        patient = PatientInfo.from_dict(fields)
    except (InvalidPatientInfo, TypeError) as exc:
        raise WebError(400, "invalid_patient", detail=str(exc)) from None
    return None if patient.is_empty else patient


@bp.post("/api/screenings")
def create_screening() -> ResponseReturnValue:
    ctx = kiosk()
    patient = _patient()
    upload = request.files.get("image")
    if upload is not None:
        sid, result = ctx.station.screen_upload(upload.read(), patient=patient)
        image = upload.filename or "upload"
    elif "image" in request.form:  # a text field instead of a file
        raise WebError(400, "no_image")
    else:
        sid, result = ctx.station.capture_and_screen(patient=patient)
        image = "camera"
    if result.status == "error":
        return error_response(400, result.reason or "internal_error")
    body = screening_json(sid, result, image=image, min_side=ctx.min_side)
    headers = {"Location": url_for("api.get_screening", sid=sid)} if sid else {}
    return jsonify(body), 201, headers


@bp.get("/api/screenings/<sid>")
def get_screening(sid: str) -> ResponseReturnValue:
    ctx = kiosk()
    stored = ctx.records.get(sid) if ctx.records is not None else None
    if stored is None:
        raise WebError(404, "not_found")
    return jsonify(screening_json(stored.id, stored.result, image=None, min_side=ctx.min_side))


@bp.get("/api/screenings")
def list_screenings() -> ResponseReturnValue:
    ctx = kiosk()
    if not ctx.pin.configured:
        raise WebError(403, "pin_not_configured")
    if not ctx.pin.session_unlocked():
        raise WebError(403, "pin_required")
    limit = _int_arg("limit", 50, 1, 500)
    offset = _int_arg("offset", 0, 0, 10**9)
    records = ctx.records
    items: list[dict[str, Any]] = []
    total = 0
    if records is not None:
        total = records.count()
        for stored in records.list(limit=limit, offset=offset):
            item = screening_json(stored.id, stored.result, image=None, min_side=ctx.min_side)
            item["created_at"] = stored.created_at.isoformat()
            items.append(item)
    return jsonify({"screenings": items, "count": total, "limit": limit, "offset": offset})


def _int_arg(name: str, default: int, lowest: int, highest: int) -> int:
    text = request.args.get(name)
    if text is None:
        return default
    if not text.isdigit() or not lowest <= int(text) <= highest:
        raise WebError(400, "bad_request")
    return int(text)


@bp.get("/stream.mjpg")
def stream() -> ResponseReturnValue:
    try:
        frames = kiosk().station.preview_frames()
    except PreviewBusy as exc:  # each viewer holds a server thread: the rest stay free for the API
        return error_response(503, exc.code, **exc.params)
    parts = mjpeg_parts(frames, backlog=waitress_backlog(request.environ))
    return Response(parts, mimetype=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                    headers={"Cache-Control": "no-store"})
