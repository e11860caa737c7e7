"""CSRF protection: a per-session secret token, required on every POST.

Pages put the token in ``<meta name="csrf-token">`` (read by the page's
script, sent as the ``X-CSRF-Token`` header) and in a hidden ``csrf_token``
field of each form. A request without the right token is refused with 400
``csrf_failed`` before any view runs. The kiosk has one user at a time, but
its page may be reachable from the health centre's network, and a photo
taken or a PIN entered must only ever come from the kiosk's own page.

>>> from flask import Flask
>>> app = Flask(__name__); app.secret_key = "doctest"
>>> with app.test_request_context():
...     token = csrf_token()
...     token == csrf_token(), len(token) >= 32
(True, True)
"""

from __future__ import annotations

import secrets

from flask import Flask, request, session

from .errors import WebError

__all__ = ["FIELD", "HEADER", "csrf_token", "init_csrf", "protect"]

HEADER = "X-CSRF-Token"
FIELD = "csrf_token"
SESSION_KEY = "csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def csrf_token() -> str:
    """This session's token, made on first use."""
    token = session.get(SESSION_KEY)
    if not isinstance(token, str) or not token:
        token = session[SESSION_KEY] = secrets.token_urlsafe(32)
    return token


def protect() -> None:
    """``before_request`` hook: refuse an unsafe method without the session's token."""
    if request.method in SAFE_METHODS:
        return
    expected = session.get(SESSION_KEY)
    # The header first: reading the form would parse (and size-check) a whole upload.
    sent = request.headers.get(HEADER) or request.form.get(FIELD)
    # Compared as bytes: compare_digest refuses a str with non-ASCII characters (a 500, before).
    if (
        not isinstance(expected, str)
        or not sent
        or not secrets.compare_digest(sent.encode("utf-8", "surrogateescape"), expected.encode("utf-8"))
    ):
        raise WebError(400, "csrf_failed")


def init_csrf(app: Flask) -> None:
    app.before_request(protect)
    app.jinja_env.globals["csrf_token"] = csrf_token
