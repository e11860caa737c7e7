"""Lesion evidence: does the segmented region look like a skin lesion, or like a line, text, a wall?

The lesion finder always finds *something* dark; this module measures whether that something
has the shape and colour of a skin lesion seen close up:

- ``delta_e``: colour difference (CIE76, Lab) between the lesion and the skin ring around it;
- ``surround_hue`` / ``surround_chroma``: the ring's colour; skin of every tone is a warm
  colour (Lab hue angle roughly 20-90 degrees) with some chroma, paper, walls and grey
  pictures are not;
- ``elongation``: major / minor axis of the region; a pen line, crease or scar is long and thin;
- ``solidity``: area / convex hull area; text, cracks and line drawings are ragged;
- ``border_touch``: the share of the region's outline on the edge of the frame;
- ``clutter``: how many other dark regions at least a quarter the lesion's size there are
  (a scene, a form or text has many; a close-up of a lesion has few);
- ``area_fraction``: a speck (a nail hole on a wall, a full stop) is smaller than any real close-up.

:func:`judge_evidence` turns them into a verdict. ``border_touch`` is reported, not judged: real
lesions run off the frame too often for it to tell them apart.

Everything is measured on the working copy, so it costs about a millisecond.

>>> from kiosk.synthetic import draw_lesion
>>> from kiosk.vision.lesion import find_lesion
>>> e = measure_evidence(find_lesion(draw_lesion(seed=3)))
>>> e["elongation"] < 2.0 and e["delta_e"] > 10
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from .lesion import Lesion

#: The keys :func:`measure_evidence` returns (all floats, so they fit in the quality measures).
EVIDENCE_KEYS = (
    "delta_e",
    "surround_hue",
    "surround_chroma",
    "elongation",
    "solidity",
    "border_touch",
    "clutter",
    "area_fraction",
)


def _to_cie(lab8: np.ndarray) -> np.ndarray:
    """OpenCV's 8-bit Lab values as CIE Lab (L 0-100, a* and b* centred on 0)."""
    lab = np.asarray(lab8, np.float64).copy()
    lab[..., 0] *= 100.0 / 255.0
    lab[..., 1:] -= 128.0
    return lab


