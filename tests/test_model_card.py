"""training.model_card: every number in the card comes from the manifests beside it or is measured."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="tensorflow (the [train] extra) converts the float32 comparison model")

from training.model_card import cpu_name, int8_loss_words, main, training_run_line

pytestmark = pytest.mark.training  # needs TensorFlow (the [train] extra); skips without it


def place(tiny_build, folder, name):
    folder.mkdir(parents=True, exist_ok=True)
    for suffix in (".tflite", ".json"):
        shutil.copy(tiny_build["model"].with_suffix(suffix), folder / f"{name}{suffix}")


def test_card_without_baseline_says_so_and_keeps_the_medical_limits(tiny_build, tmp_path):
    models = tmp_path / "models"
    place(tiny_build, models, "melanoma_int8")
    assert main(["--models", str(models)]) == 0
    card = (models / "MODEL_CARD.md").read_text()
    manifest = json.loads((models / "melanoma_int8.json").read_text())
    assert "not a diagnosis" in card and "Fitzpatrick I-III" in card and "Fitzpatrick III-V" in card
    assert f"{manifest['validation_metrics']['int8']['auc']:.4f}" in card
    assert f"**{manifest['threshold']:.4f}**" in card
    assert "| Paper CNN reproduced here | 19,264,322 | not trained yet" in card


def test_card_times_the_paper_float32_in_the_same_run(tiny_build, tmp_path, capsys):
    models = tmp_path / "models"
    place(tiny_build, models, "melanoma_int8")
    place(tiny_build, models / "baseline", "paper_int8")
    assert main(["--models", str(models), "--paper-export", str(tiny_build["export"])]) == 0
    card = (models / "MODEL_CARD.md").read_text()
    float32 = json.loads((models / "baseline" / "paper_int8.json").read_text())["validation_metrics"]["float32"]
    row = next(line for line in card.splitlines() if line.startswith("| Paper CNN reproduced here, float32 TFLite"))
    assert f"{float32['auc']:.4f}" in row and "(at build)" not in row and row.endswith(" ms |")
    assert "| Paper CNN reproduced here, int8 |" in card and "faster** than the paper CNN's float32" in card
    # The targets table judges the measured values; the tiny test model meets the size target only.
    assert "| file size | <= 2 MiB |" in card and card.count("| met |") >= 1 and "| AUC | >= 0.975 |" in card
    assert "| speed against the paper CNN's float32 TFLite | >= 10x |" in card
    # Without the export, and with a baseline whose float graph cannot be rebuilt (the tiny test
    # network is no architecture of the trainer's), the build-time measurement is used, labelled so.
    capsys.readouterr()
    assert main(["--models", str(models)]) == 0
    assert f"{float32['inference_ms_1thread']:.2f} ms (at build)" in (models / "MODEL_CARD.md").read_text()
    assert "cannot rebuild it (unknown architecture 'tiny_test_cnn'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def small_paper_build(tiny_build, tmp_path_factory):
    """The paper's architecture at 48 px (so it builds in seconds), converted to int8 like the baseline."""
    import keras

    from training.convert import build
    from training.models import paper_cnn
    from training.train import export

    root = tmp_path_factory.mktemp("paper48")
    keras.utils.set_random_seed(3)
    export(
        paper_cnn(48),
        root / "export",
        size=48,
        recipe="crop-sog6-v1",
        training_data={"source": "drawn test lesions"},
        validation_metrics={},
    )
    build(
        root / "export",
        tiny_build["calibration"],
        tiny_build["validation"],
        root / "paper_int8",
        max_int8_loss=100.0,
        min_sensitivity=0.0,
        log=lambda s: None,
    )
    return root / "paper_int8.tflite"


