"""The HTTP API: health, screenings (capture or upload), the station's state, the MJPEG preview.

Every answer is JSON (the preview aside), errors included: see :mod:`.errors`.

==========================  =====================================================================
``GET /healthz``            200 ``{"status": "ok", "model_sha256", "camera", "storage"}``; 503 while the camera
                            reconnects, 503 ``{"status": "degraded", "reason": "storage_full", "message"}``
                            while screenings cannot be saved
``GET /api/state``          ``{"busy", "camera", "camera_ok", "notice", "last"}`` (the page polls it; ``notice``:
                            null, "power_hold" or "shutting_down"; ``last``: ``{"seq", "status"}`` or null)
``POST /api/screenings``    capture and screen (no body, or JSON/form patient fields), or screen the multipart
                            ``image``; a failed upload is a 4xx, never a capture. 201 + the screening with
                            ``"saved": true``, or 200 with ``"saved": false``, ``"id": null`` and
                            ``save_error`` / ``save_message`` when it could not be stored (disk full)
``GET /api/screenings``     the history, newest first (PIN session); ``?limit=&offset=``
``GET /api/screenings/ID``  one stored screening (the session that took it, or a PIN session)
``GET /api/openapi.json``   this API described in OpenAPI 3
``GET /stream.mjpg``        ``multipart/x-mixed-replace`` JPEG preview; 503 ``preview_busy`` when 3 viewers watch
==========================  =====================================================================
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, jsonify, request, send_from_directory, url_for
from flask.typing import ResponseReturnValue

from ..records import InvalidPatientInfo, PatientInfo
from ..station import PreviewBusy
from .access import may_read, remember
from .context import kiosk
from .errors import WebError, error_response
from .i18n import reason_message
from .present import screening_json
from .stream import BOUNDARY, mjpeg_parts, waitress_backlog

bp = Blueprint("api", __name__)

OPENAPI_FILE = Path(__file__).with_name("openapi.json")
_DIGITS = re.compile(r"[0-9]{1,10}")
PATIENT_FIELDS = ("age", "sex", "body_site", "age_band", "skin_type")  # PatientInfo's fields: never a name


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    ctx = kiosk()
    camera = ctx.station.camera_status
    sha256 = ctx.model.sha256
    records = ctx.station.records
    storage = "full" if records is not None and records.storage_full else "ok"
    if camera != "ok":
        body = {
            "status": "error",
            "reason": ctx.station.camera_reason or "camera_unavailable",
            "camera": camera,
            "storage": storage,
            "model_sha256": sha256,
        }
        return jsonify(body), 503
    if storage != "ok":  # the kiosk still screens, but nothing it shows is being kept
        body = {
            "status": "degraded",
            "reason": "storage_full",
            "message": reason_message("storage_full"),
            "camera": camera,
            "storage": storage,
            "model_sha256": sha256,
        }
        return jsonify(body), 503
    return jsonify({"status": "ok", "model_sha256": sha256, "camera": camera, "storage": storage})


@bp.get("/api/state")
def state() -> ResponseReturnValue:
    station = kiosk().station
    last = station.last
    return jsonify(
        {
            "busy": station.busy,
            "camera": station.camera_status,
            "camera_ok": station.camera_ok,
            "notice": station.notice,
            # No id: whoever polls learns that a new result exists, not how to read it (see .access).
            "last": {"seq": last.seq, "status": last.result.status} if last else None,
        }
    )


MAX_JSON_BYTES = 2**20  # {"patient": {...}} is under 100 bytes; the limit only bounds the parse
MAX_JSON_DEPTH = 8
JSON_KEYS = frozenset({"capture", "patient"})
FORM_KEYS = frozenset({*PATIENT_FIELDS, "csrf_token"})


def _json_depth_ok(value: Any, depth: int = 0) -> bool:
    if depth > MAX_JSON_DEPTH:
        return False
    if isinstance(value, dict):
        return all(_json_depth_ok(v, depth + 1) for v in value.values())
    if isinstance(value, list):
        return all(_json_depth_ok(v, depth + 1) for v in value)
    return True


def _read_json() -> dict[str, Any]:
    """The JSON body as an object with known keys only; else a 4xx with its reason."""
    if request.content_length is not None and request.content_length > MAX_JSON_BYTES:
        raise WebError(413, "upload_too_large", limit_mb=1)
    raw = request.stream.read(MAX_JSON_BYTES + 1)
    if len(raw) > MAX_JSON_BYTES:
        raise WebError(413, "upload_too_large", limit_mb=1)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):  # RecursionError: [[[[...]]]] thousands deep
        raise WebError(400, "invalid_json") from None
    if not isinstance(data, dict) or not _json_depth_ok(data):
        raise WebError(400, "invalid_json")
    unknown = sorted(set(data) - JSON_KEYS)
    if unknown:
        raise WebError(400, "unknown_field", field=unknown[0][:40])
    if data.get("capture", True) is not True:
        raise WebError(400, "invalid_json")
    return data


def _patient_from(fields: Any) -> PatientInfo | None:
    if fields is None:
        return None
    if not isinstance(fields, dict):
        raise WebError(400, "invalid_patient", detail="patient must be an object")
    try:
        patient = PatientInfo.from_dict(fields)
    except (InvalidPatientInfo, TypeError, ValueError) as exc:
        raise WebError(400, "invalid_patient", detail=str(exc)[:200]) from None
    return None if patient.is_empty else patient


def _has_body() -> bool:
    chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    return chunked or bool(request.content_length)


def _screening_request() -> tuple[bytes | None, str, PatientInfo | None]:
    """What the POST asks for: ``(photo bytes, name, patient)``; ``None`` photo = an explicit capture.

    A capture is a POST without a body (what the page's script sends), a JSON
    object ``{"capture": true, "patient": {...}}`` (both keys optional), or a
    form with only patient fields. Anything else that carries a body is an
    upload, and an upload that fails is refused with its reason: it never
    falls back to a camera photo of whoever stands in front of the kiosk.
    """
    mimetype = request.mimetype
    if mimetype == "multipart/form-data":
        if not request.mimetype_params.get("boundary"):
            raise WebError(400, "no_image")
        upload = request.files.get("image")
        unknown = sorted(set(request.files) - {"image"} | set(request.form) - FORM_KEYS)
        if upload is None:
            raise WebError(400, "no_image")
        if unknown:
            raise WebError(400, "unknown_field", field=unknown[0][:40])
        data = upload.read()  # an empty file is screened: the loader names it ("empty_file")
        patient = _patient_from({k: request.form[k] for k in PATIENT_FIELDS if k in request.form})
        return data, upload.filename or "upload", patient
    if mimetype == "application/json":
        body = _read_json()
        return None, "camera", _patient_from(body.get("patient"))
    if mimetype == "application/x-www-form-urlencoded":
        if "image" in request.form:  # a text field instead of a file
            raise WebError(400, "no_image")
        unknown = sorted(set(request.form) - FORM_KEYS)
        if unknown:
            raise WebError(400, "unknown_field", field=unknown[0][:40])
        return None, "camera", _patient_from({k: request.form[k] for k in PATIENT_FIELDS if k in request.form})
    if _has_body() or mimetype:
        raise WebError(415, "unsupported_upload")  # a raw JPEG body, text, an unknown type
    return None, "camera", None


@bp.post("/api/screenings")
def create_screening() -> ResponseReturnValue:
    ctx = kiosk()
    photo, image, patient = _screening_request()
    if photo is not None:
        sid, result = ctx.station.screen_upload(photo, patient=patient)
    else:
        sid, result = ctx.station.capture_and_screen(patient=patient)
    last = ctx.station.last
    remember(sid, seq=last.seq if last is not None and last.result is result else None)
    if result.status == "error":
        return error_response(400, result.reason or "internal_error")
    body = screening_json(sid, result, image=image, min_side=ctx.min_side)
    if sid is not None:
        body["saved"] = True
        return jsonify(body), 201, {"Location": url_for("api.get_screening", sid=sid)}
    # Shown, never acknowledged as saved: the health worker must know to write it down.
    records = ctx.station.records
    code = (records.last_save_error or "not_saved") if records is not None else None
    body.update(saved=False, save_error=code, save_message=reason_message(code) if code else None)
    return jsonify(body), 200


@bp.get("/api/screenings/<sid>")
def get_screening(sid: str) -> ResponseReturnValue:
    ctx = kiosk()
    if not may_read(sid):
        raise WebError(404, "not_found")  # not 403: another patient's id is not confirmed to exist
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
    # ASCII digits only ("²".isdigit() is true), and few of them: int() of 30 digits overflows SQLite.
    if not _DIGITS.fullmatch(text) or not lowest <= int(text) <= highest:
        raise WebError(400, "bad_request")
    return int(text)


@bp.get("/api/openapi.json")
def openapi() -> ResponseReturnValue:
    """This API in OpenAPI 3 (the fuzz tests read it too)."""
    return send_from_directory(OPENAPI_FILE.parent, OPENAPI_FILE.name, mimetype="application/json")


@bp.get("/stream.mjpg")
def stream() -> ResponseReturnValue:
    try:
        frames = kiosk().station.preview_frames()
    except PreviewBusy as exc:  # each viewer holds a server thread: the rest stay free for the API
        return error_response(503, exc.code, **exc.params)
    parts = mjpeg_parts(frames, backlog=waitress_backlog(request.environ))
    return Response(
        parts, mimetype=f"multipart/x-mixed-replace; boundary={BOUNDARY}", headers={"Cache-Control": "no-store"}
    )
