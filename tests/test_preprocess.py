"""THE preprocess function: shape, determinism, crop, colour constancy, hair removal, recipe freeze."""

from __future__ import annotations

import hashlib

import cv2
import numpy as np
import pytest

from kiosk.synthetic import SKIN_TONES, draw_lesion, lesion_mask
from kiosk.vision.lesion import find_lesion
from kiosk.vision.preprocess import (
    DEFAULT_RECIPE,
    RECIPES,
    Recipe,
    crop_box,
    get_recipe,
    preprocess,
    shades_of_gray,
)

NO_COLOUR = Recipe(id="test-crop-only", shades_of_gray_p=None)  # the default crop, no colour constancy


def channel_spread(image: np.ndarray) -> float:
    means = image.reshape(-1, 3).astype(np.float64).mean(axis=0)
    return float(means.max() - means.min())


# --- format ------------------------------------------------------------------------------------


@pytest.mark.parametrize("recipe", sorted(RECIPES))
@pytest.mark.parametrize(("width", "height"), [(640, 480), (300, 300), (360, 640), (150, 140)])
@pytest.mark.parametrize("size", [64, 160, 224])
def test_shape_and_dtype(recipe: str, width: int, height: int, size: int) -> None:
    image = draw_lesion(seed=3, width=width, height=height, hairs=2)
    out = preprocess(image, size=size, recipe=recipe)
    assert out.shape == (size, size, 3)
    assert out.dtype == np.uint8
    assert out.flags.c_contiguous
    assert out.std() > 5  # a picture, not a flat fill


def test_twelve_megapixel_frame() -> None:
    image = cv2.resize(draw_lesion(seed=5), (4056, 3040), interpolation=cv2.INTER_LINEAR)
    out = preprocess(image, size=160)
    assert out.shape == (160, 160, 3) and out.dtype == np.uint8


def test_default_recipe_is_the_shipped_one() -> None:
    assert DEFAULT_RECIPE == "crop-sog6-v1"
    image = draw_lesion(seed=2)
    assert np.array_equal(preprocess(image, size=96), preprocess(image, size=96, recipe="crop-sog6-v1"))
    assert get_recipe(RECIPES["full-v1"]) is RECIPES["full-v1"]


# --- determinism -------------------------------------------------------------------------------


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_deterministic_and_input_untouched(recipe: str) -> None:
    image = draw_lesion(seed=12, hairs=4, colours=3, vignette=True)
    before = image.copy()
    a = preprocess(image, size=160, recipe=recipe)
    b = preprocess(image.copy(), size=160, recipe=recipe)
    assert np.array_equal(a, b)
    assert np.array_equal(image, before)


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_precomputed_lesion_gives_identical_result(recipe: str) -> None:
    for seed, centre in ((1, (0.5, 0.5)), (4, (0.35, 0.62))):
        image = draw_lesion(seed=seed, centre=centre, radius=0.15, hairs=3)
        lesion = find_lesion(image)
        assert np.array_equal(
            preprocess(image, size=160, recipe=recipe), preprocess(image, size=160, recipe=recipe, lesion=lesion)
        )


# --- the crop ----------------------------------------------------------------------------------

OFF_CENTRE = [
    dict(centre=(0.3, 0.4), radius=0.15),
    dict(centre=(0.72, 0.65), radius=0.18),
    dict(centre=(0.35, 0.7), radius=0.2, irregularity=0.8),
    dict(centre=(0.65, 0.3), radius=0.12, hairs=5),
    dict(centre=(0.25, 0.5), radius=0.22),
    dict(width=360, height=640, centre=(0.5, 0.3), radius=0.2),
]


@pytest.mark.parametrize("params", OFF_CENTRE, ids=lambda p: f"{p['centre']}r{p['radius']}")
def test_crop_contains_the_whole_drawn_lesion(params: dict) -> None:
    for seed in range(3):
        image = draw_lesion(seed=seed, **params)
        ys, xs = np.nonzero(lesion_mask(seed=seed, **params))
        lesion = find_lesion(image)
        for recipe in ("crop-sog6-v1", "crop-hair-sog6-v1"):
            x0, y0, side = crop_box(image.shape, lesion, get_recipe(recipe))
            h, w = image.shape[:2]
            assert 0 <= x0 and 0 <= y0 and x0 + side <= w and y0 + side <= h
            assert x0 <= xs.min() and xs.max() < x0 + side, (seed, recipe, (x0, y0, side), (xs.min(), xs.max()))
            assert y0 <= ys.min() and ys.max() < y0 + side, (seed, recipe, (x0, y0, side), (ys.min(), ys.max()))


