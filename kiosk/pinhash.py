"""The history PIN as a salted, slow hash (scrypt, from the standard library), never as the PIN itself.

A stored hash reads ``scrypt$N$r$p$SALT$HASH`` (salt and hash in unpadded
URL-safe base64), so its cost parameters travel with it and can be raised
later without breaking hashes already written. A 4-8 digit PIN has at most
10^8 values: the hash does not make a stolen SD card safe against a patient
attacker, it makes every guess cost ~16 MiB and tens of milliseconds, and it
keeps the PIN itself out of the config file, backups and memory dumps.

>>> stored = hash_pin("2580", n=2**10)  # a small cost, for the example only
>>> stored.startswith("scrypt$1024$8$1$"), is_pin_hash(stored)
(True, True)
>>> verify_pin("2580", stored), verify_pin("0000", stored), is_pin_hash("2580")
(True, False, False)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

__all__ = ["DEMO_PIN", "DEMO_PIN_HASH", "PIN_RE", "PinHash", "hash_pin", "is_pin_hash", "parse_pin_hash", "verify_pin"]

PIN_RE = re.compile(r"[0-9]{4,8}")  # not \d: that also matches Arabic-Indic digits
SCHEME = "scrypt"
# 16 MiB and ~50 ms on a laptop, a few hundred ms on a Pi 4: slow for a guesser, quick for a health worker.
DEFAULT_N, DEFAULT_R, DEFAULT_P = 2**14, 8, 1
SALT_BYTES, HASH_BYTES = 16, 32
#: ``kiosk demo``'s PIN (in the README) and its hash, also the example in config/kiosk.example.toml.
#: Public, so never a real kiosk's: ``kiosk set-pin`` makes a real one.
DEMO_PIN = "2580"
DEMO_PIN_HASH = "scrypt$16384$8$1$cdbLCOq_yfWhIfhkJA-5XA$P84PQMhCz0T6o9XwhRBbN2UksE5AyY9R3uXyXLjiBYs"
MAX_MEMORY = 256 * 2**20  # a hash from a config file must not be able to exhaust the Pi's memory
_B64 = r"([A-Za-z0-9_-]{16,88})"
_HASH_RE = re.compile(r"scrypt\$([0-9]{1,8})\$([0-9]{1,3})\$([0-9]{1,3})\$" + _B64 + r"\$" + _B64)


@dataclass(frozen=True)
class PinHash:
    n: int
    r: int
    p: int
    salt: bytes
    digest: bytes


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _derive(pin: str, *, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    return hashlib.scrypt(pin.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=length, maxmem=MAX_MEMORY + 2**20)


def hash_pin(pin: str, *, n: int = DEFAULT_N, r: int = DEFAULT_R, p: int = DEFAULT_P) -> str:
    """The string to store for ``pin`` (4-8 ASCII digits); a fresh random salt every time."""
    if not isinstance(pin, str) or not PIN_RE.fullmatch(pin):
        raise ValueError("a PIN is 4 to 8 digits (0-9)")
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _derive(pin, salt=salt, n=n, r=r, p=p, length=HASH_BYTES)
    return f"{SCHEME}${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def parse_pin_hash(text: str) -> PinHash:
    """The parts of a stored hash; ValueError when it is not one this module could have written."""
    match = _HASH_RE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError("not a PIN hash (expected scrypt$N$r$p$salt$hash, as written by 'kiosk set-pin')")
    n, r, p = (int(match.group(i)) for i in (1, 2, 3))
    if n < 2 or n & (n - 1) or not 1 <= r <= 64 or not 1 <= p <= 16 or 128 * n * r > MAX_MEMORY:
        raise ValueError(f"PIN hash parameters out of range (N={n}, r={r}, p={p})")
    salt, digest = _unb64(match.group(4)), _unb64(match.group(5))
    if len(salt) < 8 or len(digest) < 16:
        raise ValueError("PIN hash salt or digest too short")
    return PinHash(n=n, r=r, p=p, salt=salt, digest=digest)


def is_pin_hash(text: object) -> bool:
    try:
        parse_pin_hash(text)  # type: ignore[arg-type]
    except ValueError:
        return False
    return True


def verify_pin(attempt: str, stored: str | PinHash) -> bool:
    """Whether ``attempt`` is the PIN behind ``stored``; the comparison takes the same time either way."""
    parsed = stored if isinstance(stored, PinHash) else parse_pin_hash(stored)
    if not isinstance(attempt, str) or len(attempt) > 64:
        attempt = ""  # still derive once: a refused attempt costs the same time as a wrong one
    candidate = _derive(attempt, salt=parsed.salt, n=parsed.n, r=parsed.r, p=parsed.p, length=len(parsed.digest))
    return hmac.compare_digest(candidate, parsed.digest)
