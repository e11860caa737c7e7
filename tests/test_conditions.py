"""training.conditions on drawn lesions: deterministic, shape-keeping, and each does what it says."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from kiosk.synthetic import draw_lesion, lesion_mask
from kiosk.vision.lesion import find_lesion
from training.conditions import (
    CONDITIONS,
    FITZPATRICK_LAB,
    _to_lab,
    apply,
    exposure,
    lens_circle,
    luminance,
    to_linear,
    to_srgb,
    vignette,
    white_balance,
)

SKIN = (226, 182, 160)  # light skin, as most of the dataset
IMAGE = draw_lesion(seed=3, width=240, height=200, radius=0.18, skin=SKIN)
RNG = np.random.default_rng(0)


@pytest.mark.parametrize("name", list(CONDITIONS))
def test_every_condition_is_deterministic_and_keeps_the_shape(name):
    for severity in range(3):
        a = apply(name, IMAGE, severity=severity, seed=7)
        turned_90 = name == "turned" and severity == 1
        assert a.shape == (IMAGE.shape[1::-1] + (3,) if turned_90 else IMAGE.shape) and a.dtype == np.uint8
        assert np.array_equal(a, apply(name, IMAGE, severity=severity, seed=7))
        assert not np.array_equal(a, IMAGE)


def test_seed_changes_the_random_conditions_only():
    assert not np.array_equal(apply("noise", IMAGE, severity=1, seed=1), apply("noise", IMAGE, severity=1, seed=2))
    assert np.array_equal(apply("jpeg", IMAGE, severity=1, seed=1), apply("jpeg", IMAGE, severity=1, seed=2))


def test_srgb_round_trip():
    assert np.array_equal(to_srgb(to_linear(IMAGE)), IMAGE)


@pytest.mark.parametrize("stops", [-0.5, -1.0, -1.5])
def test_under_exposure_scales_linear_luminance_by_the_factor(stops):
    ratio = luminance(to_linear(exposure(IMAGE, stops, RNG))).mean() / luminance(to_linear(IMAGE)).mean()
    assert ratio == pytest.approx(2.0**stops, rel=0.01)


def test_over_exposure_brightens_and_clips():
    out = exposure(IMAGE, 1.5, RNG)
    assert luminance(to_linear(out)).mean() > 1.5 * luminance(to_linear(IMAGE)).mean()
    assert (out == 255).mean() > 0.2 > (IMAGE == 255).mean()


def test_white_balance_multiplies_red_over_blue_by_gain_squared():
    lin, out = to_linear(IMAGE), to_linear(white_balance(IMAGE, 1.3, RNG))
    unclipped = lin[..., 0] * 1.3 < 0.98  # a cast cannot raise what is already near white
    before = lin[..., 0][unclipped].mean() / lin[..., 2][unclipped].mean()
    after = out[..., 0][unclipped].mean() / out[..., 2][unclipped].mean()
    assert after / before == pytest.approx(1.3**2, rel=0.02)


def test_vignette_darkens_corners_by_the_strength_and_keeps_the_centre():
    out = vignette(IMAGE, 0.5, RNG)
    h, w = IMAGE.shape[:2]
    assert np.abs(out[h // 2, w // 2].astype(int) - IMAGE[h // 2, w // 2]).max() <= 1
    corner = luminance(to_linear(out[:1, :1])) / luminance(to_linear(IMAGE[:1, :1]))
    assert corner.item() == pytest.approx(0.5, abs=0.02)


def test_lens_circle_is_black_outside_and_untouched_inside():
    out = lens_circle(IMAGE, 0.5, RNG)
    h, w = IMAGE.shape[:2]
    assert out[0, 0].max() == 0 and out[-1, -1].max() == 0
    assert np.array_equal(
        out[h // 2 - 20 : h // 2 + 20, w // 2 - 20 : w // 2 + 20],
        IMAGE[h // 2 - 20 : h // 2 + 20, w // 2 - 20 : w // 2 + 20],
    )


def _sharpness(image):
    return cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var()


@pytest.mark.parametrize("name", ["defocus", "motion", "downsample"])
def test_blurs_get_blurrier_with_severity(name):
    values = [_sharpness(apply(name, IMAGE, severity=s, seed=1)) for s in range(3)]
    assert _sharpness(IMAGE) > values[0] > values[1] > values[2]


@pytest.mark.parametrize("name", ["noise", "jpeg"])
def test_noise_and_jpeg_errors_grow_with_severity(name):
    errors = [np.abs(apply(name, IMAGE, severity=s, seed=1).astype(int) - IMAGE).mean() for s in range(3)]
    assert 0 < errors[0] < errors[1] < errors[2]


def test_noise_keeps_mean_linear_light():
    out = apply("noise", IMAGE, severity=2, seed=1)
    assert luminance(to_linear(out)).mean() == pytest.approx(luminance(to_linear(IMAGE)).mean(), rel=0.03)


@pytest.mark.parametrize("severity", [0, 1, 2])
def test_smaller_in_frame_shrinks_the_lesion_area_by_scale_squared(severity):
    scale = CONDITIONS["smaller"].severities[severity]
    before = find_lesion(IMAGE).area_fraction
    after = find_lesion(apply("smaller", IMAGE, severity=severity, seed=1)).area_fraction
    assert after / before == pytest.approx(scale**2, rel=0.25)


@pytest.mark.parametrize("fitzpatrick", [4, 5, 6])
def test_darker_skin_moves_skin_to_the_target_and_leaves_the_lesion(fitzpatrick):
    out = apply("darker_skin", IMAGE, severity=fitzpatrick - 4, seed=1)
    inside = lesion_mask(seed=3, width=240, height=200, radius=0.18, skin=SKIN)
    core = cv2.erode(inside.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    ring = ~cv2.dilate(inside.astype(np.uint8), np.ones((25, 25), np.uint8)).astype(bool)
    skin_l = np.median(_to_lab(out)[ring][:, 0])
    assert skin_l == pytest.approx(FITZPATRICK_LAB[fitzpatrick][0], abs=4)
    # the pigmented core changes far less than the skin
    change = np.abs(_to_lab(out)[..., 0] - _to_lab(IMAGE)[..., 0])
    assert np.median(change[core]) < 0.35 * np.median(change[ring])


def test_darker_whole_darkens_the_lesion_too():
    out = apply("darker_whole", IMAGE, severity=1, seed=1)
    inside = lesion_mask(seed=3, width=240, height=200, radius=0.18, skin=SKIN)
    assert _to_lab(out)[inside][:, 0].mean() < 0.85 * _to_lab(IMAGE)[inside][:, 0].mean()


def test_turned_is_a_mirror_and_quarter_turns():
    assert np.array_equal(apply("turned", IMAGE, severity=0, seed=0), IMAGE[:, ::-1])
    assert np.array_equal(apply("turned", IMAGE, severity=1, seed=0), np.rot90(IMAGE))
    assert np.array_equal(apply("turned", IMAGE, severity=2, seed=0), np.rot90(IMAGE, 2))


# --- how crude the darker-skin proxy is (training.skin_proxy) ------------------------------------


def test_lesion_minus_surround_tells_a_lesion_darker_or_lighter_than_its_skin() -> None:
    from training.skin_proxy import lesion_minus_surround

    lesion = find_lesion(IMAGE)
    assert lesion.found and lesion_minus_surround(IMAGE, lesion) < -10  # the drawn lesion is well darker
    # The skin made darker than the lesion (what the re-toning does at type V-VI): the sign turns.
    mask = cv2.resize(lesion.mask.astype(np.uint8), IMAGE.shape[1::-1], interpolation=cv2.INTER_NEAREST) > 0
    dark_skin = IMAGE.copy()
    dark_skin[~mask] = (40, 28, 22)
    assert lesion_minus_surround(dark_skin, lesion) > 0
    with pytest.raises(ValueError, match="same size"):
        lesion_minus_surround(IMAGE[:100], lesion)


def test_the_darker_skin_proxy_can_leave_a_light_lesion_lighter_than_its_skin() -> None:
    from training.skin_proxy import lesion_minus_surround

    pale = draw_lesion(seed=4, width=240, height=200, radius=0.18, skin=SKIN, lesion_colour=(196, 150, 120))
    lesion = find_lesion(pale)
    assert lesion.found and lesion_minus_surround(pale, lesion) < 0
    retoned = apply("darker_skin", pale, severity=2, seed=1)
    assert lesion_minus_surround(retoned, lesion) > 0
