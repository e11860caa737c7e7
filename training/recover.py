"""Rebuild a trainable Keras model from a shipped int8 model, for a warm restart.

A run folder does not always outlive the machine it was trained on; the int8
model in ``models/`` does. Its weights, dequantised, are the float network with
every BatchNorm folded into the convolution before it. This puts them back into
the trainer's own architecture and unfolds each BatchNorm so that it starts as
the identity *on real images*: its statistics are those of the convolution's
output, and its scale and shift undo them. Inference is then the int8 model's
function (up to quantisation rounding), and training-mode BatchNorm, which
normalises with batch statistics, starts from nearly the same function instead
of a scrambled one.

    python -m training.recover models/melanoma_int8.tflite --out runs/recovered.keras
    python -m training.train --arch mobile --alpha 0.5 --size 160 --lr 0.0004 --epochs 32 \\
        --patience 40 --init runs/recovered.keras --out runs/r160

The recovered model is a starting point, not an export: it carries the int8
rounding of every weight, so it is fine-tuned (``--init``) before it ships.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

from kiosk.manifest import manifest_path_for
from kiosk.storage import atomic_write_bytes

from .data import DEFAULT_DATA, REPO_ROOT, list_samples, preprocessed_arrays, split_samples
from .train import save_model_atomic

WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


class RecoveryError(Exception):
    """A one-line reason the int8 model cannot be turned back into a Keras model."""


def architecture_from_name(name: str, input_size: int):
    """The trainer's Keras model for a manifest's ``architecture`` (e.g. ``mobilenetv2_0.5_160``)."""
    from .models import lite_net, mobile_net, paper_cnn

    mobile = re.fullmatch(r"mobilenetv2_([0-9.]+)_([0-9]+)", name)
    if mobile:
        return mobile_net(int(mobile.group(2)), alpha=float(mobile.group(1)))
    lite = re.fullmatch(r"efficientnet_lite0_([0-9.]+)_([0-9]+)", name)
    if lite:
        return lite_net(int(lite.group(2)), alpha=float(lite.group(1)))
    if name == "paper_cnn":
        return paper_cnn(input_size)
    raise RecoveryError(
        f"unknown architecture {name!r} "
        "(the trainer builds mobilenetv2_ALPHA_SIZE, efficientnet_lite0_WIDTH_SIZE and paper_cnn)"
    )


def int8_weights(model_bytes: bytes) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(op, kernel, bias) of each convolution and dense layer, in execution order, dequantised to float32."""
    from kiosk.model import load_interpreter_class

    interpreter_class, _ = load_interpreter_class()
    try:
        interpreter = interpreter_class(model_content=model_bytes)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise RecoveryError(f"not a TFLite model ({exc.__class__.__name__})") from None
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}

    def dequantised(index: int) -> np.ndarray:
        raw = interpreter.get_tensor(index)
        q = tensors[index]["quantization_parameters"]
        scales, zero_points = q["scales"], q["zero_points"]
        if raw.dtype.kind == "f" or not len(scales):
            return raw.astype(np.float32)
        shape = [1] * raw.ndim
        if len(scales) > 1:  # per-channel
            shape[q["quantized_dimension"]] = len(scales)
        return ((raw.astype(np.float32) - zero_points.reshape(shape)) * scales.reshape(shape)).astype(np.float32)

    found = []
    for op in interpreter._get_ops_details():  # noqa: SLF001 - the only listing of the ops LiteRT offers
        if op["op_name"] in WEIGHTED_OPS:
            _, kernel, bias = op["inputs"][:3]
            found.append((op["op_name"], dequantised(kernel), dequantised(bias) if bias >= 0 else None))
    return found


def _weighted_layers(model) -> list[tuple[Any, Any]]:  # Keras layers (untyped)
    """(layer, the BatchNorm right after it or None), for every conv and dense layer, in order."""
    import keras

    flat = []

    def walk(m):
        for layer in m.layers:
            if hasattr(layer, "layers"):
                walk(layer)
            else:
                flat.append(layer)

    walk(model)
    kinds = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)
    pairs = []
    for i, layer in enumerate(flat):
        if isinstance(layer, kinds):
            after = flat[i + 1] if i + 1 < len(flat) else None
            pairs.append((layer, after if isinstance(after, keras.layers.BatchNormalization) else None))
    return pairs


