"""training.threshold: exact Clopper-Pearson bounds and the confident-sensitivity threshold; the shipped manifest."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from kiosk.manifest import read_manifest
from tests.conftest import REPO_ROOT, SHARED_TRAIN
from training.threshold import (
    binomial_sf,
    choose_threshold,
    clopper_pearson_interval,
    clopper_pearson_lower,
    threshold_with_confident_sensitivity,
)

MANIFEST = REPO_ROOT / "models" / "melanoma_int8.json"
DATA = Path(os.environ.get("MELANOMA10K_TRAIN", SHARED_TRAIN))


def test_clopper_pearson_matches_closed_forms_and_tables():
    # all n caught: the lower bound is alpha ** (1 / n) exactly
    assert clopper_pearson_lower(100, 100) == pytest.approx(0.05 ** (1 / 100), abs=1e-12)
    assert clopper_pearson_lower(0, 10) == 0.0
    # the textbook two-sided 95% interval for 5 of 10
    low, high = clopper_pearson_interval(5, 10)
    assert (round(low, 6), round(high, 6)) == (0.187086, 0.812914)
    # at the bound, the chance of so many successes or more is exactly 5%
    assert binomial_sf(606, 628, clopper_pearson_lower(606, 628)) == pytest.approx(0.05, abs=1e-9)


def test_threshold_on_constructed_scores_is_exact():
    # 200 melanomas scored 0.005 .. 1.000: 196 caught is the fewest whose lower bound clears 95%
    labels = [1] * 200 + [0] * 50
    scores = [i / 200 for i in range(1, 201)] + [0.5] * 50
    assert threshold_with_confident_sensitivity(labels, scores) == 0.025
    # 100 melanomas: 99 needed (bound 0.9534), so the second-lowest melanoma score
    labels = [1] * 100 + [0] * 3
    scores = [i / 100 for i in range(1, 101)] + [0.9, 0.1, 0.0]
    assert threshold_with_confident_sensitivity(labels, scores) == 0.02
    # ties: every melanoma at or above the threshold counts
    labels = [1] * 100
    scores = [0.9] * 99 + [0.1]
    assert threshold_with_confident_sensitivity(labels, scores) == 0.9


def test_stricter_than_the_point_rule():
    from kiosk.metrics import threshold_for_sensitivity

    rng = np.random.default_rng(0)
    labels = np.r_[np.ones(300, int), np.zeros(300, int)]
    scores = np.r_[rng.beta(5, 2, 300), rng.beta(2, 5, 300)]
    assert threshold_with_confident_sensitivity(labels, scores) < threshold_for_sensitivity(
        labels, scores, min_sensitivity=0.95
    )


def test_too_few_melanomas_refers_every_one():
    labels = [1] * 20 + [0] * 20
    scores = list(np.linspace(0.3, 0.9, 20)) + [0.1] * 20
    with pytest.raises(ValueError, match="too few"):
        threshold_with_confident_sensitivity(labels, scores)
    record = choose_threshold(labels, scores)
    assert record["bound_reached"] is False
    assert record["threshold"] == pytest.approx(0.3)
    assert record["sensitivity"] == 1.0 and record["confusion"]["fn"] == 0


def test_shipped_manifest_loads_and_records_its_threshold():
    m = read_manifest(MANIFEST)
    choice = m.extra["threshold_choice"]
    assert choice["method"] == "clopper-pearson-lower-95"
    assert choice["threshold"] == m.threshold
    assert choice["sensitivity_lower_bound_one_sided"] >= 0.95
    # the record's counts give its bound
    c = choice["confusion"]
    assert clopper_pearson_lower(c["tp"], c["tp"] + c["fn"]) == pytest.approx(
        choice["sensitivity_lower_bound_one_sided"]
    )
    assert m.extra["honest_validation"]["split"]["validation_images"] == c["tp"] + c["fn"] + c["tn"] + c["fp"]


@pytest.mark.skipif(not (DATA / "benign").is_dir(), reason=f"real data not present: {DATA}")
def test_shipped_threshold_is_what_the_function_gives_on_the_honest_split():
    from kiosk.model import Model
    from kiosk.screening import Screener
    from training.data import split_sha256
    from training.revalidate import honest_split, score

    m = read_manifest(MANIFEST)
    _, val, _, _ = honest_split(DATA)
    assert split_sha256(val) == m.extra["honest_validation"]["split"]["validation_split_sha256"]
    labels, probs, _, _ = score(Screener(Model.load(MANIFEST.with_suffix(".tflite"))), DATA, val)
    assert threshold_with_confident_sensitivity(labels, probs) == m.threshold
