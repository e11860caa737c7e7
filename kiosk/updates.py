"""Signed model updates carried on a USB stick: keys, signing, checks, install, rollback.

The kiosks have no network, so a maintainer carries a new model on a USB stick.
The kiosk installs it only when it is provably ours and provably works here.

**The package** (``NAME.kioskupdate``, an uncompressed tar, see ``deploy/UPDATES.md``)
holds exactly five members::

    contents.json   format, target arch, model format, sha256 and size of the three below
    signature       ed25519 over SIGNATURE_CONTEXT + the bytes of contents.json (64 bytes)
    model.tflite    the int8 model
    manifest.json   its manifest (kiosk.manifest), whose sha256 names model.tflite
    selftest.json   the model's outputs on the built-in self-test images (kiosk.selftest)

**The checks**, in order, before anything on disk changes: size limits and
exactly the expected members (never extracted by name, so no path traversal);
the signature with the kiosk's public key; every member's hash and size against
the signed list; target arch and formats; the model loads with
:class:`kiosk.model.Model` from a temporary folder; the self-test matches.

**The swap** (why a power cut at any moment leaves a usable model)::

    models/melanoma_int8.tflite -> melanoma_int8.versions/current/melanoma_int8.tflite
    models/melanoma_int8.json   -> melanoma_int8.versions/current/melanoma_int8.json
    models/melanoma_int8.versions/current  -> 0003-3f2a9c1b7d4e     <- the one switch
    models/melanoma_int8.versions/previous -> 0002-aa11bb22cc33     <- one-tap rollback
    models/melanoma_int8.versions/0003-3f2a9c1b7d4e/{melanoma_int8.tflite, .json, selftest.json, installed.json}

A new version is written into a hidden staging folder, fsynced, and renamed into
place complete. Then the ``current`` symlink is replaced by ``rename(2)`` -- atomic
on POSIX file systems -- and the directory fsynced. The model and its manifest
are both reached through that one link, so the kiosk sees the old pair or the
new pair, never one of each. The path the kiosk loads (``model.path``) never
changes. Every intermediate state is a complete old or complete new pair; a
cut leaves at worst an unreferenced folder, removed by the next update.

Use from the settings page (behind the PIN)::

    paths = UpdatePaths.from_settings(settings)
    for stick_file in find_updates(paths.watch_dirs): ...
    outcome = apply_update(stick_file, **paths.apply_kwargs())   # raises UpdateError
    rollback(**paths.rollback_kwargs())
    current_model_info(paths.models_dir, name=paths.name)

then reload the model (``Model.load(settings.model.path)``): a running kiosk
keeps the model it loaded.

>>> find_updates(["/nonexistent-stick"])
[]
>>> UpdateError("update_unsigned", path="x.kioskupdate").code
'update_unsigned'
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import sys
import tarfile
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from . import selftest
from .manifest import FORMAT as MODEL_FORMAT
from .manifest import ModelManifest, manifest_path_for, read_manifest
from .reasons import KioskError, ModelError, message
from .storage import fsync_directory

if TYPE_CHECKING:
    from .config import Settings

__all__ = [
    "ARCH",
    "PACKAGE_FORMAT",
    "SUFFIX",
    "ModelInfo",
    "UpdateError",
    "UpdateInfo",
    "UpdateOutcome",
    "UpdatePaths",
    "apply_update",
    "current_model_info",
    "find_updates",
    "inspect_update",
    "keygen",
    "previous_model_info",
    "rollback",
    "sign_model",
    "verify_update",
]

PACKAGE_FORMAT = "melanoma-kiosk-update/1"
SELFTEST_FORMAT = "melanoma-kiosk-selftest/1"
#: What the kiosk runs: int8 TFLite. A float or other-format model is refused.
ARCH = "tflite-int8"
SUFFIX = ".kioskupdate"
#: Signed before contents.json, so an update signature can never be replayed as
#: a signature over anything else made with the same key (domain separation).
SIGNATURE_CONTEXT = b"melanoma-kiosk-update/1 signature\n"

CONTENTS, SIGNATURE = "contents.json", "signature"
MODEL, MANIFEST, SELFTEST = "model.tflite", "manifest.json", "selftest.json"
SIGNED_MEMBERS = (MODEL, MANIFEST, SELFTEST)
MEMBERS = (CONTENTS, SIGNATURE, *SIGNED_MEMBERS)

# A Pi model is a few MB; the limits stop a wrong or hostile file from filling memory.
MAX_MODEL_BYTES = 48 * 1024 * 1024
MAX_JSON_BYTES = 1024 * 1024
MAX_PACKAGE_BYTES = MAX_MODEL_BYTES + 4 * 1024 * 1024
_MEMBER_LIMITS = {MODEL: MAX_MODEL_BYTES, SIGNATURE: 64, CONTENTS: MAX_JSON_BYTES,
                  MANIFEST: MAX_JSON_BYTES, SELFTEST: MAX_JSON_BYTES}

DEFAULT_NAME = "melanoma_int8"
PRIVATE_KEY_FILE, PUBLIC_KEY_FILE = "update-key.pem", "update-key.pub"
LOG_FILE = "updates.jsonl"
#: /media/<user>/<LABEL>/<folder>/x.kioskupdate is 4 levels below /media.
SEARCH_DEPTH = 4
_MAX_FOUND = 50

_VERSION_RE = re.compile(r"(?P<seq>[0-9]{4,})-[0-9a-f]{12}")
_STAGING_PREFIX = ".staging-"
_LINK_SUFFIX = ".tmp-link"


class UpdateError(KioskError):
    """An update, rollback or signing step was refused; nothing in use was changed."""


# --- keys --------------------------------------------------------------------


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
            raise UpdateError("update_key_invalid", kind="public", detail=exc.strerror or "unreadable",
                              path=where) from None
    data: bytes = source
    if b"PRIVATE KEY" in data:
        # Never let a private key sit where the kiosk's public key belongs.
        raise UpdateError("update_key_invalid", kind="public", detail="this is the PRIVATE key", path=where)
    try:
        key = (serialization.load_pem_public_key(data) if data.lstrip().startswith(b"-----BEGIN")
               else ed25519.Ed25519PublicKey.from_public_bytes(data))
    except (ValueError, TypeError):
        raise UpdateError("update_key_invalid", kind="public", detail="not a PEM or raw ed25519 key",
                          path=where) from None
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
        raise UpdateError("update_key_invalid", kind="private", detail=exc.strerror or "unreadable",
                          path=where) from None
    if b"PUBLIC KEY" in data:
        raise UpdateError("update_key_invalid", kind="private",
                          detail=f"this is the public key; sign with {PRIVATE_KEY_FILE}", path=where)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise UpdateError("update_key_invalid", kind="private", detail="it is password-protected",
                          path=where) from None
    except ValueError:
        raise UpdateError("update_key_invalid", kind="private", detail="not a PEM private key",
                          path=where) from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise UpdateError("update_key_invalid", kind="private", detail=f"a {type(key).__name__} key",
                          path=where)
    return key


def _write_new_file(path: Path, data: bytes, mode: int) -> None:
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
    kiosk.updates.UpdateError: A key already exists and was not overwritten: ...update-key.pem
    """
    serialization, ed25519 = _crypto()
    out = Path(out_dir)
    private_path, public_path = out / PRIVATE_KEY_FILE, out / PUBLIC_KEY_FILE
    for path in (private_path, public_path):
        if path.exists() or path.is_symlink():
            raise UpdateError("update_key_exists", path=str(path))
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ed25519.Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    try:
        _write_new_file(private_path, private_pem, 0o600)
    except FileExistsError:
        raise UpdateError("update_key_exists", path=str(private_path)) from None
    try:
        _write_new_file(public_path, public_pem, 0o644)
    except FileExistsError:
        private_path.unlink()  # half a pair is worse than none
        raise UpdateError("update_key_exists", path=str(public_path)) from None
    fsync_directory(out)
    return private_path, public_path


