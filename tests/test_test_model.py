"""The committed tiny test model: it matches its manifest, and its script rebuilds it byte for byte."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest

from kiosk.model import Model
from kiosk.synthetic import random_lesion
from kiosk.vision.preprocess import preprocess
from tests.tiny_model import BUILD_SCRIPT, COMMITTED_MODEL, REPO_ROOT, TINY_SIZE

MANIFEST = COMMITTED_MODEL.with_suffix(".json")


def test_committed_model_matches_its_manifest_and_names_its_script():
    content = COMMITTED_MODEL.read_bytes()
    manifest = json.loads(MANIFEST.read_text())
    assert hashlib.sha256(content).hexdigest() == manifest["sha256"]
    assert len(content) < 64 * 1024  # a few KB: small enough to keep in git
    assert manifest["built_by"] == BUILD_SCRIPT and (REPO_ROOT / BUILD_SCRIPT).is_file()
    assert manifest["input"]["height"] == manifest["input"]["width"] == TINY_SIZE
    assert manifest["input"]["dtype"] == "uint8" and manifest["quantization"]["output"]["dtype"] == "uint8"


def test_committed_model_gives_the_same_int8_outputs():
    """Real int8 inference on fixed drawn lesions: outputs are multiples of the output scale 1/256."""
    model = Model.load(COMMITTED_MODEL)
    got = [
        model.malignant_probability(preprocess(random_lesion(seed, width=320, height=240), size=TINY_SIZE))
        for seed in (7, 11)
    ]
    assert got == [118 / 256, 116 / 256]


@pytest.mark.training
@pytest.mark.slow
def test_the_script_rebuilds_the_committed_model_byte_for_byte(tmp_path):
    tf = pytest.importorskip("tensorflow", reason="tensorflow (the [train] extra) builds the test model")
    built_with = json.loads(MANIFEST.read_text())["built_with"]["tensorflow"]
    if tf.__version__ != built_with:
        pytest.skip(f"the committed model was built with TensorFlow {built_with}, this is {tf.__version__}")
    proc = subprocess.run(
        [sys.executable, REPO_ROOT / BUILD_SCRIPT, "--out", tmp_path],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO_ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / COMMITTED_MODEL.name).read_bytes() == COMMITTED_MODEL.read_bytes()
    rebuilt = json.loads((tmp_path / MANIFEST.name).read_text())
    committed = json.loads(MANIFEST.read_text())
    for key in ("sha256", "threshold", "quantization", "labels", "input", "preprocessing_recipe"):
        assert rebuilt[key] == committed[key], key
    assert rebuilt["validation_metrics"]["int8"]["auc"] == committed["validation_metrics"]["int8"]["auc"]
