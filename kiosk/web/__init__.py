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
['api', 'pages']
>>> station.close()
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from flask import Flask, Response

from ..config import Settings
from .api import bp as api_bp
from .context import EXTENSION, KioskContext
from .csrf import init_csrf
from .errors import register_error_handlers
from .i18n import init_i18n
from .pages import bp as pages_bp
from .pin import PinGuard

if TYPE_CHECKING:
    from ..model import Model
    from ..records import RecordStore
    from ..station import Station
    from ..updates import UpdateService

__all__ = ["MAX_UPLOAD_BYTES", "create_app"]

MAX_UPLOAD_BYTES = 20 * 2**20  # a 12 MP JPEG is ~5 MB; anything far bigger is not a photo for screening

# The page loads nothing from elsewhere, runs no inline script and is never framed.
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                           "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def create_app(*, settings: Settings, station: Station, records: RecordStore | None = None,
               current_model: Callable[[], Model] | None = None, updates: UpdateService | None = None,
               testing: bool = False,
               clock: Callable[[], float] = time.monotonic) -> Flask:
    """Build the kiosk's Flask app around a running ``station``.

    ``records`` is the store the pages read back (default: the one the
    station saves to); ``current_model()`` the model in use now (default:
    the station's screener's, which a model update swaps); ``updates`` the
    model-update service the settings page lists, applies and rolls back
    with (None: the page shows the model but offers no updates).

    ``clock`` (monotonic seconds) times the PIN lockout and PIN sessions;
    tests pass a fake one. The session key is new at every start, so a
    restart forgets unlocked PIN sessions (and the chosen language).
    """
    app = Flask(__name__)
    app.config.update(
        TESTING=testing,
        SECRET_KEY=secrets.token_bytes(32),
        MAX_CONTENT_LENGTH=MAX_UPLOAD_BYTES,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        TEMPLATES_AUTO_RELOAD=False,
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions[EXTENSION] = KioskContext(
        settings=settings, station=station, records=records if records is not None else station.records,
        current_model=current_model or (lambda: station.screener.model), updates=updates,
        pin=PinGuard(settings.web.pin, clock=clock))
    init_i18n(app, default_language=settings.web.language)  # first: errors below are translated
    init_csrf(app)
    register_error_handlers(app)
    app.register_blueprint(api_bp)
    app.register_blueprint(pages_bp)
    app.after_request(_security_headers)
    return app


def _security_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    if response.mimetype in ("text/html", "application/json"):
        response.headers.setdefault("Cache-Control", "no-store")  # results are health data: never cached
    return response
