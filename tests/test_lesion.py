"""find_lesion against the synthetic drawer's exact ground truth (kiosk.synthetic.lesion_mask).

The Lesion mask is at working resolution (longest side WORK_SIDE), so the
full-resolution truth is shrunk to the mask's shape with INTER_NEAREST before
comparing.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from kiosk.synthetic import SKIN_TONES, draw_lesion, lesion_mask, random_lesion_params
from kiosk.vision.lesion import WORK_SIDE, Lesion, find_lesion, working_copy

MIN_IOU = 0.7


def truth_at(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Shrink a full-resolution bool mask to the working resolution ``shape`` (h, w)."""
    h, w = shape
    return cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def segment(**params: object) -> tuple[Lesion, np.ndarray, float]:
    """Draw, segment, and return (lesion, truth at working resolution, IoU)."""
    lesion = find_lesion(draw_lesion(**params))
    truth = truth_at(lesion_mask(**params), lesion.mask.shape)
    return lesion, truth, iou(lesion.mask, truth)


# --- segmentation quality ----------------------------------------------------------------


@pytest.mark.parametrize("tone", range(len(SKIN_TONES)), ids=[f"fitz{i + 1}" for i in range(len(SKIN_TONES))])
@pytest.mark.parametrize("hairs", [0, 6])
def test_iou_over_seeds_radii_and_skin_tones(tone: int, hairs: int) -> None:
    """Fitzpatrick I-V, with and without hairs, radii 0.1-0.3, a few shapes each."""
    bad = []
    for seed in range(3):
        for radius in (0.1, 0.2, 0.3):
            params = dict(
                seed=seed,
                radius=radius,
                skin=SKIN_TONES[tone],
                hairs=hairs,
                irregularity=0.2 + 0.3 * seed,
                colours=1 + seed,
            )
            lesion, _, score = segment(**params)
            if not lesion.found or score < MIN_IOU:
                bad.append((seed, radius, lesion.found, round(score, 3)))
    assert not bad, f"(seed, radius, found, IoU) below {MIN_IOU}: {bad}"


@pytest.mark.parametrize("centre", [(0.5, 0.5), (0.38, 0.42), (0.62, 0.4), (0.4, 0.63), (0.6, 0.6)])
def test_iou_and_centre_for_off_centre_lesions(centre: tuple[float, float]) -> None:
    for seed in (11, 12):
        lesion, _, score = segment(seed=seed, centre=centre, radius=0.15, irregularity=0.5, colours=3)
        assert lesion.found
        assert score >= MIN_IOU, (seed, score)
        # The drawer's ``centre`` is the exact centroid of the drawn outline.
        assert lesion.centre[0] == pytest.approx(centre[0], abs=0.01), (seed, lesion.centre)
        assert lesion.centre[1] == pytest.approx(centre[1], abs=0.01), (seed, lesion.centre)


def test_centre_matches_ground_truth_centroid_for_random_lesions() -> None:
    for seed in range(8):
        params = random_lesion_params(seed)
        lesion, truth, score = segment(**params)
        assert lesion.found and score >= MIN_IOU, (seed, score)
        ys, xs = np.nonzero(truth)
        h, w = truth.shape
        assert lesion.centre[0] == pytest.approx((xs.mean() + 0.5) / w, abs=0.015)
        assert lesion.centre[1] == pytest.approx((ys.mean() + 0.5) / h, abs=0.015)
        assert lesion.centre[0] == pytest.approx(params["centre"][0], abs=0.02)
        assert lesion.centre[1] == pytest.approx(params["centre"][1], abs=0.02)


def test_very_irregular_multicolour_lesions() -> None:
    for seed in range(20, 24):
        lesion, _, score = segment(seed=seed, radius=0.22, irregularity=1.0, colours=4, hairs=3)
        assert lesion.found and score >= MIN_IOU, (seed, score)


def test_area_fraction_matches_truth() -> None:
    lesion, truth, _ = segment(seed=5, radius=0.2, irregularity=0.0)
    assert lesion.area_fraction == pytest.approx(truth.sum() / lesion.fov.sum(), rel=0.1)
    assert lesion.contrast > 20  # a drawn lesion is far darker than the skin around it


# --- dermatoscope vignette -------------------------------------------------------------------


