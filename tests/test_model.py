"""The model wrapper: hash check, manifest validation, quantisation, clear errors naming the file."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from kiosk.manifest import read_manifest
from kiosk.model import Model
from kiosk.reasons import ModelError


@pytest.fixture()
def model_copy(tiny_model_path, tmp_path):
    path = tmp_path / "m.tflite"
    shutil.copy(tiny_model_path, path)
    shutil.copy(tiny_model_path.with_suffix(".json"), path.with_suffix(".json"))
    return path


def test_loads_verifies_and_predicts_probabilities(model):
    image = np.full((model.input_size, model.input_size, 3), 128, np.uint8)
    # A flat grey image tells the tiny model nothing: both classes get 128/256, exactly.
    assert model.probabilities(image).tolist() == [0.5, 0.5]
    assert model.malignant_probability(image) == 0.5
    assert model.runtime in ("ai-edge-litert", "tflite-runtime")
    assert model.sha256 == read_manifest(model.path.with_suffix(".json")).sha256


def test_different_inputs_give_different_outputs(model):
    # A real network responds to its input; a stub returning a constant would fail here.
    rng = np.random.default_rng(0)
    outputs = {
        round(model.malignant_probability(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)), 4) for _ in range(8)
    }
    assert len(outputs) > 1


def test_quantisation_uses_tensor_parameters(model):
    # The tiny model's own input tensor: uint8, scale 1, zero point 0, so pixels pass unchanged.
    assert model._input["quantization"] == (1.0, 0) and np.dtype(model._input["dtype"]) == np.uint8
    x = np.array([[[0, 128, 255]]], np.uint8).repeat(64, 0).repeat(64, 1)
    assert np.array_equal(model._quantise(x)[0], x)
    # Another tensor's parameters, worked by hand: int8, scale 2, zero point -128 maps
    # 0 -> -128, 3 -> round(-126.5) = -126 (half to even), 128 -> -64, 255 -> round(-0.5) = 0.
    model._input = {**model._input, "dtype": np.int8, "quantization": (2.0, -128)}
    got = model._quantise(np.array([[[0, 3, 128], [255, 255, 255]]], np.uint8))[0]
    assert got.dtype == np.int8 and got.tolist() == [[[-128, -126, -64], [0, 0, 0]]]
    # And the output: uint8 with scale 1/256, zero point 0 -> 118 reads as 0.4609375 exactly.
    assert model._output["quantization"] == (0.00390625, 0)
    assert model._dequantise(np.array([[0, 118]], np.uint8)).tolist() == [0.0, 0.4609375]


def test_missing_model_names_the_file(tmp_path, model_copy):
    model_copy.unlink()
    with pytest.raises(ModelError) as err:
        Model.load(model_copy)
    assert err.value.code == "model_missing" and str(model_copy) in str(err.value)


def test_missing_manifest_names_the_file(model_copy):
    model_copy.with_suffix(".json").unlink()
    with pytest.raises(ModelError) as err:
        Model.load(model_copy)
    assert err.value.code == "model_missing" and "m.json" in str(err.value)


def test_tampered_model_is_refused(model_copy):
    data = bytearray(model_copy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model_copy.write_bytes(bytes(data))
    with pytest.raises(ModelError) as err:
        Model.load(model_copy)
    assert err.value.code == "model_hash_mismatch" and str(model_copy) in str(err.value)


def test_garbage_with_matching_hash_is_corrupt_not_a_crash(model_copy):
    import hashlib

    junk = b"this is not a flatbuffer" * 10
    model_copy.write_bytes(junk)
    manifest = json.loads(model_copy.with_suffix(".json").read_text())
    manifest["sha256"] = hashlib.sha256(junk).hexdigest()
    model_copy.with_suffix(".json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError) as err:
        Model.load(model_copy)
    assert err.value.code == "model_corrupt"


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda m: m.pop("threshold"), "missing keys: threshold"),
        (lambda m: m.update(threshold=1.5), "threshold"),
        (lambda m: m.update(labels=["a", "b"]), "malignant"),
        (lambda m: m.update(format="other/9"), "format"),
        (lambda m: m.update(sha256="xyz"), "sha256"),
        (lambda m: m["input"].update(height=96, width=96), "manifest says"),
    ],
)
def test_invalid_manifest_is_one_clear_line(model_copy, change, fragment):
    path = model_copy.with_suffix(".json")
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))
    with pytest.raises(ModelError) as err:
        Model.load(model_copy)
    text = str(err.value)
    assert err.value.code == "manifest_invalid" and fragment in text and "\n" not in text
    assert str(path) in text


def test_manifest_that_is_not_json(model_copy):
    model_copy.with_suffix(".json").write_text("{not json")
    with pytest.raises(ModelError) as err:
        Model.load(model_copy)
    assert "not valid JSON" in str(err.value)


def test_wrong_input_shape_is_a_value_error(model):
    with pytest.raises(ValueError):
        model.probabilities(np.zeros((10, 10, 3), np.uint8))
