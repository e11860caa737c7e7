"""kiosk.followup: what changed between two photos of the same drawn lesion, and when it refers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kiosk.followup import (
    CHANGE_REASON,
    FollowupPlan,
    LesionMeasures,
    compare,
    measure,
    refer_on_change,
)
from kiosk.result import ScreeningResult
from kiosk.synthetic import draw_lesion

SEEDS = (3, 4, 11)
# The same lesion photographed again: other pixel noise, a little brighter, framed a little off.
RE_PHOTOGRAPHED = {"noise": 5.0, "brightness": 1.04, "centre": (0.52, 0.49)}


def measured(**kwargs) -> LesionMeasures:
    found = measure(draw_lesion(**kwargs))
    assert found is not None
    return found


@pytest.mark.parametrize("seed", SEEDS)
def test_a_lesion_drawn_30_percent_larger_is_a_significant_change(seed):
    before = measured(seed=seed, radius=0.2)
    after = measured(seed=seed, radius=0.2 * math.sqrt(1.3))
    change = compare(before, after, mm_per_pixel=None)
    assert change.significant
    assert "area_changed" in change.reasons
    assert 0.27 <= change.area_change <= 0.33  # measured, not assumed: the drawn area grew by 30%
    assert change.to_dict()["diameter_mm_after"] is None  # no calibration: relative only


@pytest.mark.parametrize("seed", SEEDS)
def test_the_same_lesion_redrawn_with_noise_is_not_a_significant_change(seed):
    before = measured(seed=seed)
    after = measured(seed=seed, **RE_PHOTOGRAPHED)
    change = compare(before, after, mm_per_pixel=0.02)
    assert change.reasons == ()
    assert not change.significant
    assert abs(change.area_change) < 0.02


def test_a_new_colour_is_significant_and_named():
    before = measured(seed=4, colours=2)
    after = measured(seed=4, colours=3)
    change = compare(before, after, mm_per_pixel=None)
    assert change.reasons == ("new_colour",)
    assert change.new_colours == ("blue_grey",)
    assert change.to_dict()["colour_count_before"] == 2 and change.to_dict()["colour_count_after"] == 3


def test_with_calibration_the_diameter_change_is_in_millimetres():
    before = measured(seed=4, radius=0.2)
    after = measured(seed=4, radius=0.22)  # about 10% wider: under the relative limit, over 1 mm at 0.05 mm/px
    relative = compare(before, after, mm_per_pixel=None)
    assert "diameter_changed" not in relative.reasons
    calibrated = compare(before, after, mm_per_pixel=0.05)
    assert "diameter_changed" in calibrated.reasons
    data = calibrated.to_dict()
    assert data["diameter_mm_before"] == round(before.diameter_px * 0.05, 1)
    assert data["diameter_mm_after"] - data["diameter_mm_before"] >= 1.0
    assert data["area_mm2_after"] == round(after.area_px * 0.05**2, 1)


def test_growing_asymmetry_is_significant():
    before = LesionMeasures(
        area_px=1000, diameter_px=40, colours=("dark_brown",), asymmetry=0.05, border_irregularity=1.1
    )
    after = LesionMeasures(
        area_px=1010, diameter_px=40, colours=("dark_brown",), asymmetry=0.2, border_irregularity=1.1
    )
    assert compare(before, after, mm_per_pixel=None).reasons == ("asymmetry_grew",)
    assert LesionMeasures.from_dict(after.to_dict()) == after


def test_no_lesion_is_not_measured():
    assert measure(np.full((480, 640, 3), 180, np.uint8)) is None  # an even surface: nothing to outline


def ok_result(risk: str, reason: str | None = None) -> ScreeningResult:
    return ScreeningResult(status="ok", risk=risk, reason=reason, malignant_probability=0.1, threshold=0.5)


def test_a_significant_change_refers_and_says_why():
    change = compare(measured(seed=4), measured(seed=4, radius=0.26), mm_per_pixel=None)
    assert change.significant
    referred = refer_on_change(ok_result("low"), change)
    assert referred.risk == "refer" and referred.reason == CHANGE_REASON
    # Already referred for another reason: that reason stays.
    assert refer_on_change(ok_result("refer", "lesion_unclear"), change).reason == "lesion_unclear"
    retake = ScreeningResult.retake("blurry")
    assert refer_on_change(retake, change) is retake
    unchanged = compare(measured(seed=4), measured(seed=4, **RE_PHOTOGRAPHED), mm_per_pixel=None)
    assert refer_on_change(ok_result("low"), unchanged).risk == "low"


def test_a_plan_assesses_the_new_photo():
    plan = FollowupPlan(earlier_id="x", earlier=measured(seed=11))
    result, change = plan.assess(draw_lesion(seed=11, radius=0.26), ok_result("low"))
    assert result.risk == "refer" and change is not None and change["significant"] is True
    assert change["reasons"][0] == "area_changed"
    result, change = plan.assess(np.full((480, 640, 3), 180, np.uint8), ok_result("low"))
    assert change is None and result.risk == "low"  # nothing to compare against: no lesion found
    retake = ScreeningResult.retake("blurry")
    assert plan.assess(draw_lesion(seed=11), retake) == (retake, None)
