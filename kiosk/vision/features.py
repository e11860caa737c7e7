"""ABCD features of the lesion, shown to the health worker as "detected features".

- **A**symmetry: mismatch of the mask with its own mirror images about its two
  principal axes (0 = perfectly symmetric, 1 = no overlap).
- **B**order irregularity: compactness ``perimeter^2 / (4 pi area)`` (1.0 is a circle;
  ragged borders score higher).
- **C**olours: which of the six dermoscopic colours (white, red, light brown,
  dark brown, blue-grey, black) cover at least 5% of the lesion.
- **D**iameter: the longest distance across the lesion, in pixels of the
  original photo, and in mm when the camera's ``mm_per_pixel`` is configured.

These are descriptive aids, not a second classifier: the risk band comes from
the model alone.

>>> from kiosk.synthetic import draw_lesion
>>> from kiosk.vision.lesion import find_lesion
>>> image = draw_lesion(seed=4, irregularity=0.0, colours=1)
>>> f = lesion_features(image, find_lesion(image), mm_per_pixel=0.05)
>>> f["border_irregularity"] < 1.3, f["diameter_mm"] is not None
(True, True)
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from .lesion import Lesion
from .preprocess import illuminant_gains

# Reference colours in CIE L*a*b* (L 0-100), after colour constancy.
DERMOSCOPIC_COLOURS: dict[str, tuple[float, float, float]] = {
    "white": (90.0, 0.0, 5.0),
    "red": (50.0, 45.0, 25.0),
    "light_brown": (60.0, 15.0, 30.0),
    "dark_brown": (35.0, 15.0, 20.0),
    "blue_grey": (45.0, -2.0, -12.0),
    "black": (12.0, 0.0, 0.0),
}
MIN_COLOUR_SHARE = 0.05


def asymmetry(mask: np.ndarray) -> float:
    """Mean non-overlap of the mask with its mirror images about both principal axes."""
    ys, xs = np.nonzero(mask)
    if xs.size < 10:
        return 0.0
    points = np.stack([xs, ys], 1).astype(np.float32)
    centre = points.mean(0)
    _, vectors = np.linalg.eigh(np.cov((points - centre).T))
    aligned = (points - centre) @ vectors  # coordinates along the principal axes
    grid = np.round(aligned).astype(np.int32)
    grid -= grid.min(0)
    h, w = grid[:, 1].max() + 1, grid[:, 0].max() + 1
    canvas = np.zeros((h + 2, w + 2), bool)
    canvas[grid[:, 1] + 1, grid[:, 0] + 1] = True
    canvas = cv2.morphologyEx(canvas.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8)).astype(bool)
    area = canvas.sum()
    scores = []
    for flipped in (canvas[::-1, :], canvas[:, ::-1]):
        # Mirror about the centroid, not the canvas middle.
        shift = np.round(2 * (np.array(np.nonzero(canvas)).mean(1)) - np.array(canvas.shape) + 1).astype(int)
        moved = np.roll(flipped, shift=tuple(shift), axis=(0, 1))
        scores.append(float((canvas ^ moved).sum()) / (2.0 * area))
    return float(np.clip(np.mean(scores), 0.0, 1.0))


def border_irregularity(mask: np.ndarray) -> float:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return 0.0
    contour = max(contours, key=cv2.contourArea)
    area = cv2.contourArea(contour)
    if area <= 0:
        return 0.0
    perimeter = cv2.arcLength(contour, closed=True)
    return float(perimeter**2 / (4 * np.pi * area))


def colours_present(work_rgb: np.ndarray, mask: np.ndarray) -> list[str]:
    pixels = work_rgb[mask]
    if pixels.shape[0] == 0:
        return []
    # Shares, not exact counts, matter: a fixed-stride sample of the lesion and a
    # half-resolution estimate of the lamp colour keep this to about a millisecond.
    pixels = pixels[:: max(1, pixels.shape[0] // 4000)]
    gains = illuminant_gains(work_rgb[::2, ::2])
    balanced = np.clip(pixels.astype(np.float32) * gains, 0, 255) / 255.0
    lab = cv2.cvtColor(balanced[None], cv2.COLOR_RGB2LAB)[0]
    names = list(DERMOSCOPIC_COLOURS)
    refs = np.array([DERMOSCOPIC_COLOURS[n] for n in names], np.float32)
    nearest = np.argmin(((lab[:, None, :] - refs[None]) ** 2).sum(-1), axis=1)
    shares = np.bincount(nearest, minlength=len(names)) / lab.shape[0]
    return [n for n, share in zip(names, shares, strict=True) if share >= MIN_COLOUR_SHARE]


def diameter_pixels(mask: np.ndarray) -> float:
    """Longest distance between two boundary points (max Feret diameter), working pixels."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return 0.0
    hull = cv2.convexHull(np.concatenate(contours)).reshape(-1, 2).astype(np.float32)
    if len(hull) < 2:
        return 0.0
    d = np.sqrt(((hull[:, None, :] - hull[None, :, :]) ** 2).sum(-1))
    return float(d.max())


def lesion_features(image: np.ndarray, lesion: Lesion, *, mm_per_pixel: float | None = None) -> dict[str, Any]:
    """The ABCD features of ``lesion`` in the RGB uint8 ``image`` (empty dict when none was found).

    Known limit: the colour references are absolute, so on very dark skin
    (Fitzpatrick V-VI) light-brown and red zones tend to be reported as black.
    """
    if not lesion.found:
        return {}
    colours = colours_present(lesion.work, lesion.mask)
    diameter_px = diameter_pixels(lesion.mask) * lesion.work_scale
    return {
        "asymmetry": round(asymmetry(lesion.mask), 3),
        "border_irregularity": round(border_irregularity(lesion.mask), 3),
        "colour_count": len(colours),
        "colours": colours,
        "diameter_px": round(diameter_px, 1),
        "diameter_mm": round(diameter_px * mm_per_pixel, 1) if mm_per_pixel else None,
        "area_fraction": round(lesion.area_fraction, 4),
    }
