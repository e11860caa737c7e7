"""training.device_pack and training/device-train: the photos and the run that travel to a lent GPU machine."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import numpy as np
import pytest

from kiosk.vision.loader import load_image, probe_image
from tests.conftest import write_drawn_images
from training.data import REPO_ROOT, list_samples, load_split, make_split, preprocessed_arrays
from training.device_pack import build_pack, main

SCRIPT = REPO_ROOT / "training" / "device-train"


@pytest.fixture
def dataset(tmp_path):
    root = tmp_path / "data"
    write_drawn_images(root / "benign", range(0, 12), width=320, height=240)
    write_drawn_images(root / "malignant", range(100, 110), width=320, height=240)
    return root


def test_the_pack_keeps_every_name_and_the_split_made_from_the_originals(dataset, tmp_path):
    out = tmp_path / "pack"
    record = build_pack(dataset, out, side=128, quality=80, budget=10 * 2**20)
    originals = list_samples(dataset)
    assert list_samples(out / "train") == originals  # same names, same labels
    for sample in originals:
        data = (out / "train" / sample.path).read_bytes()
        assert probe_image(data).format == "webp"  # WebP bytes under the original name
        assert load_image(out / "train" / sample.path).shape == (96, 128, 3)  # longer side 128, aspect kept
    train, val, split_id = make_split(dataset, originals)
    assert load_split(out / "split.json") == (train, val)
    assert json.loads((out / "split.json").read_text())["split_id"] == split_id
    assert json.loads((out / "pack.json").read_text()) == record
    assert record["encoding"] == {"format": "webp", "side": 128, "quality": 80}
    assert record["photo_bytes"] == sum((out / "train" / s.path).stat().st_size for s in originals)
    assert record["images"] == len(originals) and record["train"] + record["validation"] == len(originals)


def test_a_pack_over_its_budget_is_refused_and_writes_nothing(dataset, tmp_path):
    out = tmp_path / "pack"
    with pytest.raises(ValueError, match="lower --quality or --side"):
        build_pack(dataset, out, side=128, quality=80, budget=2000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no pack, no half-written temp folder


def test_a_new_pack_replaces_the_old_one_whole(dataset, tmp_path):
    out = tmp_path / "pack"
    build_pack(dataset, out, side=128, quality=80, budget=10 * 2**20)
    (out / "stale.txt").write_text("from an earlier pack")
    build_pack(dataset, out, side=96, quality=70, budget=10 * 2**20)
    assert not (out / "stale.txt").exists()
    assert json.loads((out / "pack.json").read_text())["encoding"]["side"] == 96
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "pack"]


@pytest.mark.parametrize(
    ("options", "message"),
    [(["--quality", "0"], "--quality must be 1-100"), (["--side", "8"], "--side must be at least 32")],
)
def test_bad_pack_options_are_one_line(dataset, tmp_path, capsys, options, message):
    assert main(["--data", str(dataset), "--out", str(tmp_path / "pack"), *options]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "pack").exists()


def test_a_pack_never_reads_the_originals_cache(dataset, tmp_path):
    """Same file names, other bytes: the preprocessed cache is keyed by the files' sizes too."""
    pack = tmp_path / "pack"
    build_pack(dataset, pack, side=128, quality=60, budget=10 * 2**20)
    samples = list_samples(dataset)[:3]
    cache = tmp_path / "cache"
    from_originals, _ = preprocessed_arrays(dataset, samples, size=32, recipe="crop-sog6-v1", cache_dir=cache)
    from_pack, _ = preprocessed_arrays(pack / "train", samples, size=32, recipe="crop-sog6-v1", cache_dir=cache)
    assert len(list(cache.glob("*.npz"))) == 2
    assert not np.array_equal(from_originals, from_pack)


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        ([], {"OUT": "/tmp"}, "usage: training/device-train"),
        (["60", "run1"], {"OUT": "/tmp"}, "usage: training/device-train"),
        (["soon", "run1", "--epochs 1"], {"OUT": "/tmp"}, "SECONDS must be a whole number"),
        (["60", "run1", "--epochs 1"], {}, "OUT is not set"),
    ],
)
def test_device_train_refuses_bad_calls_in_one_line(args, env, message):
    environment = {k: v for k, v in os.environ.items() if k != "OUT"} | env
    done = subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, env=environment, timeout=30, cwd=REPO_ROOT
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and message in done.stderr


