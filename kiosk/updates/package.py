"""One ``.kioskupdate`` file: what it holds, how it is signed, and every check before it may be installed.

**The package** (an uncompressed tar, see ``deploy/UPDATES.md``) holds exactly five members::

    contents.json   format, target arch, model format, release version, sha256 and size of the three below
    signature       ed25519 over SIGNATURE_CONTEXT + the bytes of contents.json (64 bytes)
    model.tflite    the int8 model
    manifest.json   its manifest (kiosk.manifest), whose sha256 names model.tflite
    selftest.json   the model's outputs on the built-in self-test images (kiosk.selftest)

**The checks**, in order, before anything on disk changes: size limits and
exactly the expected members (never extracted by name, so no path traversal);
the signature with the kiosk's public key; every member's hash and size against
the signed list; target arch, formats and a release version; the model loads
with :class:`kiosk.model.Model` from a temporary folder; the self-test matches.

The release ``version`` (a whole number the maintainers raise for every model
they sign) is inside the signed contents, so nobody can make an old package
look new; :func:`kiosk.updates.store.apply_update` refuses one that is not newer
than the model in use.

>>> UpdateInfo.__name__, SUFFIX
('UpdateInfo', '.kioskupdate')
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from .. import selftest
from ..manifest import FORMAT as MODEL_FORMAT
from ..manifest import ModelManifest, manifest_path_for, read_manifest
from ..reasons import ModelError, message
from .errors import UpdateError
from .keys import key_id, load_private_key, load_public_key

__all__ = [
    "ARCH",
    "MAX_PACKAGE_BYTES",
    "MEMBERS",
    "PACKAGE_FORMAT",
    "SIGNATURE_CONTEXT",
    "SIGNED_MEMBERS",
    "SUFFIX",
    "UpdateInfo",
    "VerifiedUpdate",
    "inspect_update",
    "sign_model",
    "validation_figures",
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
_MEMBER_LIMITS = {
    MODEL: MAX_MODEL_BYTES,
    SIGNATURE: 64,
    CONTENTS: MAX_JSON_BYTES,
    MANIFEST: MAX_JSON_BYTES,
    SELFTEST: MAX_JSON_BYTES,
}
#: Release versions are whole numbers from 1; the bound keeps them exact in JSON everywhere.
MAX_VERSION = 2**31 - 1

DEFAULT_NAME = "melanoma_int8"


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
    doc: dict[str, Any] = {}
    try:
        doc = json.loads(members[SELFTEST])
        ok = (
            isinstance(doc, dict)
            and doc.get("format") == SELFTEST_FORMAT
            and isinstance(doc.get("malignant_probabilities"), list)
            and all(isinstance(v, (int, float)) for v in doc["malignant_probabilities"])
        )
    except ValueError:
        ok = False
    if not ok:
        raise UpdateError("update_incompatible", path=where, detail=f"self-test format is not {SELFTEST_FORMAT}")
    if doc.get("images") != selftest.SELFTEST_ID:
        raise UpdateError(
            "update_incompatible",
            path=where,
            detail=f"self-test images {doc.get('images')!r}; this kiosk draws {selftest.SELFTEST_ID!r}",
        )
    if (doc.get("input_size"), doc.get("recipe")) != (manifest.input_height, manifest.preprocessing_recipe):
        raise UpdateError(
            "update_incompatible", path=where, detail="self-test was made for another input size or recipe"
        )
    return doc


def _version_of(contents: Mapping[str, Any], where: str) -> int:
    """The signed release version; a package without one cannot be ordered, so it is refused."""
    version = contents.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= MAX_VERSION:
        raise UpdateError("update_no_version", path=where)
    return version


def validation_figures(manifest: Mapping[str, Any]) -> dict[str, float]:
    """The int8 model's validation AUC, sensitivity and specificity at its threshold, and the image count.

    Read from the manifest's ``validation_metrics`` (written by ``deploy/build-model``);
    figures a manifest lacks are left out, never invented.

    >>> validation_figures({"validation_metrics": {"validation_images": 1440, "int8": {"auc": 0.972,
    ...     "at_threshold": {"sensitivity": 0.951, "specificity": 0.848}}}})
    {'auc': 0.972, 'sensitivity': 0.951, 'specificity': 0.848, 'images': 1440.0}
    >>> validation_figures({})
    {}
    """
    metrics = manifest.get("validation_metrics")
    int8 = metrics.get("int8") if isinstance(metrics, Mapping) else None
    if not isinstance(metrics, Mapping) or not isinstance(int8, Mapping):
        return {}
    at_threshold = int8.get("at_threshold")
    if not isinstance(at_threshold, Mapping):
        at_threshold = {}
    found = {
        "auc": int8.get("auc"),
        "sensitivity": at_threshold.get("sensitivity"),
        "specificity": at_threshold.get("specificity"),
        "images": metrics.get("validation_images", at_threshold.get("n")),
    }
    return {k: float(v) for k, v in found.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


@dataclass(frozen=True, kw_only=True)
class UpdateInfo:
    """What a signature-checked package says about itself (see :func:`inspect_update`)."""

    path: Path
    package_sha256: str
    key_id: str
    model_sha256: str
    name: str
    version: int  # the signed release number: a newer model always has a higher one
    created: str | None
    size: int
    validation: Mapping[str, float] = field(default_factory=dict)  # see validation_figures

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "package_sha256": self.package_sha256,
            "key_id": self.key_id,
            "model_sha256": self.model_sha256,
            "name": self.name,
            "version": self.version,
            "created": self.created,
            "size": self.size,
            "validation": dict(self.validation),
        }


@dataclass(frozen=True, kw_only=True)
class VerifiedUpdate:
    """A package that passed every check, held in memory; :func:`apply_update` installs it."""

    info: UpdateInfo
    manifest: ModelManifest
    selftest: selftest.SelfTestResult
    members: Mapping[str, bytes]


def _read_verified(
    path: Path, public_key: Any, expect_sha256: str | None = None
) -> tuple[dict[str, bytes], dict[str, Any], UpdateInfo]:
    key = load_public_key(public_key)  # first: a kiosk without its key can check nothing
    path = Path(path)
    members, package_sha256 = _read_members(path)
    if expect_sha256 is not None and package_sha256 != expect_sha256:
        raise UpdateError("update_changed", path=str(path))  # not the file that was listed and tapped
    contents = _verified_contents(members, key, str(path))
    _check_target(contents, members, str(path))
    try:
        manifest_doc = json.loads(members[MANIFEST])
    except ValueError:
        manifest_doc = {}
    info = UpdateInfo(
        path=path,
        package_sha256=package_sha256,
        key_id=key_id(key),
        model_sha256=_sha256(members[MODEL]),
        name=str(contents.get("name") or "model"),
        version=_version_of(contents, str(path)),
        created=contents.get("created"),
        size=sum(len(v) for v in members.values()),
        validation=validation_figures(manifest_doc),
    )
    return members, contents, info


def inspect_update(path: str | os.PathLike[str], *, public_key: Any) -> UpdateInfo:
    """Signature, hashes and target checked, model not run: quick, for listing a stick's updates."""
    return _read_verified(Path(path), public_key)[2]


