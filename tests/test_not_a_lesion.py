"""Nothing that is not a skin lesion may come out "low"; drawn and real lesions still get through.

The not-a-lesion set (training.notlesion) is generated here, in memory, from seed 0: pen lines,
creases, scars, text, printed forms, walls, blank/gradient/noise frames, bare skin, and
scikit-image's bundled pictures (faces, animals, scenes, objects) with crops and rescales.
Each photo goes through the real Screener with the shipped model (and the test fixture model).
On main's gate 7 of these 177 came out "low" with the shipped model.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from pathlib import Path

import pytest

from kiosk.model import Model
from kiosk.screening import Screener
from kiosk.synthetic import random_lesion
from kiosk.vision.evidence import EvidenceThresholds, judge_evidence, measure_evidence
from kiosk.vision.lesion import find_lesion
from kiosk.vision.quality import assess_quality
from training.notlesion import NotALesion, not_a_lesion_set

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "models" / "melanoma_int8.tflite"
DATA = ROOT.parent / "shared" / "data" / "melanoma10k" / "train"


def _has_skimage() -> bool:
    try:
        import skimage  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def not_lesions() -> list[NotALesion]:
    return not_a_lesion_set(seed=0, skimage=_has_skimage())


def outcomes(screener: Screener, items: list[NotALesion]) -> dict[str, str]:
    """{name: "low" | "refer" | "refer:lesion_unclear" | "retake:<reason>"} through the real Screener."""
    out = {}
    for item in items:
        r = screener.screen_image(item.image)
        out[item.name] = (
            f"{r.status}:{r.reason}" if r.status != "ok" else (f"{r.risk}:{r.reason}" if r.reason else str(r.risk))
        )
    return out


def test_the_set_is_large_varied_and_deterministic(not_lesions: list[NotALesion]) -> None:
    families = Counter(item.family for item in not_lesions)
    assert len(not_lesions) >= (177 if _has_skimage() else 95), families
    assert {"pen_line", "crease", "scar", "text", "form", "wall", "blank", "gradient", "noise", "skin"} <= set(families)
    again = not_a_lesion_set(seed=0, skimage=False)
    digest = [hashlib.sha256(i.image.tobytes()).hexdigest() for i in again]
    assert digest == [hashlib.sha256(i.image.tobytes()).hexdigest() for i in not_lesions[: len(again)]]
    assert len({item.name for item in not_lesions}) == len(not_lesions)


@pytest.mark.skipif(not SHIPPED.exists(), reason="models/melanoma_int8.tflite is not built")
def test_no_photo_that_is_not_a_lesion_is_low_with_the_shipped_model(not_lesions: list[NotALesion]) -> None:
    got = outcomes(Screener(Model.load(SHIPPED)), not_lesions)
    low = {name: o for name, o in got.items() if o == "low"}
    assert not low, f"{len(low)} of {len(got)} told low: {sorted(low)}"
    # Most are sent back or referred by the gate itself, not saved by the model's answer.
    by_gate = sum(o.startswith("retake") or o.endswith("lesion_unclear") for o in got.values())
    assert by_gate >= 0.85 * len(got), Counter(got.values())


def test_no_photo_that_is_not_a_lesion_is_low_with_the_fixture_model(
    screener: Screener, not_lesions: list[NotALesion]
) -> None:
    got = outcomes(screener, not_lesions)
    low = sorted(name for name, o in got.items() if o == "low")
    # The tiny fixture model is near chance, so only the gate can keep these from "low".
    unclear_or_sent_back = {n for n, o in got.items() if o.startswith("retake") or o.endswith("lesion_unclear")}
    assert set(low) <= set(got) - unclear_or_sent_back
    assert not low, f"{len(low)} of {len(got)} told low: {low}"


def test_an_unclear_photo_is_always_referred_never_low(screener: Screener, not_lesions: list[NotALesion]) -> None:
    unclear = 0
    for item in not_lesions:
        report = assess_quality(item.image)
        if not report.lesion_unclear:
            continue
        unclear += 1
        result = screener.screen_image(item.image)
        assert (result.status, result.risk, result.reason) == ("ok", "refer", "lesion_unclear"), item.name
        # Evaluation (gate off) still reports what the model alone says.
        assert screener.screen_image(item.image, apply_quality_gate=False).reason is None
    assert unclear >= 20  # the refer path is exercised, not only the retake one


def test_lines_blank_skin_and_text_are_sent_back_or_referred(not_lesions: list[NotALesion]) -> None:
    for item in not_lesions:
        if item.family in ("pen_line", "crease", "scar", "text", "form", "wall", "blank", "skin"):
            report = assess_quality(item.image)
            assert report.reason is not None or report.lesion_unclear, (item.name, report.measures)


def test_drawn_lesions_still_pass_cleanly() -> None:
    failed = {}
    for seed in range(40):
        report = assess_quality(random_lesion(seed))
        if not report.passed or report.lesion_unclear:
            failed[seed] = (report.reason, report.failed_checks)
    assert not failed, failed


def test_judge_evidence_thresholds() -> None:
    lesion = {
        "delta_e": 30.0,
        "surround_chroma": 20.0,
        "elongation": 1.3,
        "solidity": 0.9,
        "clutter": 0.0,
        "area_fraction": 0.1,
    }
    assert judge_evidence(lesion, weak_evidence=200.0).kind == "lesion"
    # One failed check, or a faint border: refer, never retake (a faint amelanotic lesion).
    assert judge_evidence(lesion | {"surround_chroma": 2.0}, weak_evidence=200.0).failed == ("surround_chroma",)
    assert judge_evidence(lesion | {"surround_chroma": 2.0}, weak_evidence=200.0).kind == "unclear"
    assert judge_evidence(lesion, weak_evidence=3.0).kind == "unclear"
    assert judge_evidence(lesion | {"delta_e": 5.0}, weak_evidence=200.0).kind == "unclear"
    # Many failures, or weak AND two shape/colour failures, or no colour difference at all: retake.
    line = lesion | {"elongation": 9.0, "solidity": 0.2, "surround_chroma": 1.0}
    assert judge_evidence(line, weak_evidence=200.0).kind == "not_a_lesion"
    assert (
        judge_evidence(lesion | {"elongation": 9.0, "area_fraction": 0.001}, weak_evidence=3.0).kind == "not_a_lesion"
    )
    assert judge_evidence(lesion | {"delta_e": 3.0}, weak_evidence=200.0).kind == "not_a_lesion"
    stricter = EvidenceThresholds(max_elongation=1.2)
    assert judge_evidence(lesion, weak_evidence=200.0, thresholds=stricter).failed == ("elongation",)


def test_evidence_measures_a_drawn_lesion_and_a_pen_line(not_lesions: list[NotALesion]) -> None:
    e = measure_evidence(find_lesion(random_lesion(2)))
    assert e["elongation"] < 3 and e["delta_e"] > 10 and e["solidity"] > 0.7, e
    pen = next(i for i in not_lesions if i.name == "pen_line/red-10")
    assert measure_evidence(find_lesion(pen.image))["elongation"] > 10


# --- real melanomas are not turned away -------------------------------------------------------

MALIGNANT_SAMPLE = 400
SAMPLE_SEED = 20261201
#: Measured on this sample: 0 of 400 sent back (main's gate before the evidence check: 6 of 400, 1.5%).
#: On all 4,599 malignant training images: 25 (0.54%) against 112 (2.4%) before. The bound leaves
#: room for small changes elsewhere in the gate but fails at main's old rate.
MAX_MALIGNANT_SENT_BACK = 0.01


@pytest.mark.realdata
@pytest.mark.skipif(not DATA.is_dir(), reason="real data not present: ../shared/data/melanoma10k/train")
@pytest.mark.skipif(not SHIPPED.exists(), reason="models/melanoma_int8.tflite is not built")
def test_real_melanomas_are_rarely_sent_back() -> None:
    from kiosk.vision.loader import load_image

    files = sorted((DATA / "malignant").glob("*.jpg"))
    sample = random.Random(SAMPLE_SEED).sample(files, MALIGNANT_SAMPLE)
    screener = Screener(Model.load(SHIPPED))
    results = {p.name: screener.screen_image(load_image(p)) for p in sample}
    sent_back = {n: r.reason for n, r in results.items() if r.status != "ok"}
    assert len(sent_back) / len(sample) <= MAX_MALIGNANT_SENT_BACK, sent_back
    # An unclear one is referred: it is never the gate that turns a melanoma "low".
    assert all(r.risk == "refer" for r in results.values() if r.reason == "lesion_unclear")
