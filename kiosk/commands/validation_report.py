"""``kiosk validation-report``: sensitivity and specificity on this kiosk's doctor-confirmed cases.

Reads the records (``--data-dir``, default ``records.data_dir``) and the
outcomes recorded for them (on the kiosk behind the PIN, or imported from
the rural health unit) and prints :mod:`kiosk.validation`'s report: overall,
by body-site group and by skin type, with 95% Wilson intervals, and how many
referred screenings still wait for an outcome. ``--json`` prints it as one
object; ``--csv FILE`` also writes one row per group.

>>> import argparse
>>> parser = argparse.ArgumentParser(); add_arguments(parser)
>>> parser.parse_args(["--json"]).json
True
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..reasons import KioskError
from ..storage import atomic_write_bytes
from ..validation import NOTE, Confusion, ValidationReport, report_from_store

NAME = "validation-report"
HELP = "sensitivity and specificity of the refer/low decision on this kiosk's doctor-confirmed cases"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", metavar="DIR", help="records folder (default from settings: records.data_dir)")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    parser.add_argument("--csv", metavar="FILE", help="also write one row per group (overall, body site, skin type)")


def run(args: argparse.Namespace) -> int:
    from ..cli import load_settings_for
    from ..records import RecordStore

    settings = load_settings_for(args)
    folder = Path(args.data_dir).expanduser() if args.data_dir else settings.records.data_dir
    if not (folder / "records.sqlite3").is_file():
        raise KioskError("file_not_found", path=f"{folder / 'records.sqlite3'} (no records in this folder)")
    with RecordStore(folder, retention_days=0, photo_retention_days=0) as records:
        report = report_from_store(records)
    if args.csv:
        try:
            atomic_write_bytes(Path(args.csv), report.to_csv().encode("utf-8"))
        except OSError as exc:
            raise KioskError("file_unreadable", path=f"{args.csv} ({exc.strerror or exc})") from None
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        sys.stdout.write(format_report(report))
    return 0


def format_report(report: ValidationReport) -> str:
    """The report as plain text lines (English: the technician's command line)."""
    lines = [
        "Local validation report: the kiosk's refer/low decision against what doctors found",
        NOTE,
        f"Screenings: {report.screenings} (referred {report.referred}, {report.referred_unclear} of them for an "
        f"unclear photo; low {report.low}; retake or error {report.retakes}, not counted)",
        f"Confirmed by a doctor: {report.confirmed}. Pending (referred, no confirmed outcome yet): {report.pending}",
        "Melanoma against benign:",
        *_confusion_lines(report.overall, indent="  "),
        f"Other skin cancers referred: {report.other_skin_cancer.text()} (not in the figures above)",
        f"Outcome 'other' (not counted): {report.other_outcomes}; outcomes of retakes (not counted): "
        f"{report.outcomes_on_retakes}",
    ]
    for title, groups in (("By body site:", report.by_body_site), ("By skin type (Fitzpatrick):", report.by_skin_type)):
        if groups:
            lines.append(title)
            for name, counts in groups.items():
                lines.append(f"  {name.replace('_', ' ')}:")
                lines += _confusion_lines(counts, indent="    ")
    lines.append("Newest outcome per screening: " + ", ".join(f"{k} {v}" for k, v in report.outcomes.items()))
    return "\n".join(lines) + "\n"


def _confusion_lines(counts: Confusion, *, indent: str) -> list[str]:
    return [
        f"{indent}sensitivity (melanomas referred): {counts.sensitivity.text()}",
        f"{indent}specificity (benign lesions called low): {counts.specificity.text()}",
    ]
