"""The web app through Flask's test client: API contract, CSRF, errors, pages in three languages, PIN."""

from __future__ import annotations

import io
import re
import threading

import cv2
import pytest

from kiosk.synthetic import draw_skin, random_lesion
from kiosk.web import MAX_UPLOAD_BYTES, create_app
from tests.web_conftest import (
    FACILITY,
    FAST_RETRY,
    PIN,
    csrf_of,
    make_settings,
    pin_hash,
    text_of,
    tr,
    wait_until,
)

SCREEN_KEYS = {
    "image",
    "status",
    "reason",
    "malignant_probability",
    "risk",
    "threshold",
    "features",
    "model_sha256",
    "timings_ms",
}
API_KEYS = SCREEN_KEYS | {"id", "reason_message"}
LANGS = ("en", "fil", "war")


def png(image) -> bytes:
    ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    assert ok
    return data.tobytes()


def post_screening(client, token, **kwargs):
    return client.post("/api/screenings", headers={"X-CSRF-Token": token}, **kwargs)


def upload(client, token, data: bytes, name="lesion.png", query=""):
    return client.post(
        f"/api/screenings{query}",
        headers={"X-CSRF-Token": token},
        data={"image": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
    )


# --- health ---------------------------------------------------------------------------------------


def test_healthz_ok(client, station):
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.get_json() == {"status": "ok", "model_sha256": station.model_sha256, "camera": "ok", "storage": "ok"}


def test_healthz_503_while_the_camera_reconnects_then_recovers(screener, rig, tmp_path):
    from kiosk.station import Station

    rig.fail_open = True
    with Station(screener=screener, camera_factory=rig.factory, records=None, **FAST_RETRY) as st:
        client = create_app(settings=make_settings(tmp_path), station=st, testing=True).test_client()
        r = client.get("/healthz")
        assert r.status_code == 503
        body = r.get_json()
        assert body["status"] == "error" and body["reason"] == "camera_unavailable"
        assert body["camera"] == "reconnecting: fake camera unplugged"
        token = csrf_of(client)
        r = post_screening(client, token)
        assert r.status_code == 503 and r.get_json()["reason"] == "camera_unavailable"
        assert "fake camera unplugged" in r.get_json()["message"]
        rig.fail_open = False
        assert wait_until(lambda: client.get("/healthz").status_code == 200)


# --- screenings -------------------------------------------------------------------------------------


def test_capture_gives_201_with_every_key_and_a_retrievable_id(client, rig, station):
    token = csrf_of(client)
    r = post_screening(client, token)
    assert r.status_code == 201, r.get_data(as_text=True)
    body = r.get_json()
    assert set(body) == API_KEYS | {"saved"} and body["saved"] is True  # "saved": only in the answer to a POST
    # The rig's first photo (random_lesion seed 5) through the tiny model, exactly.
    assert (body["image"], body["status"], body["malignant_probability"], body["risk"]) == (
        "camera",
        "ok",
        0.4414,
        "low",
    )
    assert body["model_sha256"] == station.model_sha256 and rig.captures == 1
    assert r.headers["Location"] == f"/api/screenings/{body['id']}"
    got = client.get(f"/api/screenings/{body['id']}")
    assert got.status_code == 200
    stored = got.get_json()
    assert set(stored) == API_KEYS
    for key in ("status", "reason", "malignant_probability", "risk", "threshold", "features", "id"):
        assert stored[key] == body[key]
    state = client.get("/api/state").get_json()
    assert state["last"] == {"seq": 1, "status": body["status"]} and state["busy"] is False  # no id: see .access
    assert state["notice"] is None
    station.set_notice("power_hold")  # what the held GPIO button does (tests/test_daemon.py)
    assert client.get("/api/state").get_json()["notice"] == "power_hold"
    with pytest.raises(ValueError, match="unknown notice"):
        station.set_notice("reboot")  # type: ignore[arg-type]


def test_capture_with_patient_details(client, records):
    token = csrf_of(client)
    r = post_screening(client, token, data={"age": "54", "sex": "female", "body_site": "trunk"})
    assert r.status_code == 201
    assert records.get(r.get_json()["id"]).patient.age == 54
    bad = post_screening(client, token, data={"age": "200"})
    assert bad.status_code == 400 and bad.get_json()["reason"] == "invalid_patient"


def test_upload_of_a_drawn_lesion(client, rig):
    token = csrf_of(client)
    r = upload(client, token, png(random_lesion(5, width=640, height=480)), name="spot.png")
    assert r.status_code == 201
    body = r.get_json()
    assert set(body) == API_KEYS | {"saved"}
    assert (body["image"], body["status"], body["malignant_probability"], body["risk"]) == (
        "spot.png",
        "ok",
        0.4414,
        "low",
    )
    assert body["reason_message"] is None
    assert rig.captures == 0  # the upload, not the camera
    assert client.get(f"/api/screenings/{body['id']}").status_code == 200


def test_upload_of_blank_skin_is_a_translated_retake(client):
    token = csrf_of(client)
    r = upload(client, token, png(draw_skin(seed=3)), query="?lang=war")  # seed 2 is "unclear" (refer)
    assert r.status_code == 201
    body = r.get_json()
    assert body["status"] == "retake" and body["reason"] == "no_lesion"
    from kiosk.reasons import REASONS

    assert body["reason_message"] == tr("war", REASONS["no_lesion"]) != REASONS["no_lesion"]


def test_upload_of_junk_is_a_json_4xx_with_its_reason(client):
    token = csrf_of(client)
    r = upload(client, token, b"MZ\x90\x00 definitely not a photo", name="virus.exe")
    assert 400 <= r.status_code < 500
    body = r.get_json()
    assert body["status"] == "error" and body["reason"] == "not_an_image" and body["message"]
    empty = upload(client, token, b"", name="empty.jpg")
    assert empty.status_code == 400 and empty.get_json()["reason"] == "empty_file"


def test_oversize_upload_is_413_json(app, client):
    assert app.config["MAX_CONTENT_LENGTH"] == MAX_UPLOAD_BYTES == 20 * 2**20
    app.config["MAX_CONTENT_LENGTH"] = 4096  # the same check, without building 20 MB in a test
    token = csrf_of(client)
    r = upload(client, token, b"\xff\xd8\xff" + b"\0" * 10_000)
    assert r.status_code == 413
    assert r.get_json()["status"] == "error" and r.get_json()["reason"] == "upload_too_large"
    assert r.mimetype == "application/json"


def test_missing_or_wrong_csrf_token_is_refused(client, rig):
    csrf_of(client)  # the session has a token, the request does not send it
    for headers in ({}, {"X-CSRF-Token": "forged"}):
        r = client.post("/api/screenings", headers=headers)
        assert r.status_code in (400, 403)
        assert r.get_json()["reason"] == "csrf_failed"
    fresh = client.application.test_client()  # no session at all
    assert fresh.post("/api/screenings").status_code in (400, 403)
    assert client.post("/screen", data={}).status_code in (400, 403)
    assert rig.captures == 0


def test_two_concurrent_posts_give_one_capture(app, rig, records):
    rig.hold_capture = threading.Event()
    clients = [app.test_client() for _ in range(2)]
    tokens = [csrf_of(c) for c in clients]
    answers = [None, None]

    def tap(i):
        answers[i] = post_screening(clients[i], tokens[i])

    threads = [threading.Thread(target=tap, args=(i,)) for i in range(2)]
    threads[0].start()
    assert rig.capture_entered.wait(10)
    threads[1].start()
    station = app.extensions["kiosk"].station
    assert wait_until(lambda: station.pending_requests == 2)
    rig.hold_capture.set()
    for t in threads:
        t.join(20)
    assert [a.status_code for a in answers] == [201, 201]
    assert answers[0].get_json()["id"] == answers[1].get_json()["id"]
    assert rig.captures == 1 and records.count() == 1


def test_unknown_screening_is_404_json(client):
    for sid in ("20250101-000000-zzzz", "../../etc/passwd", "last"):
        r = client.get(f"/api/screenings/{sid}")
        assert r.status_code == 404 and r.get_json()["reason"] == "not_found"


def test_api_errors_are_json_never_html(client, station, monkeypatch):
    token = csrf_of(client)
    r = client.get("/api/nothing-here")
    assert r.status_code == 404 and r.get_json()["reason"] == "not_found"
    r = client.delete("/api/screenings", headers={"X-CSRF-Token": token})
    assert r.status_code == 405 and r.get_json()["reason"] == "method_not_allowed"
    r = client.get("/api/screenings?limit=lots")
    assert r.status_code == 403  # the PIN comes first

    def boom(**kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(station, "capture_and_screen", boom)
    r = post_screening(client, token)
    assert r.status_code == 500
    assert r.get_json() == {"status": "error", "reason": "internal_error", "message": r.get_json()["message"]}
    assert "Traceback" not in r.get_data(as_text=True) and "a bug" not in r.get_data(as_text=True)


def test_mjpeg_stream_yields_jpeg_parts(client):
    r = client.get("/stream.mjpg", buffered=False)
    assert r.status_code == 200
    assert r.mimetype == "multipart/x-mixed-replace" and r.mimetype_params["boundary"] == "frame"
    data = b""
    chunks = iter(r.response)
    while data.count(b"--frame\r\n") < 3 and len(data) < 2_000_000:  # bounded: at most ~2 MB
        data += next(chunks)
    r.close()
    parts = data.split(b"--frame\r\n")[1:3]
    assert len(parts) == 2
    for part in parts:
        head, _, body = part.partition(b"\r\n\r\n")
        assert b"Content-Type: image/jpeg" in head
        length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
        assert body[:2] == b"\xff\xd8" and body[length - 2 : length] == b"\xff\xd9"


# --- pages ---------------------------------------------------------------------------------------------

BASE_IDS = ("language-switch", "language-option-en", "language-option-fil", "language-option-war", "home-link")


@pytest.mark.parametrize("lang", LANGS)
def test_pages_render_in_each_language(client, lang):
    home = client.get(f"/?lang={lang}").get_data(as_text=True)
    assert f'<html lang="{lang}">' in home
    disclaimer = text_of(home, "disclaimer")
    assert tr(lang, "A referral aid, not a diagnosis.") in disclaimer
    assert tr(lang, "It has not been validated on darker skin types, including most Filipino skin.") in disclaimer
    for testid in (*BASE_IDS, "disclaimer", "start-button", "camera-status", "history-link", "settings-link"):
        assert f'data-testid="{testid}"' in home, testid
    screen = client.get("/screen").get_data(as_text=True)  # no ?lang: the session remembers it
    assert f'<html lang="{lang}">' in screen
    for testid in (*BASE_IDS, "capture-button", "preview", "framing-guide", "camera-status", "busy-overlay"):
        assert f'data-testid="{testid}"' in screen, testid
    assert tr(lang, "Capture") in text_of(screen, "capture-button")
    assert '<img class="preview" data-testid="preview" data-preview src="/stream.mjpg"' in screen


def test_the_disclaimer_differs_per_language(client):
    texts = {lang: text_of(client.get(f"/?lang={lang}").get_data(as_text=True), "disclaimer") for lang in LANGS}
    assert len(set(texts.values())) == 3
    assert "not a diagnosis" in texts["en"]


def test_language_links_keep_the_page_and_its_query(client):
    html = client.get("/screenings/x/slip?paper=58").get_data(as_text=True)  # a 404 page still switches
    assert 'href="/screenings/x/slip?paper=58&amp;lang=war"' in html


def screening_id(client, image) -> str:
    r = upload(client, csrf_of(client), png(image))
    assert r.status_code == 201
    return r.get_json()["id"]


@pytest.mark.parametrize("lang", LANGS)
def test_result_page(client, lang):
    sid = screening_id(client, random_lesion(5, width=640, height=480))
    html = client.get(f"/screenings/{sid}?lang={lang}").get_data(as_text=True)
    for testid in (
        *BASE_IDS,
        "result-risk",
        "result-probability",
        "result-features",
        "next-steps",
        "disclaimer",
        "slip-link",
        "new-screening",
    ):
        assert f'data-testid="{testid}"' in html, testid
    body = client.get(f"/api/screenings/{sid}").get_json()
    risk = text_of(html, "result-risk")
    words = tr(lang, "Refer to a doctor" if body["risk"] == "refer" else "Low risk")
    assert words in risk and ("\u26a0" in risk or "\u25cf" in risk)  # words and an icon, not colour alone
    # A model score, worded as one: never a percentage that reads as a chance of cancer.
    score = text_of(html, "result-probability")
    assert f"{body['malignant_probability']:.2f}" in score and "%" not in score
    assert score == tr(lang, "Model score %(score)s (not a chance of cancer). Refer at or above %(threshold)s.") % {
        "score": f"{body['malignant_probability']:.2f}",
        "threshold": f"{body['threshold']:.2f}",
    }
    assert tr(lang, "Asymmetry") in html and tr(lang, "Border") in html
    steps = html[html.index('data-testid="next-steps"') :]
    if body["risk"] == "refer":
        assert FACILITY in steps and "14" in steps
    else:
        assert (
            tr(
                lang,
                "No referral needed now. Come back if the spot changes in size, shape or colour, bleeds or itches.",
            )
            in steps
        )


@pytest.mark.parametrize("lang", LANGS)
def test_without_a_configured_facility_the_default_is_in_the_page_language(tmp_path, station, records, clock, lang):
    from kiosk.config import RecordsSettings, Settings, WebSettings
    from kiosk.result import ScreeningResult

    settings = Settings(
        web=WebSettings(pin=pin_hash(PIN), referral_within_days=14), records=RecordsSettings(data_dir=tmp_path / "data")
    )
    test_app = create_app(settings=settings, station=station, testing=True, clock=clock)
    sid = records.save(
        ScreeningResult(
            status="ok", malignant_probability=0.9, risk="refer", threshold=0.35, features={}, model_sha256="ab" * 32
        )
    )
    default = tr(lang, "the nearest rural health unit or provincial hospital dermatology clinic")
    assert lang == "en" or default != "the nearest rural health unit or provincial hospital dermatology clinic"
    with test_app.test_client() as client:
        enter_pin(client, PIN)  # a record this session did not take: only a PIN session may read it
        for path in (f"/screenings/{sid}?lang={lang}", f"/screenings/{sid}/slip?paper=58&lang={lang}"):
            html = client.get(path).get_data(as_text=True)
            if "/slip" not in path:  # the slip has no advice for the health worker (tests/test_web_slip.py)
                steps = text_of(html, "next-steps")
                assert tr(lang, "Refer the patient to a doctor within %(days)s days.") % {"days": 14} in steps
            # The facility on its own line after its label: no sentence depends on its article ("sa ang").
            assert text_of(html, "referral-facility") == f"{tr(lang, 'Referral facility:')} {default}"


@pytest.mark.parametrize("lang", LANGS)
def test_a_refer_result_names_the_facility_the_days_and_the_features(client, records, lang):
    from kiosk.result import ScreeningResult

    # A stored record, as the station saved it: this tests how a "refer" is shown, not the model.
    features = {
        "asymmetry": 0.31,
        "border_irregularity": 2.05,
        "colour_count": 3,
        "colours": ["dark_brown", "blue_grey", "black"],
        "diameter_px": 410.0,
        "diameter_mm": 7.4,
    }
    sid = records.save(
        ScreeningResult(
            status="ok",
            malignant_probability=0.912,
            risk="refer",
            threshold=0.35,
            features=features,
            model_sha256="ab" * 32,
        )
    )
    enter_pin(client, PIN)  # a record this session did not take: only a PIN session may read it
    for path in (f"/screenings/{sid}?lang={lang}", f"/screenings/{sid}/slip?paper=58&lang={lang}"):
        html = client.get(path).get_data(as_text=True)
        risk = text_of(html, "result-risk")
        assert "\u26a0" in risk and tr(lang, "Refer to a doctor") in risk
        score = text_of(html, "result-probability")
        assert "0.91" in score and "0.35" in score and "%" not in score
        if "/slip" in path:  # the slip tells the patient by when (tests/test_web_slip.py), not the worker
            assert 'data-testid="slip-see-by"' in html and 'data-testid="next-steps"' not in html
        else:
            steps = text_of(html, "next-steps")
            assert tr(lang, "Refer the patient to a doctor within %(days)s days.") % {"days": 14} in steps
        assert text_of(html, "referral-facility") == f"{tr(lang, 'Referral facility:')} {FACILITY}"
        shown = text_of(html, "result-features")
        for value in ("0.31", "2.05", "7.4 mm"):
            assert value in shown, value
        for msgid in ("dark brown", "blue-grey"):
            assert tr(lang, msgid) in shown, msgid
        # The slip's doctor's part gives the scales in English only (they would not fit a roll twice).
        for msgid in ("(larger than 6 mm)", "Across the widest part"):
            assert (msgid if "/slip" in path else tr(lang, msgid)) in shown, msgid
        # Measured statements only, and with "refer" a line that they do not override it.
        assert text_of(html, "features-note") == tr(lang, "These measurements do not override the referral.")


@pytest.mark.parametrize("lang", LANGS)
def test_an_unclear_lesion_is_a_referral_that_says_why(client, records, lang):
    """A score under the threshold with weak lesion evidence: "Refer", and the page says the photo was unclear."""
    from kiosk.reasons import REASONS
    from kiosk.result import ScreeningResult

    sid = records.save(
        ScreeningResult(
            status="ok",
            reason="lesion_unclear",
            malignant_probability=0.03,
            risk="refer",
            threshold=0.1367,
            features={},
            model_sha256="ab" * 32,
        )
    )
    enter_pin(client, PIN)
    html = client.get(f"/screenings/{sid}?lang={lang}").get_data(as_text=True)
    risk = text_of(html, "result-risk")
    assert "\u26a0" in risk and tr(lang, "Refer to a doctor") in risk and tr(lang, "Low risk") not in html
    assert text_of(html, "result-reason") == tr(lang, REASONS["lesion_unclear"])
    assert 'data-reason="lesion_unclear"' in html
    assert "14" in text_of(html, "next-steps")  # the referral step, with its days
    assert lang == "en" or tr(lang, REASONS["lesion_unclear"]) != REASONS["lesion_unclear"]  # translated


def test_a_plain_result_shows_no_reason_line(client, records):
    from kiosk.result import ScreeningResult

    sid = records.save(
        ScreeningResult(
            status="ok", malignant_probability=0.02, risk="low", threshold=0.1367, features={}, model_sha256="ab" * 32
        )
    )
    enter_pin(client, PIN)
    assert 'data-testid="result-reason"' not in client.get(f"/screenings/{sid}").get_data(as_text=True)


@pytest.mark.parametrize("lang", LANGS)
def test_retake_page_shows_the_specific_translated_reason(client, lang):
    from kiosk.reasons import REASONS

    sid = screening_id(client, draw_skin(seed=3))
    html = client.get(f"/screenings/{sid}?lang={lang}").get_data(as_text=True)
    assert text_of(html, "retake-reason") == tr(lang, REASONS["no_lesion"])
    assert 'data-testid="retake-button"' in html and 'data-testid="result-risk"' not in html


def test_capture_without_javascript_redirects_to_the_result(client, rig):
    token = csrf_of(client, "/screen")
    r = client.post("/screen", data={"csrf_token": token})
    assert r.status_code == 303 and rig.captures == 1
    page = client.get(r.headers["Location"])
    assert page.status_code == 200
    assert 'data-testid="result-risk"' in page.get_data(as_text=True) or 'data-testid="retake-reason"' in page.get_data(
        as_text=True
    )


def test_unsaved_results_are_shown_as_last(screener, rig, tmp_path):
    from kiosk.station import Station

    with Station(screener=screener, camera_factory=rig.factory, records=None, **FAST_RETRY) as st:
        client = create_app(settings=make_settings(tmp_path), station=st, testing=True).test_client()
        assert client.get("/screenings/last").status_code == 404
        r = post_screening(client, csrf_of(client))
        # Shown, but not acknowledged as saved: there are no records to save it in.
        assert r.status_code == 200 and r.get_json()["id"] is None and r.get_json()["saved"] is False
        assert client.get("/screenings/last").status_code == 200


@pytest.mark.parametrize("paper", ["58", "80", "a6"])
def test_slip_for_each_paper_size(client, paper):
    sid = screening_id(client, random_lesion(5, width=640, height=480))
    html = client.get(f"/screenings/{sid}/slip?paper={paper}&lang=fil").get_data(as_text=True)
    assert f'class="slip-page paper-{paper}"' in html and f'data-paper="{paper}"' in html
    for testid in (
        "print-button",
        "slip",
        "slip-date",
        "slip-id",
        "result-risk",
        "result-probability",
        "result-features",
        "slip-station",
        "slip-body-site",
        "slip-code",
        "slip-qr",
        "slip-photo",
        "slip-name",
        "slip-versions",
        "slip-return",
        "disclaimer",
        "paper-option-58",
        "paper-option-80",
        "paper-option-a6",
        "language-switch",
    ):
        assert f'data-testid="{testid}"' in html, testid
    assert text_of(html, "slip-id") == sid
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", text_of(html, "slip-date"))
    assert tr("fil", "A referral aid, not a diagnosis.") in html
    assert html.count('data-testid="disclaimer"') == 1
    # The slip is for the patient and the doctor: no advice meant for the health worker.
    assert 'data-testid="next-steps"' not in html
    assert tr("fil", "Print the referral slip and give it to the patient.") not in html


def test_slip_with_an_unknown_paper_uses_80mm_and_retakes_have_none(client):
    sid = screening_id(client, random_lesion(5, width=640, height=480))
    assert "paper-80" in client.get(f"/screenings/{sid}/slip?paper=legal").get_data(as_text=True)
    retake = screening_id(client, draw_skin(seed=3))
    r = client.get(f"/screenings/{retake}/slip")
    assert r.status_code == 303 and r.headers["Location"].endswith(f"/screenings/{retake}")


def test_unknown_page_is_a_friendly_translated_404(client):
    r = client.get("/nowhere?lang=fil")
    assert r.status_code == 404 and r.mimetype == "text/html"
    assert tr("fil", "Not found. The screening or page does not exist.") in r.get_data(as_text=True)


# --- PIN -------------------------------------------------------------------------------------------------


def enter_pin(client, pin, *, next_page="/history"):
    return client.post("/pin", data={"pin": pin, "next": next_page, "csrf_token": csrf_of(client, "/pin")})


def test_history_and_settings_need_the_pin(client):
    for page in ("/history", "/settings"):
        r = client.get(page)
        assert r.status_code == 303 and r.headers["Location"].startswith("/pin?next=")
    assert client.get("/api/screenings").get_json()["reason"] == "pin_required"
    pad = client.get("/pin").get_data(as_text=True)
    for testid in ("pin-display", "pin-clear", "pin-submit", *(f"pin-digit-{d}" for d in range(10))):
        assert f'data-testid="{testid}"' in pad, testid
    inputs = re.findall(r"<input[^>]*>", pad)
    assert inputs and all('type="hidden"' in tag for tag in inputs)  # nothing to type into: digits are buttons


def test_right_pin_unlocks_history_settings_and_the_list(client):
    sid = screening_id(client, random_lesion(5, width=640, height=480))
    r = enter_pin(client, PIN, next_page="/history")
    assert r.status_code == 303 and r.headers["Location"] == "/history"
    html = client.get("/history").get_data(as_text=True)
    assert 'data-testid="history-list"' in html and f'data-id="{sid}"' in html and 'data-testid="lock-button"' in html
    settings_html = client.get("/settings").get_data(as_text=True)
    assert FACILITY in text_of(settings_html, "settings-referral-facility")
    assert "rig" in text_of(settings_html, "settings-camera")
    assert "tiny" in text_of(settings_html, "settings-model")
    listing = client.get("/api/screenings").get_json()
    assert listing["count"] == 1 and listing["screenings"][0]["id"] == sid
    assert set(listing["screenings"][0]) == API_KEYS | {"created_at"}
    r = client.post("/pin/lock", data={"csrf_token": csrf_of(client)})
    assert r.status_code == 303 and client.get("/history").status_code == 303


def test_five_wrong_pins_lock_everyone_out_for_five_minutes(client, app, clock):
    wrong = tr("en", "Wrong PIN. %(left)s tries left before a 5-minute lock.")
    for attempt in range(4):
        r = enter_pin(client, "0000")
        assert r.status_code == 200  # the pad again, with the reason
        assert text_of(r.get_data(as_text=True), "pin-message") == wrong % {"left": 4 - attempt}
    locked = tr("en", "Too many wrong PINs. Try again in %(minutes)s minutes.")
    r = enter_pin(client, "1111")
    assert text_of(r.get_data(as_text=True), "pin-message") == locked % {"minutes": 5}

    def refused(c) -> bool:
        r = enter_pin(c, PIN)
        return (
            r.status_code == 200
            and 'data-testid="pin-message"' in r.get_data(as_text=True)
            and c.get("/history").status_code == 303
        )

    assert refused(client)  # locked: even the right PIN is refused
    assert refused(app.test_client())  # a fresh browser session is locked out too
    assert text_of(client.get("/pin").get_data(as_text=True), "pin-message") == locked % {"minutes": 5}
    clock.advance(299)
    assert refused(client)
    assert text_of(client.get("/pin").get_data(as_text=True), "pin-message") == locked % {"minutes": 1}
    clock.advance(2)
    r = enter_pin(client, PIN)
    assert r.status_code == 303 and client.get("/history").status_code == 200


def test_pin_session_expires(client, clock):
    assert enter_pin(client, PIN).status_code == 303
    clock.advance(601)
    assert client.get("/history").status_code == 303


def test_pin_redirect_stays_on_the_kiosk(client):
    r = enter_pin(client, PIN, next_page="//evil.example/steal")
    assert r.headers["Location"] == "/history"


def test_history_says_a_pin_must_be_configured(screener, rig, tmp_path):
    from kiosk.station import Station

    with Station(screener=screener, camera_factory=rig.factory, records=None, **FAST_RETRY) as st:
        client = create_app(settings=make_settings(tmp_path, pin=None), station=st, testing=True).test_client()
        for page in ("/history", "/settings", "/pin"):
            html = client.get(page).get_data(as_text=True)
            assert 'data-testid="pin-not-configured"' in html and 'data-testid="history-list"' not in html
        r = client.get("/api/screenings")
        assert r.status_code == 403 and r.get_json()["reason"] == "pin_not_configured"
        r = client.post("/pin", data={"pin": "2580", "next": "/history", "csrf_token": csrf_of(client)})
        assert 'data-testid="pin-not-configured"' in r.get_data(as_text=True)
        assert client.get("/history").status_code == 200 and "history-row" not in client.get("/history").get_data(
            as_text=True
        )


# --- assets ---------------------------------------------------------------------------------------------


def test_assets_are_local_and_served(client):
    for path, mimetype in (
        ("/static/kiosk.css", "text/css"),
        ("/static/kiosk.js", "text/javascript"),
        ("/favicon.ico", "image/x-icon"),
        ("/static/favicon.ico", "image/vnd.microsoft.icon"),
    ):
        r = client.get(path)
        assert r.status_code == 200, path
        assert r.mimetype in (mimetype, "application/javascript", "image/x-icon"), (path, r.mimetype)
        r.close()
    html = client.get("/").get_data(as_text=True)
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing from the network
    assert "default-src 'self'" in client.get("/").headers["Content-Security-Policy"]
    assert "<script>" not in html and " style=" not in html and " onclick=" not in html  # CSP-safe