# --- the package -------------------------------------------------------------


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _tar(members: Mapping[str, bytes]) -> bytes:
    """A deterministic uncompressed ustar archive (fixed order, times and owners)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in MEMBERS:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(members[name]), 0o644, 0
            tar.addfile(info, io.BytesIO(members[name]))
    return buffer.getvalue()


def _read_members(path: Path) -> tuple[dict[str, bytes], str]:
    """The package's members, read safely into memory, and the file's sha256; refusals name what is wrong."""
    where = str(path)
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise UpdateError("update_not_a_package", path=where, detail="not a regular file")
        if size > MAX_PACKAGE_BYTES:
            raise UpdateError("update_too_large", path=where, size_mb=size / 2**20, limit_mb=MAX_PACKAGE_BYTES / 2**20)
        with open(path, "rb") as fh:
            data = fh.read(MAX_PACKAGE_BYTES + 1)  # everything after this is checked from memory
    except FileNotFoundError:
        raise UpdateError("file_not_found", path=where) from None
    except OSError:  # a stick pulled out mid-read, a bad sector
        raise UpdateError("file_unreadable", path=where) from None
    if len(data) < 512 or data[257:262] != b"ustar":
        raise UpdateError("update_not_a_package", path=where, detail="not a tar archive")
    members: dict[str, bytes] = {}
    damaged = ""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for info in tar:
                # Members are only ever read by these exact names into memory, never
                # extracted, so "../x", links and devices are refused, not resolved.
                if info.name not in _MEMBER_LIMITS or not info.isfile():
                    raise UpdateError("update_not_a_package", path=where, detail=f"unexpected member {info.name!r}")
                if info.name in members:
                    raise UpdateError("update_not_a_package", path=where, detail=f"{info.name} twice")
                if info.size > _MEMBER_LIMITS[info.name]:
                    raise UpdateError("update_not_a_package", path=where, detail=f"{info.name} too large")
                handle = tar.extractfile(info)
                content = handle.read() if handle else b""
                if len(content) != info.size:
                    damaged = f"{info.name} is cut short"
                    break
                members[info.name] = content
    except (tarfile.TarError, EOFError, OSError) as exc:
        damaged = str(exc) or type(exc).__name__
    missing = [name for name in MEMBERS if name not in members]
    # tar ends with zero blocks: without them, a missing member was cut off, not left out.
    if missing and (damaged or not data.endswith(b"\0" * 1024)):
        raise UpdateError("update_damaged", path=where, detail=damaged or "cut short")
    if missing and set(missing) <= {CONTENTS, SIGNATURE}:
        raise UpdateError("update_unsigned", path=where)
    if missing:
        raise UpdateError("update_not_a_package", path=where, detail=f"missing {', '.join(missing)}")
    return members, _sha256(data)


def _signer_of(contents: bytes) -> str | None:
    """The key id a package claims (unverified: only to word a refusal)."""
    try:
        claimed = json.loads(contents).get("key_id")
    except (ValueError, AttributeError):
        return None
    return claimed if isinstance(claimed, str) and re.fullmatch(r"[0-9a-f]{16}", claimed) else None


def _verified_contents(members: Mapping[str, bytes], public_key: Any, where: str) -> dict[str, Any]:
    """Check the signature, then every signed member against contents.json; return contents."""
    from cryptography.exceptions import InvalidSignature

    ours = key_id(public_key)
    try:
        if len(members[SIGNATURE]) != 64:
            raise InvalidSignature
        public_key.verify(members[SIGNATURE], SIGNATURE_CONTEXT + members[CONTENTS])
    except InvalidSignature:
        signer = _signer_of(members[CONTENTS])
        if signer and signer != ours:
            raise UpdateError("update_other_key", path=where, key_id=signer, ours=ours) from None
        raise UpdateError("update_bad_signature", path=where, detail="signature") from None
    try:
        contents: dict[str, Any] = json.loads(members[CONTENTS])
        listed = contents["members"]
        for name in SIGNED_MEMBERS:
            entry = listed[name]
            if _sha256(members[name]) != entry["sha256"] or len(members[name]) != entry["size"]:
                raise UpdateError("update_bad_signature", path=where, detail=f"{name} differs from the signed list")
    except (ValueError, TypeError, KeyError):
        # Signed but malformed: made by something other than sign_model.
        raise UpdateError("update_not_a_package", path=where, detail="malformed contents.json") from None
    return contents


def _check_target(contents: Mapping[str, Any], members: Mapping[str, bytes], where: str) -> None:
    """Refuse packages for another kiosk generation or another kind of model."""
    def incompatible(detail: str) -> NoReturn:
        raise UpdateError("update_incompatible", path=where, detail=detail)

    if contents.get("format") != PACKAGE_FORMAT:
        incompatible(f"package format {contents.get('format')!r}; this kiosk reads {PACKAGE_FORMAT!r}")
    if contents.get("arch") != ARCH:
        incompatible(f"built for {contents.get('arch')!r}; this kiosk runs {ARCH!r}")
    if contents.get("model_format") != MODEL_FORMAT:
        incompatible(f"model format {contents.get('model_format')!r}; this kiosk reads {MODEL_FORMAT!r}")
    try:
        manifest_format = json.loads(members[MANIFEST]).get("format")
    except (ValueError, AttributeError):
        manifest_format = None
    if manifest_format != MODEL_FORMAT:
        incompatible(f"manifest format {manifest_format!r}; this kiosk reads {MODEL_FORMAT!r}")


def _selftest_doc(members: Mapping[str, bytes], manifest: ModelManifest, where: str) -> dict[str, Any]:
    try:
        doc: dict[str, Any] = json.loads(members[SELFTEST])
        ok = (isinstance(doc, dict) and doc.get("format") == SELFTEST_FORMAT
              and isinstance(doc.get("malignant_probabilities"), list)
              and all(isinstance(v, (int, float)) for v in doc["malignant_probabilities"]))
    except ValueError:
        ok = False
    if not ok:
        raise UpdateError("update_incompatible", path=where, detail=f"self-test format is not {SELFTEST_FORMAT}")
    if doc.get("images") != selftest.SELFTEST_ID:
        raise UpdateError("update_incompatible", path=where,
                          detail=f"self-test images {doc.get('images')!r}; this kiosk draws {selftest.SELFTEST_ID!r}")
    if (doc.get("input_size"), doc.get("recipe")) != (manifest.input_height, manifest.preprocessing_recipe):
        raise UpdateError("update_incompatible", path=where, detail="self-test was made for another input size or recipe")
    return doc


@dataclass(frozen=True, kw_only=True)
class UpdateInfo:
    """What a signature-checked package says about itself (see :func:`inspect_update`)."""

    path: Path
    package_sha256: str
    key_id: str
    model_sha256: str
    name: str
    created: str | None
    size: int

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "package_sha256": self.package_sha256, "key_id": self.key_id,
                "model_sha256": self.model_sha256, "name": self.name, "created": self.created, "size": self.size}


@dataclass(frozen=True, kw_only=True)
class VerifiedUpdate:
    """A package that passed every check, held in memory; :func:`apply_update` installs it."""

    info: UpdateInfo
    manifest: ModelManifest
    selftest: selftest.SelfTestResult
    members: Mapping[str, bytes]


def _read_verified(path: Path, public_key: Any) -> tuple[dict[str, bytes], dict[str, Any], UpdateInfo]:
    key = load_public_key(public_key)  # first: a kiosk without its key can check nothing
    path = Path(path)
    members, package_sha256 = _read_members(path)
    contents = _verified_contents(members, key, str(path))
    _check_target(contents, members, str(path))
    info = UpdateInfo(path=path, package_sha256=package_sha256, key_id=key_id(key),
                      model_sha256=_sha256(members[MODEL]), name=str(contents.get("name") or "model"),
                      created=contents.get("created"), size=sum(len(v) for v in members.values()))
    return members, contents, info


def inspect_update(path: str | os.PathLike[str], *, public_key: Any) -> UpdateInfo:
    """Signature, hashes and target checked, model not run: quick, for listing a stick's updates."""
    return _read_verified(Path(path), public_key)[2]


