"""The quality gate: is this photo good enough to screen, and if not, why not?

Each failure is one reason code from :mod:`kiosk.reasons` that tells the health
worker what to change ("blurry", "too_dark", ...). The measures are taken on
the same working copy the lesion finder uses, i.e. at roughly the scale the
model sees, so "sharp enough" means sharp enough for the model.

Thresholds were calibrated on the real training images (see
``tests/test_realdata.py``): at least 95% of real dermoscopic images
must pass, while blank, black, noise, blurred, dark and overexposed photos fail.

Whether the region is a lesion at all (not a pen line, text, a wall) is judged by
:mod:`kiosk.vision.evidence`: clearly not a lesion is ``no_lesion``; weakly lesion-like
passes with ``lesion_unclear`` set, and the Screener then refers instead of saying "low".

>>> from kiosk.synthetic import draw_lesion
>>> assess_quality(draw_lesion(seed=3)).reason is None
True
>>> assess_quality(draw_lesion(seed=3, brightness=0.15)).reason
'too_dark'
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from .evidence import EvidenceThresholds, judge_evidence, measure_evidence
from .lesion import Lesion, find_lesion


@dataclass(frozen=True, kw_only=True)
class QualityThresholds:
    """Limits of the gate; the defaults are the calibrated ones."""

    min_side: int = 128
    min_brightness: float = 50.0  # mean grey level inside the field of view
    max_saturated_fraction: float = 0.25  # pixels white in every channel (glare, blown out)
    max_clipped_fraction: float = 0.8  # pixels with ANY channel >= 250: blown-out darker skin stays coloured
    max_brightness: float = 235.0
    min_sharpness: float = 20.0  # variance of the Laplacian on the working copy (25 sent back 32% at 1% defocus)
    min_texture: float = 3.0  # grey-level spread; below it the view is featureless (a wall, a lens cap)
    min_area_fraction: float = 0.004  # lesion area / field of view
    max_centre_offset: float = 0.38  # centroid distance from the centre, fraction of the frame
    evidence: EvidenceThresholds = EvidenceThresholds()  # does the region look like a lesion at all?


@dataclass(frozen=True, kw_only=True)
class QualityReport:
    reason: str | None  # None means the photo passed
    measures: dict[str, float] = field(default_factory=dict)
    lesion: Lesion | None = None
    #: True when the photo passed but the region is only weakly lesion-like: it may be screened,
    #: but never told "low" (the Screener refers it). "When in doubt, refer."
    lesion_unclear: bool = False
    failed_checks: tuple[str, ...] = ()  # the lesion-evidence checks it failed (kiosk.vision.evidence)

    @property
    def passed(self) -> bool:
        return self.reason is None


def lesion_evidence(lesion: Lesion) -> float:
    """Contrast weighted by border sharpness; calibrated so blank skin scores below 9."""
    if not lesion.found:
        return 0.0
    return max(0.0, lesion.contrast) * max(0.0, lesion.edge_ratio - 0.8)


def measure(image: np.ndarray, lesion: Lesion) -> dict[str, float]:
    """Brightness, glare, sharpness and lesion measures of an RGB uint8 image."""
    work = lesion.work
    grey = cv2.cvtColor(work, cv2.COLOR_RGB2GRAY)
    inner = cv2.erode(lesion.fov.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    if inner.sum() < 64:
        inner = np.ones(grey.shape, bool)
    laplacian = cv2.Laplacian(grey, cv2.CV_32F, ksize=3)
    saturated = (work.min(axis=2) >= 250)[inner]  # white in every channel: glare or blown out
    offset = float(np.hypot(lesion.centre[0] - 0.5, lesion.centre[1] - 0.5))
    return {
        "brightness": round(float(grey[inner].mean()), 2),
        "saturated_fraction": round(float(saturated.mean()), 4),
        "clipped_fraction": round(float((work.max(axis=2) >= 250)[inner].mean()), 4),
        "sharpness": round(float(laplacian[inner].var()), 2),
        "texture": round(float(grey[inner].std()), 2),
        "lesion_contrast": round(lesion.contrast, 2),
        "lesion_edge_ratio": round(lesion.edge_ratio, 3),
        "lesion_evidence": round(lesion_evidence(lesion), 2),
        "lesion_area_fraction": round(lesion.area_fraction, 4),
        "lesion_centre_offset": round(offset, 4),
    }


def assess_quality(
    image: np.ndarray,
    *,
    lesion: Lesion | None = None,
    thresholds: QualityThresholds = QualityThresholds(),
) -> QualityReport:
    """Check an RGB uint8 photo; the report's ``reason`` says what to fix (None = pass)."""
    h, w = image.shape[:2]
    if min(h, w) < thresholds.min_side:
        return QualityReport(reason="too_small", measures={"width": float(w), "height": float(h)})
    lesion = lesion if lesion is not None else find_lesion(image)
    m = measure(image, lesion)
    t = thresholds
    verdict = None
    if lesion.found:
        evidence = measure_evidence(lesion)
        m.update({f"evidence_{k}": v for k, v in evidence.items()})
        verdict = judge_evidence(evidence, weak_evidence=m["lesion_evidence"], thresholds=t.evidence)
        m["evidence_failed"] = float(len(verdict.failed))
    if m["brightness"] < t.min_brightness:
        reason = "too_dark"
    elif (
        m["saturated_fraction"] > t.max_saturated_fraction
        or m["clipped_fraction"] > t.max_clipped_fraction
        or m["brightness"] > t.max_brightness
    ):
        reason = "overexposed"
    elif m["texture"] < t.min_texture:
        reason = "no_lesion"  # nothing in view at all; "blurry" would send the worker the wrong way
    elif m["sharpness"] < t.min_sharpness:
        reason = "blurry"
    elif verdict is None or verdict.kind == "not_a_lesion":
        reason = "no_lesion"
    elif lesion.area_fraction < t.min_area_fraction:
        reason = "lesion_too_small"
    elif m["lesion_centre_offset"] > t.max_centre_offset:
        reason = "lesion_not_centred"
    else:
        reason = None
    unclear = reason is None and verdict is not None and verdict.kind == "unclear"
    m["lesion_unclear"] = float(unclear)  # evaluation (gate off) can still tell what the kiosk would do
    return QualityReport(
        reason=reason,
        measures=m,
        lesion=lesion,
        lesion_unclear=unclear,
        failed_checks=verdict.failed if verdict else (),
    )