def test_preprocess_uses_the_crop_box() -> None:
    """At size == side and without colour constancy, the output IS the crop (black-box check)."""
    for params in OFF_CENTRE[:3]:
        image = draw_lesion(seed=1, **params)
        x0, y0, side = crop_box(image.shape, find_lesion(image), NO_COLOUR)
        out = preprocess(image, size=side, recipe=NO_COLOUR)
        assert np.array_equal(out, image[y0 : y0 + side, x0 : x0 + side])


def test_crop_is_never_tighter_than_min_crop() -> None:
    image = draw_lesion(seed=2, radius=0.05)  # a tiny box would give a tiny crop
    lesion = find_lesion(image)
    _, _, side = crop_box(image.shape, lesion, get_recipe("crop-sog6-v1"))
    assert side >= round(0.7 * 480)


def test_no_lesion_crops_the_centre_square() -> None:
    image = np.random.default_rng(0).integers(0, 256, (480, 640, 3)).astype(np.uint8)
    lesion = find_lesion(np.full((480, 640, 3), 128, np.uint8))
    assert not lesion.found
    assert crop_box(image.shape, lesion, get_recipe("crop-sog6-v1")) == (80, 0, 480)
    out = preprocess(image, size=480, recipe=NO_COLOUR, lesion=lesion)
    assert np.array_equal(out, image[:, 80:560])


def test_full_recipe_ignores_the_lesion() -> None:
    image = draw_lesion(seed=6, centre=(0.3, 0.35), radius=0.12)
    expected = cv2.resize(image[:, 80:560], (160, 160), interpolation=cv2.INTER_AREA)
    assert np.array_equal(preprocess(image, size=160, recipe="full-v1"), expected)


# --- colour constancy --------------------------------------------------------------------------


def test_shades_of_gray_removes_a_colour_cast() -> None:
    for seed in range(4):
        image = draw_lesion(seed=seed)
        cast = np.clip(image * np.array([1.3, 1.0, 0.7]), 0, 255).astype(np.uint8)
        plain = preprocess(cast, size=160, recipe=NO_COLOUR)
        balanced = preprocess(cast, size=160, recipe="crop-sog6-v1")
        assert channel_spread(plain) > 80, seed
        assert channel_spread(balanced) < channel_spread(plain) / 5, (seed, channel_spread(balanced))
        assert channel_spread(balanced) < 20, seed


def test_shades_of_gray_is_invariant_to_channel_gains() -> None:
    """The point of colour constancy: the same scene under two lamp colours gets the same colours.

    (Up to overall brightness: the output keeps the mean of the illuminant estimate.)
    """

    def chroma(image: np.ndarray) -> np.ndarray:  # R/G and B/G of the channel means
        means = image.reshape(-1, 3).astype(np.float64).mean(axis=0)
        return means[[0, 2]] / means[1]

    image = draw_lesion(seed=3, skin=SKIN_TONES[3])  # dark enough that x1.25 does not clip
    for gains in ((1.25, 1.0, 0.8), (0.8, 0.9, 1.2)):
        lit = np.clip(image * np.array(gains), 0, 255).astype(np.uint8)
        assert lit.max() < 255
        assert np.abs(chroma(lit) / chroma(image) - 1).max() > 0.15  # the cast is real
        assert chroma(shades_of_gray(lit)) == pytest.approx(chroma(shades_of_gray(image)), rel=0.02)
        # Pixel by pixel too, once overall brightness is matched.
        a, b = shades_of_gray(lit).astype(float), shades_of_gray(image).astype(float)
        assert np.abs(a * (b.mean() / a.mean()) - b).mean() < 1.5


def test_shades_of_gray_leaves_grey_alone() -> None:
    grey = np.full((32, 32, 3), 100, np.uint8)
    assert np.array_equal(shades_of_gray(grey), grey)


# --- hair removal ------------------------------------------------------------------------------


