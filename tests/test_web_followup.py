"""Returning patients on the page: the code keypad, rate-limited lookups, the same spot again, the comparison,
History's code search and thumbnails, and who may read which photo."""

from __future__ import annotations

import io
import math
import re
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
import segno
from PIL import Image

from kiosk.camera import Camera
from kiosk.config import Settings, StationSettings
from kiosk.records import RecordStore, codes
from kiosk.station import Station
from kiosk.synthetic import draw_lesion, draw_skin
from kiosk.web import create_app
from kiosk.web.followup import LIMITER
from kiosk.web.lookups import CodeLookupLimiter
from kiosk.web.thumbnails import SIZES
from tests.test_web import text_of, tr
from tests.web_conftest import FAST_RETRY, PIN, FakeClock, csrf_of, make_settings

LANGS = ("en", "fil", "war")
EARLIER = {"seed": 4, "radius": 0.2}
GROWN = {"seed": 4, "radius": 0.2 * math.sqrt(1.3)}  # 30% more area
SAME_AGAIN = {"seed": 4, "radius": 0.2, "noise": 5.0, "brightness": 1.04, "centre": (0.52, 0.49)}


class ScriptedCamera(Camera):
    """Each still is the next picture of ``script`` (the last one again when it runs out)."""

    name = "scripted"

    def __init__(self, script: list[np.ndarray]) -> None:
        self.script = script
        self.taken = 0
        self._closed = threading.Event()

    def capture(self) -> np.ndarray:
        picture = self.script[min(self.taken, len(self.script) - 1)]
        self.taken += 1
        return picture

    def frames(self) -> Iterator[np.ndarray]:
        while not self._closed.is_set():
            yield self.script[0][::4, ::4]
            time.sleep(0.02)

    def close(self) -> None:
        self._closed.set()


@pytest.fixture()
def script() -> list[np.ndarray]:
    return [draw_lesion(**EARLIER)]


@pytest.fixture()
def kiosk_app(screener, script, tmp_path):
    settings = make_settings(tmp_path)
    settings = Settings(
        web=settings.web,
        records=settings.records,
        station=StationSettings(name="Barangay San Jose Health Station", code="PH-LEY-0001"),
    )
    camera = ScriptedCamera(script)
    with RecordStore(tmp_path / "data", station_code="PH-LEY-0001") as store:
        with Station(screener=screener, camera_factory=lambda: camera, records=store, **FAST_RETRY) as station:
            app = create_app(settings=settings, station=station, testing=True, clock=FakeClock())
            app.extensions["test_camera"] = camera
            yield app


def capture(client) -> str:
    """A screening taken by this client's session (a plain capture), its id."""
    r = client.post("/api/screenings", headers={"X-CSRF-Token": csrf_of(client)})
    assert r.status_code == 201, r.get_json()
    return r.get_json()["id"]


def records_of(app) -> RecordStore:
    return app.extensions["kiosk"].records


def enter_code(client, code: str):
    return client.post("/followup", data={"csrf_token": csrf_of(client, "/followup"), "code": code})


def enter_pin(client):
    return client.post("/pin", data={"csrf_token": csrf_of(client, "/pin"), "pin": PIN, "next": "/history"})


def wrong_check_digit(code: str) -> str:
    return code[:-1] + str((int(code[-1]) + 1) % 10)


# --- the keypad and the lookup ---------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_home_offers_the_returning_patient_and_its_keypad(kiosk_app, lang):
    client = kiosk_app.test_client()
    home = client.get(f"/?lang={lang}").get_data(as_text=True)
    assert 'data-testid="followup-button"' in home and 'href="/followup"' in home
    page = client.get("/followup").get_data(as_text=True)
    for testid in [f"code-key-{d}" for d in range(10)] + ["code-key-delete", "code-submit", "code-display"]:
        assert f'data-testid="{testid}"' in page, testid
    assert tr(lang, "Returning patient") in page