def test_device_train_needs_the_pack_carried(tmp_path):
    """Run from a tree without .devicepack/: a one-line hint to build and carry it, nothing trained."""
    tree = tmp_path / "tree"
    (tree / "training").mkdir(parents=True)
    shutil.copy(SCRIPT, tree / "training" / "device-train")
    done = subprocess.run(
        ["bash", "training/device-train", "60", "run1", "--epochs 1"],
        capture_output=True,
        text=True,
        env=os.environ | {"OUT": str(tmp_path / "out")},
        timeout=30,
        cwd=tree,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "python -m training.device_pack" in done.stderr


@pytest.mark.training
def test_a_run_on_a_pack_records_it_and_exports_on_the_originals(dataset, tmp_path):
    """The device flow on one machine: the pack's split copied in, trained on the pack, exported on the originals."""
    pytest.importorskip("tensorflow", reason="tensorflow (the [train] extra) trains models")
    from training.train import main as train

    pack = tmp_path / "pack"
    build_pack(dataset, pack, side=128, quality=80, budget=10 * 2**20)
    out = tmp_path / "run"
    out.mkdir()
    shutil.copy(pack / "split.json", out / "split.json")
    model = ["--arch", "mobile", "--alpha", "0.35", "--size", "32", "--batch", "8", "--camera-aug", "0.3"]
    paired = ["--consistency", "4", "--partner", "view", "--loader-threads", "1"]
    common = ["--cache", str(tmp_path / "cache"), "--out", str(out)]
    assert train([*model, *paired, *common, "--epochs", "1", "--data", str(pack / "train")]) == 0
    state = json.loads((out / "state.json").read_text())
    assert state["trained_on_pack"]["encoding"] == {"format": "webp", "side": 128, "quality": 80}
    assert json.loads((out / "config.json").read_text())["partner"] == "view"
    assert train(["--out", str(out), "--resume", "--data", str(dataset), "--cache", str(tmp_path / "cache")]) == 0
    exported = json.loads((out / "export" / "export.json").read_text())
    assert exported["trained_on_pack"]["split_id"] == json.loads((pack / "split.json").read_text())["split_id"]
    assert load_split(out / "export" / "split.json") == load_split(pack / "split.json")


def test_measure_screens_the_same_validation_photos_from_both(dataset, tmp_path, tiny_model_path, capsys):
    pack = tmp_path / "pack"
    build_pack(dataset, pack, side=128, quality=30, budget=10 * 2**20)
    argv = ["--data", str(dataset), "--out", str(pack), "--measure", str(tiny_model_path)]
    assert main(argv) == 0
    line = capsys.readouterr().out
    _, val = load_split(pack / "split.json")
    assert line.startswith(f"{len(val)} validation photos: AUC ") and "risk band changed for" in line
    from kiosk.model import Model
    from kiosk.screening import Screener
    from training.device_pack import measure
    from training.revalidate import fast_auc

    row = measure(tiny_model_path, dataset, pack)
    screener = Screener(Model.load(tiny_model_path))
    for folder, key in ((dataset, "auc_original"), (pack / "train", "auc_pack")):
        probs = [screener.evaluate_image(load_image(folder / s.path)).probability for s in val]
        assert row[key] == pytest.approx(fast_auc(np.array([s.label for s in val]), np.array(probs)))
    assert row["photos"] == len(val) and 0.0 <= row["band_changed"] <= 1.0
    assert main(["--data", str(dataset), "--out", str(tmp_path / "none"), "--measure", str(tiny_model_path)]) == 2
    assert "--measure needs a pack" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed (.ci/run installs it)")
def test_device_train_passes_shellcheck():
    done = subprocess.run(["shellcheck", "--shell=bash", str(SCRIPT)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout
