"""The models folder: versions kept side by side, one atomic switch, install, rollback, the log.

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

The folder names (``0003-...``, a :attr:`ModelInfo.slot`) count installs on this
kiosk; the package's signed release :attr:`ModelInfo.version` orders models, and
:func:`apply_update` refuses one that is not newer than the model in use. Going
back is only ever :func:`rollback`, to the kept previous model.

>>> current_model_info("/nonexistent") is None
True
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import selftest
from ..manifest import manifest_path_for, read_manifest
from ..reasons import KioskError, ModelError, message
from ..storage import fsync_directory
from .errors import UpdateError
from .keys import write_new_file
from .package import DEFAULT_NAME, MANIFEST, MODEL, SELFTEST, UpdateInfo, _sha256, validation_figures, verify_update

__all__ = [
    "LOG_FILE",
    "ModelInfo",
    "UpdateOutcome",
    "apply_update",
    "current_model_info",
    "previous_model_info",
    "rollback",
]

LOG_FILE = "updates.jsonl"
_VERSION_RE = re.compile(r"(?P<seq>[0-9]{4,})-[0-9a-f]{12}")
_STAGING_PREFIX = ".staging-"
_LINK_SUFFIX = ".tmp-link"


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
    slot: str | None  # the version folder; None for a model not installed by an update
    version: int | None  # the signed release version; None when not installed from a package
    path: Path  # the real .tflite file
    created: str | None  # when the model was built (manifest)
    installed_at: str | None
    package: str | None  # the update file it came from
    threshold: float
    input_size: int
    recipe: str
    validation: Mapping[str, float] = field(default_factory=dict)  # see package.validation_figures

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "sha256": self.sha256,
            "slot": self.slot,
            "version": self.version,
            "path": str(self.path),
            "created": self.created,
            "installed_at": self.installed_at,
            "package": self.package,
            "threshold": self.threshold,
            "input_size": self.input_size,
            "recipe": self.recipe,
            "validation": dict(self.validation),
        }


def _info(model_path: Path, slot: str | None) -> ModelInfo | None:
    try:
        manifest = read_manifest(manifest_path_for(model_path))
    except ModelError:
        return None
    installed: dict[str, Any] = {}
    if slot is not None:  # beside the real file, in its version folder (a plain file's folder has none)
        with contextlib.suppress(OSError, ValueError):
            installed = json.loads((model_path.resolve().parent / "installed.json").read_text(encoding="utf-8"))
    version = installed.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        version = None
    return ModelInfo(
        name=str(manifest.extra.get("name") or model_path.stem),
        sha256=manifest.sha256,
        slot=slot,
        version=version,
        path=model_path.resolve(),
        created=manifest.extra.get("created"),
        installed_at=installed.get("installed_at"),
        package=installed.get("package"),
        threshold=manifest.threshold,
        input_size=manifest.input_height,
        recipe=manifest.preprocessing_recipe,
        validation=validation_figures(manifest.extra),
    )


def current_model_info(models_dir: str | os.PathLike[str], *, name: str = DEFAULT_NAME) -> ModelInfo | None:
    """The model the kiosk loads from ``models_dir``; None when there is no readable one."""
    layout = _Layout(Path(models_dir), name)
    slot = layout.version_of(layout.current) if layout.managed() else None
    return _info(layout.model, slot)


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
            write_new_file(staging / filename, data, 0o644)
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
    line = json.dumps({"time": datetime.now(UTC).isoformat(timespec="seconds"), **record}, default=str) + "\n"
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
        return {
            "action": self.action,
            "code": self.code,
            "message": self.message,
            "model": self.model.to_dict(),
            "previous": self.previous.to_dict() if self.previous else None,
            "package": self.package.to_dict() if self.package else None,
            "selftest_max_difference": self.selftest.max_difference if self.selftest else None,
        }


def _refusal(action: str, exc: KioskError, **fields: Any) -> dict[str, Any]:
    return {"action": action, "outcome": "refused", "reason": exc.code, "message": str(exc), **fields}


def _install_failed(exc: Exception) -> UpdateError:
    detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
    return UpdateError("update_install_failed", detail=detail)


def apply_update(
    path: str | os.PathLike[str],
    *,
    models_dir: str | os.PathLike[str],
    public_key: Any,
    log: str | os.PathLike[str] | None = None,
    name: str = DEFAULT_NAME,
    keep_previous: int = 1,
    expect_sha256: str | None = None,
) -> UpdateOutcome:
    """Check the update at ``path`` and make it the model in ``models_dir``; the old one becomes previous.

    ``public_key``: a path to the kiosk's PEM (or raw) public key, its bytes, or
    the key. ``log``: a JSON-lines file that gets one line per install or
    refusal. ``expect_sha256``: install only that exact package file (the one a
    health worker tapped). A package whose signed version is not higher than the
    model in use is refused (``update_not_newer``); going back is :func:`rollback`.
    Every refusal raises :class:`UpdateError` (a KioskError with a translatable
    ``code``) and leaves ``models_dir`` exactly as it was.
    """
    models_dir, path = Path(models_dir), Path(path)
    layout = _Layout(models_dir, name)
    try:
        with _locked(models_dir):
            verified = verify_update(path, public_key=public_key, expect_sha256=expect_sha256)
            before = current_model_info(models_dir, name=name)
            if before is not None and before.sha256 == verified.manifest.sha256:
                raise UpdateError("update_already_installed")
            if before is not None and before.version is not None and verified.info.version <= before.version:
                # An old signed package must never replace a newer model (its flaws may be why it was
                # replaced); going back is only the explicit rollback to the kept previous model.
                raise UpdateError("update_not_newer", version=verified.info.version, current=before.version)
            try:
                _clean_leftovers(layout)
                _adopt_plain_files(layout)  # first, so versions are numbered in the order they were used
                files = {
                    f"{name}.tflite": verified.members[MODEL],
                    f"{name}.json": verified.members[MANIFEST],
                    "selftest.json": verified.members[SELFTEST],
                    "installed.json": _installed_json(package=path.name, **verified.info.to_dict()),
                }
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
    outcome = UpdateOutcome(
        action="installed",
        model=now,
        previous=previous_model_info(models_dir, name=name),
        package=verified.info,
        selftest=verified.selftest,
    )
    _append_log(
        log,
        {
            "action": "install",
            "outcome": "ok",
            "package": str(path),
            "package_sha256": verified.info.package_sha256,
            "key_id": verified.info.key_id,
            "model_sha256": now.sha256,
            "version": now.version,
            "slot": now.slot,
            "previous_sha256": before.sha256 if before else None,
            "selftest_max_difference": verified.selftest.max_difference,
        },
    )
    return outcome


def rollback(
    *, models_dir: str | os.PathLike[str], log: str | os.PathLike[str] | None = None, name: str = DEFAULT_NAME
) -> UpdateOutcome:
    """Make the previous model current again (and the current one previous: a second tap undoes it).

    The previous model is loaded and self-tested first; a refusal changes nothing.
    """
    from ..model import Model

    models_dir = Path(models_dir)
    layout = _Layout(models_dir, name)
    try:
        with _locked(models_dir):
            before = current_model_info(models_dir, name=name)
            target = previous_model_info(models_dir, name=name)
            if target is None or target.slot is None:
                raise UpdateError("update_no_previous")
            folder = layout.versions / target.slot
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
                _activate(layout, target.slot)
            except Exception as exc:  # see apply_update
                raise _install_failed(exc) from exc
    except KioskError as exc:
        _append_log(log, _refusal("rollback", exc))
        raise
    now = current_model_info(models_dir, name=name)
    if now is None:  # pragma: no cover
        raise UpdateError("update_install_failed", detail="the earlier model is not readable after the switch")
    _append_log(
        log,
        {
            "action": "rollback",
            "outcome": "ok",
            "model_sha256": now.sha256,
            "version": now.version,
            "slot": now.slot,
            "previous_sha256": before.sha256 if before else None,
        },
    )
    return UpdateOutcome(action="rolled_back", model=now, previous=previous_model_info(models_dir, name=name))