def verify_update(path: str | os.PathLike[str], *, public_key: Any) -> VerifiedUpdate:
    """Every check :func:`apply_update` makes, installing nothing; raises :class:`UpdateError`."""
    from .model import Model

    path = Path(path)
    where = str(path)
    members, contents, info = _read_verified(path, public_key)
    with tempfile.TemporaryDirectory(prefix="kiosk-update-") as tmp:
        model_path = Path(tmp) / f"{DEFAULT_NAME}.tflite"
        model_path.write_bytes(members[MODEL])
        manifest_path_for(model_path).write_bytes(members[MANIFEST])
        try:
            model = Model.load(model_path)
        except ModelError as exc:
            # Name the member, not the temporary file.
            raise UpdateError("update_model_unusable",
                              detail=message(exc.code, **{**exc.params, "path": MODEL})) from None
        if model.manifest.input_dtype not in ("uint8", "int8"):
            raise UpdateError("update_incompatible", path=where,
                              detail=f"a {model.manifest.input_dtype} model; this kiosk runs {ARCH}")
        if contents.get("model_sha256") != model.sha256:
            raise UpdateError("update_model_unusable", detail="manifest and package name different models")
        doc = _selftest_doc(members, model.manifest, where)
        try:
            result = selftest.check(model, doc["malignant_probabilities"])
        except ValueError as exc:  # e.g. a preprocessing recipe this kiosk does not know
            raise UpdateError("update_incompatible", path=where, detail=str(exc)) from None
        if not result.passed:
            detail = result.detail
            signed_inputs = doc.get("inputs_sha256")
            size, recipe = model.manifest.input_height, model.manifest.preprocessing_recipe
            if signed_inputs and signed_inputs != selftest.inputs_sha256(size=size, recipe=recipe):
                detail += "; this kiosk prepares the test images differently from the signing computer"
            raise UpdateError("update_selftest_failed", detail=detail)
    return VerifiedUpdate(info=info, manifest=model.manifest, selftest=result, members=members)