@pytest.mark.parametrize("tone", [0, 2, 4])
def test_hair_removal_removes_dark_thin_lines(tone: int) -> None:
    for seed in range(3):
        params = dict(seed=seed, skin=SKIN_TONES[tone], radius=0.2)
        clean, hairy = draw_lesion(hairs=0, **params), draw_lesion(hairs=12, **params)
        lesion = find_lesion(clean)  # same crop for all three, so pixels line up
        truth = preprocess(clean, size=160, recipe="crop-sog6-v1", lesion=lesion).astype(int)
        raw = preprocess(hairy, size=160, recipe="crop-sog6-v1", lesion=lesion).astype(int)
        fixed = preprocess(hairy, size=160, recipe="crop-hair-sog6-v1", lesion=lesion).astype(int)
        hair = (truth - raw).mean(axis=2) > 25  # pixels the hairs darkened
        assert hair.sum() > 100, (seed, hair.sum())
        still_dark = ((truth - fixed).mean(axis=2) > 25).sum()
        assert still_dark < 0.1 * hair.sum(), (seed, int(still_dark), int(hair.sum()))
        assert np.abs(truth - fixed)[hair].mean() < 0.2 * np.abs(truth - raw)[hair].mean()


def test_hair_removal_does_not_erase_the_lesion() -> None:
    image = draw_lesion(seed=4, radius=0.2, colours=3)
    plain = preprocess(image, size=160, recipe="crop-sog6-v1").astype(int)
    dehaired = preprocess(image, size=160, recipe="crop-hair-sog6-v1").astype(int)
    assert np.abs(plain - dehaired).mean() < 3


# --- recipes -----------------------------------------------------------------------------------


def test_unknown_recipe_is_a_value_error_naming_the_known_ones() -> None:
    image = draw_lesion(seed=1, width=200, height=200)
    with pytest.raises(ValueError, match="crop-sog6-v2") as excinfo:
        preprocess(image, size=64, recipe="crop-sog6-v2")
    for known in RECIPES:
        assert known in str(excinfo.value)


# Recipe-freeze tripwire. The shipped model was trained with recipe "crop-sog6-v1", and its
# manifest records only that id. If this test fails, the preprocessing changed (lesion finder ->
# crop, resize, hair removal or Shades of Gray), and every model trained with that recipe id is
# now fed different inputs than it was trained on. Do NOT update the digests: make a new recipe
# id (e.g. "crop-sog6-v2") for the new behaviour and leave "crop-sog6-v1" producing exactly these
# bytes. (An OpenCV or numpy upgrade can also move the bytes; that too changes what the model sees
# and must be checked, not waved through.) The input digests and crop boxes are pinned as well so
# a failure says which stage moved: the synthetic drawer, the lesion finder's crop, or the rest.
FROZEN = {
    "seed7": (
        dict(seed=7),
        "8eb7df609097f8463c9c8722e1df140ac798f361caba2a0e054880733acadcec",
        (225, 145, 192, 192),
        "0f91db94ed710ec2f94398369516ad48ae6d95d53e489709b8eb4b6dbe3cabf7",
    ),
    "vignette-hairs": (
        dict(seed=21, centre=(0.42, 0.58), radius=0.16, colours=4, hairs=4, vignette=True),
        "66aa6061f541f65ac2f0e413a5535cb9062b66d913ca2a460dd7e30c66140d3a",
        (190, 205, 155, 150),
        "258f17fb774e15596f06862a4c965a1028de8536ffb50ab1a245caff306206e3",
    ),
    "dark-square": (
        dict(seed=33, width=300, height=300, irregularity=0.9, skin=SKIN_TONES[4]),
        "ba9001ef895f5a0c7ea3a39ea4dbf554a865001e807488359271ae6a38831727",
        (89, 78, 118, 149),
        "fd1e699b83dba765adbfed14cd1695a9af952d29e73c7add1279ab2a78e8480b",
    ),
}


@pytest.mark.parametrize("name", sorted(FROZEN))
def test_recipe_crop_sog6_v1_is_frozen(name: str) -> None:
    params, image_digest, box, output_digest = FROZEN[name]
    image = draw_lesion(**params)
    assert hashlib.sha256(image.tobytes()).hexdigest() == image_digest, (
        "kiosk.synthetic drew a different image: this test cannot tell whether the recipe changed; "
        "fix the drawer (or re-derive the pinned inputs with the OLD preprocessing code)"
    )
    lesion = find_lesion(image)
    out = preprocess(image, size=160, recipe="crop-sog6-v1")
    digest = hashlib.sha256(out.tobytes()).hexdigest()
    assert lesion.box == box and digest == output_digest, (
        f"recipe crop-sog6-v1 changed (lesion box {lesion.box} vs pinned {box}; output sha256 {digest}): "
        "models trained with this recipe id now get different inputs. Add a new recipe id instead "
        "of changing this one."
    )


