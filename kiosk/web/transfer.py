"""The settings page's records panel (behind the PIN): *Export to USB* and *Import outcomes*.

Each button runs :mod:`kiosk.fhir.usb` and shows its answer as one translated
line after a redirect (post/redirect/get, so a reload does not export again).
The panel is ``_transfer.html``, included by ``settings.html``.
"""

from __future__ import annotations

from flask import Blueprint, current_app, redirect, session, url_for
from flask.typing import ResponseReturnValue

from .. import __version__
from ..fhir.mapping import ExportContext, StationInfo
from ..fhir.usb import USB_CHANNEL, Transfer, export_to_stick, import_from_stick
from .access import require_pin
from .context import kiosk
from .errors import WebError

bp = Blueprint("transfer", __name__)

TRANSFER_OUTCOME = "transfer_outcome"  # session key: the one line shown after the redirect


@bp.app_context_processor
def _panel() -> dict[str, object]:
    return {"transfer_panel": transfer_panel}


def transfer_panel() -> dict[str, object]:
    """What ``_transfer.html`` shows: whether records exist, how many wait for a stick, the last answer."""
    records = kiosk().records
    return {
        "records": records is not None,
        "pending": records.unexported_count(USB_CHANNEL) if records is not None else 0,
        "outcome": session.pop(TRANSFER_OUTCOME, None),
    }


def _guard() -> ResponseReturnValue | None:
    return require_pin(url_for("pages.settings_page"))


def _run(action: str) -> ResponseReturnValue:
    refused = _guard()
    if refused is not None:
        return refused
    ctx = kiosk()
    records = ctx.records
    if records is None:
        raise WebError(404, "not_found")
    settings = ctx.settings
    paths = settings.updates.search_path_list
    code = settings.station.code
    try:
        if not code:
            result = Transfer(False, "export_no_station")
        elif action == "export":
            context = ExportContext(
                station=StationInfo(code=code, name=settings.station.name),
                kiosk_version=__version__,
                referral_facility=settings.web.referral_facility,
                referral_within_days=settings.web.referral_within_days,
                time_zone=settings.station.time_zone,
            )
            result = export_to_stick(records, paths, context=context)
        else:
            result = import_from_stick(records, paths, station_code=code)
    except Exception as exc:  # noqa: BLE001 - a bug: still one line on the page, the traceback in the log
        current_app.logger.exception("records transfer failed")
        result = Transfer(False, "export_failed", {"path": "USB", "detail": type(exc).__name__})
    params = {k: v if isinstance(v, (int, float, str)) else str(v) for k, v in result.params.items()}
    session[TRANSFER_OUTCOME] = {"ok": result.ok, "code": result.code, "params": params}
    return redirect(url_for("pages.settings_page") + "#records-transfer", code=303)


@bp.post("/settings/records/export-usb")
def export_usb() -> ResponseReturnValue:
    return _run("export")


@bp.post("/settings/records/import-outcomes")
def import_outcomes() -> ResponseReturnValue:
    return _run("import")
