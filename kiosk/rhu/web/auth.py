"""Sign in and out; every other page needs a signed-in staff member.

Five wrong passwords for one user name within 5 minutes lock that name for
the rest of those 5 minutes, so a guesser on the LAN gets few tries; the
session lasts 8 hours at most.
"""

from __future__ import annotations

from flask import Blueprint, redirect, request, session, url_for
from flask.typing import ResponseReturnValue

from ..accounts import authenticate
from . import console, page

__all__ = ["bp", "require_login"]

bp = Blueprint("auth", __name__, template_folder="templates", static_folder="static", static_url_path="/static/rhu")

MAX_FAILURES, LOCK_SECONDS, SESSION_SECONDS = 5, 300, 8 * 3600
OPEN_ENDPOINTS = frozenset({"auth.login", "auth.static"})


def require_login() -> ResponseReturnValue | None:
    """``before_request``: a page without a live session goes to the login page."""
    if request.endpoint in OPEN_ENDPOINTS:
        return None
    started = session.get("since")
    if not session.get("user") or not isinstance(started, int | float) or console().clock() - started > SESSION_SECONDS:
        session.pop("user", None)
        return redirect(url_for("auth.login", next=request.path if request.method == "GET" else None))
    return None


def _locked(user: str) -> bool:
    now = console().clock()
    recent = [t for t in console().failures.get(user, []) if now - t < LOCK_SECONDS]
    console().failures[user] = recent
    return len(recent) >= MAX_FAILURES


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    error = None
    if request.method == "POST":
        user = request.form.get("username", "").strip().lower()[:40]
        password = request.form.get("password", "")
        if _locked(user):
            error = "Too many wrong passwords for this user. Wait 5 minutes, then try again."
        elif authenticate(console().db, user, password):
            console().failures.pop(user, None)
            csrf = session.get("csrf")
            session.clear()  # a fresh session at sign-in (no fixation), keeping the form token
            session.update(user=user, since=console().clock(), csrf=csrf)
            target = request.args.get("next", "")
            return redirect(
                target if target.startswith("/") and not target.startswith("//") else url_for("referrals.index")
            )
        else:
            console().failures.setdefault(user, []).append(console().clock())
            error = "Wrong user name or password."
    return page("rhu_login.html", error=error), 401 if error else 200


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    session.clear()
    return redirect(url_for("auth.login"))
