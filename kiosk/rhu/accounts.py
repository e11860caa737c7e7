"""RHU staff accounts: a user name and a scrypt-hashed password (the same scheme as the kiosk's PIN).

>>> import tempfile, pathlib
>>> from kiosk.rhu.db import Database
>>> db = Database.open(f"sqlite:///{tempfile.mkdtemp()}/rhu.sqlite3")
>>> create_user(db, "dr.cruz", "a long passphrase", n=2**10)
>>> authenticate(db, "dr.cruz", "a long passphrase"), authenticate(db, "dr.cruz", "wrong"), authenticate(db, "x", "y")
(True, False, False)
>>> db.scalar("SELECT password_hash FROM users").startswith("scrypt$1024$")
True
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from datetime import UTC, datetime

from ..pinhash import DEFAULT_N, DEFAULT_P, DEFAULT_R, HASH_BYTES, MAX_MEMORY, SALT_BYTES, verify_pin
from .db import Database

__all__ = ["MIN_PASSWORD_CHARS", "AccountError", "authenticate", "create_user", "hash_password"]

MIN_PASSWORD_CHARS = 10
MAX_PASSWORD_CHARS = 64  # pinhash.verify_pin refuses longer attempts (in the same time)
USERNAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{1,39}")
#: Checked against when the user is unknown, so a wrong name costs the same time as a wrong password.
_DUMMY = "scrypt$16384$8$1$cdbLCOq_yfWhIfhkJA-5XA$P84PQMhCz0T6o9XwhRBbN2UksE5AyY9R3uXyXLjiBYs"


class AccountError(ValueError):
    """A user name or password that cannot be used (one line)."""


def hash_password(password: str, *, n: int = DEFAULT_N) -> str:
    """``scrypt$N$r$p$salt$hash``, verified by :func:`kiosk.pinhash.verify_pin`."""
    if not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
        raise AccountError(f"a password is {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters")
    salt = secrets.token_bytes(SALT_BYTES)
    digest = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=DEFAULT_R, p=DEFAULT_P, dklen=HASH_BYTES, maxmem=MAX_MEMORY + 2**20
    )

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")

    return f"scrypt${n}${DEFAULT_R}${DEFAULT_P}${b64(salt)}${b64(digest)}"


def create_user(db: Database, username: str, password: str, *, n: int = DEFAULT_N) -> None:
    if not USERNAME_RE.fullmatch(username):
        raise AccountError("a user name is 2-40 lowercase letters, digits, '.', '_' or '-'")
    hashed = hash_password(password, n=n)
    with db.transaction() as cur:
        cur.execute("SELECT count(*) FROM users WHERE username = ?", (username,))
        if cur.fetchone()[0]:
            raise AccountError(f"the user {username!r} exists already")
        cur.execute(
            "INSERT INTO users (username, password_hash, created_at) VALUES (?, ?, ?)",
            (username, hashed, datetime.now(UTC).isoformat()),
        )


def authenticate(db: Database, username: str, password: str) -> bool:
    rows = db.query("SELECT password_hash FROM users WHERE username = ?", (username,)) if username else []
    stored = rows[0]["password_hash"] if rows else _DUMMY
    ok = verify_pin(password, stored)  # the same scrypt check; runs for unknown users too
    return ok and bool(rows)