def test_a_right_code_opens_the_earlier_screening_for_this_session_only(kiosk_app):
    patient_session = kiosk_app.test_client()
    sid = capture(patient_session)
    code = records_of(kiosk_app).get(sid).code
    returning = kiosk_app.test_client()  # another day, another browser session: only the slip in hand
    assert returning.get(f"/followup/{sid}").status_code == 404
    r = enter_code(returning, codes.format_code(code))
    assert r.status_code == 303 and r.headers["Location"].endswith(f"/followup/{sid}")
    page = returning.get(f"/followup/{sid}").get_data(as_text=True)
    assert 'data-testid="followup-capture-button"' in page and codes.format_code(code) in page
    assert returning.get(f"/photos/{sid}/thumb.jpg").status_code == 200
    stranger = kiosk_app.test_client()
    assert stranger.get(f"/followup/{sid}").status_code == 404
    assert stranger.get(f"/photos/{sid}/thumb.jpg").status_code == 404
    r = stranger.post(f"/followup/{sid}", data={"csrf_token": csrf_of(stranger)})
    assert r.status_code == 404


@pytest.mark.parametrize("lang", LANGS)
def test_a_mistyped_code_is_one_translated_line_and_never_another_patients_record(kiosk_app, lang):
    client = kiosk_app.test_client()
    sid = capture(client)
    code = records_of(kiosk_app).get(sid).code
    other = kiosk_app.test_client()
    other.get(f"/?lang={lang}")
    for typed in (wrong_check_digit(code), code[1] + code[0] + code[2:], code[:5]):
        if typed == code:
            continue
        r = enter_code(other, typed)
        html = r.get_data(as_text=True)
        assert r.status_code == 200 and sid not in html
        assert text_of(html, "code-message") == tr(
            lang, "This is not a slip code. Check the 9 digits on the slip and try again."
        )


def test_an_unknown_code_says_so(kiosk_app):
    client = kiosk_app.test_client()
    unknown = codes.new_code(random_digits=lambda n: "12345678")
    html = enter_code(client, unknown).get_data(as_text=True)
    assert text_of(html, "code-message") == "No screening on this kiosk has this code. Check the digits on the slip."


def test_three_wrong_codes_pause_the_session_even_for_the_right_code(kiosk_app):
    clock = FakeClock()
    kiosk_app.extensions[LIMITER] = CodeLookupLimiter(tries=3, pause=60, kiosk_tries=20, clock=clock)
    client = kiosk_app.test_client()
    sid = capture(client)
    code = records_of(kiosk_app).get(sid).code
    guesser = kiosk_app.test_client()
    for _ in range(3):
        enter_code(guesser, wrong_check_digit(code))
    r = enter_code(guesser, code)
    assert r.status_code == 200
    assert text_of(r.get_data(as_text=True), "code-message") == "Too many wrong codes. Wait 60 seconds, then try again."
    clock.advance(61)
    r = enter_code(guesser, code)
    assert r.status_code == 303


def test_throwing_the_cookie_away_meets_the_kiosk_wide_limit(kiosk_app):
    clock = FakeClock()
    kiosk_app.extensions[LIMITER] = CodeLookupLimiter(tries=3, pause=60, kiosk_tries=5, clock=clock)
    client = kiosk_app.test_client()
    sid = capture(client)
    code = records_of(kiosk_app).get(sid).code
    for _ in range(5):
        enter_code(kiosk_app.test_client(), wrong_check_digit(code))  # a fresh session for every guess
    r = enter_code(kiosk_app.test_client(), code)
    assert "Too many wrong codes" in text_of(r.get_data(as_text=True), "code-message")
    clock.advance(61)
    assert enter_code(kiosk_app.test_client(), code).status_code == 303


