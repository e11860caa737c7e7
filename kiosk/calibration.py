"""Millimetres for real: measure the camera's scale from a printed ArUco card, keep it, use it.

A fixed camera and lens give a constant scale. The kiosk prints a card
(:func:`target_png`, :data:`TARGET`: a 4x4 grid of OpenCV ArUco markers
``DICT_4X4_50``, 6 mm each, 3 mm apart, 33 mm square, on A6), the health
worker holds it where the skin goes, and :func:`measure_scale` finds the
markers in one camera frame. The scale comes from the distances between
marker centres (in mm on the card, in pixels in the photo), which ink spread
on a thermal printer does not change; markers that disagree by more than
:data:`MAX_SPREAD` mean a tilted or curled card, and are refused.

:class:`CalibrationStore` keeps the result in ``calibration.json`` in the
records folder (written atomically), with the date, the camera and the
photo size it was made at. It overrides ``camera.mm_per_pixel`` from the
settings file, so no TOML is edited; a "lens changed" date later than the
calibration, or another photo size, makes it stale, and a stale scale is not
used (no mm at all is better than wrong mm).

>>> image = render_target(px_per_mm=8)
>>> round(measure_scale(image).mm_per_pixel, 4)  # 8 pixels per mm
0.125
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from .reasons import KioskError
from .storage import atomic_write_bytes

__all__ = [
    "CALIBRATION_FILE",
    "MAX_SPREAD",
    "TARGET",
    "Calibration",
    "CalibrationState",
    "CalibrationStore",
    "Measurement",
    "Target",
    "current_scale",
    "measure_scale",
    "render_target",
    "target_png",
]

_LOG = logging.getLogger(__name__)
CALIBRATION_FILE = "calibration.json"
#: Per-marker scales further apart than this (max/min - 1) mean the card was not flat and square to the lens.
MAX_SPREAD = 0.06
CalibrationState = Literal["missing", "settings", "ok", "stale_lens"]


@dataclass(frozen=True, kw_only=True)
class Target:
    """The printed card: a ``columns`` x ``rows`` grid of ArUco markers, ids from 0, row by row."""

    columns: int = 4
    rows: int = 4
    marker_mm: float = 6.0
    gap_mm: float = 3.0
    dictionary: int = cv2.aruco.DICT_4X4_50

    @property
    def size_mm(self) -> tuple[float, float]:
        return (
            self.columns * self.marker_mm + (self.columns - 1) * self.gap_mm,
            self.rows * self.marker_mm + (self.rows - 1) * self.gap_mm,
        )

    def centre_mm(self, marker_id: int) -> tuple[float, float] | None:
        """Where marker ``marker_id``'s centre is on the card (mm from the top left), None if not on it."""
        if not 0 <= marker_id < self.columns * self.rows:
            return None
        row, column = divmod(marker_id, self.columns)
        pitch = self.marker_mm + self.gap_mm
        return (column * pitch + self.marker_mm / 2, row * pitch + self.marker_mm / 2)


TARGET = Target()


@dataclass(frozen=True, kw_only=True)
class Measurement:
    """What one photo of the card gave: the scale, from how many markers, and how much they agreed."""

    mm_per_pixel: float
    markers: int
    spread: float  # max/min - 1 of the per-marker scales (0 with one marker)
    image_size: tuple[int, int]  # (width, height) of the photo it was measured in


def render_target(*, target: Target = TARGET, px_per_mm: float = 20.0, margin_mm: float = 3.0) -> np.ndarray:
    """The card as a greyscale image at ``px_per_mm`` (white margin around it, for the markers' quiet zone)."""
    width_mm, height_mm = target.size_mm
    image = np.full(
        (round((height_mm + 2 * margin_mm) * px_per_mm), round((width_mm + 2 * margin_mm) * px_per_mm)),
        255,
        np.uint8,
    )
    dictionary = cv2.aruco.getPredefinedDictionary(target.dictionary)
    side = round(target.marker_mm * px_per_mm)
    for marker_id in range(target.columns * target.rows):
        centre = target.centre_mm(marker_id)
        assert centre is not None
        left = round((margin_mm + centre[0] - target.marker_mm / 2) * px_per_mm)
        top = round((margin_mm + centre[1] - target.marker_mm / 2) * px_per_mm)
        image[top : top + side, left : left + side] = cv2.aruco.generateImageMarker(dictionary, marker_id, side)
    return image