def _keras_kernel(op: str, kernel: np.ndarray) -> np.ndarray:
    if op == "CONV_2D":  # TFLite OHWI -> Keras HWIO
        return kernel.transpose(1, 2, 3, 0)
    if op == "DEPTHWISE_CONV_2D":  # 1HWC -> HWC1
        return kernel[0][..., None]
    return kernel.T  # FULLY_CONNECTED: (out, in) -> (in, out)


def recover(model_path: Path, images: np.ndarray, *, batch_size: int = 64):
    """The Keras model behind ``model_path`` (an int8 .tflite with its manifest), BatchNorm unfolded on ``images``.

    ``images`` are preprocessed uint8 training images (a few hundred are plenty);
    they set each BatchNorm's statistics, never the weights.

    >>> model = recover(Path("models/melanoma_int8.tflite"), images)  # doctest: +SKIP
    """
    try:
        manifest = json.loads(manifest_path_for(model_path).read_text())
        content = model_path.read_bytes()
    except (OSError, ValueError) as exc:
        raise RecoveryError(f"cannot read {model_path} and its manifest ({exc.__class__.__name__})") from None
    if "architecture" not in manifest:
        raise RecoveryError(f"{manifest_path_for(model_path)} names no architecture")
    if hashlib.sha256(content).hexdigest() != manifest.get("sha256"):
        raise RecoveryError(f"{model_path} does not match the sha256 in its manifest")
    model = architecture_from_name(manifest["architecture"], int(manifest["input"]["height"]))
    source = int8_weights(content)
    targets = _weighted_layers(model)
    if len(source) != len(targets):
        raise RecoveryError(f"{model_path} has {len(source)} weighted layers, {model.name} has {len(targets)}")
    for (op, kernel, bias), (layer, norm) in zip(source, targets, strict=True):
        kernel = _keras_kernel(op, kernel)
        if tuple(layer.kernel.shape) != kernel.shape:
            raise RecoveryError(
                f"layer {layer.name}: kernel {kernel.shape} in the int8 model, "
                f"{tuple(layer.kernel.shape)} in {model.name}"
            )
        bias = (
            np.zeros(kernel.shape[-2] if op == "DEPTHWISE_CONV_2D" else kernel.shape[-1], np.float32)
            if bias is None
            else bias
        )
        if layer.use_bias:
            layer.set_weights([kernel, bias])
            continue
        if norm is None:
            raise RecoveryError(f"layer {layer.name} has neither a bias nor a BatchNorm to hold the folded bias")
        layer.set_weights([kernel])
        # Identity plus the folded bias until the statistics are known: var = 1 - eps makes the divisor 1.
        norm.set_weights([np.ones_like(bias), bias, np.zeros_like(bias), np.full_like(bias, 1.0 - norm.epsilon)])
    _unfold_batchnorm(model, [(layer, norm) for layer, norm in targets if norm is not None], images, batch_size)
    return model


