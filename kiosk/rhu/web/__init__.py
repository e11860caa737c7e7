"""The RHU console's web app: a Flask app factory with three blueprints (auth, referrals, figures).

Served by waitress (``kiosk rhu serve``) on 127.0.0.1 or one configured LAN
address, never on every address. Every page but the login needs a staff
account; every form carries the session's CSRF token (:mod:`kiosk.web.csrf`);
only the console's own host names are answered (:mod:`kiosk.web.hosts`).

>>> import tempfile, pathlib
>>> from kiosk.rhu.db import Database
>>> tmp = pathlib.Path(tempfile.mkdtemp())
>>> app = create_app(db=Database.open(f"sqlite:///{tmp}/rhu.sqlite3"), data_dir=tmp, facility="RHU Palo")
>>> sorted(app.blueprints)
['auth', 'figures', 'referrals']
"""

from __future__ import annotations

import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask, Response, current_app, render_template
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from ...web.csrf import init_csrf
from ...web.errors import WebError
from ...web.hosts import HostCheck
from ..db import Database
from ..photos import PhotoStore

__all__ = ["EXTENSION", "Console", "console", "create_app"]

EXTENSION = "rhu_console"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'none'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
MESSAGES = {
    "csrf_failed": "The form had expired. Open the page again and repeat what you did.",
    "host_not_allowed": "This address is not the console's.",
    "not_found": "There is no such page or screening.",
    "bad_request": "The request was not understood.",
    "method_not_allowed": "That is not allowed here.",
    "internal_error": "Something went wrong inside the console; nothing was lost. Try again.",
}


@dataclass
class Console:
    """What the views share: the database, the photos, where outcomes go, and the login throttle."""

    db: Database
    photos: PhotoStore
    outbound: Path
    facility: str  # this RHU's name, on the page and in outcomes' performer.display
    facility_code: str  # its short code (RHU-PALO): the kiosk stores outcomes as source rhu:<code>
    clock: Callable[[], float] = time.time
    failures: dict[str, list[float]] = field(default_factory=dict)  # user name -> times of recent wrong passwords


def console() -> Console:
    found: Console = current_app.extensions[EXTENSION]
    return found


def create_app(
    *,
    db: Database,
    data_dir: Path,
    facility: str,
    facility_code: str = "RHU",
    outbound: Path | None = None,
    host: str = "127.0.0.1",
    allowed_hosts: tuple[str, ...] = (),
    testing: bool = False,
    clock: Callable[[], float] = time.time,
) -> Flask:
    """The console around an open database; photos under ``data_dir/photos``, outcomes to ``outbound``."""
    from .auth import bp as auth_bp
    from .auth import require_login
    from .figures import bp as figures_bp
    from .referrals import bp as referrals_bp

    app = Flask(__name__)
    app.config.update(
        TESTING=testing,
        SECRET_KEY=secrets.token_bytes(32),  # new at every start: a restart signs everyone out
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        MAX_CONTENT_LENGTH=64 * 2**10,  # forms only: nothing is uploaded through the console
    )
    data_dir = Path(data_dir)
    app.extensions[EXTENSION] = Console(
        db=db,
        photos=PhotoStore(data_dir / "photos"),
        outbound=Path(outbound) if outbound else data_dir / "outbound",
        facility=facility,
        facility_code=facility_code,
        clock=clock,
    )
    hosts = HostCheck.for_server(host, extra=allowed_hosts, hostname=socket.gethostname())
    app.before_request(hosts.protect)
    init_csrf(app)
    app.before_request(require_login)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
    app.register_blueprint(auth_bp)
    app.register_blueprint(referrals_bp)
    app.register_blueprint(figures_bp)
    app.after_request(_security_headers)
    return app


def _error(status: int, reason: str) -> ResponseReturnValue:
    return render_template("rhu_error.html", message=MESSAGES.get(reason, MESSAGES["bad_request"])), status


def _http_error(exc: HTTPException) -> ResponseReturnValue:
    status = exc.code or 500
    if isinstance(exc, WebError):
        return _error(status, exc.reason)
    return _error(status, {404: "not_found", 405: "method_not_allowed"}.get(status, "bad_request"))


def _unexpected(exc: Exception) -> ResponseReturnValue:
    current_app.logger.exception("unexpected error")
    return _error(500, "internal_error")


def _security_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("Cache-Control", "no-store")  # health data: never cached
    return response


def page(template: str, **context: Any) -> str:
    return render_template(template, facility=console().facility, **context)
