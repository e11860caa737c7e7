"""ABCD features on drawn lesions whose shape, size and colour zones are known."""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np
import pytest

from kiosk.synthetic import SKIN_TONES, draw_lesion, lesion_mask
from kiosk.vision.features import (
    DERMOSCOPIC_COLOURS,
    asymmetry,
    border_irregularity,
    diameter_pixels,
    lesion_features,
)
from kiosk.vision.lesion import find_lesion

SEEDS = range(6)


def features(mm_per_pixel: float | None = None, **params: object) -> dict:
    image = draw_lesion(**params)
    return lesion_features(image, find_lesion(image), mm_per_pixel=mm_per_pixel)


def disc(radius: float, size: int = 200) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return np.hypot(xx - size / 2 + 0.5, yy - size / 2 + 0.5) <= radius


# --- A: asymmetry ------------------------------------------------------------------------------


def test_asymmetry_of_round_and_ragged_lesions() -> None:
    round_ = [features(seed=s, irregularity=0.0, colours=1)["asymmetry"] for s in SEEDS]
    ragged = [features(seed=s, irregularity=1.0, colours=1)["asymmetry"] for s in SEEDS]
    assert max(round_) < 0.05, round_  # an ellipse is symmetric about both principal axes
    assert min(ragged) > 0.08, ragged
    for r, g in zip(round_, ragged, strict=True):  # the same seed, only the border changed
        assert g > 2 * r + 0.03, (round_, ragged)


def test_asymmetry_of_exact_shapes() -> None:
    assert asymmetry(disc(60)) < 0.02
    ellipse = np.zeros((200, 300), np.uint8)
    cv2.ellipse(ellipse, (150, 100), (120, 50), 30, 0, 360, 1, -1)
    assert asymmetry(ellipse.astype(bool)) < 0.03  # elongated but symmetric
    pear = np.zeros((200, 300), np.uint8)  # a big disc with a small one stuck on one side
    cv2.circle(pear, (130, 100), 60, 1, -1)
    cv2.circle(pear, (205, 100), 30, 1, -1)
    assert asymmetry(pear.astype(bool)) > 0.08
    assert asymmetry(np.zeros((20, 20), bool)) == 0.0


# --- B: border irregularity --------------------------------------------------------------------


def test_border_irregularity_round_vs_ragged() -> None:
    round_ = [features(seed=s, irregularity=0.0, colours=1)["border_irregularity"] for s in SEEDS]
    ragged = [features(seed=s, irregularity=1.0, colours=1)["border_irregularity"] for s in SEEDS]
    # Compactness of a pixel contour of an ellipse with aspect >= 0.75: a little above 1.
    assert all(1.0 <= b < 1.25 for b in round_), round_
    assert min(ragged) > 1.5, ragged
    assert min(ragged) > max(round_) + 0.3


def test_border_irregularity_of_a_circle_is_near_one() -> None:
    assert border_irregularity(disc(80)) == pytest.approx(1.0, abs=0.12)
    square = np.zeros((100, 100), bool)
    square[20:80, 20:80] = True
    assert border_irregularity(square) == pytest.approx(4 / math.pi, rel=0.05)
    assert border_irregularity(np.zeros((10, 10), bool)) == 0.0


# --- C: colours --------------------------------------------------------------------------------


def test_colour_count_grows_with_drawn_colour_zones() -> None:
    counts = {c: [features(seed=s, colours=c, radius=0.25)["colour_count"] for s in range(10)] for c in (1, 4)}
    assert np.mean(counts[4]) > np.mean(counts[1]) + 0.5, counts
    assert all(c4 >= c1 for c1, c4 in zip(counts[1], counts[4], strict=True)), counts