def _unfold_batchnorm(model, pairs, images: np.ndarray, batch_size: int) -> None:
    """Give each BatchNorm its input's real statistics and a scale and shift that undo them.

    With mean m and variance v of the convolution's output x, gamma = sqrt(v + eps)
    and beta = m + b give gamma * (x - m) / sqrt(v + eps) + beta = x + b: the same
    inference function, now with statistics that training-mode batches will match.
    """
    import keras

    if not pairs:
        return
    if not len(images):
        raise RecoveryError(f"{model.name} has BatchNorm layers: their statistics need training images")
    # MobileNetV2's BatchNorms sit in a nested backbone, the layers before it (the input scaling) run first;
    # Lite0 is one flat model.
    owner = next((layer for layer in model.layers if hasattr(layer, "layers")), model)
    before = model.layers[: model.layers.index(owner)] if owner is not model else []
    before = [layer for layer in before if not isinstance(layer, keras.layers.InputLayer)]
    probe = keras.Model(owner.inputs, [layer.output for layer, _ in pairs])
    sums = [0.0] * len(pairs)
    squares = [0.0] * len(pairs)
    count = 0
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size].astype(np.float32)
        for layer in before:
            x = layer(x)
        for i, values in enumerate(probe(x, training=False)):
            values = np.asarray(values, np.float64)
            values = values.reshape(-1, values.shape[-1])
            sums[i] = sums[i] + values.sum(0)
            squares[i] = squares[i] + (values**2).sum(0)
        count += len(x)
    for i, (layer, norm) in enumerate(pairs):
        n = count * int(np.prod(layer.output.shape[1:-1]))
        mean = sums[i] / n
        variance = np.maximum(squares[i] / n - mean**2, 0.0)
        bias = norm.get_weights()[1]
        norm.set_weights(
            [
                np.sqrt(variance + norm.epsilon).astype(np.float32),
                (mean + bias).astype(np.float32),
                mean.astype(np.float32),
                variance.astype(np.float32),
            ]
        )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.recover", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "model", type=Path, help="an int8 .tflite with its .json manifest (e.g. models/melanoma_int8.tflite)"
    )
    p.add_argument("--out", type=Path, required=True, help="the Keras model to write (for training.train --init)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with benign/ and malignant/")
    p.add_argument("--images", type=int, default=1024, help="training images for the BatchNorm statistics")
    p.add_argument(
        "--seed", type=int, default=1234, help="the trainer's split seed (statistics come from its training side)"
    )
    p.add_argument("--cache", type=Path, default=REPO_ROOT / "cache")
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.out.suffix != ".keras":
        print(f"error: --out must name a .keras file, not {args.out}", file=sys.stderr)
        return 2
    try:
        manifest = json.loads(manifest_path_for(args.model).read_text())
        size, recipe, model_sha256 = (
            int(manifest["input"]["height"]),
            manifest["preprocessing_recipe"],
            manifest["sha256"],
        )
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {args.model}: no readable manifest ({exc.__class__.__name__})", file=sys.stderr)
        return 2
    samples = list_samples(args.data)
    train, val = split_samples(args.data, samples, seed=args.seed)
    rng = np.random.default_rng(args.seed)
    picked = sorted(rng.choice(len(train), size=min(args.images, len(train)), replace=False))
    x_train, _ = preprocessed_arrays(args.data, train, size=size, recipe=recipe, cache_dir=args.cache)
    try:
        model = recover(args.model, x_train[picked])
    except RecoveryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    x_val, y_val = preprocessed_arrays(args.data, val, size=size, recipe=recipe, cache_dir=args.cache)
    report_agreement(model, args.model, x_val, y_val)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_model_atomic(model, args.out)
    write_recovery_record(args.out, args.model, model_sha256)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def write_recovery_record(keras_path: Path, model_path: Path, model_sha256: str) -> Path:
    """``NAME.json`` beside the recovered model: which int8 model it came from (the trainer's --init records it)."""
    record = {
        "recovered_from": {"path": str(model_path), "sha256": model_sha256},
        "sha256": hashlib.sha256(keras_path.read_bytes()).hexdigest(),
    }
    path = keras_path.with_suffix(".json")
    atomic_write_bytes(path, json.dumps(record, indent=1).encode())
    return path


def report_agreement(model, model_path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """Print how closely the recovered float model follows the int8 one on validation images."""
    from kiosk.metrics import roc_auc
    from kiosk.model import Model

    int8 = Model.load(model_path)
    int8_probs = np.array([int8.malignant_probability(image) for image in images])
    float_probs = model.predict(images.astype(np.float32), batch_size=128, verbose=0)[:, 1]
    # Training mode normalises with batch statistics: batches must be mixed like training batches
    # (the validation list is sorted by class, and a one-class batch shifts every statistic).
    # A training-mode call also moves the BatchNorm statistics: put them back, so nothing of the
    # validation images stays in the model that is saved.
    order = np.random.default_rng(0).permutation(len(images))
    train_mode = np.empty(len(images), np.float32)
    weights = model.get_weights()
    for start in range(0, len(images), 64):
        picked = order[start : start + 64]
        train_mode[picked] = np.asarray(model(images[picked].astype(np.float32), training=True))[:, 1]
    model.set_weights(weights)
    print(
        f"validation ({len(images)} images): int8 AUC {roc_auc(labels, int8_probs):.4f}, "
        f"recovered float AUC {roc_auc(labels, float_probs):.4f} (training mode {roc_auc(labels, train_mode):.4f}), "
        f"mean |difference| {np.mean(np.abs(float_probs - int8_probs)):.4f}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    sys.exit(main())
