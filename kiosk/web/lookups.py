"""How often a slip code may be tried: a few wrong codes, then a pause, so codes cannot be guessed.

A slip code opens a returning patient's earlier screening (photo included)
without the PIN, so guessing codes must not pay: each browser session may
get :attr:`CodeLookupLimiter.tries` codes wrong, then waits
:attr:`CodeLookupLimiter.pause` seconds (and again after each further wrong
code). A guesser who throws the session cookie away meets the kiosk-wide
limit instead: :attr:`CodeLookupLimiter.kiosk_tries` wrong codes within
:attr:`CodeLookupLimiter.window` seconds pause every session. With 10^8
codes per station, 20 guesses per quarter hour find one patient's code in
about a century.

>>> clock = iter([0.0, 0.0, 1.0, 61.0]).__next__
>>> limiter = CodeLookupLimiter(tries=2, pause=60, clock=clock)
>>> limiter.failed("s"); limiter.failed("s")
>>> limiter.retry_after("s"), limiter.retry_after("s")
(59.0, 0.0)
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

__all__ = ["CodeLookupLimiter"]

MAX_SESSIONS = 256  # remembered sessions; the oldest is forgotten first (memory stays bounded)


class CodeLookupLimiter:
    """Wrong-code counts per session key and for the whole kiosk. Thread-safe.

    ``clock`` is monotonic seconds; tests pass a fake one.
    """

    def __init__(
        self,
        *,
        tries: int = 3,
        pause: float = 60.0,
        kiosk_tries: int = 20,
        window: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tries = tries
        self.pause = pause
        self.kiosk_tries = kiosk_tries
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: OrderedDict[str, tuple[int, float]] = OrderedDict()  # key -> (wrong codes, paused until)
        self._recent: deque[float] = deque()  # times of wrong codes kiosk-wide, within the window
        self._kiosk_paused_until = 0.0

    def retry_after(self, key: str) -> float:
        """Seconds this session must wait before its next try (0: it may try now)."""
        now = self._clock()
        with self._lock:
            _, until = self._sessions.get(key, (0, 0.0))
            return max(0.0, until - now, self._kiosk_paused_until - now)

    def failed(self, key: str) -> None:
        """A wrong code from session ``key``."""
        now = self._clock()
        with self._lock:
            wrong, until = self._sessions.pop(key, (0, 0.0))
            wrong += 1
            if wrong >= self.tries:
                until = now + self.pause
            self._sessions[key] = (wrong, until)
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
            self._recent.append(now)
            while self._recent and self._recent[0] <= now - self.window:
                self._recent.popleft()
            if len(self._recent) >= self.kiosk_tries:
                self._kiosk_paused_until = now + self.pause

    def succeeded(self, key: str) -> None:
        """A right code: this session starts counting afresh (the kiosk-wide count does not)."""
        with self._lock:
            self._sessions.pop(key, None)