@pytest.mark.parametrize("centre", [(0.5, 0.5), (0.42, 0.56)])
def test_vignette_finds_the_lesion_not_the_black_ring(centre: tuple[float, float]) -> None:
    for seed in range(3):
        params = dict(seed=seed, centre=centre, radius=0.18, vignette=True, hairs=2)
        lesion, _, score = segment(**params)
        assert lesion.found
        assert score >= MIN_IOU, (seed, score)
        h, w = lesion.mask.shape
        # The corners are black, outside the field of view, and not part of the lesion.
        for y, x in ((0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1)):
            assert not lesion.fov[y, x]
            assert not lesion.mask[y, x]
        # Nothing of the mask lies out near the lens rim (radius 0.575 * short side).
        yy, xx = np.mgrid[:h, :w]
        dist = np.hypot(xx - (w - 1) / 2, yy - (h - 1) / 2) / min(h, w)
        assert not lesion.mask[dist > 0.45].any()
        assert lesion.centre == pytest.approx(centre, abs=0.015)
        # The box hugs the lesion (full-image pixels), not the 640x480 frame or the ring.
        bx, by, bw, bh = lesion.box
        assert bw < 0.6 * 640 and bh < 0.6 * 480


def test_field_of_view_is_everything_without_a_vignette() -> None:
    lesion = find_lesion(draw_lesion(seed=2))
    assert lesion.fov.all()


# --- big camera frames -----------------------------------------------------------------------


def test_12_megapixel_frame_box_is_in_full_image_coordinates() -> None:
    width, height = 4056, 3040
    params = dict(seed=5, width=width, height=height, centre=(0.45, 0.55), radius=0.15, irregularity=0.4)
    image = draw_lesion(**params)
    truth = lesion_mask(**params)
    lesion = find_lesion(image)
    assert lesion.found
    assert lesion.mask.shape == (round(height * WORK_SIDE / width), WORK_SIDE)
    assert lesion.work_scale == pytest.approx(width / WORK_SIDE)
    assert iou(lesion.mask, truth_at(truth, lesion.mask.shape)) >= MIN_IOU

    ys, xs = np.nonzero(truth)
    tx, ty, tw, th = xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
    x, y, w, h = lesion.box
    assert 0 <= x and 0 <= y and x + w <= width and y + h <= height
    slack = 3 * lesion.work_scale  # a few working pixels, in full-image pixels
    assert abs(x - tx) <= slack and abs(y - ty) <= slack, (lesion.box, (tx, ty, tw, th))
    assert abs(w - tw) <= 2 * slack and abs(h - th) <= 2 * slack, (lesion.box, (tx, ty, tw, th))
    # Sanity: a box in working coordinates would be ~16x smaller.
    assert w > 500 and h > 500
    assert lesion.centre == pytest.approx((0.45, 0.55), abs=0.01)


def test_box_scales_with_resolution() -> None:
    """The same scene at two resolutions gives the same box in each image's own pixels."""
    small = find_lesion(draw_lesion(seed=9, width=320, height=240, centre=(0.55, 0.45), radius=0.2))
    big = find_lesion(draw_lesion(seed=9, width=1280, height=960, centre=(0.55, 0.45), radius=0.2))
    assert small.found and big.found
    for s, b in zip(small.box, big.box, strict=True):
        assert b == pytest.approx(4 * s, abs=4 * 4)  # within ~2 working pixels


def test_working_copy_bounds_the_longest_side() -> None:
    image = np.zeros((3040, 4056, 3), np.uint8)
    work, scale = working_copy(image)
    assert max(work.shape[:2]) == WORK_SIDE and scale == pytest.approx(4056 / WORK_SIDE)
    small = np.zeros((100, 120, 3), np.uint8)
    work, scale = working_copy(small)
    assert work.shape == small.shape and scale == 1.0


# --- known limitation (see report) ------------------------------------------------------------


@pytest.mark.xfail(
    strict=True,
    reason=(
        "Otsu on the whole field of view: a small lesion (radius 0.05 of the short side, ~0.6% of "
        "the frame) does not make the histogram bimodal, so the threshold splits skin shading and a "
        "large skin blob (area fraction up to 0.58) is returned instead: IoU < 0.15 for 6/20 seeds at "
        "radius 0.05, 16/20 at 0.04, 2/20 at 0.06, 0/20 from 0.07 up."
    ),
)
def test_small_lesions_are_segmented() -> None:
    bad = []
    for seed in range(20):
        lesion, _, score = segment(seed=seed, radius=0.05)
        if score < 0.5:
            bad.append((seed, round(score, 3), round(lesion.area_fraction, 3)))
    assert not bad, f"(seed, IoU, area fraction) of missed small lesions: {bad}"
