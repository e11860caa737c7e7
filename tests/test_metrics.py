"""Screening metrics against brute-force definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk.metrics import binary_metrics, roc_auc, roc_curve, threshold_for_sensitivity, wilson_interval


def brute_auc(labels, scores) -> float:
    """P(score of a random positive > score of a random negative), ties counting one half."""
    pos = [s for y, s in zip(labels, scores, strict=True) if y]
    neg = [s for y, s in zip(labels, scores, strict=True) if not y]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def sensitivity_at(labels, scores, threshold: float) -> float:
    pos = [s for y, s in zip(labels, scores, strict=True) if y]
    return sum(s >= threshold for s in pos) / len(pos)


# Small integer-valued scores make ties common.
labelled_scores = st.integers(2, 40).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 1), min_size=n, max_size=n),
        st.lists(st.integers(0, 8).map(lambda v: v / 8), min_size=n, max_size=n),
    )
)


# --- AUC ---------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(labelled_scores)
def test_roc_auc_matches_brute_force_with_ties(data) -> None:
    labels, scores = data
    if len(set(labels)) < 2:
        assert math.isnan(roc_auc(labels, scores))
    else:
        assert roc_auc(labels, scores) == pytest.approx(brute_auc(labels, scores), abs=1e-12)


def test_roc_auc_seeded_random_with_ties() -> None:
    rng = np.random.default_rng(42)
    for _ in range(20):
        n = int(rng.integers(10, 200))
        labels = rng.integers(0, 2, n)
        labels[:2] = (0, 1)
        scores = np.round(rng.random(n), 1)  # ~11 distinct values: many ties
        assert roc_auc(labels, scores) == pytest.approx(brute_auc(labels, scores), abs=1e-12)


def test_roc_auc_reference_values() -> None:
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
    assert roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert roc_auc([0, 0, 1, 1], [0.4, 0.3, 0.2, 0.1]) == 0.0
    assert roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5  # all tied
    assert roc_auc([False, True], [0.2, 0.9]) == 1.0


def test_roc_auc_of_random_scores_is_about_half() -> None:
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, 4000)
    assert roc_auc(labels, rng.random(4000)) == pytest.approx(0.5, abs=0.03)


def test_roc_auc_single_class_is_nan() -> None:
    assert math.isnan(roc_auc([1, 1, 1], [0.1, 0.5, 0.9]))
    assert math.isnan(roc_auc([0, 0], [0.1, 0.5]))
    assert math.isnan(roc_auc([], []))


def test_roc_curve_area_equals_auc() -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 300)
    scores = np.round(rng.random(300) + 0.3 * labels, 2)
    fpr, tpr, thresholds = roc_curve(labels, scores)
    assert fpr[0] == tpr[0] == 0.0 and fpr[-1] == tpr[-1] == 1.0
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert np.all(np.diff(thresholds) < 0)
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))  # trapezoids handle ties
    assert area == pytest.approx(roc_auc(labels, scores), abs=1e-12)


# --- confusion counts --------------------------------------------------------------------------


def test_binary_metrics_counts_by_hand() -> None:
    labels = [1, 1, 1, 0, 0, 0, 0, 1]
    scores = [0.9, 0.5, 0.2, 0.5, 0.1, 0.7, 0.3, 0.49]
    m = binary_metrics(labels, scores, threshold=0.5)  # score >= threshold means refer
    assert m["confusion"] == {"tp": 2, "fp": 2, "tn": 2, "fn": 2}
    assert m["n"] == 8 and m["threshold"] == 0.5
    assert m["accuracy"] == 0.5 and m["sensitivity"] == 0.5 and m["specificity"] == 0.5
    assert m["precision"] == 0.5 and m["f1"] == 0.5

    m = binary_metrics(labels, scores, threshold=0.0)  # refer everyone
    assert m["confusion"] == {"tp": 4, "fp": 4, "tn": 0, "fn": 0}
    assert m["sensitivity"] == 1.0 and m["specificity"] == 0.0 and m["precision"] == 0.5
    assert m["f1"] == pytest.approx(2 / 3)


def test_binary_metrics_against_loops() -> None:
    rng = np.random.default_rng(11)
    labels = rng.integers(0, 2, 250)
    scores = np.round(rng.random(250), 2)
    for threshold in (0.0, 0.25, 0.5, 0.73, 1.0, 1.5):
        m = binary_metrics(labels, scores, threshold=threshold)
        c = m["confusion"]
        tp = sum(1 for y, s in zip(labels, scores, strict=True) if y and s >= threshold)
        fp = sum(1 for y, s in zip(labels, scores, strict=True) if not y and s >= threshold)
        assert (c["tp"], c["fp"]) == (tp, fp)
        assert c["tp"] + c["fn"] == labels.sum() and c["fp"] + c["tn"] == (labels == 0).sum()
        if tp + c["fn"]:
            assert m["sensitivity"] == tp / (tp + c["fn"])
        assert m["accuracy"] == (tp + c["tn"]) / 250


def test_binary_metrics_undefined_ratios_are_nan() -> None:
    m = binary_metrics([0, 0, 0], [0.1, 0.2, 0.3], threshold=0.5)
    assert math.isnan(m["sensitivity"]) and math.isnan(m["precision"]) and math.isnan(m["f1"])
    assert m["specificity"] == 1.0 and m["accuracy"] == 1.0


# --- threshold choice --------------------------------------------------------------------------


def brute_threshold(labels, scores, target: float) -> float:
    """The highest candidate threshold whose sensitivity reaches the target.

    Sensitivity only changes at a positive's score, so the candidates are the scores.
    The 1e-9 slack matches the module's guard against float error in target * n.
    """
    n_pos = sum(labels)
    ok = [t for t in set(scores) if sensitivity_at(labels, scores, t) * n_pos >= target * n_pos - 1e-9]
    return max(ok)


@settings(max_examples=300, deadline=None)
@given(labelled_scores, st.sampled_from([0.01, 0.5, 0.8, 0.85, 0.9, 0.95, 0.99, 1.0, 1 / 3, 2 / 3]))
def test_threshold_for_sensitivity_is_the_highest_reaching_the_target(data, target: float) -> None:
    labels, scores = data
    if sum(labels) == 0:
        with pytest.raises(ValueError):
            threshold_for_sensitivity(labels, scores, min_sensitivity=target)
        return
    t = threshold_for_sensitivity(labels, scores, min_sensitivity=target)
    assert sensitivity_at(labels, scores, t) >= target - 1e-9
    assert t == brute_threshold(labels, scores, target)
    # Anything higher misses the target.
    higher = [s for s in set(scores) if s > t]
    assert all(sensitivity_at(labels, scores, h) < target - 1e-9 for h in higher)


def test_threshold_for_sensitivity_reference() -> None:
    labels = [1] * 10 + [0] * 10
    scores = [0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2] + [0.1] * 10
    assert threshold_for_sensitivity(labels, scores, min_sensitivity=0.9) == 0.3  # 9 of 10
    assert threshold_for_sensitivity(labels, scores, min_sensitivity=0.95) == 0.2  # needs all 10
    assert threshold_for_sensitivity(labels, scores, min_sensitivity=0.5) == 0.7
    m = binary_metrics(labels, scores, threshold=0.3)
    assert m["sensitivity"] == 0.9 and m["specificity"] == 1.0


def test_threshold_for_sensitivity_with_tied_positives() -> None:
    labels = [1, 1, 1, 1, 0]
    scores = [0.8, 0.6, 0.6, 0.2, 0.7]
    # 0.75 needs 3 of 4: threshold 0.6 catches both tied positives.
    assert threshold_for_sensitivity(labels, scores, min_sensitivity=0.75) == 0.6
    assert threshold_for_sensitivity(labels, scores, min_sensitivity=0.5) == 0.6


def test_threshold_for_sensitivity_without_positives_is_an_error() -> None:
    with pytest.raises(ValueError, match="malignant"):
        threshold_for_sensitivity([0, 0], [0.3, 0.4], min_sensitivity=0.9)


# --- Wilson interval ---------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 5000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_interval_contains_p(data) -> None:
    k, n = data
    low, high = wilson_interval(k, n)
    assert 0.0 <= low <= k / n <= high <= 1.0
    assert low < high


def test_wilson_interval_narrows_with_n() -> None:
    widths = []
    for n in (10, 40, 100, 1000, 10000):
        low, high = wilson_interval(int(0.3 * n), n)
        widths.append(high - low)
    assert all(a > b for a, b in zip(widths, widths[1:], strict=False)), widths
    assert widths[-1] < 0.02


def test_wilson_interval_reference_values() -> None:
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    low, high = wilson_interval(0, 0)
    assert math.isnan(low) and math.isnan(high)
