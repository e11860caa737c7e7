"""Follow-up of a spot: what changed between two photos of the same lesion, and whether it matters.

The E of ABCDE is *evolution*: in short-term sequential imaging (the same spot
photographed again about three months later) any significant change in size,
shape or colour means referral, whatever the model says. This module measures
a lesion in each photo (:func:`measure`), compares the two (:func:`compare`)
and, for a follow-up capture, turns a significant change into a "refer"
(:class:`FollowupPlan`). It is pure: numbers in, numbers out; the station
stores the change as the new screening's ``followup`` and the page shows it.

Sizes are in mm when the camera is calibrated (``camera.mm_per_pixel``);
otherwise only the relative change (%) is known, which assumes the same camera
and distance (a contact dermatoscope keeps both fixed).

>>> from kiosk.synthetic import draw_lesion
>>> before = measure(draw_lesion(seed=4, radius=0.2))
>>> after = measure(draw_lesion(seed=4, radius=0.2 * 1.3**0.5))  # 30% more area
>>> change = compare(before, after, mm_per_pixel=None)
>>> change.significant, change.reasons, round(change.area_change, 2)
(True, ('area_changed',), 0.3)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from .result import ScreeningResult
from .vision.features import lesion_features
from .vision.lesion import find_lesion

__all__ = [
    "AREA_CHANGE",
    "ASYMMETRY_CHANGE",
    "CHANGE_REASON",
    "DIAMETER_CHANGE",
    "DIAMETER_CHANGE_MM",
    "FollowupChange",
    "FollowupPlan",
    "LesionMeasures",
    "compare",
    "measure",
    "refer_on_change",
]

# What counts as a significant change. Re-photographing the same drawn lesion with other noise,
# brightness and framing moves its area by under 1%, so these leave room for real photos' wobble
# while a lesion that grew by a fifth is flagged.
AREA_CHANGE = 0.20  # relative change of the lesion's area (either way: regression matters too)
DIAMETER_CHANGE = 0.15  # relative change of the longest diameter, without calibration
DIAMETER_CHANGE_MM = 1.0  # with calibration: a millimetre more or less across
ASYMMETRY_CHANGE = 0.10  # on the 0-1 asymmetry scale of kiosk.vision.features
#: The reason code (kiosk.reasons) a follow-up result gets when a significant change made it "refer".
CHANGE_REASON = "lesion_changed"


@dataclass(frozen=True, kw_only=True)
class LesionMeasures:
    """One photo's lesion: size in full-image pixels, colours, shape."""

    area_px: float
    diameter_px: float
    colours: tuple[str, ...]
    asymmetry: float
    border_irregularity: float

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "colours": list(self.colours)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LesionMeasures:
        return cls(
            area_px=float(data["area_px"]),
            diameter_px=float(data["diameter_px"]),
            colours=tuple(str(c) for c in data["colours"]),
            asymmetry=float(data["asymmetry"]),
            border_irregularity=float(data["border_irregularity"]),
        )


def measure(image: np.ndarray) -> LesionMeasures | None:
    """The lesion's measures in an RGB uint8 photo, or None when no lesion is found."""
    lesion = find_lesion(image)
    if not lesion.found:
        return None
    features = lesion_features(image, lesion)
    return LesionMeasures(
        area_px=round(float(lesion.mask.sum()) * lesion.work_scale**2, 1),
        diameter_px=float(features["diameter_px"]),
        colours=tuple(features["colours"]),
        asymmetry=float(features["asymmetry"]),
        border_irregularity=float(features["border_irregularity"]),
    )


