"""``kiosk export fhir --out DIR``: the screenings not yet exported, as FHIR R4 NDJSON for the RHU (docs/FHIR.md).

Each run adds one folder per batch of up to 500 screenings to ``DIR`` and prints
one line per batch; a run with nothing new prints that and exits 0. A folder
standing in for a Syncthing outbox or a USB stick works the same way; the
settings page's *Export to USB* uses the channel ``usb``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "export"
HELP = "write the screenings not yet exported as FHIR R4 NDJSON (Bulk Data layout) for the rural health unit"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    formats = parser.add_subparsers(dest="export_format", required=True, metavar="FORMAT")
    fhir = formats.add_parser("fhir", help="FHIR R4 NDJSON, one folder per batch, with a manifest (export.json)")
    fhir.add_argument("--out", type=Path, required=True, metavar="DIR", help="where the batch folders go")
    fhir.add_argument(
        "--channel",
        default="outbox",
        help="export log channel: each channel gets every screening once (default: outbox; the USB page uses usb)",
    )
    fhir.add_argument("--data-dir", type=Path, default=None, help="records folder (default: records.data_dir)")


def run(args: argparse.Namespace) -> int:
    from .. import __version__
    from ..app import open_records
    from ..cli import load_settings_for
    from ..fhir.export import export_fhir
    from ..fhir.mapping import ExportContext, StationInfo
    from ..reasons import KioskError

    settings = load_settings_for(args)
    if not settings.station.code:
        raise KioskError("export_no_station")
    context = ExportContext(
        station=StationInfo(code=settings.station.code, name=settings.station.name),
        kiosk_version=__version__,
        referral_facility=settings.web.referral_facility,
        referral_within_days=settings.web.referral_within_days,
        time_zone=settings.station.time_zone,
    )
    with open_records(settings, data_dir=args.data_dir) as store:
        summary = export_fhir(store, args.out, context=context, channel=args.channel)
    for folder in summary.folders:
        print(folder)
    if summary.batches:
        counts = ", ".join(f"{t} {n}" for t, n in summary.resources.items())
        print(
            f"exported {summary.screenings} screenings and {summary.photos} photos in {len(summary.batches)} "
            f"batch(es) ({counts})"
        )
    else:
        print("nothing new to export")
    return 0
