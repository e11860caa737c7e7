"""The settings page's records panel: Export to USB and Import outcomes, with a temp folder as the stick."""

from __future__ import annotations

import dataclasses
import errno
import html
import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

import kiosk.fhir.export as export_module
from kiosk.config import StationSettings, UpdatesSettings
from kiosk.fhir.export import Verification, complete_exports, verify_export
from kiosk.fhir.outcomes import outcome_observation
from kiosk.web import create_app
from tests.fhir_data import STATION, fill
from tests.web_conftest import PIN, csrf_of, make_settings


@pytest.fixture()
def media(tmp_path: Path) -> Path:
    folder = tmp_path / "media" / "pi"
    folder.mkdir(parents=True)
    return folder


@pytest.fixture()
def kiosk_app(tmp_path, station, clock, media):  # station, clock: web_conftest fixtures
    base = make_settings(tmp_path)
    settings = dataclasses.replace(
        base,
        station=StationSettings(code=STATION, name="Barangay San Jose Health Station"),
        updates=UpdatesSettings(search_paths=f"{media}/*"),
    )
    return create_app(settings=settings, station=station, testing=True, clock=clock)


@pytest.fixture()
def client(kiosk_app):
    client = kiosk_app.test_client()
    r = client.post("/pin", data={"pin": PIN, "next": "/settings", "csrf_token": csrf_of(client, "/pin")})
    assert r.status_code == 303
    return client


def press(client, button: str) -> str:
    """Tap a panel button; the one-line answer shown on the settings page after the redirect."""
    action = {"export": "/settings/records/export-usb", "import": "/settings/records/import-outcomes"}[button]
    r = client.post(action, data={"csrf_token": csrf_of(client, "/settings")})
    assert r.status_code == 303 and r.headers["Location"] == "/settings#records-transfer"
    page = client.get("/settings").get_data(as_text=True)
    found = re.search(r'data-testid="transfer-outcome">([^<]*)</p>', page)
    assert found, "no outcome line"
    return html.unescape(found.group(1))


def pending(client) -> str:
    page = client.get("/settings").get_data(as_text=True)
    return html.unescape(re.search(r'data-testid="transfer-pending">([^<]*)<', page).group(1))  # type: ignore[union-attr]


def test_export_to_usb_writes_verifies_and_says_how_many(client, records, media) -> None:
    fill(records)
    stick = media / "STICK"
    stick.mkdir()
    assert pending(client) == "Screenings not yet on a USB stick: 6"
    assert press(client, "export") == "6 screenings and 5 photos were written to the USB stick and checked."
    (folder,) = complete_exports(stick / "melanoma-kiosk" / "exports")
    assert verify_export(folder).ok
    assert len((folder / "Encounter.ndjson").read_text().splitlines()) == 6
    assert pending(client) == "Screenings not yet on a USB stick: 0"
    assert press(client, "export") == "There are no new screenings to export; the USB stick was not changed."
    assert len(complete_exports(stick / "melanoma-kiosk" / "exports")) == 1


def test_no_stick(client, records) -> None:
    fill(records)
    assert press(client, "export") == "No USB stick was found. Insert the stick, wait a few seconds and try again."
    assert press(client, "import") == "No USB stick was found. Insert the stick, wait a few seconds and try again."
    assert pending(client).endswith(": 6")  # nothing counted as exported


@pytest.mark.parametrize(
    ("err", "line"),
    [
        (errno.ENOSPC, "There is no room left on the USB stick or folder"),
        (errno.EROFS, "The USB stick or folder cannot be written"),
    ],
)
def test_a_full_or_read_only_stick_is_one_line_and_exports_nothing(client, records, media, monkeypatch, err, line):
    fill(records)
    (media / "STICK").mkdir()

    def refuse(path, chunks):  # what a full or write-protected stick answers
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr(export_module, "_write_durably", refuse)
    said = press(client, "export")
    assert said.startswith(line) and "\n" not in said
    assert pending(client).endswith(": 6")
    monkeypatch.undo()
    assert press(client, "export").startswith("6 screenings and 5 photos")  # the same batch, redone


