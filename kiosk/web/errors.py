"""Errors of the web layer: JSON for the API, a friendly page for people, never a traceback.

Every error carries a reason code (from :mod:`kiosk.reasons` or
``i18n.WEB_REASONS``) and its message in the request's language:
``{"status": "error", "reason": "not_an_image", "message": "..."}``.

>>> err = WebError(413, "upload_too_large", limit_mb=20)
>>> err.code, err.reason, err.params
(413, 'upload_too_large', {'limit_mb': 20})
"""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from jinja2 import TemplateError
from werkzeug.exceptions import HTTPException

from ..reasons import CameraError, ImageError, KioskError
from .i18n import reason_message

__all__ = ["WebError", "error_response", "register_error_handlers", "wants_json"]

#: HTTP status -> reason code, for errors Flask/Werkzeug raise themselves.
HTTP_REASONS = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "upload_too_large",
    415: "unsupported_upload",
    500: "internal_error",
}


class WebError(HTTPException):
    """An HTTP error with a translatable reason code (``params`` fill the message)."""

    def __init__(self, status: int, reason: str, **params: Any) -> None:
        super().__init__(description=reason)
        self.code = status
        self.reason = reason
        self.params = params


def wants_json() -> bool:
    """Machine endpoints answer errors in JSON; pages answer with a page."""
    path = request.path
    return path.startswith("/api/") or path in ("/healthz", "/stream.mjpg")


def error_response(status: int, reason: str, **params: Any) -> ResponseReturnValue:
    text = reason_message(reason, **params)
    if reason == "host_not_allowed" and not wants_json():
        # One line, no page: the kiosk's page must not be rendered for a site that is not the kiosk.
        return text + "\n", status, {"Content-Type": "text/plain; charset=utf-8"}
    if wants_json():
        body: dict[str, Any] = {"status": "error", "reason": reason, "message": text}
        if "detail" in params and reason != "camera_unavailable":
            body["detail"] = params["detail"]
        return jsonify(body), status
    try:
        return render_template("error.html", status=status, reason=reason, message=text), status
    except TemplateError:  # the error page itself must not fail
        current_app.logger.exception("the error page could not be rendered")
        return text, status, {"Content-Type": "text/plain; charset=utf-8"}


def _http_error(exc: HTTPException) -> ResponseReturnValue:
    status = exc.code or 500
    if isinstance(exc, WebError):
        return error_response(status, exc.reason, **exc.params)
    params: dict[str, Any] = {}
    if status == 413:
        params["limit_mb"] = (current_app.config.get("MAX_CONTENT_LENGTH") or 0) // 2**20
    return error_response(
        status, HTTP_REASONS.get(status, "bad_request" if status < 500 else "internal_error"), **params
    )


def _kiosk_error(exc: KioskError) -> ResponseReturnValue:
    status = 503 if isinstance(exc, CameraError) else 400 if isinstance(exc, ImageError) else 500
    return error_response(status, exc.code, **exc.params)


def _unexpected(exc: Exception) -> ResponseReturnValue:
    # Logged with its traceback for the technician; the health worker gets one calm line.
    current_app.logger.exception("unexpected error on %s %s", request.method, request.path)
    return error_response(500, "internal_error")


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(KioskError, _kiosk_error)
    app.register_error_handler(Exception, _unexpected)
