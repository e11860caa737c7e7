"""Records to the RHU and outcomes back by USB stick (the settings page's two buttons).

The stick is found as model updates find theirs (``updates.search_paths``
globs, :mod:`kiosk.updates.stick`): the first folder a glob matches. On it,
``melanoma-kiosk/exports/`` gets the export batches (channel ``usb``) and
``melanoma-kiosk/outcomes/`` is where the RHU puts outcomes. Every answer is a
:class:`Transfer`: a reason code (:mod:`kiosk.reasons`) and its parameters,
so the page shows one translated line whatever happened.

>>> find_stick(["/nonexistent-stick/*"]) is None
True
>>> export_to_stick(None, ["/nonexistent-stick/*"], context=None).code  # type: ignore[arg-type]
'usb_no_stick'
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..reasons import KioskError
from ..records.store import RecordStore
from .export import export_fhir
from .mapping import ExportContext
from .outcomes import import_outcomes, outcome_files

__all__ = [
    "EXPORTS",
    "OUTCOMES",
    "ROOT",
    "USB_CHANNEL",
    "Transfer",
    "export_to_stick",
    "find_stick",
    "import_from_stick",
]

ROOT = "melanoma-kiosk"
EXPORTS = f"{ROOT}/exports"
OUTCOMES = f"{ROOT}/outcomes"
USB_CHANNEL = "usb"


@dataclass(frozen=True)
class Transfer:
    """What an export or import did, as a reason code and its parameters (``ok`` False: nothing acknowledged)."""

    ok: bool
    code: str
    params: dict[str, object] = field(default_factory=dict)


def find_stick(search_paths: Iterable[str | os.PathLike[str]]) -> Path | None:
    """The first mounted stick: the first folder (not hidden) a search glob matches, in sorted order."""
    for pattern in search_paths:
        for match in sorted(glob.glob(os.fspath(pattern))):
            path = Path(match)
            if not path.name.startswith(".") and path.is_dir() and not path.is_symlink():
                return path
    return None


def export_to_stick(
    store: RecordStore, search_paths: Iterable[str | os.PathLike[str]], *, context: ExportContext
) -> Transfer:
    """Write every screening not yet on a stick, verify it (re-read, sha256) and say how many went."""
    stick = find_stick(search_paths)
    if stick is None:
        return Transfer(False, "usb_no_stick")
    try:
        summary = export_fhir(store, stick / EXPORTS, context=context, channel=USB_CHANNEL)
    except KioskError as exc:
        return Transfer(False, exc.code, dict(exc.params))
    if not summary.batches:
        return Transfer(True, "export_nothing_new")
    os.sync()  # the stick may be pulled the moment the page says "written"
    return Transfer(True, "export_done", {"screenings": summary.screenings, "photos": summary.photos})


def import_from_stick(
    store: RecordStore, search_paths: Iterable[str | os.PathLike[str]], *, station_code: str
) -> Transfer:
    """Import the RHU's outcomes from ``melanoma-kiosk/outcomes/`` on the stick; say how many."""
    stick = find_stick(search_paths)
    if stick is None:
        return Transfer(False, "usb_no_stick")
    folder = stick / ROOT  # outcomes/*.ndjson, or <station code>/outcomes/*.ndjson as the RHU console writes them
    if not outcome_files(folder, station_code=station_code):
        return Transfer(False, "outcomes_none")
    try:
        summary = import_outcomes(store, folder, station_code=station_code)
    except OSError:
        return Transfer(False, "outcomes_unreadable", {"path": str(folder)})
    return Transfer(True, "outcomes_imported", dict(summary.params()))
