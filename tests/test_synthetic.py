"""The synthetic lesion drawer: deterministic, and its parameters mean what they say."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from kiosk.synthetic import SKIN_TONES, draw_lesion, draw_skin, lesion_mask, random_lesion, random_lesion_params

W, H = 320, 240  # small frames keep the suite fast; geometry is resolution-independent


def luminance(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def laplacian_variance(image: np.ndarray) -> float:
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def centroid(mask: np.ndarray) -> tuple[float, float]:
    ys, xs = np.nonzero(mask)
    return float(xs.mean()), float(ys.mean())


def touches_border(mask: np.ndarray) -> bool:
    return bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())


# --- determinism and format ------------------------------------------------------------


def test_same_seed_gives_identical_images() -> None:
    kwargs = dict(width=W, height=H, colours=4, hairs=3, vignette=True, irregularity=0.7)
    assert np.array_equal(draw_lesion(seed=11, **kwargs), draw_lesion(seed=11, **kwargs))
    assert np.array_equal(draw_skin(seed=11, width=W, height=H), draw_skin(seed=11, width=W, height=H))
    assert np.array_equal(lesion_mask(seed=11, **kwargs), lesion_mask(seed=11, **kwargs))
    assert np.array_equal(random_lesion(5, width=W, height=H), random_lesion(5, width=W, height=H))


def test_different_seeds_give_different_images() -> None:
    a = draw_lesion(seed=1, width=W, height=H)
    b = draw_lesion(seed=2, width=W, height=H)
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 2.0
    assert not np.array_equal(lesion_mask(seed=1, width=W, height=H), lesion_mask(seed=2, width=W, height=H))


@pytest.mark.parametrize(("width", "height"), [(640, 480), (320, 200), (64, 48), (100, 300)])
def test_shape_and_dtype(width: int, height: int) -> None:
    img = draw_lesion(seed=3, width=width, height=height)
    assert img.shape == (height, width, 3)
    assert img.dtype == np.uint8
    mask = lesion_mask(seed=3, width=width, height=height)
    assert mask.shape == (height, width) and mask.dtype == bool
    assert draw_skin(seed=3, width=width, height=height).shape == (height, width, 3)


def test_skin_colour_is_rgb_order() -> None:
    skin = (200, 120, 60)
    img = draw_skin(seed=4, width=W, height=H, skin=skin, noise=0.0)
    mean = img.reshape(-1, 3).mean(axis=0)
    np.testing.assert_allclose(mean, skin, rtol=0.06)  # texture varies tone by a few percent only


def test_lesion_colour_is_used_inside_the_lesion() -> None:
    kwargs = dict(seed=6, width=W, height=H, colours=1, lesion_colour=(120, 40, 140), noise=0.0)
    img, mask = draw_lesion(**kwargs), lesion_mask(**kwargs)
    core = cv2.erode(mask.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    mean = img[core].mean(axis=0)
    np.testing.assert_allclose(mean, (120, 40, 140), rtol=0.15)


def test_random_skin_tones_vary_and_include_dark_skin() -> None:
    lums = [luminance(draw_skin(seed=s, width=64, height=48, noise=0.0)).mean() for s in range(40)]
    assert min(lums) < 110  # Fitzpatrick IV-V tones occur
    assert max(lums) > 190  # and light ones


# --- the lesion --------------------------------------------------------------------


@pytest.mark.parametrize("tone", SKIN_TONES)
@pytest.mark.parametrize("colours", [1, 2, 3, 4])
def test_lesion_is_clearly_darker_than_skin(tone: tuple[int, int, int], colours: int) -> None:
    kwargs = dict(seed=colours, width=W, height=H, skin=tone, colours=colours, irregularity=0.6)
    lum, mask = luminance(draw_lesion(**kwargs)), lesion_mask(**kwargs)
    assert lum[mask].mean() < 0.65 * lum[~mask].mean()


@pytest.mark.parametrize(
    ("centre", "radius", "irregularity"),
    [
        ((0.5, 0.5), 0.2, 0.0),
        ((0.5, 0.5), 0.2, 1.0),
        ((0.3, 0.6), 0.1, 0.5),
        ((0.7, 0.35), 0.25, 0.3),
        ((0.5, 0.5), 0.04, 0.0),
    ],
)
def test_mask_matches_centre_and_radius(centre: tuple[float, float], radius: float, irregularity: float) -> None:
    mask = lesion_mask(seed=9, width=640, height=480, centre=centre, radius=radius, irregularity=irregularity)
    cx, cy = centroid(mask)
    # Pixel centres are integers, so fraction f of the width is pixel f * width - 0.5.
    assert cx == pytest.approx(centre[0] * 640 - 0.5, abs=1.5)
    assert cy == pytest.approx(centre[1] * 480 - 0.5, abs=1.5)
    equivalent_radius = math.sqrt(mask.sum() / math.pi)
    assert equivalent_radius == pytest.approx(radius * 480, rel=0.03)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(
    seed=st.integers(0, 2**31),
    cx=st.floats(0.3, 0.7),
    cy=st.floats(0.3, 0.7),
    radius=st.floats(0.05, 0.25),
    irregularity=st.floats(0.0, 1.0),
)
def test_mask_geometry_property(seed: int, cx: float, cy: float, radius: float, irregularity: float) -> None:
    mask = lesion_mask(seed=seed, width=W, height=H, centre=(cx, cy), radius=radius, irregularity=irregularity)
    assume(not touches_border(mask))  # clipped lesions cannot keep their area
    x, y = centroid(mask)
    assert abs(x - (cx * W - 0.5)) < 1.5 and abs(y - (cy * H - 0.5)) < 1.5
    assert math.sqrt(mask.sum() / math.pi) == pytest.approx(radius * H, rel=0.06, abs=0.6)


def test_drawn_lesion_follows_its_mask() -> None:
    kwargs = dict(seed=12, width=W, height=H, centre=(0.4, 0.55), radius=0.15, colours=3)
    lum, mask = luminance(draw_lesion(**kwargs)), lesion_mask(**kwargs)
    threshold = (np.median(lum[mask]) + np.median(lum[~mask])) / 2
    found = lum < threshold
    iou = (found & mask).sum() / (found | mask).sum()
    assert iou > 0.9


def test_mask_depends_only_on_geometry() -> None:
    base = lesion_mask(seed=5, width=W, height=H)
    same = lesion_mask(
        seed=5,
        width=W,
        height=H,
        colours=4,
        hairs=5,
        skin=(100, 70, 50),
        blur_sigma=3.0,
        brightness=0.3,
        noise=9.0,
        lesion_colour=(10, 10, 10),
    )
    assert np.array_equal(base, same)
    # ... and extra hairs or colours never move the lesion in the drawing either.
    a = draw_lesion(seed=5, width=W, height=H, hairs=0, noise=0.0)
    b = draw_lesion(seed=5, width=W, height=H, hairs=4, noise=0.0)
    changed = np.abs(a.astype(int) - b.astype(int)).max(axis=2) > 2
    assert 0 < changed.mean() < 0.1


def solidity(mask: np.ndarray) -> float:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    contour = max(contours, key=cv2.contourArea)
    return cv2.contourArea(contour) / cv2.contourArea(cv2.convexHull(contour))


def test_irregularity_makes_the_border_ragged() -> None:
    for seed in range(5):
        smooth = lesion_mask(seed=seed, irregularity=0.0)
        ragged = lesion_mask(seed=seed, irregularity=1.0)
        assert solidity(smooth) > 0.98  # an ellipse is convex
        assert solidity(ragged) < solidity(smooth) - 0.05


@pytest.mark.parametrize("seed", range(6))
def test_colours_add_distinct_zones(seed: int) -> None:
    def fractions(colours: int) -> tuple[float, float]:
        kwargs = dict(seed=seed, width=W, height=H, colours=colours, noise=0.0, radius=0.25)
        img, mask = draw_lesion(**kwargs).astype(int), lesion_mask(**kwargs)
        lum = luminance(img)
        blue = (img[..., 2] > img[..., 0]) & mask  # blue-grey: only zone where B > R
        dark = (lum < 0.3 * lum[~mask].mean()) & mask  # dark brown / black
        return blue.sum() / mask.sum(), dark.sum() / mask.sum()

    blue1, dark1 = fractions(1)
    blue2, dark2 = fractions(2)
    blue4, dark4 = fractions(4)
    assert blue1 == 0 and dark1 < 0.01
    assert dark2 > 0.02 and blue2 == 0
    assert blue4 > 0.01 and dark4 > 0.01


def test_hairs_are_thin_dark_lines() -> None:
    kwargs = dict(seed=8, width=W, height=H, noise=0.0)
    plain = draw_lesion(**kwargs).astype(int)
    hairy = draw_lesion(hairs=6, **kwargs).astype(int)
    diff = (hairy - plain).sum(axis=2)
    assert (diff < -30).mean() > 0.003  # visible
    assert (diff > 10).mean() == 0  # hairs only darken
    assert (diff != 0).mean() < 0.1  # and stay thin


def test_vignette_blackens_the_rim_only() -> None:
    kwargs = dict(seed=2, width=W, height=H)
    with_v, without = draw_lesion(vignette=True, **kwargs), draw_lesion(**kwargs)
    for y, x in [(0, 0), (0, W - 1), (H - 1, 0), (H - 1, W - 1), (H // 2, 2)]:
        assert with_v[y, x].max() < 20
        assert without[y, x].max() > 60
    assert np.array_equal(
        with_v[H // 2 - 20 : H // 2 + 20, W // 2 - 20 : W // 2 + 20],
        without[H // 2 - 20 : H // 2 + 20, W // 2 - 20 : W // 2 + 20],
    )
    # The mask excludes nothing of a centred lesion, but a lesion under the rim is cut.
    assert np.array_equal(lesion_mask(vignette=True, **kwargs), lesion_mask(**kwargs))
    edge = dict(seed=2, width=W, height=H, centre=(0.1, 0.5), radius=0.15)
    full, cut = lesion_mask(**edge), lesion_mask(vignette=True, **edge)
    assert not (cut & ~full).any() and 0 < cut.sum() < 0.8 * full.sum()
    assert luminance(draw_lesion(vignette=True, **edge))[full & ~cut].mean() < 25  # hidden part is black


def test_blur_sigma_reduces_laplacian_variance() -> None:
    sharp = laplacian_variance(draw_lesion(seed=1, hairs=2))
    slightly = laplacian_variance(draw_lesion(seed=1, hairs=2, blur_sigma=1.0))
    blurry = laplacian_variance(draw_lesion(seed=1, hairs=2, blur_sigma=4.0))
    assert blurry < slightly < sharp
    assert blurry < 0.05 * sharp


def test_brightness_scales_the_mean() -> None:
    normal = draw_lesion(seed=4).mean()
    dark = draw_lesion(seed=4, brightness=0.1)
    blown = draw_lesion(seed=4, brightness=3.0)
    assert dark.mean() == pytest.approx(0.1 * normal, rel=0.1)
    assert dark.mean() < 30
    assert blown.mean() > 1.5 * normal
    assert (blown == 255).all(axis=2).mean() > 0.5  # clipped, not wrapped around


def test_noise_parameter_sets_pixel_noise() -> None:
    clean = draw_skin(seed=3, width=W, height=H, noise=0.0).astype(float)
    noisy = draw_skin(seed=3, width=W, height=H, noise=8.0).astype(float)
    assert (noisy - clean).std() == pytest.approx(8.0, rel=0.15)


@pytest.mark.parametrize(
    "bad",
    [
        {"colours": 0},
        {"colours": 5},
        {"irregularity": -0.1},
        {"irregularity": 1.5},
        {"radius": 0.0},
        {"hairs": -1},
        {"blur_sigma": -1.0},
        {"width": 4},
    ],
)
def test_invalid_parameters_raise(bad: dict) -> None:
    with pytest.raises(ValueError):
        draw_lesion(seed=0, **bad)


# --- the demo camera's lesions ------------------------------------------------------------


def test_random_lesion_params_are_varied_and_valid() -> None:
    params = [random_lesion_params(s, width=W, height=H) for s in range(60)]
    radii = [p["radius"] for p in params]
    assert min(radii) >= 0.12 and max(radii) <= 0.3 and max(radii) - min(radii) > 0.1
    assert {p["colours"] for p in params} == {1, 2, 3, 4}
    assert {p["hairs"] for p in params} == set(range(7))
    assert {p["vignette"] for p in params} == {True, False}
    for p in params:
        assert abs(p["centre"][0] - 0.5) <= 0.06 and abs(p["centre"][1] - 0.5) <= 0.06


@pytest.mark.parametrize("seed", range(12))
def test_random_lesion_is_always_a_findable_lesion(seed: int) -> None:
    params = random_lesion_params(seed, width=W, height=H)
    img = random_lesion(seed, width=W, height=H)
    assert np.array_equal(img, draw_lesion(**params))
    mask = lesion_mask(**params)
    assert not touches_border(mask)  # whole lesion in frame
    assert 0.03 < mask.mean() < 0.5
    lum = luminance(img)
    ring = cv2.dilate(mask.astype(np.uint8), np.ones((15, 15), np.uint8)).astype(bool) & ~mask
    assert lum[mask].mean() < 0.7 * np.median(lum[ring])


def test_draw_skin_is_the_background_of_draw_lesion() -> None:
    kwargs = dict(seed=21, width=W, height=H)
    lesion, skin, mask = draw_lesion(**kwargs), draw_skin(**kwargs), lesion_mask(**kwargs)
    around = cv2.dilate(mask.astype(np.uint8), np.ones((15, 15), np.uint8)).astype(bool)
    assert np.array_equal(lesion[~around], skin[~around])
    assert np.abs(lesion[mask].astype(int) - skin[mask].astype(int)).mean() > 40