def target_png(*, target: Target = TARGET, px_per_mm: float = 20.0) -> bytes:
    """:func:`render_target` as a PNG whose DPI says its physical size (20 px/mm = 508 dpi)."""
    from PIL import Image

    out = io.BytesIO()
    dpi = px_per_mm * 25.4
    Image.fromarray(render_target(target=target, px_per_mm=px_per_mm)).save(out, format="PNG", dpi=(dpi, dpi))
    return out.getvalue()


def measure_scale(image: np.ndarray, *, target: Target = TARGET) -> Measurement:
    """Millimetres per pixel from a photo (RGB or grey) of the printed card.

    Raises :class:`KioskError` ``calibration_no_target`` when no marker of the
    card is found, ``calibration_not_flat`` when the markers disagree.
    """
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    parameters = cv2.aruco.DetectorParameters()
    parameters.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
    parameters.minMarkerPerimeterRate = 0.01  # small markers in a wide (non-dermatoscope) view still count
    detector = cv2.aruco.ArucoDetector(cv2.aruco.getPredefinedDictionary(target.dictionary), parameters)
    corners, ids, _rejected = detector.detectMarkers(grey)
    found: dict[int, np.ndarray] = {}
    if ids is not None:
        for marker_id, quad in zip(ids.ravel().tolist(), corners, strict=True):
            if target.centre_mm(int(marker_id)) is not None:
                found[int(marker_id)] = quad.reshape(4, 2).astype(np.float64)
    if not found:
        raise KioskError("calibration_no_target")
    # Each marker's own scale (its side): only to check the card is flat; ink spread biases it a little.
    sides = [float(np.mean(np.linalg.norm(q - np.roll(q, -1, axis=0), axis=1))) for q in found.values()]
    own = [target.marker_mm / side for side in sides]
    spread = max(own) / min(own) - 1
    if spread > MAX_SPREAD:
        raise KioskError("calibration_not_flat", spread=round(spread * 100))
    centres = {i: q.mean(axis=0) for i, q in found.items()}
    ids_found = sorted(centres)
    mm = px = 0.0
    for a_index, a in enumerate(ids_found):
        for b in ids_found[a_index + 1 :]:
            ca, cb = target.centre_mm(a), target.centre_mm(b)
            assert ca is not None and cb is not None
            mm += math.dist(ca, cb)
            px += float(np.linalg.norm(centres[a] - centres[b]))
    # Centre distances (long baselines, immune to ink spread) when two or more markers were found.
    scale = mm / px if px > 0 else float(np.median(own))
    height, width = grey.shape[:2]
    return Measurement(mm_per_pixel=scale, markers=len(found), spread=spread, image_size=(width, height))