def verify_update(path: str | os.PathLike[str], *, public_key: Any, expect_sha256: str | None = None) -> VerifiedUpdate:
    """Every check :func:`~kiosk.updates.store.apply_update` makes, installing nothing; raises :class:`UpdateError`.

    ``expect_sha256``: refuse (``update_changed``) unless the file's sha256 is this one.
    """
    from ..model import Model

    path = Path(path)
    where = str(path)
    members, contents, info = _read_verified(path, public_key, expect_sha256)
    with tempfile.TemporaryDirectory(prefix="kiosk-update-") as tmp:
        model_path = Path(tmp) / f"{DEFAULT_NAME}.tflite"
        model_path.write_bytes(members[MODEL])
        manifest_path_for(model_path).write_bytes(members[MANIFEST])
        try:
            model = Model.load(model_path)
        except ModelError as exc:
            # Name the member, not the temporary file.
            raise UpdateError(
                "update_model_unusable", detail=message(exc.code, **{**exc.params, "path": MODEL})
            ) from None
        if model.manifest.input_dtype not in ("uint8", "int8"):
            raise UpdateError(
                "update_incompatible",
                path=where,
                detail=f"a {model.manifest.input_dtype} model; this kiosk runs {ARCH}",
            )
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


def _output_path(out: Path, manifest: ModelManifest, model_path: Path, version: int) -> Path:
    if out.is_dir():
        name = str(manifest.extra.get("name") or model_path.stem)
        return out / f"{name}-v{version}-{manifest.sha256[:12]}{SUFFIX}"
    return out


def sign_model(
    model: str | os.PathLike[str],
    *,
    key: str | os.PathLike[str],
    out: str | os.PathLike[str],
    version: int,
    created: datetime | None = None,
) -> Path:
    """Sign ``model`` (a ``.tflite`` beside its manifest, or a folder with one) into one update file.

    Loads the model through :class:`kiosk.model.Model` (so a manifest whose
    sha256 does not match is refused) and records its self-test outputs. The
    result is written atomically; returns its path. ``version``: the release
    number, higher than every model signed before (kiosks refuse an older one).
    """
    from ..model import Model
    from ..storage import atomic_write_bytes

    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= MAX_VERSION:
        raise UpdateError("update_bad_version", version=version)
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
    members = {
        MODEL: model_bytes,
        MANIFEST: manifest_bytes,
        SELFTEST: (json.dumps(selftest_doc, indent=2) + "\n").encode(),
    }
    when = (created or datetime.now(UTC)).isoformat(timespec="seconds")
    contents = {
        "format": PACKAGE_FORMAT,
        "arch": ARCH,
        "model_format": MODEL_FORMAT,
        "model_sha256": manifest.sha256,
        "name": str(manifest.extra.get("name") or model_path.stem),
        "version": version,
        "created": when,
        "key_id": key_id(private.public_key()),
        "members": {name: {"sha256": _sha256(data), "size": len(data)} for name, data in members.items()},
    }
    contents_bytes = (json.dumps(contents, indent=2, sort_keys=True) + "\n").encode()
    package = _tar({CONTENTS: contents_bytes, SIGNATURE: private.sign(SIGNATURE_CONTEXT + contents_bytes), **members})
    target = _output_path(Path(out), manifest, model_path, version)
    atomic_write_bytes(target, package)
    # Read it back as a kiosk would (signature, hashes, target), so a bad write is caught here.
    inspect_update(target, public_key=private.public_key())
    return target
