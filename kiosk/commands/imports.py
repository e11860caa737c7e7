"""``kiosk import outcomes DIR``: the RHU's outcomes (FHIR Observations, docs/FHIR.md section 5) into the records.

Reads ``DIR/outcomes/*.ndjson`` (or ``DIR/*.ndjson``), takes the lines for this
station, stores each outcome once however often it is imported, and prints the
counts. Exit 0 when the files could be read (bad lines are counted, not fatal).
A folder without outcome files is an error, except with ``--empty-ok`` (the
Syncthing inbox that melanoma-kiosk-sync.service reads every 15 minutes, before
the RHU has sent anything). Syncthing's ``.syncthing.*.tmp`` files (a file still
arriving) and its ``.stfolder`` marker are never read.
"""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "import"
HELP = "import what the rural health unit found (outcomes as FHIR NDJSON) into the records"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    kinds = parser.add_subparsers(dest="import_kind", required=True, metavar="WHAT")
    outcomes = kinds.add_parser("outcomes", help="outcome Observations from DIR/outcomes/*.ndjson")
    outcomes.add_argument("folder", type=Path, metavar="DIR")
    outcomes.add_argument(
        "--empty-ok",
        action="store_true",
        help="a folder with no outcome files yet is not an error (the Syncthing inbox): print zero counts, exit 0",
    )
    outcomes.add_argument("--data-dir", type=Path, default=None, help="records folder (default: records.data_dir)")


def run(args: argparse.Namespace) -> int:
    from ..app import open_records
    from ..cli import load_settings_for
    from ..fhir.outcomes import import_outcomes, outcome_files
    from ..reasons import KioskError, message

    settings = load_settings_for(args)
    if not settings.station.code:
        raise KioskError("export_no_station")
    if not outcome_files(args.folder, station_code=settings.station.code):
        if args.empty_ok:
            print(message("outcomes_imported", imported=0, already=0, other=0, unknown=0, invalid=0))
            return 0
        raise KioskError("file_not_found", path=f"{args.folder} (no outcomes/*.ndjson)")
    with open_records(settings, data_dir=args.data_dir) as store:
        try:
            summary = import_outcomes(store, args.folder, station_code=settings.station.code)
        except OSError as exc:
            raise KioskError("outcomes_unreadable", path=f"{args.folder}: {exc.strerror or exc}") from None
    print(message("outcomes_imported", **summary.params()))
    return 0
