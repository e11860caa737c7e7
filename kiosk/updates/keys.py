"""The team's ed25519 key pair: make it, load either half, name a key by a short id.

The private key signs packages on the maintainers' offline laptop
(``deploy/keygen``, ``deploy/sign-model``); each kiosk holds only the public key.

>>> import tempfile
>>> private, public = keygen(Path(tempfile.mkdtemp()) / "keys")
>>> len(key_id(load_public_key(public)))
16
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from ..storage import fsync_directory
from .errors import UpdateError

__all__ = [
    "PRIVATE_KEY_FILE",
    "PUBLIC_KEY_FILE",
    "key_id",
    "keygen",
    "load_private_key",
    "load_public_key",
    "write_new_file",
]

PRIVATE_KEY_FILE, PUBLIC_KEY_FILE = "update-key.pem", "update-key.pub"


def _crypto() -> Any:
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise UpdateError("update_crypto_missing") from None
    return serialization, ed25519


def _public_raw(public_key: Any) -> bytes:
    serialization, _ = _crypto()
    raw: bytes = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return raw


def key_id(public_key: Any) -> str:
    """A short fingerprint of a public key (16 hex digits of the sha256 of its raw bytes)."""
    return hashlib.sha256(_public_raw(public_key)).hexdigest()[:16]


def load_public_key(source: str | os.PathLike[str] | bytes | Any) -> Any:
    """An Ed25519PublicKey from a PEM or raw 32-byte file, bytes, or the key itself."""
    serialization, ed25519 = _crypto()
    if isinstance(source, ed25519.Ed25519PublicKey):
        return source
    where = "(bytes)"
    if not isinstance(source, bytes):
        where = str(source)
        try:
            source = Path(source).read_bytes()
        except FileNotFoundError:
            raise UpdateError("update_key_missing", path=where) from None
        except OSError as exc:
            raise UpdateError(
                "update_key_invalid", kind="public", detail=exc.strerror or "unreadable", path=where
            ) from None
    data: bytes = source
    if b"PRIVATE KEY" in data:
        # Never let a private key sit where the kiosk's public key belongs.
        raise UpdateError("update_key_invalid", kind="public", detail="this is the PRIVATE key", path=where)
    try:
        key = (
            serialization.load_pem_public_key(data)
            if data.lstrip().startswith(b"-----BEGIN")
            else ed25519.Ed25519PublicKey.from_public_bytes(data)
        )
    except (ValueError, TypeError):
        raise UpdateError(
            "update_key_invalid", kind="public", detail="not a PEM or raw ed25519 key", path=where
        ) from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise UpdateError("update_key_invalid", kind="public", detail=f"a {type(key).__name__} key", path=where)
    return key


def load_private_key(path: str | os.PathLike[str]) -> Any:
    """The signing key from a PKCS8 PEM file made by :func:`keygen`."""
    serialization, ed25519 = _crypto()
    where = str(path)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise UpdateError("update_key_invalid", kind="private", detail="no such file", path=where) from None
    except OSError as exc:
        raise UpdateError(
            "update_key_invalid", kind="private", detail=exc.strerror or "unreadable", path=where
        ) from None
    if b"PUBLIC KEY" in data:
        raise UpdateError(
            "update_key_invalid",
            kind="private",
            detail=f"this is the public key; sign with {PRIVATE_KEY_FILE}",
            path=where,
        )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise UpdateError("update_key_invalid", kind="private", detail="it is password-protected", path=where) from None
    except ValueError:
        raise UpdateError("update_key_invalid", kind="private", detail="not a PEM private key", path=where) from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise UpdateError("update_key_invalid", kind="private", detail=f"a {type(key).__name__} key", path=where)
    return key


def write_new_file(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` (never overwrite, never follow a link) with exactly ``mode``, durably."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)  # the umask may only narrow the mode; be exact either way
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def keygen(out_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Make an ed25519 key pair in ``out_dir``; returns (private, public). Never overwrites.

    >>> import tempfile, stat
    >>> private, public = keygen(Path(tempfile.mkdtemp()) / "keys")
    >>> private.name, oct(stat.S_IMODE(private.stat().st_mode)), public.name
    ('update-key.pem', '0o600', 'update-key.pub')
    >>> keygen(private.parent)
    Traceback (most recent call last):
    ...
    kiosk.updates.errors.UpdateError: A key already exists and was not overwritten: ...update-key.pem
    """
    serialization, ed25519 = _crypto()
    out = Path(out_dir)
    private_path, public_path = out / PRIVATE_KEY_FILE, out / PUBLIC_KEY_FILE
    for path in (private_path, public_path):
        if path.exists() or path.is_symlink():
            raise UpdateError("update_key_exists", path=str(path))
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ed25519.Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    try:
        write_new_file(private_path, private_pem, 0o600)
    except FileExistsError:
        raise UpdateError("update_key_exists", path=str(private_path)) from None
    try:
        write_new_file(public_path, public_pem, 0o644)
    except FileExistsError:
        private_path.unlink()  # half a pair is worse than none
        raise UpdateError("update_key_exists", path=str(public_path)) from None
    fsync_directory(out)
    return private_path, public_path
