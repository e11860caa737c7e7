"""The touchscreen web app: a Flask app factory with two blueprints (``api`` and ``pages``).

It is served by waitress (``kiosk serve``, :mod:`kiosk.daemon`) on
127.0.0.1 by default; Chromium in kiosk mode shows it on the Pi's screen.
Everything is local: templates, one CSS file, one small script, a favicon.

>>> from kiosk.config import Settings
>>> from kiosk.camera import SyntheticCamera
>>> from kiosk.station import Station
>>> station = Station(screener=None, camera_factory=SyntheticCamera, records=None)  # pages need a model
>>> app = create_app(settings=Settings(), station=station, testing=True)
>>> sorted(app.blueprints)
['api', 'calibration', 'centre', 'details', 'followup', 'outcomes', 'pages', 'photos', 'thumbnails', 'transfer']
>>> station.close()
"""

from __future__ import annotations

import io
import secrets
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from flask import Flask, Request, Response

from ..config import Settings
from .api import bp as api_bp
from .calibration import bp as calibration_bp
from .centre import init_centre
from .context import EXTENSION, KioskContext
from .csrf import init_csrf
from .details import bp as details_bp
from .errors import register_error_handlers
from .followup import bp as followup_bp
from .hosts import HostCheck
from .i18n import init_i18n
from .outcomes import bp as outcomes_bp
from .pages import bp as pages_bp
from .photos import bp as photos_bp
from .pin import LOCKOUT_FILE, PinGuard
from .thumbnails import bp as thumbnails_bp
from .transfer import bp as transfer_bp

if TYPE_CHECKING:
    from ..model import Model
    from ..records import RecordStore
    from ..station import Station
    from ..updates import UpdateService

__all__ = ["MAX_UPLOAD_BYTES", "SERVER_LIMITS", "KioskRequest", "create_app"]

MAX_UPLOAD_BYTES = 20 * 2**20  # a 12 MP JPEG is ~5 MB; anything far bigger is not a photo for screening
#: waitress's own limits (kiosk.daemon passes them): waitress reads a whole body before the app sees it, so
#: without this a 200 MB body would be spooled to disk before Flask could answer 413.
SERVER_LIMITS: dict[str, Any] = {
    "max_request_body_size": MAX_UPLOAD_BYTES + 64 * 2**10,
    "max_request_header_size": 64 * 2**10,
}


class KioskRequest(Request):
    """Uploaded files stay in memory (bounded by ``MAX_CONTENT_LENGTH``): nothing is spooled to disk."""

    max_form_parts = 16  # image, age, sex, body_site, csrf_token, with room to spare

    def _get_file_stream(
        self,
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None = None,
        content_length: int | None = None,
    ) -> IO[bytes]:
        return io.BytesIO()


# The page loads nothing from elsewhere, runs no inline script and is never framed.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def create_app(
    *,
    settings: Settings,
    station: Station,
    records: RecordStore | None = None,
    current_model: Callable[[], Model] | None = None,
    updates: UpdateService | None = None,
    testing: bool = False,
    clock: Callable[[], float] = time.time,
    host: str | None = None,
) -> Flask:
    """Build the kiosk's Flask app around a running ``station``.

    ``records`` is the store the pages read back (default: the one the
    station saves to); ``current_model()`` the model in use now (default:
    the station's screener's, which a model update swaps); ``updates`` the
    model-update service the settings page lists, applies and rolls back
    with (None: the page shows the model but offers no updates).

    ``clock`` (wall-clock seconds) times the PIN lockout and PIN sessions;
    tests pass a fake one. The lockout is kept in the records folder
    (``pin-lockout.json``), so a restart does not reset it. The session key
    is new at every start, so a restart forgets unlocked PIN sessions (and
    the chosen language). ``host`` is the address the server listens on
    (default ``web.host``): requests naming any other host are refused.
    """
    app = Flask(__name__)
    app.request_class = KioskRequest
    app.config.update(
        TESTING=testing,
        SECRET_KEY=secrets.token_bytes(32),
        MAX_CONTENT_LENGTH=MAX_UPLOAD_BYTES,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        TEMPLATES_AUTO_RELOAD=False,
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    records = records if records is not None else station.records
    state_path = Path(records.data_dir) / LOCKOUT_FILE if records is not None else None
    app.extensions[EXTENSION] = KioskContext(
        settings=settings,
        station=station,
        records=records,
        current_model=current_model or (lambda: station.screener.model),
        updates=updates,
        pin=PinGuard(settings.web.pin, clock=clock, state_path=state_path),
    )
    hosts = HostCheck.for_server(
        host or settings.web.host, extra=settings.web.allowed_host_names, hostname=socket.gethostname()
    )
    app.before_request(hosts.protect)  # first of all: a rebound name gets nothing, not even a language
    app.before_request(_refuse_oversized)
    init_i18n(app, default_language=settings.web.language)  # errors below are translated
    init_csrf(app)
    register_error_handlers(app)
    app.register_blueprint(api_bp)
    app.register_blueprint(pages_bp)
    app.register_blueprint(details_bp)
    app.register_blueprint(photos_bp)
    init_centre(app)  # station, clock and daily summary on the settings page
    app.register_blueprint(outcomes_bp)
    app.register_blueprint(calibration_bp)
    app.register_blueprint(transfer_bp)
    app.register_blueprint(thumbnails_bp)
    app.register_blueprint(followup_bp)
    app.after_request(_security_headers)
    return app


def _refuse_oversized() -> None:
    # On the declared length alone, before a byte of the body is read (the CSRF check may read the form).
    from flask import current_app, request
    from werkzeug.exceptions import RequestEntityTooLarge

    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if request.content_length is not None and request.content_length > limit:
        raise RequestEntityTooLarge()


def _security_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    if response.mimetype in ("text/html", "application/json"):
        response.headers.setdefault("Cache-Control", "no-store")  # results are health data: never cached
    return response
