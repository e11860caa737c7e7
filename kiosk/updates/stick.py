"""Updates on an inserted USB stick: find ``*.kioskupdate`` files and say what each one is.

``updates.search_paths`` holds shell globs for where sticks are mounted
(Raspberry Pi OS mounts them at ``/media/<user>/<LABEL>``: the glob ``/media/*/*``).
Each match that is a folder is searched a few folders deep; a match that is an
update file is taken as it is.

>>> find_updates(["/nonexistent-stick/*"])
[]
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import selftest
from ..reasons import KioskError, message
from .package import SUFFIX, UpdateInfo, verify_update

__all__ = ["MAX_FOUND", "SEARCH_DEPTH", "Offer", "examine", "find_updates"]

#: <stick>/<folder>/<folder>/x.kioskupdate is as deep as a file is looked for below a mount point.
SEARCH_DEPTH = 3
MAX_FOUND = 50


def find_updates(search_paths: Iterable[str | os.PathLike[str]], *, max_depth: int = SEARCH_DEPTH) -> list[Path]:
    """``*.kioskupdate`` files in (or up to ``max_depth`` folders below) each folder the globs match.

    Hidden entries (``.Trash-1000``, macOS ``._`` files), symlinks and
    unreadable folders are skipped; at most :data:`MAX_FOUND` files, sorted by path.
    """
    found: dict[Path, None] = {}

    def take(entry: os.DirEntry[str] | Path) -> None:
        if len(found) < MAX_FOUND:
            found.setdefault(Path(entry), None)

    def walk(folder: Path, depth: int) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            if len(found) >= MAX_FOUND or entry.name.startswith("."):
                continue
            try:
                if entry.is_symlink():
                    continue  # a loop, or a path off the stick
                if entry.is_file() and entry.name.lower().endswith(SUFFIX):
                    take(entry)
                elif entry.is_dir() and depth < max_depth:
                    walk(Path(entry.path), depth + 1)
            except OSError:
                continue

    for pattern in search_paths:
        for match in sorted(glob.glob(os.fspath(pattern))):
            path = Path(match)
            try:
                if path.is_symlink() or path.name.startswith("."):
                    continue
                if path.is_file() and path.name.lower().endswith(SUFFIX):
                    take(path)
                elif path.is_dir():
                    walk(path, 1)
            except OSError:
                continue
    return sorted(found)


@dataclass(frozen=True, kw_only=True)
class Offer:
    """One update file on the stick, as the settings page lists it.

    ``info`` and ``selftest`` are set when the package passed every check of
    :func:`kiosk.updates.package.verify_update` (the self-test was run here);
    otherwise ``refusal`` is the reason code (with ``params``) it would be refused with.
    """

    path: Path
    info: UpdateInfo | None = None
    selftest: selftest.SelfTestResult | None = None
    refusal: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def installable(self) -> bool:
        return self.refusal is None and self.info is not None

    @property
    def token(self) -> str | None:
        """What the page posts to name this offer: the package file's sha256 (never a path)."""
        return self.info.package_sha256 if self.info is not None else None

    @property
    def message(self) -> str:
        return message(self.refusal, **self.params) if self.refusal else ""

    def refused(self, code: str, **params: Any) -> Offer:
        """The same offer, now refused with ``code`` (e.g. not newer than the model in use)."""
        return Offer(path=self.path, info=self.info, selftest=self.selftest, refusal=code, params=params)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "installable": self.installable,
            "package": self.info.to_dict() if self.info else None,
            "selftest": (
                {
                    "passed": self.selftest.passed,
                    "max_difference": self.selftest.max_difference,
                    "detail": self.selftest.detail,
                }
                if self.selftest
                else None
            ),
            "refusal": self.refusal,
            "message": self.message,
        }


def examine(path: str | os.PathLike[str], *, public_key: Any) -> Offer:
    """Run every check on the update at ``path`` (the model and its self-test included); never raises.

    A refusal is reported in the offer, not raised, so one bad file on a stick
    does not hide the good ones.
    """
    path = Path(path)
    try:
        verified = verify_update(path, public_key=public_key)
    except KioskError as exc:
        return Offer(path=path, refusal=exc.code, params=exc.params)
    except Exception as exc:  # noqa: BLE001 - a hostile file must never take the settings page down
        return Offer(
            path=path, refusal="update_not_a_package", params={"path": str(path), "detail": type(exc).__name__}
        )
    return Offer(path=path, info=verified.info, selftest=verified.selftest)
