"""Who may read a screening: the browser session that took it, the kiosk's own screen, or a PIN session.

A result is health data. Its id (128 random bits, :mod:`kiosk.records`) is
not a password, so knowing one is not enough: this browser session must have
taken that screening (its id is kept in the signed session cookie), or be
unlocked with the PIN. The station's *last* result (``/screenings/last``,
what the physical button's photo opens) is shown to the kiosk's own screen,
a browser on the Pi itself (a loopback address), and to the session that
took it; a screen that opens it may then open its slip too. Anyone else gets
404, as if it did not exist.

>>> from flask import Flask
>>> app = Flask(__name__); app.secret_key = "doctest"
>>> with app.test_request_context(environ_base={"REMOTE_ADDR": "192.168.1.50"}):
...     remember("20250101-000000-abcd-" + "0" * 32)
...     took("20250101-000000-abcd-" + "0" * 32), took("20250101-000000-abcd-" + "1" * 32)
(True, False)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue

from .context import kiosk

if TYPE_CHECKING:
    from ..station import Screening

__all__ = ["kiosk_screen", "may_read", "may_read_last", "remember", "require_pin", "took"]

TAKEN_KEY = "taken"
TAKEN_SEQ_KEY = "taken_seq"
MAX_TAKEN = 12  # ids this session may reopen (the cookie stays small)
LOOPBACK = frozenset({"127.0.0.1", "::1", "::ffff:127.0.0.1"})


def remember(sid: str | None, *, seq: int | None = None) -> None:
    """This session took (or was shown) screening ``sid`` (``seq``: the station's number for it)."""
    if sid:
        taken = [t for t in session.get(TAKEN_KEY, []) if isinstance(t, str) and t != sid]
        session[TAKEN_KEY] = [*taken, sid][-MAX_TAKEN:]
    if seq is not None:
        session[TAKEN_SEQ_KEY] = seq


def took(sid: str) -> bool:
    taken = session.get(TAKEN_KEY)
    return isinstance(taken, list) and sid in taken


def kiosk_screen() -> bool:
    """The request comes from the Pi itself (Chromium on the touchscreen), not from the network."""
    return request.remote_addr in LOOPBACK


def may_read(sid: str) -> bool:
    """Whether this request may read the stored screening ``sid``."""
    return took(sid) or kiosk().pin.session_unlocked()


def may_read_last(last: Screening) -> bool:
    """Whether this request may see the station's last screening (and, if so, its slip later)."""
    own = (last.id is not None and took(last.id)) or session.get(TAKEN_SEQ_KEY) == last.seq
    if own or kiosk_screen() or kiosk().pin.session_unlocked():
        remember(last.id, seq=last.seq)
        return True
    return False


def require_pin(next_page: str) -> ResponseReturnValue | None:
    """None when this session is unlocked; else the page to show instead (the one PIN rule for every page behind it).

    No PIN set: the "ask the technician" page. Locked: the PIN pad, which returns to ``next_page``.
    """
    pin = kiosk().pin
    if not pin.configured:
        return render_template("pin_missing.html")
    if not pin.session_unlocked():
        return redirect(url_for("pages.pin_form", next=next_page), code=303)
    return None