def _resolve_model(path: Path) -> Path:
    if path.is_dir():
        found = sorted(path.glob("*.tflite"))
        if not found:
            raise ModelError("model_missing", path=str(path / "*.tflite"))
        if len(found) > 1:
            raise UpdateError("update_model_ambiguous", path=str(path))
        return found[0]
    if path.suffix == ".json" and path.with_suffix(".tflite").exists():
        return path.with_suffix(".tflite")  # the manifest was named instead of the model
    if not path.exists():
        raise ModelError("model_missing", path=str(path))
    return path


def _output_path(out: Path, manifest: ModelManifest, model_path: Path) -> Path:
    if out.is_dir():
        name = str(manifest.extra.get("name") or model_path.stem)
        return out / f"{name}-{manifest.sha256[:12]}{SUFFIX}"
    return out


def sign_model(model: str | os.PathLike[str], *, key: str | os.PathLike[str], out: str | os.PathLike[str],
               created: datetime | None = None) -> Path:
    """Sign ``model`` (a ``.tflite`` beside its manifest, or a folder with one) into one update file.

    Loads the model through :class:`kiosk.model.Model` (so a manifest whose
    sha256 does not match is refused) and records its self-test outputs. The
    result is written atomically; returns its path.
    """
    from .model import Model
    from .storage import atomic_write_bytes

    private = load_private_key(key)  # a wrong key or output name fails before the slow part
    if not Path(out).is_dir() and Path(out).suffix != SUFFIX:
        raise UpdateError("update_bad_output", path=str(out))
    model_path = _resolve_model(Path(model))
    loaded = Model.load(model_path)
    manifest = loaded.manifest
    if manifest.input_dtype not in ("uint8", "int8"):
        raise UpdateError("update_model_not_int8", dtype=manifest.input_dtype, path=str(model_path))
    try:
        model_bytes = model_path.read_bytes()
        manifest_bytes = manifest_path_for(model_path).read_bytes()
    except OSError:
        raise ModelError("model_corrupt", path=str(model_path)) from None
    if _sha256(model_bytes) != manifest.sha256 or read_manifest(manifest_path_for(model_path)) != manifest:
        raise ModelError("model_hash_mismatch", path=str(model_path))  # changed while we read it
    size, recipe = manifest.input_height, manifest.preprocessing_recipe
    selftest_doc = {
        "format": SELFTEST_FORMAT,
        "images": selftest.SELFTEST_ID,
        "input_size": size,
        "recipe": recipe,
        "inputs_sha256": selftest.inputs_sha256(size=size, recipe=recipe),
        "malignant_probabilities": selftest.expected_outputs(loaded),
        "runtime": loaded.runtime,
    }
    members = {MODEL: model_bytes, MANIFEST: manifest_bytes,
               SELFTEST: (json.dumps(selftest_doc, indent=2) + "\n").encode()}
    when = (created or datetime.now(UTC)).isoformat(timespec="seconds")
    contents = {
        "format": PACKAGE_FORMAT,
        "arch": ARCH,
        "model_format": MODEL_FORMAT,
        "model_sha256": manifest.sha256,
        "name": str(manifest.extra.get("name") or model_path.stem),
        "created": when,
        "key_id": key_id(private.public_key()),
        "members": {name: {"sha256": _sha256(data), "size": len(data)} for name, data in members.items()},
    }
    contents_bytes = (json.dumps(contents, indent=2, sort_keys=True) + "\n").encode()
    package = _tar({CONTENTS: contents_bytes, SIGNATURE: private.sign(SIGNATURE_CONTEXT + contents_bytes),
                    **members})
    target = _output_path(Path(out), manifest, model_path)
    atomic_write_bytes(target, package)
    # Read it back as a kiosk would (signature, hashes, target), so a bad write is caught here.
    inspect_update(target, public_key=private.public_key())
    return target


