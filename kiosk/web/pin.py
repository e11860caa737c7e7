"""The PIN that guards history and settings, with a lockout against guessing that survives restarts.

The PIN is known only as its scrypt hash (:mod:`kiosk.pinhash`). Five wrong
PINs in a row lock PIN entry for five minutes, for everybody: the count
belongs to the kiosk, not to a browser session, so clearing cookies does not
reset it, and it is kept in ``state_path`` (written atomically after every
wrong PIN), so neither a restart nor a power cut resets it either. While
locked even the right PIN is refused.

A correct PIN unlocks this browser session for ``session_seconds`` (the kiosk
is shared; a forgotten unlock must not stay open all day). The unlock lives on
the server: the cookie carries only a random token, so *Lock* (or a PIN
change) revokes it, and a copy of the cookie opens nothing afterwards.
Times come from ``clock`` (wall-clock seconds, as the lockout deadline must
outlive the process), which tests replace.

>>> from kiosk.pinhash import hash_pin
>>> now = [0.0]
>>> guard = PinGuard(hash_pin("2580", n=2**10), clock=lambda: now[0])
>>> [guard.check("0000").status for _ in range(5)]
['wrong', 'wrong', 'wrong', 'wrong', 'locked']
>>> guard.check("2580").status, guard.check("2580").retry_after
('locked', 300.0)
>>> now[0] = 300.0
>>> guard.check("2580").status
'ok'
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from flask import session

from ..pinhash import PinHash, parse_pin_hash, verify_pin
from ..storage import atomic_write_bytes

__all__ = ["LOCKOUT_FILE", "PinGuard", "PinOutcome"]

SESSION_KEY = "pin_session"
LOCKOUT_FILE = "pin-lockout.json"
MAX_SESSIONS = 64  # unlocked sessions kept; the oldest goes first (a kiosk has one or two)
_LOG = logging.getLogger("kiosk.web")


@dataclass(frozen=True)
class PinOutcome:
    status: Literal["ok", "wrong", "locked", "not_configured"]
    attempts_left: int = 0
    retry_after: float = 0.0  # seconds until the lockout ends


class PinGuard:
    """Checks PIN attempts against ``pin_hash`` (None: no PIN configured, nothing unlocks)."""

    def __init__(
        self,
        pin_hash: str | None,
        *,
        state_path: Path | None = None,
        clock: Callable[[], float] = time.time,
        max_attempts: int = 5,
        lockout_seconds: float = 300.0,
        session_seconds: float = 600.0,
    ) -> None:
        self._hash: PinHash | None = parse_pin_hash(pin_hash) if pin_hash is not None else None
        self._state_path = state_path
        self._clock = clock
        self.max_attempts = max_attempts
        self.lockout_seconds = lockout_seconds
        self.session_seconds = session_seconds
        self._lock = threading.Lock()
        self._wrong = 0
        self._locked_until: float | None = None
        self._sessions: dict[str, float] = {}  # token -> unlocked until (clock seconds)
        self._load_state()

    @property
    def configured(self) -> bool:
        return self._hash is not None

    # --- the lockout, kept on disk -------------------------------------------------

    def _load_state(self) -> None:
        if self._state_path is None:
            return
        try:
            data = json.loads(self._state_path.read_text(encoding="utf-8"))
            wrong, until = data["wrong"], data["locked_until"]
            if not isinstance(wrong, int) or isinstance(wrong, bool) or wrong < 0:
                raise ValueError("bad count")
            if until is not None and not isinstance(until, (int, float)):
                raise ValueError("bad deadline")
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # Written atomically, so this is tampering or a failing card: lock rather than forget.
            _LOG.warning(
                "PIN lockout state %s unreadable (%s): PIN entry locked for %.0f s",
                self._state_path,
                exc,
                self.lockout_seconds,
            )
            wrong, until = self.max_attempts, self._clock() + self.lockout_seconds
        self._wrong = min(wrong, self.max_attempts)
        self._locked_until = float(until) if until is not None else None

    def _save_state(self) -> None:
        if self._state_path is None:
            return
        data = json.dumps({"wrong": self._wrong, "locked_until": self._locked_until}).encode()
        try:
            atomic_write_bytes(self._state_path, data, mode=0o600)
        except OSError as exc:  # a full or read-only card: the lockout still holds in memory
            _LOG.warning("PIN lockout state not saved to %s: %s", self._state_path, exc.strerror or exc)

    def retry_after(self) -> float:
        """Seconds left in the lockout (0 when not locked)."""
        with self._lock:
            return self._retry_after_locked()

    def _retry_after_locked(self) -> float:
        if self._locked_until is None:
            return 0.0
        left = self._locked_until - self._clock()
        if left <= 0:
            self._locked_until, self._wrong = None, 0  # the lockout is over: a fresh five tries
            self._save_state()
            return 0.0
        # An offline Pi's clock can step back at boot (fake-hwclock): never lock for longer than one lockout.
        return min(left, self.lockout_seconds)

    def check(self, attempt: str) -> PinOutcome:
        """Check one attempt; the fifth wrong one in a row starts the lockout."""
        if self._hash is None:
            return PinOutcome("not_configured")
        with self._lock:
            left = self._retry_after_locked()
            if left > 0:
                return PinOutcome("locked", retry_after=left)
            if verify_pin(attempt, self._hash):
                if self._wrong:
                    self._wrong = 0
                    self._save_state()
                return PinOutcome("ok")
            self._wrong += 1
            if self._wrong >= self.max_attempts:
                self._locked_until = self._clock() + self.lockout_seconds
            self._save_state()  # before answering: a kill -9 right after must not give the guess back
            if self._locked_until is not None:
                return PinOutcome("locked", retry_after=self.lockout_seconds)
            return PinOutcome("wrong", attempts_left=self.max_attempts - self._wrong)

    def change_pin(self, pin_hash: str | None) -> None:
        """Use a new PIN hash from now on; every unlocked session is locked again."""
        parsed = parse_pin_hash(pin_hash) if pin_hash is not None else None
        with self._lock:
            self._hash = parsed
            self._sessions.clear()

    # --- the browser session -------------------------------------------------

    def unlock_session(self) -> None:
        """Unlock the current browser session (a fresh token: one from before the PIN is never reused)."""
        token = secrets.token_urlsafe(32)
        with self._lock:
            now = self._clock()
            self._sessions = {t: until for t, until in self._sessions.items() if until > now}
            while len(self._sessions) >= MAX_SESSIONS:
                del self._sessions[min(self._sessions, key=self._sessions.__getitem__)]
            self._sessions[token] = now + self.session_seconds
        session[SESSION_KEY] = token

    def lock_session(self) -> None:
        """Lock the current browser session, on the server: a copy of its cookie no longer unlocks."""
        token = session.pop(SESSION_KEY, None)
        if isinstance(token, str):
            with self._lock:
                self._sessions.pop(token, None)

    def session_unlocked(self) -> bool:
        """True while this session's unlock lasts (sliding: each use extends it)."""
        if self._hash is None:
            return False
        token = session.get(SESSION_KEY)
        if not isinstance(token, str):
            session.pop(SESSION_KEY, None)
            return False
        with self._lock:
            until = self._sessions.get(token)
            now = self._clock()
            if until is None or until <= now:
                self._sessions.pop(token, None)
                session.pop(SESSION_KEY, None)
                return False
            self._sessions[token] = now + self.session_seconds
        return True
