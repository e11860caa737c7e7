"""The tiny int8 test model: how it is built (helpers, not fixtures).

``scripts/build_test_model.py`` runs :func:`build_tiny` once and commits the result as
``tests/data/tiny_int8.tflite`` with its manifest, so the default test run needs no
TensorFlow. The ``tiny_build`` fixture (marker ``training``) runs the same function again
to test the build path itself. A small CNN is trained for a few steps on drawn lesions and
converted by ``training.convert.build``, the code ``deploy/build-model`` runs, so every test
that screens an image exercises real int8 inference, never a stub.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY_SIZE = 64
#: The committed model and its manifest (a ``tests/data/tiny_int8.json`` lies next to it).
COMMITTED_MODEL = REPO_ROOT / "tests" / "data" / "tiny_int8.tflite"
BUILD_SCRIPT = "scripts/build_test_model.py"
CALIBRATION_SEEDS = range(1000, 1300)
VALIDATION_SEEDS = {"benign": range(2000, 2020), "malignant": range(3000, 3020)}


def write_drawn_images(folder: Path, seeds: Iterable[int], **kwargs: Any) -> list[Path]:
    """Drawn lesions ``drawn_SEED.png`` in ``folder`` (the same pixels for the same seed, always)."""
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


def write_validation_images(folder: Path) -> Path:
    """``folder/benign`` and ``folder/malignant``: the drawn images the tiny model's manifest was measured on."""
    for name, seeds in VALIDATION_SEEDS.items():
        write_drawn_images(folder / name, seeds)
    return folder


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
    export(
        model,
        export_dir,
        size=size,
        recipe="crop-sog6-v1",
        training_data={"source": "drawn test lesions", "train_images": 32},
        validation_metrics={},
    )
    return export_dir


def build_tiny(root: Path) -> dict[str, Any]:
    """Build the tiny int8 model under ``root``: (model path, build metrics, the folders it used)."""
    from training.convert import build

    export_dir = make_tiny_export(root / "export")
    calibration = root / "calibration"
    write_drawn_images(calibration, CALIBRATION_SEEDS)
    validation = write_validation_images(root / "validation")
    models = root / "models"
    models.mkdir()
    out = models / "tiny_int8"
    # The old point rule: 20 drawn melanomas are too few for the confident one (it would refer every one),
    # and the committed model keeps the threshold it was built with. tests/test_build_model.py builds the default.
    metrics = build(
        export_dir, calibration, validation, out, max_int8_loss=100.0, threshold_method="point", log=lambda s: None
    )
    return {
        "model": out.with_suffix(".tflite"),
        "metrics": metrics,
        "export": export_dir,
        "calibration": calibration,
        "validation": validation,
        "root": root,
    }