def test_exposure_recipe_takes_a_dim_photo_back_to_the_same_model_input() -> None:
    """crop-expo-sog6-v1 scales the crop's skin to one exposure in linear light: one stop under (a dim room)
    gives nearly the input of the well-lit photo, where the colour-constancy-only recipe keeps it a stop dark."""
    from training.conditions import exposure

    image = draw_lesion(seed=3, width=400, height=300, skin=(232, 196, 172))  # light skin, as in the training photos
    dim = exposure(image, -1.0, np.random.default_rng(0))
    lesion = find_lesion(image)
    for recipe, most, least in (("crop-expo-sog6-v1", 0.0, 2.5), ("crop-sog6-v1", 20.0, 255.0)):
        bright = preprocess(image, size=160, recipe=recipe, lesion=lesion).astype(float)
        dark = preprocess(dim, size=160, recipe=recipe, lesion=lesion).astype(float)
        gap = float(np.abs(bright - dark).mean())
        assert most <= gap <= least, (recipe, gap)


def test_exposure_gain_is_bounded_so_a_black_frame_stays_black() -> None:
    from kiosk.vision.preprocess import normalise_exposure

    black = np.zeros((32, 32, 3), np.uint8)
    assert normalise_exposure(black, target=0.47).max() == 0
    dark = np.full((32, 32, 3), 20, np.uint8)  # linear 0.007: four times that is still far below the target
    assert 30 < int(normalise_exposure(dark, target=0.47)[0, 0, 0]) < 50


def test_exposure_band_leaves_a_photo_near_the_training_exposure_alone_and_corrects_only_the_excess() -> None:
    """exposure_band=1: within a stop of the target nothing changes (the shipped weights see their training input);
    two stops under comes up by exactly the one stop beyond the band."""
    from kiosk.vision.preprocess import normalise_exposure
    from kiosk.vision.srgb import TO_LINEAR

    near = np.full((16, 16, 3), 160, np.uint8)  # linear 0.35: 0.42 stops under 0.47
    assert np.array_equal(normalise_exposure(near, target=0.47, band=1.0), near)
    assert not np.array_equal(normalise_exposure(near, target=0.47), near)
    dim = np.full((16, 16, 3), 95, np.uint8)  # linear 0.114: 2.04 stops under
    lifted = float(TO_LINEAR[normalise_exposure(dim, target=0.47, band=1.0)[0, 0, 0]])
    assert lifted == pytest.approx(0.47 / 2, rel=0.03)


def test_the_band_recipe_equals_the_plain_recipe_on_a_well_exposed_photo() -> None:
    image = draw_lesion(seed=3, width=400, height=300, skin=(232, 196, 172))
    lesion = find_lesion(image)
    band = preprocess(image, size=160, recipe="crop-band1-sog6-v1", lesion=lesion)
    assert np.array_equal(band, preprocess(image, size=160, recipe="crop-sog6-v1", lesion=lesion))


def test_fill_outside_view_paints_a_lens_rim_with_skin_and_keeps_the_view() -> None:
    """A clip-on lens leaves black outside a circle: fill_outside_view paints it the crop's skin colour, so the rim is
    no cue to the model, and leaves the pixels well inside the circle as they were."""
    from training.conditions import lens_circle

    image = lens_circle(draw_lesion(seed=5, width=400, height=300), 0.45, np.random.default_rng(0))
    lesion = find_lesion(image)
    assert not lesion.fov.all(), "the lesion finder sees the circle"
    fill, plain = Recipe(id="t-fill", fill_outside_view=True, min_crop=1.0), Recipe(id="t-plain", min_crop=1.0)
    filled = preprocess(image, size=160, recipe=fill, lesion=lesion)
    raw = preprocess(image, size=160, recipe=plain, lesion=lesion)
    corners = np.concatenate(
        [a[:12, :12].reshape(-1, 3) for a in (filled, filled[:, ::-1], filled[::-1], filled[::-1, ::-1])]
    )
    assert raw[:6, :6].max() < 30, "the plain crop keeps the black rim"
    assert corners.min() > 60, "no black left in the filled corners"
    assert np.abs(filled[60:100, 60:100].astype(int) - raw[60:100, 60:100]).max() <= 3  # only SoG's gains move


def test_fill_outside_view_changes_nothing_without_a_rim() -> None:
    image = draw_lesion(seed=3, width=400, height=300)
    lesion = find_lesion(image)
    assert lesion.fov.all()
    fill = Recipe(id="t-fill", fill_outside_view=True)
    assert np.array_equal(
        preprocess(image, size=160, recipe=fill, lesion=lesion), preprocess(image, size=160, lesion=lesion)
    )
