"""The CLI contract relied on by tests and deploy scripts: keys, exit codes, no tracebacks."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import cv2
import pytest

from kiosk.synthetic import draw_skin, random_lesion
from tests.conftest import REPO_ROOT, write_drawn_images

SCREEN_KEYS = {
    "image",
    "status",
    "reason",
    "malignant_probability",
    "risk",
    "threshold",
    "features",
    "model_sha256",
    "timings_ms",
}
EVALUATE_KEYS = {
    "n",
    "auc",
    "threshold",
    "accuracy",
    "sensitivity",
    "specificity",
    "precision",
    "f1",
    "confusion",
    "argmax",
    "retake_count",
    "model_sha256",
}


def kiosk(*args, model=None, env=None):
    cmd = [sys.executable, "-m", "kiosk"]
    if model is not None:
        cmd += ["--model", str(model)]
    full_env = {**os.environ, "KIOSK_GPIO_ENABLED": "false", **(env or {})}
    return subprocess.run(
        [*cmd, *map(str, args)], capture_output=True, text=True, cwd=REPO_ROOT, env=full_env, timeout=300
    )


@pytest.fixture()
def photos(tmp_path):
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), cv2.cvtColor(random_lesion(3, width=640, height=480), cv2.COLOR_RGB2BGR))
    blank = tmp_path / "blank.jpg"
    cv2.imwrite(str(blank), cv2.cvtColor(draw_skin(seed=3), cv2.COLOR_RGB2BGR))  # no colour difference: no_lesion
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"\xff\xd8\xff garbage")
    return good, blank, junk


def test_screen_json_contract(tiny_model_path, photos):
    good, blank, _ = photos
    r = kiosk("screen", good, blank, "--json", model=tiny_model_path)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row["image"] for row in rows] == [str(good), str(blank)]
    for row in rows:
        assert set(row) == SCREEN_KEYS
    # Seed 3 scores 0.457, just over the tiny model's threshold 0.449: refer.
    assert (rows[0]["status"], rows[0]["malignant_probability"], rows[0]["risk"]) == ("ok", 0.457, "refer")
    assert rows[1]["status"] == "retake" and rows[1]["reason"] == "no_lesion" and rows[1]["risk"] is None


def test_screen_bad_input_exits_2_without_traceback(tiny_model_path, photos, tmp_path):
    good, _, junk = photos
    r = kiosk("screen", good, junk, tmp_path / "missing.png", "--json", model=tiny_model_path)
    assert r.returncode == 2
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row["status"] for row in rows] == ["ok", "error", "error"]
    assert rows[1]["reason"] == "corrupt_image" and rows[2]["reason"] == "file_not_found"
    assert "Traceback" not in r.stderr


def test_screen_human_output_says_it_is_not_a_diagnosis(tiny_model_path, photos):
    r = kiosk("screen", photos[0], model=tiny_model_path)
    assert r.returncode == 0 and "not a diagnosis" in r.stdout
    # Worded as the page words it: a model score, never a "probability" a patient reads as a chance of cancer.
    assert "model score" in r.stdout and "not a chance of cancer" in r.stdout
    assert "probability" not in r.stdout


def test_missing_model_is_one_line(tmp_path, photos):
    r = kiosk("screen", photos[0], model=tmp_path / "none.tflite")
    assert r.returncode == 2
    assert r.stderr.strip().startswith("kiosk: error:") and "none.json" in r.stderr
    assert "Traceback" not in r.stderr and r.stderr.strip().count("\n") == 0


def test_bad_setting_names_the_key(tiny_model_path, photos):
    r = kiosk("screen", photos[0], model=tiny_model_path, env={"KIOSK_MODEL_THREADS": "zero"})
    assert r.returncode == 2 and "model.threads" in r.stderr and "Traceback" not in r.stderr


def test_evaluate_json_and_predictions(tiny_model_path, tiny_validation, tmp_path):
    csv_path = tmp_path / "preds.csv"
    r = kiosk("evaluate", tiny_validation, "--json", "--predictions", csv_path, model=tiny_model_path)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert EVALUATE_KEYS <= set(report)
    assert report["n"] == 40
    assert set(report["confusion"]) == {"tp", "fp", "tn", "fn"} and sum(report["confusion"].values()) == 40
    assert set(report["argmax"]) == {"accuracy", "sensitivity", "specificity", "precision", "f1"}
    # Same images, same preprocessing, same model: the AUC the build recorded.
    recorded = json.loads(tiny_model_path.with_suffix(".json").read_text())["validation_metrics"]["int8"]["auc"]
    assert report["auc"] == pytest.approx(recorded, abs=1e-9)
    with csv_path.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 40 and set(rows[0]) == {"path", "label", "malignant_probability"}
    assert {row["label"] for row in rows} == {"benign", "malignant"}


def test_evaluate_needs_both_classes(tiny_model_path, tmp_path):
    write_drawn_images(tmp_path / "benign", range(3))
    r = kiosk("evaluate", tmp_path, model=tiny_model_path)
    assert r.returncode == 2 and "malignant" in r.stderr and "Traceback" not in r.stderr


def test_bench_reports_every_stage_and_memory(tiny_model_path):
    r = kiosk("bench", "--json", "-n", "6", model=tiny_model_path)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert {"decode", "quality", "preprocess", "inference", "features", "total"} <= set(report["stages"])
    for stage in report["stages"].values():
        assert stage["p90_ms"] >= stage["median_ms"] > 0
    assert report["peak_rss_mb"] >= report["rss_after_load_mb"] > 0


def test_doctor_one_line_per_check(tiny_model_path, tmp_path):
    r = kiosk("doctor", "--camera", "synthetic", model=tiny_model_path, env={"KIOSK_RECORDS_DATA_DIR": str(tmp_path)})
    lines = r.stdout.splitlines()
    assert r.returncode == 0, r.stdout + r.stderr
    names = [line.split(":")[0].split(maxsplit=1)[1] for line in lines]
    assert names == ["config", "runtime", "model", "camera", "gpio", "data dir", "disk"]
    assert all(line.split()[0] in ("OK", "WARN") for line in lines)


def test_doctor_fails_on_a_broken_model(tmp_path):
    r = kiosk(
        "doctor", "--camera", "synthetic", model=tmp_path / "gone.tflite", env={"KIOSK_RECORDS_DATA_DIR": str(tmp_path)}
    )
    assert r.returncode == 2 and any(line.startswith("FAIL model:") for line in r.stdout.splitlines())


def test_demo_text_screens_drawn_lesions(tiny_model_path):
    r = kiosk("demo", "--text", "-n", "3", model=tiny_model_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "not a diagnosis" in lines[0]
    assert [line.split(":")[0] for line in lines[1:]] == ["demo photo 1", "demo photo 2", "demo photo 3"]


def test_threads_option_is_validated():
    r = kiosk("--threads", "0", "doctor")
    assert r.returncode == 2 and "1 to 8" in r.stderr and "Traceback" not in r.stderr
