"""The screening threshold that holds on unseen lesions: a lower confidence bound on sensitivity.

Picking "the highest threshold with validation sensitivity >= 95%" lands, by construction, where
the validation estimate is just 95%: on new lesions the sensitivity is then below 95% about half the
time. This module instead picks the highest threshold whose *one-sided lower 95% confidence bound*
(Clopper-Pearson, exact binomial) of sensitivity is at least 95%, so the claim "sensitivity >= 95%"
holds with 95% confidence for lesions like the (near-duplicate-free) validation split.

It does not cover a shift in the kind of lesion or photo (see the field-conditions benchmark); an
out-of-fold k-fold choice would also cover the model's own variance but needs k retrainings.

>>> round(clopper_pearson_lower(100, 100), 4)   # 100 of 100 caught
0.9705
>>> labels = [1] * 200 + [0] * 50
>>> scores = [i / 200 for i in range(1, 201)] + [0.5] * 50
>>> threshold_with_confident_sensitivity(labels, scores, min_sensitivity=0.95)   # 196 of 200 must be caught
0.025
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

METHOD = "clopper-pearson-lower-95"
RULE = (
    "highest threshold whose one-sided lower 95% Clopper-Pearson bound of sensitivity on the "
    "near-duplicate-free validation split is >= {target:.0%}"
)


def binomial_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), summed in log space (exact enough for n in the thousands)."""
    if k <= 0:
        return 1.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    log_p, log_q = math.log(p), math.log1p(-p)
    terms = [
        math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q
        for i in range(k, n + 1)
    ]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def clopper_pearson_lower(successes: int, total: int, *, confidence: float = 0.95) -> float:
    """One-sided lower ``confidence`` bound of a proportion: the p with P(X >= successes | p) = 1 - confidence."""
    if total <= 0:
        raise ValueError("no trials: no interval")
    if successes <= 0:
        return 0.0
    alpha = 1.0 - confidence
    lo, hi = 0.0, successes / total
    for _ in range(100):  # bisection: the tail probability rises with p
        mid = (lo + hi) / 2
        if binomial_sf(successes, total, mid) < alpha:
            lo = mid
        else:
            hi = mid
    return lo


def clopper_pearson_interval(successes: int, total: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided exact interval (each tail (1 - confidence) / 2)."""
    one_sided = 1 - (1 - confidence) / 2
    lower = clopper_pearson_lower(successes, total, confidence=one_sided)
    upper = 1.0 - clopper_pearson_lower(total - successes, total, confidence=one_sided)
    return lower, upper


def threshold_with_confident_sensitivity(
    labels: ArrayLike, scores: ArrayLike, *, min_sensitivity: float = 0.95, confidence: float = 0.95
) -> float:
    """The highest threshold (one of the melanomas' scores) whose lower sensitivity bound is >= min_sensitivity.

    A ValueError when even catching every melanoma would not give that bound (too few melanomas).
    """
    y = np.asarray(labels, dtype=bool)
    positives = np.sort(np.asarray(scores, dtype=np.float64)[y])[::-1]
    n = int(positives.size)
    if n == 0:
        raise ValueError("no malignant examples: cannot choose a threshold")
    for k in range(1, n + 1):  # the bound rises with k: the first k that clears it gives the highest threshold
        if clopper_pearson_lower(k, n, confidence=confidence) >= min_sensitivity:
            threshold = positives[k - 1]
            return float(threshold)
    raise ValueError(
        f"{n} melanomas are too few: even all caught, the lower {confidence:.0%} bound of "
        f"sensitivity is {clopper_pearson_lower(n, n, confidence=confidence):.4f} < {min_sensitivity}"
    )


def choose_threshold(
    labels: ArrayLike,
    scores: ArrayLike,
    *,
    min_sensitivity: float = 0.95,
    confidence: float = 0.95,
    split: str = "",
) -> dict:
    """:func:`threshold_with_confident_sensitivity` with its record; with too few melanomas for the bound,
    the threshold that refers every validation melanoma (when in doubt, refer), recorded as ``bound_reached: false``."""
    try:
        threshold = threshold_with_confident_sensitivity(
            labels, scores, min_sensitivity=min_sensitivity, confidence=confidence
        )
        reached = True
    except ValueError:
        y = np.asarray(labels, dtype=bool)
        if not y.any():
            raise
        threshold, reached = float(np.min(np.asarray(scores, dtype=np.float64)[y])), False
    record = threshold_record(
        labels, scores, threshold=threshold, min_sensitivity=min_sensitivity, confidence=confidence, split=split
    )
    record["bound_reached"] = reached
    return record


def threshold_record(
    labels: ArrayLike,
    scores: ArrayLike,
    *,
    threshold: float,
    min_sensitivity: float = 0.95,
    confidence: float = 0.95,
    split: str = "",
) -> dict:
    """What the manifest says about the threshold: method, counts, and the intervals at it."""
    y = np.asarray(labels, dtype=bool)
    refer = np.asarray(scores, dtype=np.float64) >= threshold
    tp, fn = int((refer & y).sum()), int((~refer & y).sum())
    tn, fp = int((~refer & ~y).sum()), int((refer & ~y).sum())
    return {
        "method": METHOD,
        "rule": RULE.format(target=min_sensitivity),
        "min_sensitivity": min_sensitivity,
        "confidence": confidence,
        "split": split,
        "threshold": float(threshold),
        "melanomas": tp + fn,
        "benign": tn + fp,
        "sensitivity": tp / (tp + fn),
        "sensitivity_lower_bound_one_sided": clopper_pearson_lower(tp, tp + fn, confidence=confidence),
        "sensitivity_ci95": list(clopper_pearson_interval(tp, tp + fn)),
        "specificity": tn / (tn + fp) if tn + fp else float("nan"),
        "specificity_ci95": list(clopper_pearson_interval(tn, tn + fp)) if tn + fp else None,
        "confusion": {"tp": tp, "fp": fp, "tn": tn, "fn": fn},
    }
