"""The whole pipeline on drawn photos: ok, retake and error results, never a wrong "low"."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from kiosk.synthetic import draw_lesion, draw_skin, random_lesion
from kiosk.vision.loader import encode_jpeg


def test_good_photo_gives_a_full_result(screener):
    result = screener.screen_image(random_lesion(5, width=640, height=480))
    assert result.status == "ok" and result.reason is None
    # The tiny model's int8 output for this drawn lesion (seed 5), below its threshold 0.449.
    assert (result.malignant_probability, result.risk) == (0.4414, "low")
    assert result.threshold == screener.model.manifest.threshold
    assert result.model_sha256 == screener.model.sha256
    assert {"asymmetry", "border_irregularity", "colour_count", "diameter_px"} <= set(result.features)
    assert {"decode", "quality", "preprocess", "inference", "features", "total"} <= set(result.timings_ms)
    assert result.timings_ms["total"] >= result.timings_ms["inference"]


# Blank skin with no colour difference at all is sent back; a faint skin-shading blob (as faint as
# some real melanomas) is "unclear" and referred. Either way it is never "low".
@pytest.mark.parametrize(
    ("seed", "outcome"), [(0, "retake"), (1, "refer"), (2, "refer"), (3, "retake"), (4, "refer"), (5, "refer")]
)
def test_blank_skin_is_never_low_risk(screener, seed, outcome):
    result = screener.screen_image(draw_skin(seed=seed))
    if outcome == "retake":
        assert result.status == "retake" and result.risk is None and result.malignant_probability is None
        assert result.reason == "no_lesion"
    else:
        assert (result.status, result.risk, result.reason) == ("ok", "refer", "lesion_unclear")


@pytest.mark.parametrize(
    ("image", "reason"),
    [
        (np.zeros((480, 640, 3), np.uint8), "too_dark"),
        (np.full((480, 640, 3), 255, np.uint8), "overexposed"),
        (draw_lesion(seed=2, blur_sigma=8), "blurry"),
        (np.full((90, 90, 3), 120, np.uint8), "too_small"),
    ],
)
def test_unusable_photos_ask_for_a_retake(screener, image, reason):
    result = screener.screen_image(image)
    assert (result.status, result.reason, result.risk) == ("retake", reason, None)


def test_bad_bytes_are_an_error_result_not_an_exception(screener):
    result = screener.screen_file(b"definitely not an image")
    assert result.status == "error" and result.reason == "not_an_image"
    assert result.model_sha256 == screener.model.sha256


def test_file_and_array_paths_agree(screener, tmp_path):
    image = random_lesion(9, width=640, height=480)
    data = encode_jpeg(image, quality=95)
    path = tmp_path / "x.jpg"
    path.write_bytes(data)
    from_file = screener.screen_file(path)
    from_bytes = screener.screen_file(data)
    assert from_file.malignant_probability == from_bytes.malignant_probability
    assert from_file.features == from_bytes.features


def test_evaluation_mode_scores_even_failed_photos(screener):
    result = screener.screen_image(draw_skin(seed=0), apply_quality_gate=False)
    assert result.status == "ok" and result.reason == "no_lesion"
    assert (result.malignant_probability, result.risk) == (
        0.4688,
        "refer",
    )  # seed 1 is "unclear" now, so seed 0 (no_lesion)


@pytest.mark.parametrize("image", [draw_lesion(seed=4), draw_skin(seed=0)], ids=["lesion", "no_lesion"])
def test_evaluation_gives_the_exact_probability_and_the_lesion_of_the_same_screening(screener, image):
    from kiosk.vision.lesion import find_lesion
    from kiosk.vision.preprocess import preprocess

    evaluated = screener.evaluate_image(image)
    lesion = find_lesion(image)
    assert np.array_equal(evaluated.lesion.mask, lesion.mask) and np.array_equal(evaluated.lesion.fov, lesion.fov)
    model = screener.model
    exact = model.malignant_probability(
        preprocess(image, size=model.input_size, recipe=model.manifest.preprocessing_recipe, lesion=lesion)
    )
    assert evaluated.probability == exact and evaluated.result.malignant_probability == round(exact, 4)
    # The same result as screen_image without the gate (the timings aside).
    plain = screener.screen_image(image, apply_quality_gate=False)
    assert replace(evaluated.result, timings_ms={}) == replace(plain, timings_ms={})


def test_mm_diameter_with_configured_scale(model):
    from kiosk.screening import Screener

    image = draw_lesion(seed=3, radius=0.2, irregularity=0.0)
    plain = Screener(model).screen_image(image)
    scaled = Screener(model, mm_per_pixel=0.05).screen_image(image)
    assert plain.features["diameter_mm"] is None
    assert scaled.features["diameter_mm"] == pytest.approx(plain.features["diameter_px"] * 0.05, abs=0.1)
