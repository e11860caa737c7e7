"""Palm, sole and nail: the model was not trained on acral sites, so a screening there never says "low".

Also the crop the model saw, which the result carries for the result page.
"""

from __future__ import annotations

import pytest

from kiosk.records import BODY_REGIONS, PatientInfo, RecordStore
from kiosk.station import Station
from kiosk.synthetic import random_lesion
from kiosk.vision.lesion import find_lesion
from kiosk.vision.loader import encode_jpeg
from kiosk.vision.preprocess import crop_box, get_recipe, model_crop

ACRAL = sorted(r for r, g in BODY_REGIONS.items() if g in ("palm_sole", "nail"))


def test_an_acral_site_refers_what_the_model_scores_low(screener):
    image = random_lesion(5, width=640, height=480)
    plain = screener.screen_image(image)
    assert (plain.status, plain.risk, plain.reason) == ("ok", "low", None)  # the tiny model: 0.4414 < 0.449
    acral = screener.screen_image(image, acral_site=True)
    assert (acral.status, acral.risk, acral.reason) == ("ok", "refer", "acral_site")
    assert acral.malignant_probability == plain.malignant_probability  # the score itself is not changed


def test_an_acral_retake_stays_a_retake(screener):
    result = screener.screen_image(random_lesion(5, width=640, height=480)[:, :, :] * 0, acral_site=True)
    assert (result.status, result.reason, result.risk) == ("retake", "too_dark", None)


def test_the_acral_regions_are_palms_soles_and_nails():
    assert ACRAL == [
        "left-fingernail",
        "left-palm",
        "left-sole",
        "left-toenail",
        "right-fingernail",
        "right-palm",
        "right-sole",
        "right-toenail",
    ]


@pytest.mark.parametrize(
    ("site", "risk", "reason"), [("left-forearm", "low", None), ("right-sole", "refer", "acral_site")]
)
def test_the_station_refers_an_acral_site_and_keeps_the_details(screener, tmp_path, site, risk, reason):
    from kiosk.camera import SyntheticCamera

    photo = encode_jpeg(random_lesion(5, width=640, height=480), quality=95)
    with (
        RecordStore(tmp_path) as store,
        Station(screener=screener, camera_factory=SyntheticCamera, records=store) as station,
    ):
        patient = PatientInfo(body_site=site, age_band="45-59", sex="female")
        sid, result = station.screen_upload(photo, patient=patient)
        assert (result.risk, result.reason) == (risk, reason)
        stored = store.get(sid)
        assert stored is not None and stored.result.reason == reason and stored.patient == patient


def test_the_result_carries_the_crop_the_model_saw(screener):
    image = random_lesion(5, width=640, height=480)
    result = screener.screen_image(image)
    recipe = get_recipe(screener.model.manifest.preprocessing_recipe)
    x, y, side = crop_box(image.shape, find_lesion(image), recipe)
    assert result.quality["crop"] == {"x": x, "y": y, "side": side, "width": 640, "height": 480}
    assert 0 <= x and x + side <= 640 and 0 <= y and y + side <= 480 and side >= 0.7 * 480
    assert model_crop(image.shape, "full-v1", lesion=None) == (80, 0, 480)