def test_the_slips_qr_code_read_through_the_camera_finds_the_screening(kiosk_app, script):
    client = kiosk_app.test_client()
    sid = capture(client)
    code = records_of(kiosk_app).get(sid).code
    out = io.BytesIO()
    segno.make(code, error="m", micro=False).save(out, kind="png", scale=8, border=4)
    qr = np.array(Image.open(out).convert("RGB"))
    frame = draw_skin(seed=2, width=640, height=480).copy()
    frame[80 : 80 + qr.shape[0], 200 : 200 + qr.shape[1]] = qr  # the slip held in front of the lens
    script.append(frame)
    returning = kiosk_app.test_client()
    r = returning.post("/followup/scan", data={"csrf_token": csrf_of(returning, "/followup")})
    assert r.status_code == 303 and r.headers["Location"].endswith(f"/followup/{sid}")
    # No QR code in the picture: one line, no lookup.
    script.append(draw_skin(seed=5))
    html = returning.post("/followup/scan", data={"csrf_token": csrf_of(returning, "/followup")}).get_data(as_text=True)
    assert "No slip code was found in the camera picture" in text_of(html, "code-message")


# --- the same spot again -------------------------------------------------------------------


def follow_up(app, script, again: dict) -> tuple[str, str, object]:
    """A first screening, then the same patient back with its code and a photo drawn with ``again``."""
    first = app.test_client()
    token = csrf_of(first)
    r = first.post("/api/screenings", headers={"X-CSRF-Token": token}, json={"patient": {"body_site": "left-forearm"}})
    earlier = r.get_json()["id"]
    script.append(draw_lesion(**again))
    returning = app.test_client()
    enter_code(returning, records_of(app).get(earlier).code)
    r = returning.post(f"/followup/{earlier}", data={"csrf_token": csrf_of(returning, f"/followup/{earlier}")})
    assert r.status_code == 303, r.get_data(as_text=True)
    match = re.search(r"/followup/([^/]+)/compare$", r.headers["Location"])
    assert match
    return earlier, match.group(1), returning


@pytest.mark.parametrize("lang", LANGS)
def test_a_spot_30_percent_larger_refers_and_the_page_says_why(kiosk_app, script, lang):
    earlier, now, client = follow_up(kiosk_app, script, GROWN)
    stored = records_of(kiosk_app).get(now)
    assert stored.followup_of == earlier
    assert stored.followup["significant"] is True and "area_changed" in stored.followup["reasons"]
    assert 0.27 <= stored.followup["area_change"] <= 0.33
    assert stored.result.risk == "refer" and stored.result.reason in ("lesion_changed", "lesion_unclear")
    assert stored.patient.body_site == "left-forearm"  # the same spot: the body site carried over
    assert records_of(kiosk_app).followups(earlier) == [stored]
    html = client.get(f"/followup/{now}/compare?lang={lang}").get_data(as_text=True)
    compare = re.search(r'data-testid="followup-compare">(.*?)</div>', html, re.S).group(1)
    assert re.findall(r'<img src="/photos/([^/]+)/view.jpg"', compare) == [earlier, now]
    assert 'data-testid="followup-reason"' in html
    assert text_of(html, "followup-reason") == tr(
        lang, "The spot has changed since the last screening, so the kiosk refers. A doctor should see it."
    )
    assert 'data-testid="followup-change-area" data-significant="true"' in html
    assert "+30%" in text_of(html, "followup-change-area") or "+29%" in text_of(html, "followup-change-area")
    for photo in (earlier, now):
        r = client.get(f"/photos/{photo}/view.jpg")
        assert r.status_code == 200 and r.mimetype == "image/jpeg"
        assert max(Image.open(io.BytesIO(r.data)).size) <= SIZES["view"]
    stranger = kiosk_app.test_client()
    assert stranger.get(f"/followup/{now}/compare").status_code == 404
    assert stranger.get(f"/photos/{now}/view.jpg").status_code == 404


def test_the_same_spot_unchanged_keeps_the_models_answer(kiosk_app, script):
    earlier, now, client = follow_up(kiosk_app, script, SAME_AGAIN)
    stored = records_of(kiosk_app).get(now)
    assert stored.followup_of == earlier and stored.followup["significant"] is False
    assert stored.followup["reasons"] == [] and abs(stored.followup["area_change"]) < 0.02
    assert stored.result.reason != "lesion_changed"
    html = client.get(f"/followup/{now}/compare").get_data(as_text=True)
    assert 'data-testid="followup-reason"' not in html and 'data-significant="true"' not in html
    assert "the camera is not calibrated" in html


