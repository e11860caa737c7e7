"""Slip codes: the short number printed on a referral slip that finds its screening again.

Nine digits, shown as ``482-193-677``: eight random digits and a Damm check
digit, which catches every single wrong digit and every swap of two
neighbouring digits, the usual slips when a code is read aloud or typed on the
kiosk's keypad. Digits only, so the keypad has ten keys and the code reads the
same in English, Filipino and Waray. A code is unique within one station; the
station code in front of it (``PH-LEY-0001/482-193-677``) makes it unique
anywhere, as FHIR identifiers need.

>>> code = new_code(random_digits=lambda n: "48219367")
>>> code, format_code(code), is_valid(code)
('482193677', '482-193-677', True)
>>> normalise(" 482 193-677 ") == code, is_valid("482193767")  # two digits swapped
(True, False)
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable

__all__ = ["CODE_DIGITS", "format_code", "is_valid", "new_code", "normalise"]

CODE_DIGITS = 9  # 8 random + 1 check: 10^8 codes per station
_RANDOM_DIGITS = CODE_DIGITS - 1

# The Damm algorithm's quasigroup (a totally anti-symmetric table of order 10).
_DAMM = (
    (0, 3, 1, 7, 5, 9, 8, 6, 4, 2),
    (7, 0, 9, 2, 1, 5, 4, 8, 6, 3),
    (4, 2, 0, 6, 8, 7, 1, 3, 5, 9),
    (1, 7, 5, 0, 9, 8, 3, 4, 2, 6),
    (6, 1, 2, 3, 0, 4, 5, 9, 7, 8),
    (3, 6, 7, 4, 2, 0, 9, 5, 8, 1),
    (5, 8, 6, 9, 7, 2, 0, 1, 3, 4),
    (8, 9, 4, 5, 3, 6, 2, 0, 1, 7),
    (9, 4, 3, 8, 6, 1, 7, 2, 0, 5),
    (2, 5, 8, 1, 4, 3, 6, 7, 9, 0),
)


def _damm(digits: str) -> int:
    interim = 0
    for d in digits:
        interim = _DAMM[interim][int(d)]
    return interim


def _random_digits(count: int) -> str:
    return "".join(str(secrets.randbelow(10)) for _ in range(count))


def new_code(*, random_digits: Callable[[int], str] = _random_digits) -> str:
    """A fresh code: eight random digits and their check digit (``random_digits`` is for tests)."""
    body = random_digits(_RANDOM_DIGITS)
    if not re.fullmatch(rf"[0-9]{{{_RANDOM_DIGITS}}}", body):
        raise ValueError(f"random_digits must return {_RANDOM_DIGITS} digits; got {body!r}")
    return body + str(_damm(body))


def normalise(text: str) -> str:
    """The code's nine digits without spaces or dashes (not checked; see :func:`is_valid`)."""
    return re.sub(r"[\s\-]", "", text)


def is_valid(text: str) -> bool:
    """True for nine digits (spaces and dashes allowed) whose check digit is right."""
    code = normalise(text) if isinstance(text, str) else ""
    return bool(re.fullmatch(rf"[0-9]{{{CODE_DIGITS}}}", code)) and _damm(code) == 0


def format_code(code: str) -> str:
    """``482193677`` -> ``482-193-677`` (how the slip and the screen show it)."""
    code = normalise(code)
    return "-".join(code[i : i + 3] for i in range(0, len(code), 3))
