"""deploy/build-model: int8 conversion, manifest integrity, threshold rule, refusals that touch nothing."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys

import pytest

from kiosk.manifest import read_manifest
from kiosk.model import Model
from tests.conftest import REPO_ROOT, write_drawn_images

pytestmark = pytest.mark.training  # needs TensorFlow (the [train] extra); skips without it

pytest.importorskip("tensorflow", reason="tensorflow (the [train] extra) converts models")


def test_build_writes_int8_model_manifest_and_report(tiny_build):
    model_path = tiny_build["model"]
    manifest = read_manifest(model_path.with_suffix(".json"))
    assert manifest.sha256 == hashlib.sha256(model_path.read_bytes()).hexdigest()
    assert manifest.input_dtype == "uint8"
    assert manifest.quantization["input"]["dtype"] == "uint8" and manifest.quantization["output"]["dtype"] == "uint8"
    assert manifest.preprocessing_recipe == "crop-sog6-v1"
    assert set(manifest.extra["source_export"]["training_run"]) <= {
        "best_epoch",
        "epochs_run",
        "weights",
        "initialised_from",
        "trained_with",
    }
    report = model_path.with_name("tiny_int8-report")
    assert (report / "report.md").read_text().startswith("# Model build report")
    for png in ("roc.png", "confusion.png"):
        assert (report / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The threshold rule: validation sensitivity at the chosen threshold is at least 95%.
    at = manifest.extra["validation_metrics"]["int8"]["at_threshold"]
    assert at["sensitivity"] >= 0.95
    assert at["threshold"] == manifest.threshold  # exactly the cut-off the recorded metrics were measured at
    # The int8 model really is integer inside: its input tensor is uint8 with a real scale.
    model = Model.load(model_path)
    assert model._input["dtype"].__name__ == "uint8" and model._input["quantization"][0] > 0


def test_evaluation_in_manifest_matches_kiosk_inference(tiny_build):
    """The manifest's metrics were computed through kiosk.model on the validation folder."""
    import numpy as np

    from kiosk.metrics import roc_auc
    from kiosk.vision.loader import load_image
    from kiosk.vision.preprocess import preprocess

    model = Model.load(tiny_build["model"])
    labels, probs = [], []
    for label, name in enumerate(("benign", "malignant")):
        for path in sorted((tiny_build["validation"] / name).iterdir()):
            labels.append(label)
            probs.append(model.malignant_probability(preprocess(load_image(path), size=model.input_size)))
    recorded = model.manifest.extra["validation_metrics"]["int8"]["auc"]
    assert roc_auc(np.array(labels), np.array(probs)) == pytest.approx(recorded, abs=1e-9)


def run_build(*args):
    return subprocess.run(
        [str(REPO_ROOT / "deploy" / "build-model"), *map(str, args)],
        capture_output=True,
        text=True,
        env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
    )


@pytest.fixture()
def models_dir(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "keep.txt").write_text("untouched")
    return folder


def assert_untouched(models_dir):
    assert sorted(p.name for p in models_dir.iterdir()) == ["keep.txt"]


def test_missing_export_is_one_line_and_touches_nothing(tiny_build, models_dir, tmp_path):
    r = run_build(
        tmp_path / "nope",
        "--calibration",
        tiny_build["calibration"],
        "--validation",
        tiny_build["validation"],
        "--out",
        models_dir / "x",
    )
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "export folder not found" in r.stderr
    assert_untouched(models_dir)


def test_too_few_calibration_images(tiny_build, models_dir, tmp_path):
    few = tmp_path / "few"
    write_drawn_images(few, range(10))
    r = run_build(
        tiny_build["export"], "--calibration", few, "--validation", tiny_build["validation"], "--out", models_dir / "x"
    )
    assert r.returncode == 2 and "at least 300 needed" in r.stderr
    assert_untouched(models_dir)


def test_empty_class_folder(tiny_build, models_dir, tmp_path):
    val = tmp_path / "val"
    shutil.copytree(tiny_build["validation"] / "benign", val / "benign")
    (val / "malignant").mkdir()
    r = run_build(
        tiny_build["export"], "--calibration", tiny_build["calibration"], "--validation", val, "--out", models_dir / "x"
    )
    assert r.returncode == 2 and "validation malignant folder is empty" in r.stderr
    assert_untouched(models_dir)


def test_non_image_file_is_named(tiny_build, models_dir, tmp_path):
    val = tmp_path / "val"
    shutil.copytree(tiny_build["validation"], val)
    (val / "benign" / "notes.txt").write_text("hello")
    r = run_build(
        tiny_build["export"], "--calibration", tiny_build["calibration"], "--validation", val, "--out", models_dir / "x"
    )
    assert r.returncode == 2 and "notes.txt" in r.stderr and "not an image" in r.stderr
    assert_untouched(models_dir)


def test_wrong_input_shape_in_export(tiny_build, models_dir, tmp_path):
    export = tmp_path / "export"
    shutil.copytree(tiny_build["export"], export)
    info = json.loads((export / "export.json").read_text())
    info["input"]["width"] = 32
    (export / "export.json").write_text(json.dumps(info))
    r = run_build(
        export,
        "--calibration",
        tiny_build["calibration"],
        "--validation",
        tiny_build["validation"],
        "--out",
        models_dir / "x",
    )
    assert r.returncode == 2 and "square RGB" in r.stderr
    assert_untouched(models_dir)


def test_int8_accuracy_guard_refuses_and_touches_nothing(tiny_build, models_dir):
    from training.convert import BuildError, build

    # A negative allowance can never be met, so the guard must refuse before writing anything.
    with pytest.raises(BuildError, match="int8 loses"):
        build(
            tiny_build["export"],
            tiny_build["calibration"],
            tiny_build["validation"],
            models_dir / "x",
            max_int8_loss=-1.0,
            log=lambda s: None,
        )
    assert_untouched(models_dir)


def test_default_threshold_rule_is_the_confident_one(tiny_build, models_dir):
    from training.convert import build

    out = models_dir / "confident"
    build(
        tiny_build["export"],
        tiny_build["calibration"],
        tiny_build["validation"],
        out,
        max_int8_loss=100.0,
        log=lambda s: None,
    )
    manifest = read_manifest(out.with_suffix(".json"))
    at = manifest.extra["validation_metrics"]["int8"]["at_threshold"]
    # 20 melanomas are too few for the lower 95% bound (59 needed): the build refers every one and says so.
    choice = manifest.extra["threshold_choice"]
    assert manifest.extra["threshold_method"] == "clopper-pearson-lower-95"
    assert choice["bound_reached"] is False and choice["melanomas"] == 20
    assert choice["threshold"] == manifest.threshold == at["threshold"]
    assert choice["confusion"]["fn"] == 0 and at["sensitivity"] == 1.0
    assert "not reachable with 20 melanomas" in manifest.extra["threshold_rule"]
    # the tiny fixture model keeps the point rule it was committed with
    assert read_manifest(tiny_build["model"].with_suffix(".json")).extra["threshold_method"] == "point-estimate"
