"""Millimetres for real: the ArUco card measured in synthetic camera frames, kept, and used by the screener."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from kiosk.calibration import (
    CALIBRATION_FILE,
    TARGET,
    CalibrationStore,
    Measurement,
    current_scale,
    measure_scale,
    render_target,
    target_png,
)
from kiosk.camera import Camera
from kiosk.reasons import KioskError
from kiosk.station import Station
from kiosk.synthetic import draw_skin
from tests.conftest import REPO_ROOT
from tests.web_conftest import FAST_RETRY, PIN, csrf_of, make_settings

RENDER_PX_PER_MM = 20.0


def card_in_frame(
    *, scale: float, angle: float = 0.0, blur: float = 0.0, size: tuple[int, int] = (1280, 960), seed: int = 5
) -> tuple[np.ndarray, float]:
    """The card drawn with cv2.aruco, scaled and rotated into a skin-coloured frame; (RGB frame, true mm/pixel)."""
    card = render_target(px_per_mm=RENDER_PX_PER_MM)
    width, height = size
    frame = draw_skin(seed=seed, width=width, height=height).copy()
    h, w = card.shape
    warp = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    warp[0, 2] += width / 2 - w / 2
    warp[1, 2] += height / 2 - h / 2
    paper = cv2.warpAffine(card, warp, size, flags=cv2.INTER_AREA, borderValue=0)
    inside = cv2.warpAffine(np.full_like(card, 255), warp, size, borderValue=0) > 128
    frame[inside] = np.repeat(paper[..., None], 3, axis=2)[inside]
    if blur:
        frame = cv2.GaussianBlur(frame, (0, 0), blur)
    noise = np.random.default_rng(seed).normal(0, 4, frame.shape)
    return np.clip(frame + noise, 0, 255).astype(np.uint8), 1 / (RENDER_PX_PER_MM * scale)


@pytest.mark.parametrize(
    ("scale", "angle", "blur"),
    [(0.5, 0.0, 0.0), (0.4, 17.0, 1.5), (0.25, 33.0, 2.0), (0.6, -60.0, 3.0), (0.15, 45.0, 1.0)],
)
def test_the_scale_is_measured_within_2_percent(scale: float, angle: float, blur: float) -> None:
    frame, truth = card_in_frame(scale=scale, angle=angle, blur=blur)
    found = measure_scale(frame)
    assert found.mm_per_pixel == pytest.approx(truth, rel=0.02)
    assert found.markers >= 8 and found.image_size == (1280, 960)


def test_part_of_the_card_is_enough() -> None:
    # A dermatoscope's small field: the card larger than the frame, only some markers in view.
    frame, truth = card_in_frame(scale=1.2, size=(640, 480))
    found = measure_scale(frame)
    assert 2 <= found.markers < 16
    assert found.mm_per_pixel == pytest.approx(truth, rel=0.02)


def test_no_card_and_a_tilted_card_are_refused() -> None:
    with pytest.raises(KioskError) as info:
        measure_scale(draw_skin(seed=2, width=640, height=480))
    assert info.value.code == "calibration_no_target"
    frame, _ = card_in_frame(scale=0.5)
    h, w = frame.shape[:2]
    # Strong perspective: the far edge of the card at half the width of the near edge.
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = np.float32([[w * 0.25, 0], [w * 0.75, 0], [w, h], [0, h]])
    tilted = cv2.warpPerspective(frame, cv2.getPerspectiveTransform(src, dst), (w, h), borderValue=(200, 150, 130))
    with pytest.raises(KioskError) as info:
        measure_scale(tilted)
    assert info.value.code == "calibration_not_flat"
    assert "Hold it flat" in str(info.value)


def test_the_printable_card_has_its_physical_size() -> None:
    import io

    from PIL import Image

    png = Image.open(io.BytesIO(target_png()))
    assert png.info["dpi"] == pytest.approx((508, 508), abs=0.01)
    width_mm = png.size[0] / 20
    assert width_mm == pytest.approx(TARGET.size_mm[0] + 6)  # the grid and its 3 mm margins: 39 mm
    css = (REPO_ROOT / "kiosk/web/static/calibration-card.css").read_text()
    match = re.search(r"\.card-img \{[^}]*width: ([0-9.]+)mm; height: ([0-9.]+)mm", css)
    assert match and float(match.group(1)) == float(match.group(2)) == width_mm


def test_the_store_keeps_the_scale_until_the_lens_changes(tmp_path: Path) -> None:
    store = CalibrationStore(tmp_path)
    assert store.load().state() == "missing" and store.load().state(default=0.02) == "settings"
    assert current_scale(tmp_path, default=0.02) == 0.02  # nothing measured: the settings file's
    measured = Measurement(mm_per_pixel=0.0123, markers=16, spread=0.01, image_size=(2028, 1520))
    store.record(measured, at=datetime(2026, 11, 30, tzinfo=UTC), camera="picamera2")
    assert current_scale(tmp_path, default=0.02) == 0.0123  # the calibration beats the settings file
    saved = json.loads((tmp_path / CALIBRATION_FILE).read_text())
    assert saved["calibrated_at"] == "2026-11-30T00:00:00+00:00" and saved["camera"] == "picamera2"
    store.lens_changed(at=datetime(2026, 12, 1, tzinfo=UTC))
    assert store.load().state(default=0.02) == "stale_lens"
    assert current_scale(tmp_path, default=0.02) is None  # no mm rather than wrong mm
    store.record(measured, at=datetime(2026, 12, 2, tzinfo=UTC))
    assert store.load().state() == "ok" and store.load().lens_changed_at == datetime(2026, 12, 1, tzinfo=UTC)


@pytest.mark.parametrize("text", ["{not json", "[]", '{"mm_per_pixel": -1}', '{"mm_per_pixel": "x"}'])
def test_a_damaged_file_counts_as_no_calibration(tmp_path: Path, text: str) -> None:
    (tmp_path / CALIBRATION_FILE).write_text(text)
    assert CalibrationStore(tmp_path).load().state() == "missing"
    assert current_scale(tmp_path, default=None) is None


def test_the_kiosk_screener_uses_the_stored_scale(tmp_path: Path, tiny_model_path: Path) -> None:
    from kiosk.app import build_screener
    from kiosk.config import ModelSettings, Settings

    settings = Settings(model=ModelSettings(path=tiny_model_path))
    CalibrationStore(tmp_path).record(Measurement(mm_per_pixel=0.05, markers=4, spread=0.0, image_size=(640, 480)))
    assert build_screener(settings, data_dir=tmp_path).mm_per_pixel == 0.05
    assert build_screener(settings).mm_per_pixel is None  # commands that screen files: the settings file's


# --- the settings page's step -------------------------------------------------------------


class CardCamera(Camera):
    """A camera looking at the printed card (or, with ``card=False``, at bare skin)."""

    name = "card-rig"

    def __init__(self, state: dict[str, object]) -> None:
        self.state = state

    def capture(self) -> np.ndarray:
        if not self.state.get("card", True):
            return draw_skin(seed=1, width=640, height=480)
        frame, truth = card_in_frame(scale=0.3, angle=12, blur=1.0, size=(640, 480))
        self.state["truth"] = truth
        return frame

    def frames(self) -> Iterator[np.ndarray]:
        yield draw_skin(seed=1, width=160, height=120)


@pytest.fixture()
def card_kiosk(tmp_path, screener, records) -> Iterator[dict[str, object]]:
    from kiosk.web import create_app

    state: dict[str, object] = {}
    with Station(
        screener=screener, camera_factory=lambda: CardCamera(state), records=records, capture_timeout=5.0, **FAST_RETRY
    ) as station:
        app = create_app(settings=make_settings(tmp_path), station=station, testing=True)
        yield {"client": app.test_client(), "station": station, "state": state, "data": records.data_dir}


def unlock(client) -> None:
    r = client.post("/pin", data={"pin": PIN, "next": "/settings", "csrf_token": csrf_of(client, "/pin")})
    assert r.status_code == 303


def calibration_state(html: str) -> str:
    match = re.search(r'data-testid="settings-calibration" data-state="([a-z_]+)"', html)
    assert match, "no settings-calibration"
    return match.group(1)


def test_the_settings_step_measures_stores_and_applies_the_scale(card_kiosk) -> None:
    client, station, state = card_kiosk["client"], card_kiosk["station"], card_kiosk["state"]
    assert client.get("/settings/calibration/card").status_code == 303  # behind the PIN
    unlock(client)
    html = client.get("/settings").get_data(as_text=True)
    assert calibration_state(html) == "missing" and "Not calibrated" in html
    card = client.get("/settings/calibration/card").get_data(as_text=True)
    assert 'data-testid="calibration-card-image"' in card and "50 mm" in card
    assert client.get("/settings/calibration/card.png").data[:8] == b"\x89PNG\r\n\x1a\n"

    token = csrf_of(client, "/settings")
    assert client.post("/settings/calibration/measure").status_code == 400  # no CSRF token: refused
    assert not (card_kiosk["data"] / CALIBRATION_FILE).exists()
    r = client.post("/settings/calibration/measure", data={"csrf_token": token})
    assert r.status_code == 303 and r.headers["Location"].endswith("/settings#calibration")
    html = client.get("/settings").get_data(as_text=True)
    assert calibration_state(html) == "ok" and "Calibrated: " in html
    mm = station.screener.mm_per_pixel
    assert mm == pytest.approx(state["truth"], rel=0.02)  # the running screener: the next screening has mm
    assert CalibrationStore(card_kiosk["data"]).load().camera == "card-rig"

    assert client.post("/settings/calibration/lens-changed", data={"csrf_token": token}).status_code == 303
    html = client.get("/settings").get_data(as_text=True)
    assert calibration_state(html) == "stale_lens" and "The lens was changed on" in html
    assert station.screener.mm_per_pixel is None


def test_a_photo_without_the_card_keeps_the_earlier_calibration(card_kiosk) -> None:
    client, state = card_kiosk["client"], card_kiosk["state"]
    unlock(client)
    token = csrf_of(client, "/settings")
    client.post("/settings/calibration/measure", data={"csrf_token": token})
    before = (card_kiosk["data"] / CALIBRATION_FILE).read_bytes()
    state["card"] = False
    client.post("/settings/calibration/measure", data={"csrf_token": token})
    html = client.get("/settings").get_data(as_text=True)
    assert "The calibration card was not found in the photo." in html and calibration_state(html) == "ok"
    assert (card_kiosk["data"] / CALIBRATION_FILE).read_bytes() == before
