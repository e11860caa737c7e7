"""training.revalidate: the AUC split by dermatoscope rim, and serving a model under another recipe."""

from __future__ import annotations

import shutil

import numpy as np

from kiosk.manifest import read_manifest
from tests.conftest import REPO_ROOT
from training.revalidate import main, rim_breakdown, update_manifest

TINY = REPO_ROOT / "tests" / "data" / "tiny_int8.tflite"


def test_rim_breakdown_scores_each_side_alone():
    labels = np.array([1, 1, 0, 0, 1, 0])
    probs = np.array([0.9, 0.2, 0.8, 0.1, 0.7, 0.3])
    rims = np.array([True, True, True, True, False, False])
    out = rim_breakdown(labels, probs, rims)
    assert out["with_rim"] == {"melanomas": 2, "benign": 2, "auc": 0.75}  # 0.9 beats 0.8 and 0.1; 0.2 only 0.1
    assert out["without_rim"] == {"melanomas": 1, "benign": 1, "auc": 1.0}
    one_class = rim_breakdown(labels, probs, np.array([True, False, False, False, False, False]))
    assert one_class["with_rim"]["auc"] is None  # one melanoma and no benign: no AUC to give


def _report(recipe: str, threshold: float) -> dict:
    choice = {"threshold": threshold, "rule": "a rule", "sensitivity": 0.96, "specificity": 0.7}
    keys = ("split", "dedup", "auc", "auc_ci95_bootstrap", "auc_by_rim", "at_previous_threshold", "at_argmax")
    return {"preprocessing_recipe": recipe, "threshold_choice": choice, **{k: {} for k in keys}}


def test_serving_under_another_recipe_records_what_the_weights_were_trained_with(tmp_path):
    model = tmp_path / "m.tflite"
    shutil.copy(TINY, model)
    shutil.copy(TINY.with_suffix(".json"), tmp_path / "m.json")
    trained = read_manifest(tmp_path / "m.json").preprocessing_recipe
    update_manifest(model, _report("crop-band1-fill-sog6-v1", 0.25))
    m = read_manifest(tmp_path / "m.json")
    assert (m.preprocessing_recipe, m.threshold) == ("crop-band1-fill-sog6-v1", 0.25)
    assert m.extra["preprocessing_change"] == {"trained_with": trained, "served_with": "crop-band1-fill-sog6-v1"}
    update_manifest(model, _report("crop-band1-sog6-v1", 0.3))  # a second change still names the training recipe
    assert read_manifest(tmp_path / "m.json").extra["preprocessing_change"]["trained_with"] == trained
    assert model.read_bytes() == TINY.read_bytes()  # the weights are never touched


def test_an_unknown_recipe_is_one_line_and_writes_nothing(tmp_path, capsys):
    data = tmp_path / "data"
    (data / "benign").mkdir(parents=True)
    (data / "malignant").mkdir()
    model = tmp_path / "m.tflite"
    shutil.copy(TINY, model)
    shutil.copy(TINY.with_suffix(".json"), tmp_path / "m.json")
    before = (tmp_path / "m.json").read_bytes()
    code = main(["--model", str(model), "--data", str(data), "--out", str(tmp_path / "out"), "--recipe", "nope"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: unknown preprocessing recipe 'nope'") and "\n" not in err
    assert (tmp_path / "m.json").read_bytes() == before
