"""The models that ship in models/: integrity, the size target, and `kiosk evaluate` on real validation images.

The real-data test rebuilds the trainer's validation split from ../shared (seed
1234), checks it is the very split the model's manifest was validated on (and
so never trained on), and runs the kiosk's own `kiosk evaluate` on a seeded
sample of it.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import random
import subprocess
import sys

import numpy as np
import pytest

from kiosk.manifest import read_manifest
from kiosk.metrics import roc_auc
from kiosk.model import Model
from kiosk.vision.preprocess import RECIPES
from tests.conftest import REPO_ROOT, SHARED_TRAIN

MODELS = REPO_ROOT / "models"
# name, lowest AUC accepted on a 200-image sample (full split: compact 0.972, paper CNN in MODEL_CARD.md)
SHIPPED = [("melanoma_int8", 0.93), ("baseline/paper_int8", 0.80)]
PER_CLASS = 100


def shipped(name: str):
    path = MODELS / f"{name}.tflite"
    if not path.exists():
        pytest.skip(f"{path.relative_to(REPO_ROOT)} is not built yet")
    return path


@pytest.mark.parametrize("name", [name for name, _ in SHIPPED])
def test_manifest_is_intact_and_records_the_build_rules(name):
    path = shipped(name)
    model = Model.load(path)  # refuses a file whose sha256 differs from the manifest
    m = read_manifest(path.with_suffix(".json"))
    assert m.sha256 == hashlib.sha256(path.read_bytes()).hexdigest() == model.sha256
    assert m.labels == ("benign", "malignant") and m.preprocessing_recipe in RECIPES
    assert m.input_dtype == "uint8" and m.quantization["input"]["dtype"] == "uint8"
    vm = m.extra["validation_metrics"]
    if "threshold_choice" in m.extra:  # re-chosen on the near-duplicate-free split (training.revalidate)
        choice = m.extra["threshold_choice"]
        assert choice["threshold"] == pytest.approx(m.threshold, abs=1e-9)
        assert choice["sensitivity_lower_bound_one_sided"] >= 0.95  # the threshold rule
    else:
        assert vm["int8"]["at_threshold"]["threshold"] == pytest.approx(m.threshold, abs=1e-9)
        assert vm["int8"]["at_threshold"]["sensitivity"] >= 0.95  # the threshold rule
    if name == "melanoma_int8":  # the kiosk's model: int8 within half a point of float (the baseline is
        assert vm["int8_accuracy_loss_points"] <= 0.5  # only compared; its larger loss is in MODEL_CARD.md)
    assert len(m.extra["source_export"]["training_data"]["validation_split_sha256"]) == 64


def test_compact_model_is_within_two_mebibytes():
    assert shipped("melanoma_int8").stat().st_size <= 2 * 2**20


@pytest.fixture(scope="module")
def validation_split():
    if not SHARED_TRAIN.is_dir():
        pytest.skip(f"real data not present: {SHARED_TRAIN}")
    from training.data import list_samples, split_samples
    from training.revalidate import honest_split

    _, old = split_samples(SHARED_TRAIN, list_samples(SHARED_TRAIN), val_fraction=0.15, seed=1234)
    _, honest, _, _ = honest_split(SHARED_TRAIN)
    # A model names the split it was validated on by its sha256: the old one, or the near-duplicate-free one.
    return {hashlib.sha256(json.dumps([s.path for s in val]).encode()).hexdigest(): val for val in (old, honest)}


@pytest.mark.realdata
@pytest.mark.parametrize(("name", "lowest_auc"), SHIPPED)
def test_kiosk_evaluate_on_a_sample_of_the_real_validation_split(name, lowest_auc, validation_split, tmp_path):
    path = shipped(name)
    manifest = json.loads(path.with_suffix(".json").read_text())
    recorded = manifest["source_export"]["training_data"]["validation_split_sha256"]
    assert recorded in validation_split, "neither rebuilt split is the one this model was validated on"
    validation_split = validation_split[recorded]
    rng = random.Random(20261125)
    folder = tmp_path / "sample"
    for label, name_ in enumerate(("benign", "malignant")):
        (folder / name_).mkdir(parents=True)
        for s in rng.sample([s for s in validation_split if s.label == label], PER_CLASS):
            (folder / name_ / s.path.split("/")[-1]).symlink_to(SHARED_TRAIN / s.path)
    predictions = tmp_path / "predictions.csv"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "kiosk",
            "--model",
            str(path),
            "evaluate",
            str(folder),
            "--json",
            "--predictions",
            str(predictions),
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "KIOSK_GPIO_ENABLED": "false"},
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["n"] == 2 * PER_CLASS
    assert report["auc"] >= lowest_auc, report
    assert report["threshold"] == manifest["threshold"]
    assert report["sensitivity"] >= 0.85, report  # at the threshold: 95% on the full split; a sample varies
    with predictions.open() as f:
        rows = list(csv.DictReader(f))
    labels = np.array([r["label"] == "malignant" for r in rows], int)
    assert roc_auc(labels, np.array([float(r["malignant_probability"]) for r in rows])) == pytest.approx(report["auc"])