def test_a_copy_that_reads_back_wrong_is_not_acknowledged(client, records, media, monkeypatch) -> None:
    fill(records)
    (media / "STICK").mkdir()
    monkeypatch.setattr(export_module, "verify_export", lambda folder: Verification(False, "Patient.ndjson: sha256"))
    said = press(client, "export")
    assert said.startswith("The copy on the USB stick does not match the records (Patient.ndjson: sha256)")
    assert pending(client).endswith(": 6")  # not marked as exported: the next tap writes it again
    monkeypatch.undo()
    assert press(client, "export").startswith("6 screenings and 5 photos")


def test_import_outcomes_from_the_stick(client, records, media) -> None:
    ids = fill(records)
    code = records.get(ids["refer"]).code
    stick = media / "STICK"
    (stick / "melanoma-kiosk").mkdir(parents=True)
    assert press(client, "import") == (
        "No outcomes were found on the USB stick (the RHU puts them in melanoma-kiosk/outcomes)."
    )
    folder = stick / "melanoma-kiosk" / "outcomes"
    folder.mkdir()
    at = datetime(2026, 3, 9, 1, 20, tzinfo=UTC)
    lines = [
        outcome_observation(
            station_code=STATION, slip_code=code, outcome="melanoma", recorded_at=at, rhu_code="RHU-PALO"
        ),
        outcome_observation(
            station_code="PH-LEY-0002", slip_code=code, outcome="benign", recorded_at=at, rhu_code="RHU-PALO"
        ),
    ]
    (folder / "week-10.ndjson").write_text("\n".join(json.dumps(o) for o in lines) + "\nnot json\n")
    assert press(client, "import") == (
        "Outcomes: 1 imported, 0 already here, 1 for other stations, 0 with unknown slip codes, 1 unreadable."
    )
    assert press(client, "import").startswith("Outcomes: 0 imported, 1 already here")
    outcome = records.latest_outcome(ids["refer"])
    assert (outcome.outcome, outcome.source) == ("melanoma", "rhu:RHU-PALO")


def test_the_panel_needs_the_pin_and_the_csrf_token(kiosk_app, records, media) -> None:
    fill(records)
    (media / "STICK").mkdir()
    locked = kiosk_app.test_client()
    r = locked.post("/settings/records/export-usb", data={"csrf_token": csrf_of(locked, "/")})
    assert r.status_code == 303 and r.headers["Location"].startswith("/pin")
    unlocked = kiosk_app.test_client()
    unlocked.post("/pin", data={"pin": PIN, "next": "/settings", "csrf_token": csrf_of(unlocked, "/pin")})
    assert unlocked.post("/settings/records/export-usb", data={}).status_code == 400
    assert not (media / "STICK" / "melanoma-kiosk").exists()


def test_every_message_has_draft_translations() -> None:
    from kiosk.reasons import REASONS

    codes = [c for c in REASONS if c.startswith(("export_", "usb_", "outcomes_"))]
    assert len(codes) == 12
    root = Path(__file__).resolve().parents[1] / "kiosk" / "web" / "translations"
    for lang in ("fil", "war"):
        po = (root / lang / "LC_MESSAGES" / "messages.po").read_text(encoding="utf-8")
        for code in codes:
            msgid = REASONS[code]
            quoted = 'msgid "' + msgid.replace('"', '\\"') + '"'
            assert quoted in po.replace('"\n"', ""), f"{lang}: {code}"
        for ui in ("Export to USB", "Import outcomes", "Records for the health unit"):
            assert f'msgid "{ui}"' in po, f"{lang}: {ui}"


def test_the_answer_is_in_the_page_language(client, records) -> None:
    fill(records)
    client.get("/settings?lang=fil")
    said = press(client, "export")
    assert said == "Walang nakitang USB stick. Isaksak ang stick, maghintay ng ilang segundo at subukang muli."
