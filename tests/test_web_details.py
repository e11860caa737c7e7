"""The details step (which spot, age band, sex, by touch), the scored photo on the result page, and its wording."""

from __future__ import annotations

import re

import pytest

from kiosk.records import AGE_BANDS, BODY_REGIONS
from kiosk.synthetic import random_lesion
from tests.test_web import LANGS, enter_pin, png, post_screening, text_of, tr, upload
from tests.web_conftest import PIN, csrf_of

ACRAL = {"left-palm", "right-palm", "left-sole", "right-sole"} | {
    f"{side}-{nail}" for side in ("left", "right") for nail in ("fingernail", "toenail")
}


def ids_in(html: str) -> set[str]:
    return set(re.findall(r'data-testid="([^"]+)"', html))


@pytest.mark.parametrize("lang", LANGS)
def test_the_details_step_offers_every_region_age_band_and_sex(client, lang):
    html = client.get(f"/details?lang={lang}").get_data(as_text=True)
    ids = ids_in(html)
    assert {f"body-site-{region}" for region in BODY_REGIONS} <= ids
    assert {f"age-band-{band}" for band in AGE_BANDS} | {
        "sex-f",
        "sex-m",
        "sex-x",
        "details-next",
        "details-skip",
    } <= ids
    # Each region once (one view at a time is shown; a duplicate would make a tap ambiguous).
    assert all(html.count(f'data-testid="body-site-{region}"') == 1 for region in BODY_REGIONS)
    for region in BODY_REGIONS:  # palm, sole and nail are marked: they always refer
        label = re.search(rf'<label class="([^"]+)" data-testid="body-site-{region}"', html)
        assert label and ("is-acral" in label.group(1)) == (region in ACRAL), region
    assert 'action="/screen"' in html and 'method="get"' in html  # no typing, no script needed
    assert re.search(r'href="/screen" data-testid="details-skip"', html)
    assert tr(lang, "Where is the spot?") in html


def test_home_starts_with_the_details_step(client):
    html = client.get("/").get_data(as_text=True)
    assert re.search(r'href="/details" data-testid="start-button"', html)


def test_the_capture_page_carries_only_valid_choices(client):
    html = client.get("/screen?body_site=left-palm&age_band=45-59&sex=female&name=Juan&age=x").get_data(as_text=True)
    fields = re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)" data-patient-field>', html)
    assert fields == [("body_site", "left-palm"), ("age_band", "45-59"), ("sex", "female")]
    assert text_of(html, "details-summary") == "Palm (left) \u00b7 Age 45\u201359 \u00b7 Female Change"
    bogus = client.get("/screen?body_site=arm&age_band=44&sex=woman").get_data(as_text=True)
    assert "data-patient-field" not in bogus
    assert text_of(bogus, "details-summary") == "No details about the spot. Add details"


def test_capture_without_javascript_keeps_the_details_and_an_acral_site_refers(client, records, rig):
    token = csrf_of(client, "/screen")
    r = client.post(
        "/screen", data={"csrf_token": token, "body_site": "right-sole", "age_band": "60-74", "sex": "male"}
    )
    assert r.status_code == 303 and rig.captures == 1
    sid = r.headers["Location"].rsplit("/", 1)[1]
    stored = records.get(sid)
    assert (stored.patient.body_site, stored.patient.age_band, stored.patient.sex) == ("right-sole", "60-74", "male")
    # The tiny model scores this photo (random_lesion seed 5) 0.4414, under its threshold: the site refers anyway.
    assert (stored.result.malignant_probability, stored.result.risk, stored.result.reason) == (
        0.4414,
        "refer",
        "acral_site",
    )
    html = client.get(f"/screenings/{sid}?lang=war").get_data(as_text=True)
    from kiosk.reasons import REASONS

    assert text_of(html, "result-reason") == tr("war", REASONS["acral_site"])
    assert text_of(html, "result-risk").endswith(tr("war", "Refer to a doctor"))


def test_capture_without_javascript_refuses_bad_details_without_a_photo(client, rig):
    token = csrf_of(client, "/screen")
    r = client.post("/screen", data={"csrf_token": token, "body_site": "left-wing"})
    assert r.status_code == 400 and rig.captures == 0
    assert text_of(r.get_data(as_text=True), "capture-error") == "The patient details are not valid."


def test_the_api_takes_age_band_and_skin_type(client, records):
    token = csrf_of(client)
    patient = {"body_site": "left-forearm", "age_band": "30-44", "sex": "other", "skin_type": 4}
    r = post_screening(client, token, json={"capture": True, "patient": patient})
    assert r.status_code == 201
    stored = records.get(r.get_json()["id"])
    assert stored.patient.to_dict() == {**patient, "age": None}
    assert (stored.result.risk, stored.result.reason) == ("low", None)  # a forearm is not acral
    form = post_screening(client, token, data={"age_band": "75-plus", "skin_type": "5", "body_site": "left-toenail"})
    assert form.status_code == 201 and form.get_json()["reason"] == "acral_site"
    assert records.get(form.get_json()["id"]).patient.skin_type == 5
    bad = post_screening(client, token, json={"patient": {"age_band": "40-50"}})
    assert bad.status_code == 400 and bad.get_json()["reason"] == "invalid_patient"