def test_with_calibration_the_comparison_is_in_millimetres(kiosk_app, script):
    kiosk_app.extensions["kiosk"].station.screener.mm_per_pixel = 0.02
    earlier, now, client = follow_up(kiosk_app, script, GROWN)
    followup = records_of(kiosk_app).get(now).followup
    assert followup["mm_per_pixel"] == 0.02 and followup["diameter_mm_after"] > followup["diameter_mm_before"]
    html = client.get(f"/followup/{now}/compare").get_data(as_text=True)
    assert f"{followup['area_mm2_before']:.1f} mm²" in text_of(html, "followup-change-area")
    assert f"{followup['diameter_mm_after']:.1f} mm" in text_of(html, "followup-change-diameter")


def test_a_retake_on_the_follow_up_says_why_and_stays_on_the_same_spot(kiosk_app, script):
    first = kiosk_app.test_client()
    earlier = capture(first)
    script.append(draw_skin(seed=3))
    r = first.post(f"/followup/{earlier}", data={"csrf_token": csrf_of(first, f"/followup/{earlier}")})
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and 'data-testid="followup-capture-button"' in html
    assert text_of(html, "capture-error") and records_of(kiosk_app).followups(earlier) == []


def test_an_earlier_screening_without_its_photo_cannot_be_compared(kiosk_app):
    first = kiosk_app.test_client()
    earlier = capture(first)
    records_of(kiosk_app).get(earlier).image_path.unlink()  # removed by photo retention
    r = first.post(f"/followup/{earlier}", data={"csrf_token": csrf_of(first, f"/followup/{earlier}")})
    assert "The earlier photo is no longer kept" in text_of(r.get_data(as_text=True), "capture-error")
    assert first.get(f"/photos/{earlier}/thumb.jpg").status_code == 404


def test_a_screening_that_is_no_follow_up_has_no_comparison(kiosk_app):
    client = kiosk_app.test_client()
    sid = capture(client)
    assert client.get(f"/followup/{sid}/compare").status_code == 404
    assert client.get("/followup/not-an-id/compare").status_code == 404
    assert client.get(f"/photos/{sid}/huge.jpg").status_code == 404


# --- History: search by code, thumbnails ---------------------------------------------------


def test_history_searches_by_code_prefix_and_shows_thumbnails(kiosk_app):
    client = kiosk_app.test_client()
    ids = [capture(client) for _ in range(3)]
    store = records_of(kiosk_app)
    wanted = store.get(ids[1])
    assert client.get(f"/history?code={wanted.code[:4]}").status_code == 303  # behind the PIN
    enter_pin(client)
    html = client.get("/history").get_data(as_text=True)
    assert html.count('data-testid="history-thumb"') == 3 and 'data-testid="history-search"' in html
    html = client.get(f"/history?code={wanted.code[:6]}").get_data(as_text=True)
    shown = re.findall(r'data-testid="history-row" data-id="([^"]+)"', html)
    assert ids[1] in shown and all(store.get(s).code.startswith(wanted.code[:6]) for s in shown)
    assert codes.format_code(wanted.code) in html
    keypad = client.get("/history?search=1").get_data(as_text=True)
    assert 'data-testid="code-key-7"' in keypad and 'action="/history"' in keypad
    assert (
        client.get("/history?code=abc").get_data(as_text=True).count('data-testid="history-row"') == 3
    )  # not digits: all
    thumb = client.get(f"/photos/{ids[0]}/thumb.jpg")
    assert thumb.status_code == 200 and max(Image.open(io.BytesIO(thumb.data)).size) <= SIZES["thumb"]
    assert client.get(f"/photos/{ids[0]}/thumb.jpg").data == thumb.data  # from the cache, the same bytes


def test_history_with_an_unmatched_code_says_so(kiosk_app):
    client = kiosk_app.test_client()
    capture(client)
    enter_pin(client)
    html = client.get("/history?code=000000000").get_data(as_text=True)
    assert text_of(html, "history-empty") == "No screening has a code starting with 000-000-000."