# --- the models folder ---------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    """Where one model name lives in a models folder (see the module docstring)."""

    models_dir: Path
    name: str

    @property
    def model(self) -> Path:
        return self.models_dir / f"{self.name}.tflite"

    @property
    def manifest(self) -> Path:
        return self.models_dir / f"{self.name}.json"

    @property
    def versions(self) -> Path:
        return self.models_dir / f"{self.name}.versions"

    @property
    def current(self) -> Path:
        return self.versions / "current"

    @property
    def previous(self) -> Path:
        return self.versions / "previous"

    def link_target(self, top: Path) -> str:
        """What a top-level file links to when the folder is managed by updates."""
        return f"{self.versions.name}/current/{top.name}"

    def version_of(self, link: Path) -> str | None:
        """The version folder a ``current``/``previous`` link names, when it is sane and present."""
        try:
            target = os.readlink(link)
        except OSError:
            return None
        if not _VERSION_RE.fullmatch(target) or not (self.versions / target).is_dir():
            return None
        return target

    def managed(self) -> bool:
        """True when both top-level files are our links (a plain file means "not yet, or replaced")."""
        for top in (self.model, self.manifest):
            try:
                if os.readlink(top) != self.link_target(top):
                    return False
            except OSError:
                return False
        return self.version_of(self.current) is not None

    def versions_on_disk(self) -> list[str]:
        try:
            names = [p.name for p in self.versions.iterdir() if _VERSION_RE.fullmatch(p.name) and p.is_dir()]
        except OSError:
            return []
        return sorted(names, key=lambda n: int(n.split("-")[0]))


@dataclass(frozen=True, kw_only=True)
class ModelInfo:
    """What the settings page shows about an installed model."""

    name: str
    sha256: str
    version: str | None  # the version folder; None for a model not installed by an update
    path: Path  # the real .tflite file
    created: str | None  # when the model was built (manifest)
    installed_at: str | None
    package: str | None  # the update file it came from
    threshold: float
    input_size: int
    recipe: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "sha256": self.sha256, "version": self.version, "path": str(self.path),
                "created": self.created, "installed_at": self.installed_at, "package": self.package,
                "threshold": self.threshold, "input_size": self.input_size, "recipe": self.recipe}


def _info(model_path: Path, version: str | None) -> ModelInfo | None:
    try:
        manifest = read_manifest(manifest_path_for(model_path))
    except ModelError:
        return None
    installed: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        installed = json.loads((model_path.parent / "installed.json").read_text(encoding="utf-8"))
    return ModelInfo(name=str(manifest.extra.get("name") or model_path.stem), sha256=manifest.sha256,
                     version=version, path=model_path.resolve(), created=manifest.extra.get("created"),
                     installed_at=installed.get("installed_at"), package=installed.get("package"),
                     threshold=manifest.threshold, input_size=manifest.input_height,
                     recipe=manifest.preprocessing_recipe)


def current_model_info(models_dir: str | os.PathLike[str], *, name: str = DEFAULT_NAME) -> ModelInfo | None:
    """The model the kiosk loads from ``models_dir``; None when there is no readable one.

    >>> current_model_info("/nonexistent") is None
    True
    """
    layout = _Layout(Path(models_dir), name)
    version = layout.version_of(layout.current) if layout.managed() else None
    return _info(layout.model, version)


def previous_model_info(models_dir: str | os.PathLike[str], *, name: str = DEFAULT_NAME) -> ModelInfo | None:
    """The model :func:`rollback` would restore; None when there is none."""
    layout = _Layout(Path(models_dir), name)
    previous = layout.version_of(layout.previous)
    if previous is None or (layout.managed() and previous == layout.version_of(layout.current)):
        return None
    return _info(layout.versions / previous / f"{name}.tflite", previous)