def measure_evidence(lesion: Lesion) -> dict[str, float]:
    """Shape and colour evidence of ``lesion`` (see the module docstring); zeros when nothing was found."""
    if not lesion.found:
        return {key: 0.0 for key in EVIDENCE_KEYS} | {"elongation": 99.0, "border_touch": 1.0, "clutter": 99.0}
    mask = lesion.mask
    m8 = mask.astype(np.uint8)
    lab = cv2.cvtColor(lesion.work, cv2.COLOR_RGB2LAB)  # 8-bit: medians are taken first, converted after (cheap)
    ring = cv2.dilate(m8, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (21, 21))) > 0
    ring &= ~mask & lesion.fov
    if ring.sum() < 16:  # the region fills the view: no skin to compare with
        ring = lesion.fov & ~mask
    inside = _to_cie(np.median(lab[mask], axis=0))
    around = _to_cie(np.median(lab[ring], axis=0)) if ring.any() else inside
    delta_e = float(np.linalg.norm(inside - around))
    hue = math.degrees(math.atan2(float(around[2]), float(around[1])))
    chroma = float(np.hypot(around[1], around[2]))

    moments = cv2.moments(m8, binaryImage=True)
    mu20, mu02, mu11 = moments["mu20"], moments["mu02"], moments["mu11"]
    spread = math.sqrt(max(0.0, (mu20 - mu02) ** 2 + 4 * mu11**2))
    major, minor = mu20 + mu02 + spread, mu20 + mu02 - spread
    elongation = math.sqrt(major / minor) if minor > 1e-6 else 99.0
    contours, _ = cv2.findContours(m8, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    outline = max(contours, key=cv2.contourArea)
    hull = cv2.contourArea(cv2.convexHull(outline))
    solidity = float(mask.sum()) / hull if hull > 0 else 0.0
    h, w = mask.shape
    points = outline.reshape(-1, 2)
    edge = (points[:, 0] <= 0) | (points[:, 1] <= 0) | (points[:, 0] >= w - 1) | (points[:, 1] >= h - 1)
    # The dermatoscope's dark circle counts as an edge too: a region that runs into it is cut off.
    fov_edge = cv2.erode(lesion.fov.astype(np.uint8), np.ones((5, 5), np.uint8)) == 0
    edge |= fov_edge[points[:, 1], points[:, 0]]
    return {
        "delta_e": round(delta_e, 2),
        "surround_hue": round(hue, 1),
        "surround_chroma": round(chroma, 2),
        "elongation": round(min(elongation, 99.0), 3),
        "solidity": round(solidity, 3),
        "border_touch": round(float(edge.mean()), 3),
        "clutter": float(_clutter(lesion, lab)),
        "area_fraction": round(lesion.area_fraction, 4),
    }


def _clutter(lesion: Lesion, lab: np.ndarray) -> int:
    """Other regions at least as dark as the lesion and a quarter its size (text, a scene, a form)."""
    lightness = lab[..., 0]  # 8-bit L: the comparison is the same as on CIE L
    level = float(np.percentile(lightness[lesion.mask], 75))
    dark = (
        (lightness <= level)
        & lesion.fov
        & ~cv2.dilate(lesion.mask.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    ).astype(np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(dark, connectivity=8)
    min_area = max(12.0, 0.25 * float(lesion.mask.sum()))
    return int((stats[1:, cv2.CC_STAT_AREA] >= min_area).sum()) if count > 1 else 0


@dataclass(frozen=True, kw_only=True)
class EvidenceThresholds:
    """Where real lesions end: each limit sits near the 1st (or 99th) percentile of the 9,597 real images.

    Measured on ``../shared/data/melanoma10k/train`` (see models/MODEL_CARD.md, "Quality gate"):
    ``min_delta_e`` 7 is its 3rd percentile, ``max_elongation`` 5 its 99.4th, ``min_surround_chroma``
    6 its 5th (many melanomas sit on grey-blue skin under the dermatoscope, so this check alone only
    ever makes a photo "refer"), ``min_solidity`` 0.35 its 1st, ``max_clutter`` 6 its 99.5th.
    """

    min_delta_e: float = 7.0  # below it the "lesion" is barely a different colour from the skin
    hard_min_delta_e: float = 4.0  # below it there is nothing there at all (blank skin, paper): retake
    max_elongation: float = 5.0  # longer and thinner is a line, crease or scar
    min_surround_chroma: float = 6.0  # greyer surround is paper, a wall, a grey picture
    min_solidity: float = 0.35  # more ragged is text, cracks or several strokes
    max_clutter: int = 6  # more dark regions around is a scene, a form or text
    min_area_fraction: float = 0.008  # smaller is a speck: a nail hole, a full stop
    min_weak_evidence: float = 9.0  # the gate's contrast x border score (quality.lesion_evidence)
    retake_failures: int = 3  # this many failed checks: clearly not a lesion, retake
    retake_failures_if_weak: int = 2  # fewer suffice when the contrast x border score is weak too


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """``lesion`` (screen normally), ``unclear`` (never "low": refer) or ``not_a_lesion`` (retake)."""

    kind: Literal["lesion", "unclear", "not_a_lesion"]
    failed: tuple[str, ...]  # names of the failed checks, e.g. ("elongation", "weak_evidence")


def judge_evidence(
    measures: dict[str, float], *, weak_evidence: float, thresholds: EvidenceThresholds = EvidenceThresholds()
) -> Verdict:
    """Turn :func:`measure_evidence`'s numbers (and the gate's contrast x border score) into a verdict.

    "When in doubt, refer": one or two failed checks make the photo ``unclear``, which the
    Screener can only report as "refer"; only many failures (or no colour difference at all)
    send it back as "no lesion", so a faint real lesion is referred rather than turned away.

    >>> judge_evidence({"delta_e": 30.0, "surround_chroma": 20.0, "elongation": 1.3, "solidity": 0.9,
    ...                 "clutter": 0.0, "area_fraction": 0.1}, weak_evidence=200.0).kind
    'lesion'
    >>> judge_evidence({"delta_e": 40.0, "surround_chroma": 20.0, "elongation": 12.0, "solidity": 0.6,
    ...                 "clutter": 0.0, "area_fraction": 0.02}, weak_evidence=200.0)
    Verdict(kind='unclear', failed=('elongation',))
    """
    t = thresholds
    checks = {
        "delta_e": measures["delta_e"] < t.min_delta_e,
        "elongation": measures["elongation"] > t.max_elongation,
        "surround_chroma": measures["surround_chroma"] < t.min_surround_chroma,
        "solidity": measures["solidity"] < t.min_solidity,
        "clutter": measures["clutter"] > t.max_clutter,
        "area_fraction": measures["area_fraction"] < t.min_area_fraction,
        "weak_evidence": weak_evidence < t.min_weak_evidence,
    }
    failed = tuple(name for name, bad in checks.items() if bad)
    shape_colour = len(failed) - checks["weak_evidence"]
    if (
        measures["delta_e"] < t.hard_min_delta_e
        or shape_colour >= t.retake_failures
        or (checks["weak_evidence"] and shape_colour >= t.retake_failures_if_weak)
    ):
        return Verdict(kind="not_a_lesion", failed=failed)
    return Verdict(kind="unclear" if failed else "lesion", failed=failed)