def test_without_the_paper_export_its_float32_is_rebuilt_from_the_int8_weights(
    tiny_build, small_paper_build, tmp_path, capsys
):
    from kiosk.model import Model
    from training.recover import recover

    # The rebuilt float model is the baseline's own network: it scores as the int8 one does.
    baseline = Model.load(small_paper_build)
    images = np.stack([np.asarray(np.random.default_rng(i).integers(0, 256, (48, 48, 3)), np.uint8) for i in range(8)])
    rebuilt = recover(small_paper_build, images[:0])
    assert np.allclose(
        rebuilt.predict(images.astype(np.float32), verbose=0)[:, 1],
        [baseline.malignant_probability(image) for image in images],
        atol=0.03,
    )

    models = tmp_path / "models"
    place(tiny_build, models, "melanoma_int8")
    (models / "baseline").mkdir()
    for suffix in (".tflite", ".json"):
        shutil.copy(small_paper_build.with_suffix(suffix), models / "baseline" / f"paper_int8{suffix}")
    capsys.readouterr()
    assert main(["--models", str(models)]) == 0
    card = (models / "MODEL_CARD.md").read_text()
    row = next(line for line in card.splitlines() if line.startswith("| Paper CNN reproduced here, float32 TFLite"))
    assert "(at build)" not in row and row.endswith(" ms |")
    assert "converted again for this card, from the int8 baseline's own weights" in card
    assert "cannot rebuild" not in capsys.readouterr().err


def test_bad_paper_export_is_one_line(tiny_build, tmp_path, capsys):
    models = tmp_path / "models"
    place(tiny_build, models, "melanoma_int8")
    place(tiny_build, models / "baseline", "paper_int8")
    assert main(["--models", str(models)]) == 0
    before = (models / "MODEL_CARD.md").read_bytes()
    capsys.readouterr()
    assert main(["--models", str(models), "--paper-export", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "export folder not found" in err
    assert (models / "MODEL_CARD.md").read_bytes() == before


def test_the_training_run_line_says_which_weights_and_where_they_were_trained():
    assert training_run_line({}) == ""
    line = training_run_line(
        {
            "best_epoch": 44,
            "epochs_run": 44,
            "initialised_from": {
                "path": "/root/init.keras",
                "copy_of": "runs/a/best.keras",
                "sha256": "386a045acf22a0275a2a",
            },
            "trained_with": {"backend": "jax", "keras": "3.15.1", "device": "gpu: NVIDIA H200"},
        }
    )
    assert line.startswith("- Weights: the best epoch by validation AUC (44 of 44)")
    assert "warm restart" in line and "runs/a/best.keras" in line and "386a045acf22" in line
    assert "Keras 3.15.1 on jax (gpu: NVIDIA H200)" in line and line.endswith(".\n")
    recovered = training_run_line(
        {
            "best_epoch": 20,
            "epochs_run": 32,
            "initialised_from": {
                "path": "runs/recovered.keras",
                "sha256": "aa" * 32,
                "recovered_from": {"path": "models/melanoma_int8.tflite", "sha256": "3addf04ea81c1ffa"},
            },
        }
    )
    assert (
        "a warm restart from the earlier shipped int8 model (models/melanoma_int8.tflite, sha256 3addf04ea81c…)"
        in recovered
        and "training.recover" in recovered
        and "earlier run of this trainer" not in recovered
    )
    averaged = training_run_line({"best_epoch": 9, "epochs_run": 10, "weights": "average of epochs 8-10"})
    assert averaged == "- Weights: average of epochs 8-10.\n"


def test_int8_loss_is_worded_for_either_sign():
    assert int8_loss_words(0.069) == "int8 loses 0.07 accuracy points against float32"
    assert int8_loss_words(-0.069) == "int8 loses nothing: it is 0.07 accuracy points above float32 (rounding noise)"


def test_the_card_names_the_cpu_its_timings_come_from(tmp_path):
    x86 = tmp_path / "x86"
    x86.write_text(
        "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 1\n"
        "model name\t: AMD EPYC 7B13\n\nprocessor\t: 1\n"
    )
    assert cpu_name(x86) == "AMD EPYC 7B13"
    pi = tmp_path / "pi"
    pi.write_text(
        "processor\t: 0\nBogoMIPS\t: 108.00\nCPU part\t: 0xd08\n\nRevision\t: c03114\n"
        "Model\t\t: Raspberry Pi 4 Model B Rev 1.4\n"
    )
    assert cpu_name(pi) == "Raspberry Pi 4 Model B Rev 1.4"
    assert cpu_name(tmp_path / "missing")  # never empty: falls back to what platform knows
