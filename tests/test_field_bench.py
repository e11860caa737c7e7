"""training.field_bench: the metrics of one condition and the table's verdicts, on constructed rows."""

from __future__ import annotations

import numpy as np
import pytest

from training.data import Sample
from training.field_bench import after_retake, kiosk_outcome, markdown, meets, pick_subset, retake_markdown, summarise


def test_summarise_counts_gate_and_risk_exactly():
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    rows = [
        (0.9, True, "refer"),
        (0.05, True, "low"),
        (0.8, False, "retake"),
        (0.6, True, "refer"),
        (0.1, True, "low"),
        (0.7, True, "refer"),
        (0.02, False, "retake"),
        (0.03, True, "low"),
    ]
    m = summarise(labels, rows, threshold=0.5)
    assert m["n"] == 8
    assert m["sensitivity"] == 0.75 and m["specificity"] == 0.75  # gate ignored
    assert m["retake_rate"] == 0.25
    assert m["melanoma_low"] == 0.25  # 1 of 4 melanomas told low; the retaken one is not "low"
    assert m["benign_pass_low"] == pytest.approx(2 / 3)  # of the 3 benign that passed the gate
    assert m["auc"] == pytest.approx(0.8125)


def test_verdicts_follow_the_targets():
    ok = {"melanoma_low": 0.05, "benign_pass_low": 0.6, "retake_rate": 0.3}
    assert all(meets(ok).values())
    assert meets({**ok, "melanoma_low": 0.051}) == {"melanoma_low": False, "benign_pass_low": True, "retake_rate": True}
    report = {
        "rows": [
            {
                "condition": "clean",
                "severity": 0,
                "parameter": None,
                "n": 8,
                "auc": 0.9,
                "sensitivity": 0.9,
                "specificity": 0.8,
                **ok,
                "benign_pass_low": 0.5,
            }
        ]
    }
    assert "NOT met (benign_pass_low)" in markdown(report)


def test_subset_is_stratified_and_seeded():
    val = [Sample(f"benign/{i}.jpg", 0) for i in range(50)] + [Sample(f"malignant/{i}.jpg", 1) for i in range(40)]
    a = pick_subset(val, 10)
    assert a == pick_subset(val, 10)
    assert sum(s.label for s in a) == 10 and len(a) == 20


def test_the_bench_says_what_the_gated_kiosk_says(screener):
    """Every photo's outcome in the bench is the kiosk's own, the unclear-lesion referral included."""
    from kiosk.synthetic import draw_lesion, draw_skin
    from training.notlesion import not_a_lesion_set

    photos = [draw_lesion(seed=s) for s in range(4)] + [draw_skin(seed=s) for s in range(2)]
    photos += [item.image for item in not_a_lesion_set(seed=0, skimage=False)[:40]]
    seen = set()
    unclear_scored_low = 0
    for photo in photos:
        gated = screener.screen_image(photo)
        ungated = screener.screen_image(photo, apply_quality_gate=False)
        probability, passed, said = kiosk_outcome(ungated)
        assert probability == ungated.malignant_probability
        assert passed == (gated.status == "ok")
        assert said == (gated.risk if gated.status == "ok" else "retake")
        seen.add(gated.reason if gated.status == "ok" and gated.reason else said)
        unclear_scored_low += gated.reason == "lesion_unclear" and ungated.risk == "low"
    assert {"retake", "lesion_unclear"} <= seen  # both the send-back and the unclear referral are exercised
    assert unclear_scored_low >= 1  # an unclear photo the model alone would call "low" is still not "low"


def test_a_photo_sent_back_for_exposure_is_counted_at_the_retakes_exposure():
    variants = [("clean", 0)] + [(n, s) for n in ("exposure_over", "exposure_under") for s in range(3)]
    labels = np.array([1, 1, 0, 0])
    sent_back = (0.0, False, "retake")

    def image(over: list, under: list) -> list:
        return [(0.5, True, "refer"), *over, *under]

    results = [
        # melanoma: +1 EV sent back, +0.5 EV refers; +1.5 EV sent back, +1 EV sent back again
        image([(0.9, True, "refer"), sent_back, sent_back], [(0.9, True, "refer")] * 3),
        # melanoma: passes at +1 EV and is told low there: the retake never happens
        image([(0.9, True, "refer"), (0.1, True, "low"), (0.9, True, "refer")], [(0.9, True, "refer")] * 3),
        # benign: +1 EV sent back, its retake at +0.5 EV low
        image([(0.1, True, "low"), sent_back, (0.1, True, "low")], [sent_back, sent_back, sent_back]),
        image([(0.1, True, "low")] * 3, [(0.1, True, "low"), (0.6, True, "refer"), sent_back]),
    ]
    rows = {(r["condition"], r["severity"]): r for r in after_retake(labels, results, variants, 0.5)}
    assert set(rows) == {("exposure_over", 1), ("exposure_over", 2), ("exposure_under", 1), ("exposure_under", 2)}
    over1, over2, under1 = rows["exposure_over", 1], rows["exposure_over", 2], rows["exposure_under", 1]
    assert (over1["parameter"], over1["retake_parameter"]) == (1.0, 0.5)
    assert over1["retake_rate"] == 0.0 and over1["melanoma_low"] == 0.5 and over1["benign_pass_low"] == 1.0
    assert over2["retake_rate"] == 0.25  # the first melanoma is sent back at +1.5 and again at +1
    assert under1["retake_rate"] == 0.25 and under1["benign_pass_low"] == 0.0  # image 4 refers at -1 EV
    text = retake_markdown({"after_retake": list(rows.values())})
    assert "| exposure_over | 1 EV | 0.5 EV | 0.0% | 50.0% | 100.0% |" in text
    assert retake_markdown({"after_retake": []}) == ""