@contextlib.contextmanager
def _locked(models_dir: Path) -> Iterator[None]:
    """One update or rollback at a time per models folder (a second tap is refused, not queued)."""
    models_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(models_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released by close, even on a crash
        except BlockingIOError:
            raise UpdateError("update_busy") from None
        yield
    finally:
        os.close(fd)


def _replace_link(link: Path, target: str) -> None:
    """Point ``link`` at ``target`` in one atomic step: a new symlink renamed over the old name."""
    tmp = link.with_name(f".{link.name}.{secrets.token_hex(4)}{_LINK_SUFFIX}")
    os.symlink(target, tmp)
    try:
        os.replace(tmp, link)
    except Exception:
        tmp.unlink(missing_ok=True)
        raise
    fsync_directory(link.parent)


def _stage_version(layout: _Layout, files: Mapping[str, bytes], sha256: str) -> str:
    """Write a complete version folder (staged, fsynced, renamed into place); returns its name."""
    layout.versions.mkdir(parents=True, exist_ok=True)
    numbers = [int(v.split("-")[0]) for v in layout.versions_on_disk()]
    name = f"{max(numbers, default=0) + 1:04d}-{sha256[:12]}"
    staging = Path(tempfile.mkdtemp(dir=layout.versions, prefix=_STAGING_PREFIX))
    try:
        for filename, data in files.items():
            _write_new_file(staging / filename, data, 0o644)
        os.chmod(staging, 0o755)
        fsync_directory(staging)
        os.replace(staging, layout.versions / name)
    except Exception:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    fsync_directory(layout.versions)
    return name


def _installed_json(**fields: Any) -> bytes:
    record = {"installed_at": datetime.now(UTC).isoformat(timespec="seconds"), **fields}
    return (json.dumps(record, indent=2) + "\n").encode()


def _clean_leftovers(layout: _Layout) -> None:
    """Remove what an interrupted update left behind (never anything a link points to)."""
    with contextlib.suppress(OSError):
        for entry in layout.versions.iterdir():
            if entry.name.startswith(_STAGING_PREFIX) and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            elif entry.name.endswith(_LINK_SUFFIX):
                entry.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        for entry in layout.models_dir.glob(f".{layout.name}.*{_LINK_SUFFIX}"):
            entry.unlink(missing_ok=True)


def _adopt_plain_files(layout: _Layout) -> None:
    """Turn plain top-level files (the shipped model, or one a build wrote) into a managed version.

    Each step leaves the two names resolving to the same pair of bytes.
    """
    if layout.managed():
        return
    pair = {}
    for top in (layout.model, layout.manifest):
        with contextlib.suppress(OSError):
            pair[top.name] = top.read_bytes()  # through any link: whatever the kiosk sees now
    if len(pair) == 2:
        try:
            sha = read_manifest(layout.manifest).sha256
        except ModelError:
            sha = _sha256(pair[layout.model.name])
        pair["installed.json"] = _installed_json(package=None, source="in use before this update")
        _replace_link(layout.current, _stage_version(layout, pair, sha))
    if layout.version_of(layout.current) is None:
        return  # nothing usable before: the links are made once the new version is current
    # Manifest first, then model: both now name the same bytes as the plain files.
    for top in (layout.manifest, layout.model):
        _replace_link(top, layout.link_target(top))


def _activate(layout: _Layout, target: str) -> str | None:
    """Make version ``target`` current; the old current becomes previous. Returns the old current."""
    _adopt_plain_files(layout)
    old = layout.version_of(layout.current)
    if layout.version_of(layout.previous) == target:
        # Rollback: switch first, so a cut in between never loses the way back to ``target``.
        _replace_link(layout.current, target)
        if old:
            _replace_link(layout.previous, old)
    else:
        if old:
            _replace_link(layout.previous, old)
        _replace_link(layout.current, target)  # the commit point
    for top in (layout.manifest, layout.model):  # a first install has no links yet
        if not top.is_symlink() or os.readlink(top) != layout.link_target(top):
            _replace_link(top, layout.link_target(top))
    return old


def _prune(layout: _Layout, keep_previous: int) -> None:
    current, previous = layout.version_of(layout.current), layout.version_of(layout.previous)
    others = [v for v in reversed(layout.versions_on_disk()) if v not in (current, previous)]
    extra = max(keep_previous - (1 if previous else 0), 0)
    for name in others[extra:]:
        shutil.rmtree(layout.versions / name, ignore_errors=True)


def _append_log(log: str | os.PathLike[str] | None, record: Mapping[str, Any]) -> None:
    """One JSON line per update, rollback or refusal; best effort (the model matters more)."""
    if log is None:
        return
    line = json.dumps({"time": datetime.now(UTC).isoformat(timespec="seconds"), **record},
                      default=str) + "\n"
    with contextlib.suppress(OSError):
        Path(log).parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)


@dataclass(frozen=True, kw_only=True)
class UpdateOutcome:
    """What changed: ``action`` is "installed" or "rolled_back"; ``code``/``message`` for the page."""

    action: str
    model: ModelInfo
    previous: ModelInfo | None
    package: UpdateInfo | None = None
    selftest: selftest.SelfTestResult | None = None

    @property
    def code(self) -> str:
        return "update_installed" if self.action == "installed" else "update_rolled_back"

    @property
    def params(self) -> dict[str, str]:
        return {"name": self.model.name, "sha": self.model.sha256[:12]}

    @property
    def message(self) -> str:
        return message(self.code, **self.params)

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "code": self.code, "message": self.message, "model": self.model.to_dict(),
                "previous": self.previous.to_dict() if self.previous else None,
                "package": self.package.to_dict() if self.package else None,
                "selftest_max_difference": self.selftest.max_difference if self.selftest else None}


def _refusal(action: str, exc: KioskError, **fields: Any) -> dict[str, Any]:
    return {"action": action, "outcome": "refused", "reason": exc.code, "message": str(exc), **fields}


def _install_failed(exc: Exception) -> UpdateError:
    detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
    return UpdateError("update_install_failed", detail=detail)


