"""The reference trainer: split rules, the shared preprocessing cache, resumable runs, the export."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from tests.conftest import write_drawn_images
from training.data import (
    LABELS,
    POOL_FROM,
    Sample,
    list_samples,
    load_split,
    materialise_split,
    preprocessed_arrays,
    split_samples,
)


@pytest.fixture()
def dataset(tmp_path):
    root = tmp_path / "data"
    write_drawn_images(root / "benign", range(0, 30), width=200, height=200)
    write_drawn_images(root / "malignant", range(100, 126), width=200, height=200)
    # Byte-identical pairs, like the ones listed in shared/data/duplicates.txt.
    for i in range(4):
        shutil.copy(root / "benign" / f"drawn_{i}.png", root / "benign" / f"copy_{i}.png")
    return root


def test_split_is_stratified_seeded_and_keeps_duplicates_together(dataset):
    samples = list_samples(dataset)
    train, val = split_samples(dataset, samples, val_fraction=0.2, seed=7)
    assert sorted(s.path for s in train + val) == sorted(s.path for s in samples)
    assert not {s.path for s in train} & {s.path for s in val}
    for label in range(len(LABELS)):
        n = sum(s.label == label for s in samples)
        n_val = sum(s.label == label for s in val)
        assert 0.15 * n <= n_val <= 0.3 * n
    val_paths = {s.path for s in val}
    for i in range(4):
        assert (f"benign/drawn_{i}.png" in val_paths) == (f"benign/copy_{i}.png" in val_paths)
    again = split_samples(dataset, samples, val_fraction=0.2, seed=7)
    assert again == (train, val)
    assert split_samples(dataset, samples, val_fraction=0.2, seed=8)[1] != val


def test_missing_or_empty_class_folder_is_a_clear_error(tmp_path):
    (tmp_path / "benign").mkdir()
    with pytest.raises(SystemExit, match="class folder has no images"):
        list_samples(tmp_path)
    write_drawn_images(tmp_path / "benign", [1])
    with pytest.raises(SystemExit, match="class folder missing: .*malignant"):
        list_samples(tmp_path)


def test_cache_holds_exactly_the_kiosk_preprocessing(dataset, tmp_path):
    from kiosk.vision.loader import load_image
    from kiosk.vision.preprocess import preprocess

    samples = [Sample("benign/drawn_1.png", 0), Sample("malignant/drawn_101.png", 1)]
    x, y = preprocessed_arrays(dataset, samples, size=48, recipe="crop-sog6-v1", cache_dir=tmp_path / "cache")
    assert list(y) == [0, 1]
    for i, s in enumerate(samples):
        assert np.array_equal(x[i], preprocess(load_image(dataset / s.path), size=48, recipe="crop-sog6-v1"))
    # A second call is served from the cache file.
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1
    x2, _ = preprocessed_arrays(dataset, samples, size=48, recipe="crop-sog6-v1", cache_dir=tmp_path / "cache")
    assert np.array_equal(x, x2)


def test_the_cache_is_the_same_when_built_by_worker_processes(dataset, tmp_path, monkeypatch):
    from kiosk.vision.loader import load_image
    from kiosk.vision.preprocess import preprocess

    samples = list_samples(dataset)
    assert len(samples) >= POOL_FROM
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    x, y = preprocessed_arrays(dataset, samples, size=40, recipe="crop-sog6-v1", cache_dir=tmp_path / "cache")
    assert list(y) == [s.label for s in samples]
    for i in (0, 17, len(samples) - 1):
        assert np.array_equal(x[i], preprocess(load_image(dataset / samples[i].path), size=40, recipe="crop-sog6-v1"))


@pytest.mark.slow
@pytest.mark.training
def test_training_resumes_and_exports(dataset, tmp_path):
    pytest.importorskip("tensorflow", reason="tensorflow (the [train] extra) trains models")
    from training.train import main

    out = tmp_path / "run"
    common = ["--data", str(dataset), "--cache", str(tmp_path / "cache"), "--out", str(out)]
    assert (
        main(
            [
                *common,
                "--arch",
                "mobile",
                "--alpha",
                "0.35",
                "--size",
                "32",
                "--epochs",
                "1",
                "--batch",
                "16",
                "--val-fraction",
                "0.2",
            ]
        )
        == 0
    )
    state = json.loads((out / "state.json").read_text())
    assert state["epoch"] == 1 and (out / "last.keras").exists() and (out / "best.keras").exists()
    # A second start without --resume refuses to overwrite the run.
    assert main([*common, "--epochs", "1"]) == 2
    assert main(["--out", str(out), "--resume", "--epochs", "2"]) == 0
    state = json.loads((out / "state.json").read_text())
    assert state["epoch"] == 2 and [h["epoch"] for h in state["history"]] == [1, 2]
    lines = (out / "metrics.csv").read_text().splitlines()
    assert lines[0].startswith("epoch,loss,accuracy,val_loss,val_accuracy,val_auc") and len(lines) == 3
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    info = json.loads((out / "export" / "export.json").read_text())
    assert info["format"] == "melanoma-kiosk-export/1" and info["preprocessing_recipe"] == "crop-sog6-v1"
    assert info["input"]["height"] == 32 and info["labels"] == ["benign", "malignant"]
    assert (out / "export" / "saved_model" / "saved_model.pb").exists()
    train, val = load_split(out / "split.json")
    assert json.loads((out / "export" / "split.json").read_text())["validation"] == [s.path for s in val]
    cal, val_dir = materialise_split(dataset, out, calibration_count=10)
    assert len(list(cal.iterdir())) == 10
    assert sorted(p.name for p in (val_dir / "malignant").iterdir()) == sorted(
        s.path.split("/")[1] for s in val if s.label == 1
    )


@pytest.mark.training
def test_early_stopping_and_the_paper_recipe_running_every_epoch(dataset, tmp_path, capsys):
    pytest.importorskip("tensorflow", reason="tensorflow (the [train] extra) trains models")
    from training.train import main

    common = ["--data", str(dataset), "--cache", str(tmp_path / "cache"), "--batch", "16", "--val-fraction", "0.2"]
    # Patience 0: no epoch can improve on the best one, so the run stops after its first epoch.
    assert (
        main(
            [
                *common,
                "--out",
                str(tmp_path / "mobile"),
                "--arch",
                "mobile",
                "--size",
                "32",
                "--epochs",
                "3",
                "--patience",
                "0",
            ]
        )
        == 0
    )
    mobile = tmp_path / "mobile"
    assert json.loads((mobile / "state.json").read_text())["epoch"] == 1
    # Resuming a run that stopped early only exports it again; with more patience it trains on.
    assert main(["--out", str(mobile), "--resume"]) == 0
    state = json.loads((mobile / "state.json").read_text())
    assert state["epoch"] == 1 and len(state["history"]) == 1 and state["stopped_early"]
    assert main(["--out", str(mobile), "--resume", "--patience", "1"]) == 0
    assert json.loads((mobile / "state.json").read_text())["epoch"] >= 2
    # Without last.keras only a finished run can be resumed (exported); an unfinished one cannot.
    (mobile / "last.keras").unlink()
    state = json.loads((mobile / "state.json").read_text())
    state.pop("stopped_early", None)
    (mobile / "state.json").write_text(json.dumps({**state, "epoch": 1}))
    assert main(["--out", str(mobile), "--resume"]) == 2
    # Nor can a run with last.keras but no state.json: which epoch it reached is unknown.
    shutil.copy(mobile / "best.keras", mobile / "last.keras")
    (mobile / "state.json").unlink()
    capsys.readouterr()
    assert main(["--out", str(mobile), "--resume"]) == 2
    assert (
        capsys.readouterr().err.strip().splitlines()[-1]
        == f"error: cannot resume {mobile}: state.json is missing beside last.keras"
    )
    # The paper trained a fixed number of epochs; its reproduction ignores early stopping.
    paper = tmp_path / "paper"
    assert (
        main(
            [
                *common,
                "--out",
                str(paper),
                "--arch",
                "paper",
                "--paper-recipe",
                "--size",
                "48",
                "--epochs",
                "2",
                "--patience",
                "0",
            ]
        )
        == 0
    )
    assert json.loads((paper / "state.json").read_text())["epoch"] == 2
    # On resume only the run's length may change; the rest is read back from the run.
    assert main(["--out", str(paper), "--resume", "--epochs", "3", "--patience", "5", "--size", "96"]) == 0
    config = json.loads((paper / "config.json").read_text())
    assert (config["epochs"], config["patience"], config["size"]) == (3, 5, 48)
    assert json.loads((paper / "state.json").read_text())["epoch"] == 3


@pytest.mark.training
def test_weight_averaging_of_the_last_epochs(dataset, tmp_path):
    pytest.importorskip("tensorflow", reason="tensorflow (the [train] extra) trains models")
    import keras

    from training.train import average_weights, main

    out = tmp_path / "run"
    assert (
        main(
            [
                "--data",
                str(dataset),
                "--cache",
                str(tmp_path / "cache"),
                "--out",
                str(out),
                "--arch",
                "mobile",
                "--size",
                "32",
                "--epochs",
                "3",
                "--patience",
                "5",
                "--average-last",
                "2",
                "--batch",
                "16",
                "--val-fraction",
                "0.2",
            ]
        )
        == 0
    )
    snapshots = sorted((out / "average").iterdir())
    assert [p.name for p in snapshots] == ["epoch_002.weights.h5", "epoch_003.weights.h5"]
    state = json.loads((out / "state.json").read_text())
    assert state["averaged"]["epochs"] == [2, 3]
    info = json.loads((out / "export" / "export.json").read_text())
    chose_average = state["averaged"]["val_auc"] > state["best_auc"]
    assert ("average of epochs 2-3" in info.get("weights", "")) == chose_average
    assert (out / "averaged.keras").exists()  # kept either way, so an export elsewhere can judge it again
    # The average itself: each weight is the mean of the snapshots' weights.
    model = keras.models.load_model(out / "last.keras")
    per_snapshot = []
    for path in snapshots:
        model.load_weights(path)
        per_snapshot.append(model.get_weights())
    averaged = average_weights(model, snapshots).get_weights()
    for i in (0, len(averaged) // 2, -1):
        assert np.allclose(averaged[i], (per_snapshot[0][i] + per_snapshot[1][i]) / 2, atol=1e-6)

    # A run trained on another machine comes back with its records, best.keras and averaged.keras
    # only (no last.keras, no snapshots), and its images elsewhere: --resume exports it, training nothing.
    back = tmp_path / "back"
    back.mkdir()
    for name in ("state.json", "config.json", "split.json", "best.keras", "averaged.keras"):
        shutil.copy(out / name, back / name)
    moved = tmp_path / "images-here"
    shutil.copytree(dataset, moved)
    assert main(["--out", str(back), "--resume", "--data", str(moved), "--cache", str(tmp_path / "cache2")]) == 0
    assert json.loads((back / "state.json").read_text())["history"] == state["history"]
    assert not (back / "last.keras").exists()
    again = json.loads((back / "export" / "export.json").read_text())
    assert again["validation_metrics"] == info["validation_metrics"]
    assert again.get("weights") == info.get("weights")
    assert json.loads((back / "config.json").read_text())["data"] == str(moved)
    # Without last.keras the last epoch cannot be exported: one line, the run left as it was.
    assert main(["--out", str(back), "--resume", "--export-from", "last"]) == 2
    assert json.loads((back / "config.json").read_text())["export_from"] == "best"

    # --export-from on a finished run exports it again from the weights asked for, training nothing.
    for choice, source, words in (
        ("last", "last.keras", "the last epoch (3), as asked"),
        ("average", "averaged.keras", "average of epochs 2-3, as asked"),
    ):
        assert main(["--out", str(out), "--resume", "--export-from", choice]) == 0
        assert json.loads((out / "state.json").read_text())["history"] == state["history"]
        assert json.loads((out / "export" / "export.json").read_text())["weights"].startswith(words)
        exported = keras.models.load_model(out / "export" / "model.keras").get_weights()
        wanted = keras.models.load_model(out / source).get_weights()
        assert len(exported) == len(wanted)
        assert all(np.array_equal(a, b) for a, b in zip(exported, wanted, strict=True))


@pytest.mark.training
def test_batches_for_backends_without_tf_data(tmp_path):
    pytest.importorskip("tensorflow", reason="tensorflow (the [train] extra) runs the augmentation layers")
    from training.train import augmenter, shuffled_batches

    x = np.zeros((10, 8, 8, 3), np.uint8)
    x[:, 0, 0, 0] = np.arange(10)  # each image's index, readable after the batching
    y = np.array([0, 1] * 5)
    batches = shuffled_batches(x, y, batch=4, class_weight={0: 0.5, 1: 2.0}, augment=None, seed=3)
    assert len(batches) == 3
    seen = []
    for i in range(len(batches)):
        images, onehot, weights = batches[i]
        picked = [int(v) for v in np.asarray(images)[:, 0, 0, 0]]
        assert np.array_equal(np.argmax(onehot, 1), y[picked])
        assert np.array_equal(weights, np.where(y[picked] == 1, 2.0, 0.5))
        seen += picked
    assert sorted(seen) == list(range(10))  # every image once an epoch
    assert seen != list(range(10))  # shuffled
    assert [int(v) for v in shuffled_batches(x, y, batch=4, class_weight={0: 1, 1: 1}, augment=None, seed=3)[0][2]] == [
        1,
        1,
        1,
        1,
    ]
    # With augmentation the same images come out transformed, as float32.
    augmented = shuffled_batches(x, y, batch=4, class_weight={0: 1, 1: 1}, augment=augmenter(8, seed=1), seed=3)
    images = np.asarray(augmented[0][0])
    assert images.shape == (4, 8, 8, 3) and images.dtype == np.float32


@pytest.mark.training
def test_a_warm_restart_starts_from_another_runs_weights(dataset, tmp_path):
    pytest.importorskip("tensorflow", reason="tensorflow (the [train] extra) trains models")
    import hashlib

    from training.train import main

    common = [
        "--data",
        str(dataset),
        "--cache",
        str(tmp_path / "cache"),
        "--batch",
        "16",
        "--val-fraction",
        "0.2",
        "--epochs",
        "1",
    ]
    first = tmp_path / "first"
    assert main([*common, "--out", str(first), "--arch", "mobile", "--size", "32"]) == 0
    source = first / "best.keras"
    # A model of another size or architecture is refused in one line, before any training.
    assert (
        main([*common, "--out", str(tmp_path / "wrong"), "--arch", "mobile", "--size", "48", "--init", str(source)])
        == 2
    )
    assert not (tmp_path / "wrong" / "state.json").exists()
    assert main([*common, "--out", str(tmp_path / "none"), "--init", str(tmp_path / "missing.keras")]) == 2
    second = tmp_path / "second"
    assert main([*common, "--out", str(second), "--arch", "mobile", "--size", "32", "--init", str(source)]) == 0
    info = json.loads((second / "export" / "export.json").read_text())
    assert info["initialised_from"] == {"path": str(source), "sha256": hashlib.sha256(source.read_bytes()).hexdigest()}


def test_teacher_targets_cover_the_training_side_and_refuse_another_split(tmp_path):
    from training.teacher import dihedral_views, load_targets

    image = np.arange(4 * 4 * 3, dtype=np.uint8).reshape(4, 4, 3)
    views = dihedral_views(image)
    assert len({v.tobytes() for v in views}) == 8 and all(v.flags["C_CONTIGUOUS"] for v in views)
    assert any(np.array_equal(v, image[::-1]) for v in views)  # the vertical mirror is among the eight
    path = tmp_path / "teacher.npz"
    np.savez(
        path,
        paths=np.array(["benign/a.jpg", "malignant/b.jpg"]),
        malignant=np.array([0.25, 0.75], np.float32),
        labels=np.array([0, 1]),
        model_sha256=np.array("ab" * 32),
        recipe=np.array("crop-sog6-v1"),
        split_id=np.array("x"),
        views=np.array(8),
    )
    values, record = load_targets(path, ["malignant/b.jpg", "benign/a.jpg"])
    assert values.tolist() == [0.75, 0.25] and record["views"] == 8 and record["model_sha256"] == "ab" * 32
    with pytest.raises(ValueError, match="no teacher target for benign/c.jpg"):
        load_targets(path, ["benign/a.jpg", "benign/c.jpg"])


@pytest.mark.training
def test_distillation_trains_towards_the_teacher_and_records_it(dataset, tmp_path):
    pytest.importorskip("tensorflow", reason="tensorflow (the [train] extra) trains models")
    from training.data import make_split
    from training.train import main, shuffled_batches

    train, _val, _ = make_split(dataset, list_samples(dataset), val_fraction=0.2)
    teacher = tmp_path / "teacher.npz"
    np.savez(
        teacher,
        paths=np.array([s.path for s in train]),
        malignant=np.full(len(train), 0.5, np.float32),
        labels=np.array([s.label for s in train]),
        model_sha256=np.array("cd" * 32),
        recipe=np.array("crop-sog6-v1"),
        split_id=np.array("x"),
        views=np.array(8),
    )
    common = ["--data", str(dataset), "--cache", str(tmp_path / "cache"), "--batch", "16", "--val-fraction", "0.2"]
    model = ["--arch", "mobile", "--alpha", "0.35", "--size", "32", "--epochs", "1"]
    bad = ["--teacher", str(teacher), "--teacher-weight", "1.5"]
    assert main([*common, *model, "--out", str(tmp_path / "bad"), *bad]) == 2
    out = tmp_path / "kd"
    assert main([*common, *model, "--out", str(out), "--teacher", str(teacher), "--teacher-weight", "0.5"]) == 0
    info = json.loads((out / "export" / "export.json").read_text())
    assert info["distilled_from"]["model_sha256"] == "cd" * 32 and info["distilled_from"]["weight"] == 0.5
    # The batches carry the mixed targets: 0.75 for the label's class, 0.25 for the other.
    y = np.array([0, 1, 1, 0])
    soft = np.array([[0.75, 0.25], [0.25, 0.75], [0.25, 0.75], [0.75, 0.25]], np.float32)
    _, wanted, weights = shuffled_batches(
        np.zeros((4, 8, 8, 3), np.uint8), y, batch=4, class_weight={0: 1.0, 1: 3.0}, augment=None, seed=0, targets=soft
    )[0]
    assert sorted(map(tuple, np.asarray(wanted).tolist())) == sorted(map(tuple, soft.tolist()))
    assert sorted(np.asarray(weights).tolist()) == [1.0, 1.0, 3.0, 3.0]

    # A trained run's export is a teacher too (a float network too large for the kiosk, say): the mean of its
    # Keras model over the eight views of every training-side photo.
    import keras

    from training.data import preprocessed_arrays
    from training.teacher import dihedral_views
    from training.teacher import main as teacher_main

    targets = tmp_path / "from-export.npz"
    assert (
        teacher_main(
            [
                "--model",
                str(out / "export"),
                "--data",
                str(dataset),
                "--cache",
                str(tmp_path / "cache"),
                "--out",
                str(targets),
            ]
        )
        == 0
    )
    side, _, _ = make_split(dataset, list_samples(dataset))
    with np.load(targets) as made:
        assert made["paths"].tolist() == [s.path for s in side] and int(made["views"]) == 8
        first = float(made["malignant"][0])
    x, _ = preprocessed_arrays(
        dataset, side[:1], size=32, recipe=info["preprocessing_recipe"], cache_dir=tmp_path / "cache"
    )
    network = keras.models.load_model(out / "export" / "model.keras")
    views = np.stack(dihedral_views(x[0])).astype(np.float32)
    assert first == pytest.approx(float(network.predict(views, verbose=0)[:, 1].mean()), abs=1e-5)
    # And an int8 model with its manifest, scored one photo at a time through the kiosk's Model.
    from kiosk.model import Model
    from tests.conftest import COMMITTED_MODEL
    from training.teacher import dihedral_probability

    int8_targets = tmp_path / "from-int8.npz"
    cache = ["--cache", str(tmp_path / "cache")]
    assert (
        teacher_main(["--model", str(COMMITTED_MODEL), "--data", str(dataset), *cache, "--out", str(int8_targets)]) == 0
    )
    tiny = Model.load(COMMITTED_MODEL)
    x, _ = preprocessed_arrays(
        dataset, side[:1], size=tiny.input_size, recipe=tiny.manifest.preprocessing_recipe, cache_dir=tmp_path / "cache"
    )
    with np.load(int8_targets) as made:
        assert made["paths"].tolist() == [s.path for s in side] and str(made["model_sha256"]) == tiny.sha256
        assert float(made["malignant"][0]) == pytest.approx(dihedral_probability(tiny, x[0]), abs=1e-6)
    assert teacher_main(["--model", str(tmp_path), "--data", str(dataset), "--out", str(tmp_path / "no.npz")]) == 2
    assert not (tmp_path / "no.npz").exists()


def test_exporting_an_average_that_is_not_kept_is_one_line(tmp_path, capsys):
    from training.train import main

    out = tmp_path / "run"
    assert main(["--out", str(out), "--export-from", "average", "--average-last", "1"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: --export-from average needs --average-last N of 2 or more"
    ]
    assert not out.exists()


@pytest.mark.parametrize("option", ["--benign-blur", "--retone"])
def test_augmentation_share_outside_zero_to_one_is_one_line(tmp_path, capsys, option):
    from training.train import main

    assert main(["--out", str(tmp_path / "run"), "--camera-aug", "0.3", option, "1.5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{option} must be within 0..1" in err
    assert not (tmp_path / "run").exists()  # nothing written for a refused run


@pytest.mark.parametrize("option", ["--benign-blur", "--retone"])
def test_augmentation_share_without_camera_augmentation_is_one_line(tmp_path, capsys, option):
    from training.train import main

    assert main(["--out", str(tmp_path / "run"), option, "0.25"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{option} needs --camera-aug" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.training
def test_the_paired_consistency_loss_adds_the_pairs_divergence():
    pytest.importorskip("tensorflow", reason="tensorflow (the [train] extra) runs the loss")
    import keras

    from training.consistency import PairedConsistencyLoss, jensen_shannon

    def photos_cross_entropy(probabilities):  # the label scores the photos (the first half) only, as in AugMix
        return float(np.mean(np.asarray(keras.losses.categorical_crossentropy(labels[:2], probabilities[:2]))))

    labels = np.array([[1, 0], [0, 1], [1, 0], [0, 1]], np.float32)  # two photos, then the same two again
    agreeing = np.array([[0.8, 0.2], [0.3, 0.7], [0.8, 0.2], [0.3, 0.7]], np.float32)
    assert float(PairedConsistencyLoss(weight=5.0)(labels, agreeing)) == pytest.approx(
        photos_cross_entropy(agreeing), abs=1e-5
    )
    # A changed copy far from its label but agreeing with its photo costs nothing more.
    wrong_copies = np.array([[0.8, 0.2], [0.3, 0.7], [0.8, 0.2], [0.3, 0.7]], np.float32)
    flipped = labels.copy()
    flipped[2:] = flipped[2:, ::-1]
    assert float(PairedConsistencyLoss(weight=5.0)(flipped, wrong_copies)) == pytest.approx(
        photos_cross_entropy(agreeing), abs=1e-5
    )
    # A copy that disagrees with its photo costs weight x their Jensen-Shannon divergence, once on each row.
    disagreeing = np.array([[0.8, 0.2], [0.3, 0.7], [0.4, 0.6], [0.3, 0.7]], np.float32)
    p, q = np.array([0.8, 0.2]), np.array([0.4, 0.6])
    m = (p + q) / 2
    jsd = 0.5 * np.sum(p * np.log(p / m)) + 0.5 * np.sum(q * np.log(q / m))
    assert float(jensen_shannon(p[None].astype(np.float32), q[None].astype(np.float32))[0]) == pytest.approx(jsd, 1e-5)
    loss = float(PairedConsistencyLoss(weight=5.0)(labels, disagreeing))
    assert loss == pytest.approx(photos_cross_entropy(disagreeing) + 5.0 * 2 * jsd / 4, abs=1e-5)


@pytest.mark.slow
@pytest.mark.training
def test_a_consistency_run_trains_resumes_and_exports(dataset, tmp_path):
    pytest.importorskip("tensorflow", reason="tensorflow (the [train] extra) trains models")
    from training.train import main

    out = tmp_path / "run"
    common = ["--data", str(dataset), "--cache", str(tmp_path / "cache"), "--batch", "16", "--val-fraction", "0.2"]
    model = ["--arch", "mobile", "--alpha", "0.35", "--size", "32", "--camera-aug", "0.3", "--consistency", "4"]
    assert main([*common, *model, "--epochs", "1", "--out", str(out)]) == 0
    # The saved run holds the paired loss; resuming loads it again and carries on.
    assert main(["--out", str(out), "--resume", "--epochs", "2"]) == 0
    state = json.loads((out / "state.json").read_text())
    assert [h["epoch"] for h in state["history"]] == [1, 2]
    assert json.loads((out / "config.json").read_text())["consistency"] == 4
    assert (out / "export" / "saved_model" / "saved_model.pb").exists()


@pytest.mark.parametrize("options", [["--consistency", "4"], ["--camera-aug", "0.3", "--consistency", "-1"]])
def test_consistency_without_camera_augmentation_or_below_zero_is_one_line(tmp_path, capsys, options):
    from training.train import main

    assert main(["--out", str(tmp_path / "run"), *options]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--consistency must be 0 or more and needs --camera-aug" in err
    assert not (tmp_path / "run").exists()
