"""Shared fixtures: a tiny but real int8 model built through the real build path.

The model is trained for a few steps on drawn lesions and converted by
``training.convert.build`` -- the same code ``deploy/build-model`` runs -- so
every test that screens an image exercises real int8 inference, never a stub.
It needs tensorflow (the [test] extra); without it these tests skip.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_TRAIN = REPO_ROOT.parent / "shared" / "data" / "melanoma10k" / "train"
TINY_SIZE = 64


def write_drawn_images(folder: Path, seeds, **kwargs) -> list[Path]:
    import cv2

    from kiosk.synthetic import random_lesion

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in seeds:
        image = random_lesion(seed, width=kwargs.get("width", 320), height=kwargs.get("height", 240))
        path = folder / f"drawn_{seed}.png"
        cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        paths.append(path)
    return paths


def make_tiny_export(export_dir: Path, *, size: int = TINY_SIZE, steps: int = 5) -> Path:
    """Train a very small CNN for a few steps on drawn images and export it like the trainer does."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    from keras import layers

    from kiosk.synthetic import random_lesion
    from kiosk.vision.preprocess import preprocess
    from training.train import export

    keras.utils.set_random_seed(0)
    inputs = keras.Input((size, size, 3), name="image")
    x = layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    x = layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = layers.Conv2D(16, 3, strides=2, activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(2, activation="softmax")(x)
    model = keras.Model(inputs, outputs, name="tiny_test_cnn")
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    images = np.stack([preprocess(random_lesion(s, width=320, height=240), size=size) for s in range(32)])
    labels = np.eye(2)[np.arange(32) % 2]
    model.fit(images.astype(np.float32), labels, epochs=steps, batch_size=16, verbose=0)
    export(model, export_dir, size=size, recipe="crop-sog6-v1",
           training_data={"source": "drawn test lesions", "train_images": 32}, validation_metrics={})
    return export_dir


@pytest.fixture(scope="session")
def tiny_build(tmp_path_factory):
    """(model path, build metrics, folders) of a tiny int8 model built by training.convert.build."""
    pytest.importorskip("tensorflow", reason="tensorflow (the [test] extra) builds the test model")
    from training.convert import build

    root = tmp_path_factory.mktemp("tiny-model")
    export_dir = make_tiny_export(root / "export")
    calibration = root / "calibration"
    write_drawn_images(calibration, range(1000, 1300))
    validation = root / "validation"
    write_drawn_images(validation / "benign", range(2000, 2020))
    write_drawn_images(validation / "malignant", range(3000, 3020))
    models = root / "models"
    models.mkdir()
    out = models / "tiny_int8"
    metrics = build(export_dir, calibration, validation, out, max_int8_loss=100.0, log=lambda s: None)
    return {"model": out.with_suffix(".tflite"), "metrics": metrics, "export": export_dir,
            "calibration": calibration, "validation": validation, "root": root}


@pytest.fixture(scope="session")
def tiny_model_path(tiny_build) -> Path:
    return tiny_build["model"]


@pytest.fixture()
def model(tiny_model_path):
    from kiosk.model import Model

    return Model.load(tiny_model_path)


@pytest.fixture()
def screener(model):
    from kiosk.screening import Screener

    return Screener(model)


@pytest.fixture
def short_dir(tmp_path):
    """A folder short enough for AF_UNIX socket paths (107 bytes; pytest's tmp_path can be longer)."""
    import tempfile

    if len(str(tmp_path / "notify")) < 100:
        yield tmp_path
    else:
        with tempfile.TemporaryDirectory(prefix="sdn") as folder:
            yield Path(folder)