def apply_update(path: str | os.PathLike[str], *, models_dir: str | os.PathLike[str], public_key: Any,
                 log: str | os.PathLike[str] | None = None, name: str = DEFAULT_NAME,
                 keep_previous: int = 1) -> UpdateOutcome:
    """Check the update at ``path`` and make it the model in ``models_dir``; the old one becomes previous.

    ``public_key``: a path to the kiosk's PEM (or raw) public key, its bytes, or
    the key. ``log``: a JSON-lines file that gets one line per install or
    refusal. Every refusal raises :class:`UpdateError` (a KioskError with a
    translatable ``code``) and leaves ``models_dir`` exactly as it was.
    """
    models_dir, path = Path(models_dir), Path(path)
    layout = _Layout(models_dir, name)
    try:
        with _locked(models_dir):
            verified = verify_update(path, public_key=public_key)
            before = current_model_info(models_dir, name=name)
            if before is not None and before.sha256 == verified.manifest.sha256:
                raise UpdateError("update_already_installed")
            try:
                _clean_leftovers(layout)
                _adopt_plain_files(layout)  # first, so versions are numbered in the order they were used
                files = {f"{name}.tflite": verified.members[MODEL], f"{name}.json": verified.members[MANIFEST],
                         "selftest.json": verified.members[SELFTEST],
                         "installed.json": _installed_json(package=path.name, **verified.info.to_dict())}
                version = _stage_version(layout, files, verified.manifest.sha256)
                _activate(layout, version)
            except Exception as exc:  # disk full, read-only card...: the old model still serves
                raise _install_failed(exc) from exc
            with contextlib.suppress(OSError):
                _prune(layout, keep_previous)
    except KioskError as exc:
        _append_log(log, _refusal("install", exc, package=str(path)))
        raise
    now = current_model_info(models_dir, name=name)
    if now is None:  # pragma: no cover - only if the folder is changed under us
        raise UpdateError("update_install_failed", detail="the new model is not readable after the switch")
    outcome = UpdateOutcome(action="installed", model=now, previous=previous_model_info(models_dir, name=name),
                            package=verified.info, selftest=verified.selftest)
    _append_log(log, {"action": "install", "outcome": "ok", "package": str(path),
                      "package_sha256": verified.info.package_sha256, "key_id": verified.info.key_id,
                      "model_sha256": now.sha256, "version": now.version,
                      "previous_sha256": before.sha256 if before else None,
                      "selftest_max_difference": verified.selftest.max_difference})
    return outcome


def rollback(*, models_dir: str | os.PathLike[str], log: str | os.PathLike[str] | None = None,
             name: str = DEFAULT_NAME) -> UpdateOutcome:
    """Make the previous model current again (and the current one previous: a second tap undoes it).

    The previous model is loaded and self-tested first; a refusal changes nothing.
    """
    from .model import Model

    models_dir = Path(models_dir)
    layout = _Layout(models_dir, name)
    try:
        with _locked(models_dir):
            before = current_model_info(models_dir, name=name)
            target = previous_model_info(models_dir, name=name)
            if target is None or target.version is None:
                raise UpdateError("update_no_previous")
            folder = layout.versions / target.version
            try:
                model = Model.load(folder / f"{name}.tflite")
                expected = json.loads((folder / "selftest.json").read_text(encoding="utf-8"))
            except ModelError as exc:
                raise UpdateError("update_previous_unusable", detail=exc.code) from None
            except (OSError, ValueError):
                expected = None  # the model that was in use before the first update has no record
            if expected is not None:
                result = selftest.check(model, expected.get("malignant_probabilities", []))
                if not result.passed:
                    raise UpdateError("update_previous_unusable", detail=f"self-test: {result.detail}")
            try:
                _clean_leftovers(layout)
                _activate(layout, target.version)
            except Exception as exc:  # see apply_update
                raise _install_failed(exc) from exc
    except KioskError as exc:
        _append_log(log, _refusal("rollback", exc))
        raise
    now = current_model_info(models_dir, name=name)
    if now is None:  # pragma: no cover
        raise UpdateError("update_install_failed", detail="the earlier model is not readable after the switch")
    _append_log(log, {"action": "rollback", "outcome": "ok", "model_sha256": now.sha256, "version": now.version,
                      "previous_sha256": before.sha256 if before else None})
    return UpdateOutcome(action="rolled_back", model=now, previous=previous_model_info(models_dir, name=name))


# --- finding updates on a stick ----------------------------------------------


def find_updates(dirs: Iterable[str | os.PathLike[str]], *, max_depth: int = SEARCH_DEPTH) -> list[Path]:
    """``*.kioskupdate`` files up to ``max_depth`` folders below each of ``dirs`` (USB mount points).

    Hidden entries (``.Trash-1000``, macOS ``._`` files), symlinks and
    unreadable folders are skipped; at most 50 files, sorted by path.
    """
    found: dict[Path, None] = {}

    def walk(folder: Path, depth: int) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            if len(found) >= _MAX_FOUND or entry.name.startswith("."):
                continue
            try:
                if entry.is_symlink():
                    continue  # a loop or a path off the stick
                if entry.is_file() and entry.name.lower().endswith(SUFFIX):
                    found.setdefault(Path(entry.path), None)
                elif entry.is_dir() and depth < max_depth:
                    walk(Path(entry.path), depth + 1)
            except OSError:
                continue

    for root in dirs:
        walk(Path(root), 1)
    return sorted(found)


