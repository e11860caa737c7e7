"""training.field_guard: the guarded threshold, on constructed outcomes, and one melanoma screened for real."""

from __future__ import annotations

import numpy as np
import pytest

from training.augment import FAMILIES
from training.field_guard import guarded_threshold


def told_low(rows: list[tuple[float, bool]], threshold: float) -> float:
    return sum(1 for p, eligible in rows if eligible and p < threshold) / len(rows)


def test_the_guard_lowers_the_threshold_to_the_family_that_needs_it():
    # 20 melanomas per family, at most 1 (5%) may be told low.
    dim = [(0.02, True), (0.05, True), (0.08, True)] + [(0.6, True)] * 17
    noisy = [(0.01, False), (0.03, False), (0.12, True)] + [(0.7, True)] * 17  # the two lowest were sent back
    guard = guarded_threshold(0.17, {"exposure": dim, "noise": noisy})
    assert guard["threshold"] == 0.05 and guard["binding_family"] == "exposure"
    assert told_low(dim, guard["threshold"]) == 0.05  # one of 20: the target, met
    assert told_low(dim, 0.0501) == 0.10  # any higher and it is not
    assert guard["families"]["exposure"] == {
        "melanomas": 20,
        "could_be_low": 20,
        "low_at_clean": 0.15,
        "limit": 0.05,
        "low_at_guarded": 0.05,
    }
    # Photos the gate sends back are never "low": noise alone would allow up to its second eligible score.
    assert guard["families"]["noise"]["limit"] == 0.7 and guard["families"]["noise"]["low_at_clean"] == 0.05


def test_the_guard_never_raises_the_clean_threshold():
    safe = [(0.9, True)] * 40
    guard = guarded_threshold(0.17, {"motion": safe, "jpeg": [(0.3, True)] * 40})
    assert guard["threshold"] == 0.17 and guard["binding_family"] is None
    # Too few photos could be told low to exceed the share: no limit at all.
    sent_back = [(0.0, False)] * 39 + [(0.01, True)]
    assert guarded_threshold(0.17, {"exposure": sent_back})["families"]["exposure"]["limit"] is None


def test_the_guarded_threshold_holds_every_family_on_random_outcomes():
    rng = np.random.default_rng(0)
    for _ in range(50):
        outcomes = {
            f: [(float(p), bool(e)) for p, e in zip(rng.beta(2, 3, 60), rng.random(60) < 0.9, strict=True)]
            for f in ("a", "b", "c")
        }
        clean = float(rng.uniform(0.1, 0.5))
        guard = guarded_threshold(clean, outcomes)
        assert guard["threshold"] <= clean
        assert all(told_low(rows, guard["threshold"]) <= 0.05 for rows in outcomes.values())
        if guard["binding_family"] is not None:  # and it is the highest such threshold
            rows = outcomes[guard["binding_family"]]
            above = min(p for p, e in rows if e and p > guard["threshold"])
            assert told_low(rows, (guard["threshold"] + above) / 2) > 0.05


def test_one_melanoma_is_screened_under_every_family_with_its_exact_probability(tiny_model_path, tmp_path):
    import cv2

    from kiosk.synthetic import draw_lesion
    from kiosk.vision.loader import load_image
    from training import field_guard
    from training.augment import CameraAugment
    from training.field_bench import SEED

    path = tmp_path / "lesion.png"
    cv2.imwrite(str(path), cv2.cvtColor(draw_lesion(seed=5), cv2.COLOR_RGB2BGR))
    field_guard._init_worker(str(tiny_model_path))
    rows = field_guard._guard_one((str(path), 3))
    assert len(rows) == len(FAMILIES)
    assert rows == field_guard._guard_one((str(path), 3))  # seeded: the same copies again
    screener = field_guard._screener
    assert screener is not None
    image = load_image(path)
    for k, (family, (exact, eligible)) in enumerate(zip(FAMILIES, rows, strict=True)):
        photo = CameraAugment.apply(image, [family], rng=np.random.default_rng([SEED, 3, k]))
        result = screener.screen_image(photo, apply_quality_gate=False)
        assert result.malignant_probability == pytest.approx(exact, abs=5e-5), family  # the kiosk's, unrounded
        assert eligible == (result.reason is None and not result.quality.get("lesion_unclear")), family
    assert any(eligible for _, eligible in rows)  # a drawn lesion passes the gate under most families


@pytest.mark.parametrize("binding", [True, False])
def test_the_manifest_serves_the_guard_only_where_it_is_lower(tiny_model_path, tmp_path, binding):
    import shutil

    from kiosk.manifest import read_manifest
    from training.field_guard import update_manifest

    model = tmp_path / tiny_model_path.name
    for suffix in (".tflite", ".json"):
        shutil.copyfile(tiny_model_path.with_suffix(suffix), model.with_suffix(suffix))
    before = read_manifest(model.with_suffix(".json"))
    outcomes = {
        "exposure": [(before.threshold / 2, True)] * 3 + [(0.99, True)] * 17 if binding else [(0.99, True)] * 20
    }
    report = {
        "model_sha256": before.sha256,
        "photos": 20,
        **guarded_threshold(before.threshold, outcomes),
        "clean_split": {"at_guarded_threshold": {"sensitivity": 0.97, "specificity": 0.7}},
    }
    update_manifest(model, report)
    after = read_manifest(model.with_suffix(".json"))
    assert after.threshold == (before.threshold / 2 if binding else before.threshold)
    assert after.extra["field_guard"]["binding_family"] == ("exposure" if binding else None)
    assert ("lowered to" in str(after.extra.get("threshold_rule"))) == binding
    # A report measured on another threshold is refused, the manifest left as it is.
    with pytest.raises(ValueError, match="run training.field_guard again"):
        update_manifest(model, {**report, "clean_threshold": 0.9})
    assert read_manifest(model.with_suffix(".json")) == after
