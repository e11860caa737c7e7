"""The demo camera's mix through the real pipeline: the shipped model, the kiosk's camera settings, the station.

A trainer demonstrates the kiosk with the drawn demo camera, so it must show every screen: in 30
captures at least 5 "low", at least 5 "refer" and an occasional retake, each spot inside the capture
page's framing circle. The counts are exact for the camera's fixed seeds (0..29), so a change to the
drawing, the quality gate or the shipped model that moves them shows here.
"""

from __future__ import annotations

import collections

import numpy as np
import pytest

from kiosk.camera import camera_from_settings
from kiosk.config import Settings
from kiosk.model import Model
from kiosk.screening import Screener
from kiosk.station import Station
from kiosk.synthetic import DEMO_CYCLE, FRAMING_RADIUS, demo_lesion_params, lesion_mask, random_lesion_params
from tests.conftest import REPO_ROOT

SHIPPED = REPO_ROOT / "models" / "melanoma_int8.tflite"
CAPTURES = 30


@pytest.fixture(scope="module")
def shipped_screener() -> Screener:
    if not SHIPPED.exists():
        pytest.skip("models/melanoma_int8.tflite is not built")
    return Screener(Model.load(SHIPPED))


def test_thirty_demo_captures_show_low_refer_and_a_retake(shipped_screener):
    settings = Settings()
    outcomes: list[str] = []
    with Station(
        screener=shipped_screener,
        camera_factory=lambda: camera_from_settings(settings.camera, spec="synthetic"),
        records=None,
    ) as station:
        for _ in range(CAPTURES):
            _, result = station.capture_and_screen()
            outcomes.append(result.risk if result.status == "ok" else f"{result.status}:{result.reason}")
    counts = collections.Counter(outcomes)
    assert counts == {"refer": 22, "low": 5, "retake:blurry": 3}, outcomes
    assert counts["low"] >= 5 and counts["refer"] >= 5
    # Each kind shows what it is drawn for: every "shaky" photo is a retake, and "low" only ever comes
    # from the plain spots (a suspicious drawing the model let through would teach the wrong picture).
    for seed, outcome in enumerate(outcomes):
        kind = DEMO_CYCLE[seed % len(DEMO_CYCLE)]
        assert (kind == "shaky") == outcome.startswith("retake"), (seed, kind, outcome)
        if outcome == "low":
            assert kind == "plain", (seed, outcome)


@pytest.mark.parametrize("seed", range(CAPTURES))
def test_every_demo_spot_fits_the_framing_circle(seed):
    params = demo_lesion_params(seed)
    del params["kind"]
    mask = lesion_mask(**params)
    height, width = mask.shape
    ys, xs = np.nonzero(mask)
    reach = np.hypot(xs - (width - 1) / 2, ys - (height - 1) / 2).max()
    assert reach <= FRAMING_RADIUS * min(width, height), (seed, reach)


def test_the_unfitted_drawing_would_overflow_the_circle():
    """The fitting is what keeps the spots inside: the plain random parameters leave some outside."""
    outside = 0
    for seed in range(CAPTURES):
        mask = lesion_mask(**random_lesion_params(seed))
        ys, xs = np.nonzero(mask)
        reach = np.hypot(xs - (mask.shape[1] - 1) / 2, ys - (mask.shape[0] - 1) / 2).max()
        outside += reach > FRAMING_RADIUS * min(mask.shape)
    assert outside > 0