@dataclass(frozen=True, kw_only=True)
class UpdatePaths:
    """Everything the update functions need, from the kiosk's settings.

    The model is updated where ``model.path`` points, so the kiosk always
    loads what was installed; the log is ``updates.jsonl`` in the data folder.

    >>> from kiosk.config import Settings
    >>> p = UpdatePaths.from_settings(Settings())
    >>> p.name, p.log.name, p.models_dir.name
    ('melanoma_int8', 'updates.jsonl', 'models')
    """

    models_dir: Path
    name: str
    public_key: Path
    log: Path
    keep_previous: int
    watch_dirs: tuple[Path, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> UpdatePaths:
        return cls(models_dir=settings.model.path.parent, name=settings.model.path.stem,
                   public_key=settings.updates.public_key, log=settings.records.data_dir / LOG_FILE,
                   keep_previous=settings.updates.keep_previous, watch_dirs=settings.updates.watch_paths)

    def apply_kwargs(self) -> dict[str, Any]:
        return {"models_dir": self.models_dir, "name": self.name, "public_key": self.public_key,
                "log": self.log, "keep_previous": self.keep_previous}

    def rollback_kwargs(self) -> dict[str, Any]:
        return {"models_dir": self.models_dir, "name": self.name, "log": self.log}


# --- command line (deploy/keygen, deploy/sign-model) ----------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, like every other kiosk error
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _paths_from(args: argparse.Namespace) -> UpdatePaths:
    from .config import load_settings

    return UpdatePaths.from_settings(load_settings(args.config))


def _cmd_keygen(args: argparse.Namespace) -> None:
    private, public = keygen(args.out)
    print(f"private key: {private} (mode 600; keep it OFF the kiosks, backed up offline)")
    print(f"public key:  {public} (key id {key_id(load_public_key(public))}; install on every kiosk)")


def _cmd_sign(args: argparse.Namespace) -> None:
    target = sign_model(args.model, key=args.key, out=args.out)
    info = inspect_update(target, public_key=load_private_key(args.key).public_key())
    print(f"{target}: model {info.name} sha256 {info.model_sha256[:12]}, {info.size / 1024:.0f} KiB, "
          f"signed with key {info.key_id}")


def _public_key_arg(args: argparse.Namespace) -> Path:
    return Path(args.public_key) if args.public_key else _paths_from(args).public_key


def _cmd_verify(args: argparse.Namespace) -> None:
    verified = verify_update(args.package, public_key=_public_key_arg(args))
    print(f"{args.package}: OK, model {verified.info.name} sha256 {verified.info.model_sha256[:12]}, "
          f"key {verified.info.key_id}, self-test {verified.selftest.detail}")


def _cmd_apply(args: argparse.Namespace) -> None:
    paths = _paths_from(args)
    kwargs = paths.apply_kwargs()
    if args.public_key:
        kwargs["public_key"] = Path(args.public_key)
    print(apply_update(args.package, **kwargs).message)


def _cmd_rollback(args: argparse.Namespace) -> None:
    print(rollback(**_paths_from(args).rollback_kwargs()).message)


def _cmd_status(args: argparse.Namespace) -> None:
    paths = _paths_from(args)
    current = current_model_info(paths.models_dir, name=paths.name)
    previous = previous_model_info(paths.models_dir, name=paths.name)
    print(json.dumps({"current": current.to_dict() if current else None,
                      "previous": previous.to_dict() if previous else None,
                      "on_sticks": [str(p) for p in find_updates(paths.watch_dirs)]}, indent=2))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m kiosk.updates", description="Signed model updates for the kiosk.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    p = sub.add_parser("keygen", prog="keygen", help="make the team's ed25519 key pair")
    p.set_defaults(prog="keygen")
    p.add_argument("--out", required=True, metavar="DIR", help=f"folder for {PRIVATE_KEY_FILE} and {PUBLIC_KEY_FILE}")
    p.set_defaults(func=_cmd_keygen)
    p = sub.add_parser("sign-model", prog="sign-model", help="sign a model into one .kioskupdate file")
    p.set_defaults(prog="sign-model")
    p.add_argument("model", metavar="MODEL_DIR_OR_TFLITE")
    p.add_argument("--key", required=True, metavar="PRIVATE_KEY", help=f"the {PRIVATE_KEY_FILE} made by keygen")
    p.add_argument("--out", required=True, metavar="UPDATE_FILE", help=f"a {SUFFIX} file, or a folder")
    p.set_defaults(func=_cmd_sign)
    for name, func, helptext in (("verify", _cmd_verify, "run every check on an update, install nothing"),
                                 ("apply", _cmd_apply, "install an update on this kiosk")):
        p = sub.add_parser(name, prog=f"kiosk.updates {name}", help=helptext)
        p.set_defaults(prog=f"kiosk.updates {name}")
        p.add_argument("package", metavar="UPDATE_FILE")
        p.add_argument("--public-key", metavar="FILE", help="default: updates.public_key from the settings")
        p.add_argument("--config", help="settings TOML file (default: $KIOSK_CONFIG)")
        p.set_defaults(func=func)
    for name, func, helptext in (("rollback", _cmd_rollback, "go back to the previous model"),
                                 ("status", _cmd_status, "current and previous model, updates on sticks")):
        p = sub.add_parser(name, prog=f"kiosk.updates {name}", help=helptext)
        p.set_defaults(prog=f"kiosk.updates {name}")
        p.add_argument("--config", help="settings TOML file (default: $KIOSK_CONFIG)")
        p.set_defaults(func=func)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    prog = args.prog
    try:
        args.func(args)
    except KioskError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug is still one line; KIOSK_DEBUG=1 shows the traceback
        if os.environ.get("KIOSK_DEBUG"):
            raise
        print(f"{prog}: error: {message('internal_error')} ({type(exc).__name__}: {exc}; "
              "set KIOSK_DEBUG=1 for details)", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