@dataclass(frozen=True, kw_only=True)
class Calibration:
    """What ``calibration.json`` holds: the last measured scale, and when the lens last changed."""

    mm_per_pixel: float | None = None
    calibrated_at: datetime | None = None
    camera: str | None = None  # the camera (and lens) it was made with, when known
    image_size: tuple[int, int] | None = None  # (width, height) of the photo it was measured in
    markers: int | None = None
    lens_changed_at: datetime | None = None

    def state(self, *, default: float | None = None) -> CalibrationState:
        """``missing`` (no scale at all), ``settings`` (only the settings file's), ``ok``, or ``stale_lens``.

        ``stale_lens``: the lens changed after the calibration. (A scale holds
        for one photo size: calibrate again after changing ``camera.still_*``.)
        """
        if self.mm_per_pixel is None or self.calibrated_at is None:
            if self.lens_changed_at is not None:
                return "missing"  # a settings-file scale from before the lens change is not trusted either
            return "settings" if default is not None else "missing"
        if self.lens_changed_at is not None and self.lens_changed_at >= self.calibrated_at:
            return "stale_lens"
        return "ok"

    def scale(self, *, default: float | None = None) -> float | None:
        """The mm per pixel to use now: the calibration's, else the settings file's; None when stale or missing."""
        state = self.state(default=default)
        if state == "ok":
            return self.mm_per_pixel
        return default if state == "settings" else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "mm_per_pixel": self.mm_per_pixel,
            "calibrated_at": self.calibrated_at.isoformat() if self.calibrated_at else None,
            "camera": self.camera,
            "image_size": list(self.image_size) if self.image_size else None,
            "markers": self.markers,
            "lens_changed_at": self.lens_changed_at.isoformat() if self.lens_changed_at else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        """Raises ValueError (or TypeError) on anything that is not what :meth:`to_dict` writes."""
        mm = data.get("mm_per_pixel")
        if mm is not None and (isinstance(mm, bool) or not isinstance(mm, (int, float)) or not 0 < mm < 100):
            raise ValueError(f"mm_per_pixel must be a number above 0; got {mm!r}")
        size = data.get("image_size")
        camera = data.get("camera")
        markers = data.get("markers")
        return cls(
            mm_per_pixel=float(mm) if mm is not None else None,
            calibrated_at=_moment(data.get("calibrated_at")),
            camera=str(camera)[:200] if camera is not None else None,
            image_size=(int(size[0]), int(size[1])) if size is not None else None,
            markers=int(markers) if markers is not None else None,
            lens_changed_at=_moment(data.get("lens_changed_at")),
        )


class CalibrationStore:
    """``calibration.json`` in the records folder: read on each use, written atomically.

    >>> import tempfile
    >>> store = CalibrationStore(Path(tempfile.mkdtemp()))
    >>> store.load().state()
    'missing'
    >>> at = datetime(2026, 12, 1, tzinfo=UTC)
    >>> store.record(Measurement(mm_per_pixel=0.02, markers=16, spread=0.01, image_size=(2028, 1520)), at=at).state()
    'ok'
    >>> store.lens_changed(at=datetime(2026, 12, 2, tzinfo=UTC)).scale() is None
    True
    """

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.path = Path(data_dir).expanduser() / CALIBRATION_FILE

    def load(self) -> Calibration:
        """The stored calibration; an empty one when there is none, or when the file is unreadable (logged)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            return Calibration.from_dict(data)
        except FileNotFoundError:
            return Calibration()
        except (OSError, ValueError, TypeError, IndexError) as exc:
            _LOG.warning("calibration: ignoring %s (%s); calibrate again", self.path, exc)
            return Calibration()

    def _save(self, calibration: Calibration) -> Calibration:
        atomic_write_bytes(self.path, (json.dumps(calibration.to_dict(), indent=2) + "\n").encode("utf-8"))
        return calibration

    def record(self, measurement: Measurement, *, at: datetime | None = None, camera: str | None = None) -> Calibration:
        """Keep a new measurement (the lens-change date stays, now older than the calibration)."""
        return self._save(
            replace(
                self.load(),
                mm_per_pixel=measurement.mm_per_pixel,
                calibrated_at=at or datetime.now(UTC),
                camera=camera,
                image_size=measurement.image_size,
                markers=measurement.markers,
            )
        )

    def lens_changed(self, *, at: datetime | None = None) -> Calibration:
        """Note that the lens (or camera) was changed now: the calibration before it is stale."""
        return self._save(replace(self.load(), lens_changed_at=at or datetime.now(UTC)))


def current_scale(data_dir: str | os.PathLike[str] | None, *, default: float | None) -> float | None:
    """The mm per pixel a screener should use: the calibration in ``data_dir`` over the settings file's ``default``."""
    if data_dir is None:
        return default
    return CalibrationStore(data_dir).load().scale(default=default)


def _moment(value: object) -> datetime | None:
    if value is None:
        return None
    moment = datetime.fromisoformat(str(value))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
