"""Screening metrics with no dependency beyond numpy: AUC, confusion counts, threshold choice.

>>> y = [0, 0, 1, 1]; p = [0.1, 0.4, 0.35, 0.8]
>>> roc_auc(y, p)
0.75
>>> binary_metrics(y, p, threshold=0.3)["sensitivity"]
1.0
>>> threshold_for_sensitivity(y, p, min_sensitivity=1.0)
0.35
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np


def roc_auc(labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties count one half); nan with one class only."""
    y = np.asarray(labels, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), np.float64)
    sorted_s = s[order]
    # average ranks over ties
    start = 0
    for end in range(1, len(s) + 1):
        if end == len(s) or sorted_s[end] != sorted_s[start]:
            ranks[order[start:end]] = (start + end - 1) / 2.0 + 1.0
            start = end
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def roc_curve(
    labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate, thresholds), thresholds descending."""
    y = np.asarray(labels, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    thresholds = np.unique(s)[::-1]
    tpr = np.array([((s >= t) & y).sum() / max(1, y.sum()) for t in thresholds])
    fpr = np.array([((s >= t) & ~y).sum() / max(1, (~y).sum()) for t in thresholds])
    return np.concatenate([[0.0], fpr]), np.concatenate([[0.0], tpr]), np.concatenate([[np.inf], thresholds])


def _ratio(a: int, b: int) -> float:
    return a / b if b else float("nan")


def binary_metrics(
    labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray, *, threshold: float
) -> dict[str, Any]:
    """Accuracy, sensitivity, specificity, precision and F1 when ``score >= threshold`` means refer."""
    y = np.asarray(labels, dtype=bool)
    pred = np.asarray(scores, dtype=np.float64) >= threshold
    tp, fp = int((pred & y).sum()), int((pred & ~y).sum())
    tn, fn = int((~pred & ~y).sum()), int((~pred & y).sum())
    sensitivity, precision = _ratio(tp, tp + fn), _ratio(tp, tp + fp)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    return {
        "n": int(len(y)),
        "threshold": float(threshold),
        "accuracy": _ratio(tp + tn, len(y)),
        "sensitivity": sensitivity,
        "specificity": _ratio(tn, tn + fp),
        "precision": precision,
        "f1": f1,
        "confusion": {"tp": tp, "fp": fp, "tn": tn, "fn": fn},
    }


def threshold_for_sensitivity(
    labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray, *, min_sensitivity: float
) -> float:
    """The highest threshold whose sensitivity is at least ``min_sensitivity``.

    The highest such threshold gives the best specificity (fewest needless
    referrals) while still catching the required share of melanomas.
    """
    y = np.asarray(labels, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    positives = np.sort(s[y])[::-1]
    if positives.size == 0:
        raise ValueError("no malignant examples: cannot choose a threshold")
    needed = math.ceil(min_sensitivity * positives.size - 1e-9)
    return float(positives[max(needed, 1) - 1])


def wilson_interval(successes: int, total: int, *, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a proportion (good at small counts and near 0 or 1)."""
    if total == 0:
        return (float("nan"), float("nan"))
    p = successes / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return (max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half)))  # p inside despite float rounding
