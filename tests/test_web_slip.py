"""The referral slip for the receiving doctor and the patient: every field, its languages, its photo's access."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from html import unescape

import pytest
from PIL import Image

from kiosk.config import Settings, StationSettings
from kiosk.records import OUTCOMES, PatientInfo, RecordStore, codes
from kiosk.result import ScreeningResult
from kiosk.station import Station
from kiosk.synthetic import random_lesion
from kiosk.vision.loader import encode_jpeg
from kiosk.web import create_app
from kiosk.web.slip import qr_data_uri
from kiosk.web.thumbnails import SIZES
from tests.test_web import text_of, tr
from tests.web_conftest import FACILITY, FAST_RETRY, PIN, FakeClock, csrf_of, make_settings

LANGS = ("en", "fil", "war")
# 20:30 UTC on 30 March is 04:30 on 31 March in Manila: the slip's date is the station's.
SAVED_AT = datetime(2026, 3, 30, 20, 30, tzinfo=UTC)
FEATURES = {
    "asymmetry": 0.31,
    "border_irregularity": 2.05,
    "colour_count": 3,
    "colours": ["dark_brown", "blue_grey", "black"],
    "diameter_px": 410.0,
    "diameter_mm": 7.4,
}


def result(risk: str) -> ScreeningResult:
    return ScreeningResult(
        status="ok",
        malignant_probability=0.91 if risk == "refer" else 0.05,
        risk=risk,
        threshold=0.35,
        features=FEATURES,
        model_sha256="ab" * 32,
    )


@pytest.fixture()
def store(tmp_path):
    with RecordStore(tmp_path / "data", station_code="PH-LEY-0001", clock=lambda: SAVED_AT) as records:
        yield records


@pytest.fixture()
def slip_app(screener, rig, store, tmp_path):
    base = make_settings(tmp_path)
    settings = Settings(
        web=base.web,
        records=base.records,
        station=StationSettings(name="Barangay San Jose Health Station", code="PH-LEY-0001", time_zone="Asia/Manila"),
    )
    with Station(screener=screener, camera_factory=rig.factory, records=store, **FAST_RETRY) as station:
        yield create_app(settings=settings, station=station, testing=True, clock=FakeClock())


def pin_client(app):
    client = app.test_client()
    client.post("/pin", data={"csrf_token": csrf_of(client, "/pin"), "pin": PIN, "next": "/history"})
    return client


def saved(store, risk: str, *, site: str | None = "left-forearm") -> str:
    photo = encode_jpeg(random_lesion(5, width=640, height=480), quality=90)
    return store.save(result(risk), image_jpeg=photo, patient=PatientInfo(body_site=site, age_band="45-59"))


@pytest.mark.parametrize("lang", LANGS)
def test_a_referral_slip_has_every_field_for_the_doctor_and_the_patient(slip_app, store, lang):
    sid = saved(store, "refer")
    code = store.get(sid).code
    client = pin_client(slip_app)
    html = client.get(f"/screenings/{sid}/slip?paper=58&lang={lang}").get_data(as_text=True)
    assert text_of(html, "slip-station") == "Barangay San Jose Health Station (PH-LEY-0001)"
    assert text_of(html, "slip-date") == "2026-03-31 04:30"  # Asia/Manila, not UTC
    # Created on the 31st (local) + referral_within_days (14).
    assert 'data-date="2026-04-14"' in html
    assert text_of(html, "slip-see-by") == tr(lang, "See a doctor by %(date)s") % {"date": "2026-04-14"}
    assert FACILITY in html
    assert text_of(html, "slip-body-site") == tr(lang, "Left forearm")
    assert text_of(html, "slip-code") == codes.format_code(code)
    qr = re.search(r'data-testid="slip-qr" src="([^"]+)"', html).group(1)
    assert unescape(qr) == qr_data_uri(code)
    assert text_of(html, "slip-name") == ""  # a line to write on: the kiosk never stores names
    photo = re.search(r'data-testid="slip-photo" src="([^"]+)"', html).group(1)
    assert photo == f"/photos/{sid}/slip.jpg"
    versions = text_of(html, "slip-versions")
    assert re.search(r"\d+\.\d+", versions) and "abababababab" in versions
    for kind in OUTCOMES:
        assert f'data-testid="slip-outcome-{kind}"' in html
    assert html.count('class="tick"') == len(OUTCOMES)
    # The doctor's part also in English.
    doctor = text_of(html, "slip-doctor")
    for english in (
        "For the doctor",
        "Left forearm",
        "Across the widest part",
        "Biopsy: melanoma",
        "Refer to a doctor",
    ):
        assert english in doctor, english
        assert english == "Across the widest part" or tr(lang, english) in doctor  # scales: English only
    # No advice for the health worker on the patient's slip.
    assert tr(lang, "Print the referral slip and give it to the patient.") not in html
    assert tr(lang, "Refer the patient to %(facility)s within %(days)s days.").split("%")[0] not in html


def test_a_low_slip_has_no_see_by_date(slip_app, store):
    sid = saved(store, "low", site=None)
    html = pin_client(slip_app).get(f"/screenings/{sid}/slip").get_data(as_text=True)
    assert 'data-testid="slip-see-by"' not in html
    assert text_of(html, "slip-body-site") == "-"
    assert "No referral needed now." in html


def test_an_older_record_with_only_a_body_site_group_is_named(slip_app, store):
    sid = saved(store, "refer", site="palm_sole")
    html = pin_client(slip_app).get(f"/screenings/{sid}/slip?lang=fil").get_data(as_text=True)
    assert text_of(html, "slip-body-site") == tr("fil", "Palm or sole")


def test_the_slip_photo_is_access_checked_like_the_result(slip_app, store):
    sid = saved(store, "refer")
    owner = pin_client(slip_app)
    r = owner.get(f"/photos/{sid}/slip.jpg")
    assert r.status_code == 200 and r.mimetype == "image/jpeg"
    assert max(Image.open(io.BytesIO(r.data)).size) == SIZES["slip"]  # 640 px wide photo shrunk to the head's width
    assert r.headers["Cache-Control"] == "private, no-store"
    stranger = slip_app.test_client()
    assert stranger.get(f"/photos/{sid}/slip.jpg").status_code == 404
    assert stranger.get(f"/screenings/{sid}/slip").status_code == 404
    assert owner.get("/photos/20260330-203000-0000/slip.jpg").status_code == 404  # no such record


def test_the_session_that_took_the_screening_sees_its_photo_on_the_slip(slip_app):
    client = slip_app.test_client()
    r = client.post("/api/screenings", headers={"X-CSRF-Token": csrf_of(client)})
    sid = r.get_json()["id"]
    html = client.get(f"/screenings/{sid}/slip").get_data(as_text=True)
    assert client.get(f"/photos/{sid}/slip.jpg").status_code == 200
    assert 'data-testid="slip-photo"' in html and 'data-testid="slip-qr"' in html


def test_an_unsaved_result_prints_without_code_or_photo(screener, rig, tmp_path):
    with Station(screener=screener, camera_factory=rig.factory, records=None, **FAST_RETRY) as station:
        app = create_app(settings=make_settings(tmp_path), station=station, testing=True)
        client = app.test_client()
        client.post("/api/screenings", headers={"X-CSRF-Token": csrf_of(client)})
        r = client.get("/screenings/last/slip")
        assert r.status_code == 200  # the rig's drawn lesion is always screened, never a retake
        html = r.get_data(as_text=True)
        assert 'data-testid="slip-code"' not in html and 'data-testid="slip-photo"' not in html
        assert text_of(html, "slip-station") == "-"