def test_the_result_shows_the_scored_photo_with_the_models_square(client, records, app):
    sid = upload(client, csrf_of(client), png(random_lesion(5, width=640, height=480))).get_json()["id"]
    stored = records.get(sid)
    html = client.get(f"/screenings/{sid}").get_data(as_text=True)
    figure = html[html.index('data-testid="result-photo"') : html.index("</figure>")]
    assert f'src="/screenings/{sid}/photo.jpg"' in figure and 'width="640" height="480"' in figure
    crop = stored.result.quality["crop"]
    assert f'data-crop="{crop["x"]},{crop["y"]},{crop["side"]}"' in figure
    assert f'<rect x="{crop["x"]}" y="{crop["y"]}" width="{crop["side"]}" height="{crop["side"]}"' in figure
    # The session that took it gets the stored photo, never cached.
    photo = client.get(f"/screenings/{sid}/photo.jpg")
    assert photo.status_code == 200 and photo.mimetype == "image/jpeg"
    assert photo.data == stored.image_path.read_bytes() and photo.headers["Cache-Control"] == "no-store"
    # Another browser session: 404, as for an id that does not exist; with the PIN it may.
    other = app.test_client()
    assert other.get(f"/screenings/{sid}/photo.jpg").status_code == 404
    assert other.get("/screenings/no-such/photo.jpg").status_code == 404
    enter_pin(other, PIN)
    assert other.get(f"/screenings/{sid}/photo.jpg").data == photo.data


def test_a_result_without_a_kept_photo_says_so(client, records):
    from kiosk.result import ScreeningResult

    sid = records.save(
        ScreeningResult(status="ok", malignant_probability=0.2, risk="refer", threshold=0.5, features={})
    )
    enter_pin(client, PIN)
    html = client.get(f"/screenings/{sid}").get_data(as_text=True)
    assert text_of(html, "result-photo") == "The photo was not kept."
    assert client.get(f"/screenings/{sid}/photo.jpg").status_code == 404


@pytest.mark.parametrize("lang", LANGS)
def test_the_features_are_measurements_never_pixels_or_reassurance(client, records, lang):
    from kiosk.result import ScreeningResult

    features = {"asymmetry": 0.03, "border_irregularity": 1.05, "colours": ["light_brown"], "diameter_px": 212.0}
    sid = records.save(
        ScreeningResult(
            status="ok", malignant_probability=0.1371, risk="refer", threshold=0.13671875, features=features
        )
    )
    enter_pin(client, PIN)
    html = client.get(f"/screenings/{sid}?lang={lang}").get_data(as_text=True)
    shown = text_of(html, "result-features")
    assert "pixel" not in html.lower() and "212" not in shown
    assert tr(lang, "Not measured: the camera is not calibrated for millimetres") in shown
    for old in ("Even shape", "Smooth, regular border", "One or two colours"):
        assert tr(lang, old) not in html
    assert text_of(html, "features-note") == tr(lang, "These measurements do not override the referral.")
    # 0.1371 >= 0.1367 refers; two decimals would show 0.14 against 0.14, which still reads "at or above".
    assert text_of(html, "result-probability") == tr(
        lang, "Model score %(score)s (not a chance of cancer). Refer at or above %(threshold)s."
    ) % {"score": "0.14", "threshold": "0.14"}


def test_a_score_just_under_the_threshold_shows_the_decimals_that_keep_it_under():
    from kiosk.web.present import score_number

    assert score_number(0.1362, threshold=0.13671875) == ("0.136", "0.137")
    assert score_number(0.13671875, threshold=0.13671875) == ("0.14", "0.14")
    assert score_number(0.95, threshold=0.13671875) == ("0.95", "0.14")
    for step in range(2000):  # the words never put a score on the wrong side of the threshold
        value = step / 2000
        score, limit = score_number(value, threshold=0.13671875)
        assert (float(score) >= float(limit)) == (value >= 0.13671875), value


def test_a_retake_keeps_the_details_for_the_next_photo(client, records):
    from kiosk.synthetic import draw_skin

    token = csrf_of(client)
    data = {"image": (__import__("io").BytesIO(png(draw_skin(seed=3))), "skin.png"), "body_site": "trunk-back"}
    r = client.post("/api/screenings", headers={"X-CSRF-Token": token}, data=data, content_type="multipart/form-data")
    assert r.get_json()["status"] == "retake"
    html = client.get(f"/screenings/{r.get_json()['id']}").get_data(as_text=True)
    assert re.search(r'href="/screen\?body_site=trunk-back" data-testid="retake-button"', html)