@dataclass(frozen=True, kw_only=True)
class FollowupChange:
    """What changed from ``before`` to ``after``; ``reasons`` names each significant change.

    Reason names: ``area_changed``, ``diameter_changed``, ``new_colour``, ``asymmetry_grew``.
    """

    before: LesionMeasures
    after: LesionMeasures
    area_change: float  # relative: 0.3 = 30% larger, -0.2 = 20% smaller
    diameter_change: float  # relative
    mm_per_pixel: float | None  # the calibration the mm values use; None: relative only
    new_colours: tuple[str, ...]
    lost_colours: tuple[str, ...]
    asymmetry_change: float  # after minus before
    reasons: tuple[str, ...]

    @property
    def significant(self) -> bool:
        return bool(self.reasons)

    def mm(self, pixels: float) -> float | None:
        return round(pixels * self.mm_per_pixel, 1) if self.mm_per_pixel else None

    def mm2(self, pixels: float) -> float | None:
        return round(pixels * self.mm_per_pixel**2, 1) if self.mm_per_pixel else None

    def to_dict(self) -> dict[str, Any]:
        """The JSON stored as the follow-up screening's ``followup``."""
        return {
            "significant": self.significant,
            "reasons": list(self.reasons),
            "area_change": round(self.area_change, 3),
            "diameter_change": round(self.diameter_change, 3),
            "mm_per_pixel": self.mm_per_pixel,
            "diameter_mm_before": self.mm(self.before.diameter_px),
            "diameter_mm_after": self.mm(self.after.diameter_px),
            "area_mm2_before": self.mm2(self.before.area_px),
            "area_mm2_after": self.mm2(self.after.area_px),
            "colour_count_before": len(self.before.colours),
            "colour_count_after": len(self.after.colours),
            "new_colours": list(self.new_colours),
            "lost_colours": list(self.lost_colours),
            "asymmetry_change": round(self.asymmetry_change, 3),
            "before": self.before.to_dict(),
            "after": self.after.to_dict(),
        }


def _relative(before: float, after: float) -> float:
    return (after - before) / before if before > 0 else 0.0


def compare(before: LesionMeasures, after: LesionMeasures, *, mm_per_pixel: float | None) -> FollowupChange:
    """The change from ``before`` to ``after`` (same camera), with the significant ones named."""
    area_change = _relative(before.area_px, after.area_px)
    diameter_change = _relative(before.diameter_px, after.diameter_px)
    new_colours = tuple(c for c in after.colours if c not in before.colours)
    lost_colours = tuple(c for c in before.colours if c not in after.colours)
    asymmetry_change = after.asymmetry - before.asymmetry
    reasons = []
    if abs(area_change) >= AREA_CHANGE:
        reasons.append("area_changed")
    if mm_per_pixel:
        if abs(after.diameter_px - before.diameter_px) * mm_per_pixel >= DIAMETER_CHANGE_MM:
            reasons.append("diameter_changed")
    elif abs(diameter_change) >= DIAMETER_CHANGE:
        reasons.append("diameter_changed")
    if new_colours:  # a colour that appeared (blue-grey, black...) is a classic sign of change
        reasons.append("new_colour")
    if asymmetry_change >= ASYMMETRY_CHANGE:
        reasons.append("asymmetry_grew")
    return FollowupChange(
        before=before,
        after=after,
        area_change=area_change,
        diameter_change=diameter_change,
        mm_per_pixel=mm_per_pixel or None,
        new_colours=new_colours,
        lost_colours=lost_colours,
        asymmetry_change=asymmetry_change,
        reasons=tuple(reasons),
    )


def refer_on_change(result: ScreeningResult, change: FollowupChange) -> ScreeningResult:
    """``result`` as "refer" (reason :data:`CHANGE_REASON`) when the spot changed significantly.

    A result that already refers for another reason keeps it; a retake or error is left alone.
    """
    if result.status != "ok" or not change.significant:
        return result
    reason = result.reason if result.risk == "refer" and result.reason else CHANGE_REASON
    return dataclasses.replace(result, risk="refer", reason=reason)


@dataclass(frozen=True, kw_only=True)
class FollowupPlan:
    """A capture that follows up screening ``earlier_id``, whose photo measured ``earlier``.

    The station calls :meth:`assess` on the new photo and its result before
    saving, and stores the change with ``followup_of=earlier_id``.
    """

    earlier_id: str
    earlier: LesionMeasures
    mm_per_pixel: float | None = None

    def assess(
        self, image: np.ndarray | None, result: ScreeningResult
    ) -> tuple[ScreeningResult, dict[str, Any] | None]:
        """``(result, change)``: the result (refer on a significant change) and the change to store.

        ``change`` is None when there is nothing to compare (a retake, no photo, no lesion found).
        """
        if result.status != "ok" or image is None:
            return result, None
        now = measure(image)
        if now is None:
            return result, None
        change = compare(self.earlier, now, mm_per_pixel=self.mm_per_pixel)
        return refer_on_change(result, change), change.to_dict()
