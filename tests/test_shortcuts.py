"""training.shortcuts: each acquisition measure moves the way its name says, on drawn photos."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from kiosk.synthetic import draw_lesion
from training.shortcuts import MEANING, acquisition_measures, main

PHOTO = draw_lesion(seed=7, width=320, height=320, radius=0.15, hairs=2)


def test_every_measure_is_reported_and_finite() -> None:
    measures = acquisition_measures(PHOTO)
    assert set(measures) == set(MEANING)
    assert all(np.isfinite(v) for v in measures.values())


def test_blur_noise_rim_size_and_exposure_move_their_measure() -> None:
    base = acquisition_measures(PHOTO)
    assert acquisition_measures(cv2.GaussianBlur(PHOTO, (0, 0), 3))["blur_effect"] > base["blur_effect"] + 0.1
    noisy = np.clip(PHOTO + np.random.default_rng(0).normal(0, 20, PHOTO.shape), 0, 255).astype(np.uint8)
    assert acquisition_measures(noisy)["noise"] > base["noise"] + 1
    rim = PHOTO.copy()
    yy, xx = np.mgrid[:320, :320]
    rim[np.hypot(xx - 160, yy - 160) > 150] = 0
    assert base["outside_view"] == 0 and acquisition_measures(rim)["outside_view"] > 0.1
    bigger = draw_lesion(seed=7, width=320, height=320, radius=0.3, hairs=2)
    assert acquisition_measures(bigger)["lesion_size"] > base["lesion_size"]
    darker = (PHOTO * 0.5).astype(np.uint8)
    assert acquisition_measures(darker)["skin_luminance"] < 0.5 * base["skin_luminance"]


def test_a_missing_dataset_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--data", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no dataset" in err


@pytest.mark.parametrize("bad", [["--photos", "-1"], ["--workers", "0"]])
def test_a_bad_count_is_one_line(bad: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(bad) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--photos must be 0 or more" in err


def test_skin_proxy_refuses_no_photos_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from training.skin_proxy import main as skin_proxy

    assert skin_proxy(["--per-class", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--per-class must be at least 1" in err