@pytest.mark.xfail(
    strict=True,
    reason=(
        "Colour names use absolute CIE L*a*b* references, and Shades of Gray fixes the lamp colour, "
        "not exposure: on Fitzpatrick V skin every drawn zone (brown, dark, blue-grey, red) reads "
        "'black', so a 4-colour lesion reports 1 colour for 10/10 seeds (Fitzpatrick I-III: 2-4)."
    ),
)
def test_colour_zones_are_told_apart_on_dark_skin() -> None:
    counts = [features(seed=s, colours=4, radius=0.25, skin=SKIN_TONES[4])["colour_count"] for s in range(5)]
    assert np.mean(counts) >= 2, counts


def test_colours_are_named_from_the_catalogue() -> None:
    f = features(seed=2, colours=4, radius=0.25)
    assert f["colours"] and set(f["colours"]) <= set(DERMOSCOPIC_COLOURS)
    assert f["colour_count"] == len(f["colours"])


# --- D: diameter -------------------------------------------------------------------------------


def test_diameter_matches_the_drawn_lesion() -> None:
    radius, short = 0.2, 480
    near_round = 0
    for seed in range(10):
        params = dict(seed=seed, radius=radius, irregularity=0.0, colours=1)
        f = features(**params)
        truth = diameter_pixels(lesion_mask(**params))  # max Feret diameter of the exact mask
        assert f["diameter_px"] == pytest.approx(truth, rel=0.03), (seed, f["diameter_px"], truth)
        # irregularity=0 draws an ellipse of aspect 0.75-0.97 with the area of a circle of
        # radius r, so its longest diameter is 2r/sqrt(aspect): between 2r and 1.155 * 2r.
        assert 0.97 * 2 * radius * short <= f["diameter_px"] <= 1.18 * 2 * radius * short, (seed, f)
        if truth < 1.05 * 2 * radius * short:  # the nearly circular ones
            near_round += 1
            assert f["diameter_px"] == pytest.approx(2 * radius * short, rel=0.10), (seed, f)
    assert near_round >= 3


def test_diameter_is_in_full_image_pixels() -> None:
    small = features(seed=5, width=320, height=240, irregularity=0.0)
    big = features(seed=5, width=1280, height=960, irregularity=0.0)
    assert big["diameter_px"] == pytest.approx(4 * small["diameter_px"], rel=0.05)
    assert big["diameter_px"] == pytest.approx(2 * 0.2 * 960, rel=0.15)


def test_diameter_mm_uses_mm_per_pixel() -> None:
    f = features(mm_per_pixel=0.025, seed=4, irregularity=0.0)
    assert f["diameter_mm"] == pytest.approx(f["diameter_px"] * 0.025, abs=0.06)
    assert f["diameter_mm"] > 4  # ~200 px * 0.025 mm
    assert features(seed=4, irregularity=0.0)["diameter_mm"] is None


def test_diameter_of_exact_shapes() -> None:
    assert diameter_pixels(disc(50)) == pytest.approx(100, abs=2)
    bar = np.zeros((50, 200), bool)
    bar[20:30, 10:190] = True
    assert diameter_pixels(bar) == pytest.approx(math.hypot(179, 9), abs=1)
    assert diameter_pixels(np.zeros((10, 10), bool)) == 0.0


# --- no lesion ---------------------------------------------------------------------------------


def test_no_lesion_gives_no_features() -> None:
    grey = np.full((480, 640, 3), 128, np.uint8)
    lesion = find_lesion(grey)
    assert not lesion.found
    assert lesion_features(grey, lesion) == {}
    assert lesion_features(grey, lesion, mm_per_pixel=0.02) == {}
    image = draw_lesion(seed=1)
    hidden = dataclasses.replace(find_lesion(image), found=False)
    assert lesion_features(image, hidden) == {}


def test_feature_keys_and_area_fraction() -> None:
    image = draw_lesion(seed=3, hairs=2)
    lesion = find_lesion(image)
    f = lesion_features(image, lesion, mm_per_pixel=0.02)
    assert set(f) == {
        "asymmetry",
        "border_irregularity",
        "colour_count",
        "colours",
        "diameter_px",
        "diameter_mm",
        "area_fraction",
    }
    assert f["area_fraction"] == pytest.approx(lesion.area_fraction, abs=1e-4)
