"""The blur measure and the sharpening of a blurred model input (kiosk.vision.sharpen)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from kiosk.synthetic import draw_lesion
from kiosk.vision.preprocess import get_recipe, preprocess
from kiosk.vision.sharpen import blur_effect, restore_sharpness, unsharp_mask

SHARP_RECIPE = "crop-band1-fill-sharp40-sog6-v1"


def lesion_input(seed: int = 0) -> np.ndarray:
    return cv2.resize(draw_lesion(seed=seed, hairs=3), (160, 160), interpolation=cv2.INTER_AREA)


@pytest.mark.parametrize("seed", range(4))
def test_blur_effect_rises_with_blur(seed: int) -> None:
    image = lesion_input(seed)
    effects = [blur_effect(cv2.GaussianBlur(image, (0, 0), s)) if s else blur_effect(image) for s in (0, 1, 2, 4)]
    assert effects == sorted(effects) and effects[-1] - effects[0] > 0.2
    assert all(0.0 <= e <= 1.0 for e in effects)


def test_blur_effect_of_a_flat_or_tiny_image() -> None:
    assert blur_effect(np.full((64, 64, 3), 128, np.uint8)) == 1.0  # no variation at all: nothing sharp in it
    assert blur_effect(np.zeros((10, 10, 3), np.uint8)) == 0.0  # too small to measure: left alone


def test_unsharp_mask_adds_contrast_at_edges_only() -> None:
    image = np.full((40, 40, 3), 100, np.uint8)
    image[:, 20:] = 160
    out = unsharp_mask(image, amount=1.0, sigma=1.0)
    assert out[:, 19].max() < 100 and out[:, 20].min() > 160  # overshoot both sides of the edge
    assert (out[:, :15] == 100).all() and (out[:, 25:] == 160).all()  # flat areas untouched
    assert unsharp_mask(image, amount=0.0, sigma=1.0) is image


def test_restore_sharpness_leaves_a_sharp_input_alone_and_sharpens_a_blurred_one() -> None:
    sharp = lesion_input(1)
    assert blur_effect(sharp) < 0.3
    assert restore_sharpness(sharp, above=0.3, gain=20.0, most=2.0) is sharp
    blurred = cv2.GaussianBlur(sharp, (0, 0), 2.0)
    restored = restore_sharpness(blurred, above=0.3, gain=20.0, most=2.0)
    assert blur_effect(restored) < blur_effect(blurred) - 0.05
    # The amount is capped at most=2.
    assert np.array_equal(restored, unsharp_mask(blurred, amount=2.0, sigma=0.7))
    mild = restore_sharpness(blurred, above=blur_effect(blurred) - 0.01, gain=20.0, most=2.0)
    assert 0 < np.abs(mild.astype(int) - blurred).max() < np.abs(restored.astype(int) - blurred).max()


def test_the_sharpening_recipe_changes_only_blurred_photos() -> None:
    recipe = get_recipe(SHARP_RECIPE)
    assert recipe.sharpen_above == 0.40 and "sharpened" in recipe.describe()
    photo = draw_lesion(seed=5, width=640, height=480, hairs=4)
    plain = preprocess(photo, size=160, recipe="crop-band1-fill-sog6-v1")
    if blur_effect(plain) < 0.4:  # a sharp drawing: the two recipes agree exactly
        assert np.array_equal(preprocess(photo, size=160, recipe=SHARP_RECIPE), plain)
    blurred_photo = cv2.GaussianBlur(photo, (0, 0), 6.0)
    before = preprocess(blurred_photo, size=160, recipe="crop-band1-fill-sog6-v1")
    after = preprocess(blurred_photo, size=160, recipe=SHARP_RECIPE)
    assert blur_effect(after) < blur_effect(before)
