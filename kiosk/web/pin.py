"""The PIN that guards history and settings, with a lockout against guessing.

Five wrong PINs in a row lock PIN entry for five minutes, for everybody: the
count belongs to the kiosk, not to a browser session, so clearing cookies
does not reset it. While locked even the right PIN is refused. A correct PIN
unlocks this browser session for ``session_seconds`` (the kiosk is shared;
a forgotten unlock must not stay open all day). Times come from ``clock``
(monotonic seconds), which tests replace.

>>> now = [0.0]
>>> guard = PinGuard("2580", clock=lambda: now[0])
>>> [guard.check("0000").status for _ in range(5)]
['wrong', 'wrong', 'wrong', 'wrong', 'locked']
>>> guard.check("2580").status, guard.check("2580").retry_after
('locked', 300.0)
>>> now[0] = 300.0
>>> guard.check("2580").status
'ok'
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from flask import session

__all__ = ["PinGuard", "PinOutcome"]

SESSION_KEY = "pin_unlocked_until"


@dataclass(frozen=True)
class PinOutcome:
    status: Literal["ok", "wrong", "locked", "not_configured"]
    attempts_left: int = 0
    retry_after: float = 0.0  # seconds until the lockout ends


class PinGuard:
    """Checks PIN attempts against ``pin`` (None: no PIN configured, nothing unlocks)."""

    def __init__(self, pin: str | None, *, clock: Callable[[], float] = time.monotonic, max_attempts: int = 5,
                 lockout_seconds: float = 300.0, session_seconds: float = 600.0) -> None:
        self._pin = pin
        self._clock = clock
        self.max_attempts = max_attempts
        self.lockout_seconds = lockout_seconds
        self.session_seconds = session_seconds
        self._lock = threading.Lock()
        self._wrong = 0
        self._locked_until: float | None = None

    @property
    def configured(self) -> bool:
        return self._pin is not None

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
            return 0.0
        return left

    def check(self, attempt: str) -> PinOutcome:
        """Check one attempt; the fifth wrong one in a row starts the lockout."""
        if self._pin is None:
            return PinOutcome("not_configured")
        with self._lock:
            left = self._retry_after_locked()
            if left > 0:
                return PinOutcome("locked", retry_after=left)
            if secrets.compare_digest(attempt.encode(), self._pin.encode()):
                self._wrong = 0
                return PinOutcome("ok")
            self._wrong += 1
            if self._wrong >= self.max_attempts:
                self._locked_until = self._clock() + self.lockout_seconds
                return PinOutcome("locked", retry_after=self.lockout_seconds)
            return PinOutcome("wrong", attempts_left=self.max_attempts - self._wrong)

    # --- the browser session -------------------------------------------------

    def unlock_session(self) -> None:
        session[SESSION_KEY] = self._clock() + self.session_seconds

    def lock_session(self) -> None:
        session.pop(SESSION_KEY, None)

    def session_unlocked(self) -> bool:
        """True while this session's unlock lasts (sliding: each use extends it)."""
        if self._pin is None:
            return False
        until = session.get(SESSION_KEY)
        if not isinstance(until, (int, float)) or until <= self._clock():
            session.pop(SESSION_KEY, None)
            return False
        self.unlock_session()
        return True
