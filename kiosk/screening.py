"""One screening, end to end: photo -> quality gate -> preprocess -> int8 model -> result.

This is the only place the stages are wired together; the CLI, the web page
and ``kiosk evaluate`` all go through :class:`Screener`, so they cannot drift.

>>> from kiosk.model import Model                                  # doctest: +SKIP
>>> screener = Screener(Model.load("models/melanoma_int8.tflite"))  # doctest: +SKIP
>>> screener.screen_file("lesion.jpg").risk                         # doctest: +SKIP
'low'
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .model import Model
from .reasons import ImageError
from .result import Risk, ScreeningResult
from .vision.features import lesion_features
from .vision.lesion import Lesion, find_lesion
from .vision.loader import load_image
from .vision.preprocess import model_crop, preprocess
from .vision.quality import QualityThresholds, assess_quality


class Evaluation(NamedTuple):
    """One photo scored for evaluation (:meth:`Screener.evaluate_image`)."""

    result: ScreeningResult
    #: The model's malignant probability unrounded: the result holds it to 4 places, which can sit on
    #: the other side of a threshold than the exact value the kiosk compares.
    probability: float
    lesion: Lesion


class Screener:
    """Screens photos with one loaded model. Thread-compatible, not thread-safe: one call at a time."""

    def __init__(
        self,
        model: Model,
        *,
        thresholds: QualityThresholds = QualityThresholds(),
        mm_per_pixel: float | None = None,
    ) -> None:
        self.model = model
        self.thresholds = thresholds
        self.mm_per_pixel = mm_per_pixel

    def screen_file(
        self, source: bytes | str | os.PathLike[str], *, apply_quality_gate: bool = True, acral_site: bool = False
    ) -> ScreeningResult:
        """Decode and screen a file or bytes; an unreadable image is an ``error`` result, never an exception."""
        return self.decode_and_screen(source, apply_quality_gate=apply_quality_gate, acral_site=acral_site)[1]

    def decode_and_screen(
        self, source: bytes | str | os.PathLike[str], *, apply_quality_gate: bool = True, acral_site: bool = False
    ) -> tuple[np.ndarray | None, ScreeningResult]:
        """:meth:`screen_file`, also returning the decoded upright RGB image (None when it could not be decoded).

        The station stores this image, re-encoded, so an upload's own metadata never reaches the disk.
        """
        started = time.perf_counter()
        try:
            image = load_image(source if isinstance(source, bytes) else Path(source))
        except ImageError as exc:
            return None, ScreeningResult.error(
                exc.code, model_sha256=self.model.sha256, timings_ms={"decode": _ms(started), "total": _ms(started)}
            )
        decoded = time.perf_counter()
        return image, self.screen_image(
            image,
            apply_quality_gate=apply_quality_gate,
            acral_site=acral_site,
            _started=started,
            _decode_ms=(decoded - started) * 1000,
        )

    def screen_image(
        self,
        image: np.ndarray,
        *,
        apply_quality_gate: bool = True,
        acral_site: bool = False,
        _started: float | None = None,
        _decode_ms: float = 0.0,
    ) -> ScreeningResult:
        """Screen an RGB uint8 image (e.g. a camera frame).

        With ``apply_quality_gate=False`` (evaluation) a failed gate is still
        reported in ``reason`` but the model runs anyway. With the gate on, a photo whose
        lesion evidence is weak (``QualityReport.lesion_unclear``) is always ``risk="refer"``
        with reason ``lesion_unclear``: it never comes out "low". ``acral_site`` (a palm, sole
        or nail: :attr:`kiosk.records.PatientInfo.acral`) is always ``risk="refer"`` with reason
        ``acral_site``, whatever the score: the model was not trained on those sites.

        The ok result's ``quality["crop"]`` is the square the model saw (``x``, ``y``, ``side``
        in the photo's pixels, with the photo's ``width`` and ``height``), for the result page.
        """
        return self._screen(
            image, apply_quality_gate=apply_quality_gate, acral_site=acral_site, started=_started, decode_ms=_decode_ms
        )[0]

    def evaluate_image(self, image: np.ndarray) -> Evaluation:
        """Screen for evaluation (the gate reported, not applied), with the exact probability and the lesion found.

        Evaluation tools (``training.revalidate``, ``training.field_guard``) compare the exact probability
        with thresholds and read the lesion's field of view, without finding the lesion a second time.
        """
        result, probability, lesion = self._screen(image, apply_quality_gate=False, acral_site=False)
        assert probability is not None  # without the gate every photo is scored
        return Evaluation(result, probability, lesion)

    def _screen(
        self,
        image: np.ndarray,
        *,
        apply_quality_gate: bool,
        acral_site: bool,
        started: float | None = None,
        decode_ms: float = 0.0,
    ) -> tuple[ScreeningResult, float | None, Lesion]:
        """(result, exact malignant probability or None when the gate sent the photo back, the lesion found)."""
        started = started if started is not None else time.perf_counter()
        timings = {"decode": round(decode_ms, 2)}
        t = time.perf_counter()
        lesion = find_lesion(image)
        report = assess_quality(image, lesion=lesion, thresholds=self.thresholds)
        timings["quality"] = _ms(t)
        common: dict[str, Any] = {
            "quality": report.measures,
            "model_sha256": self.model.sha256,
            "threshold": self.model.manifest.threshold,
        }
        if not report.passed and apply_quality_gate:
            timings["total"] = _ms(started)
            # No lesion (or an unusable photo) must never come out as "low risk".
            assert report.reason is not None  # not passed means a reason
            return ScreeningResult.retake(report.reason, timings_ms=timings, **common), None, lesion

        t = time.perf_counter()
        recipe = self.model.manifest.preprocessing_recipe
        model_input = preprocess(image, size=self.model.input_size, recipe=recipe, lesion=lesion)
        crop_x, crop_y, crop_side = model_crop(image.shape, recipe, lesion=lesion)
        common["quality"] = {
            **report.measures,
            "crop": {"x": crop_x, "y": crop_y, "side": crop_side, "width": image.shape[1], "height": image.shape[0]},
        }
        timings["preprocess"] = _ms(t)
        t = time.perf_counter()
        probability = self.model.malignant_probability(model_input)
        timings["inference"] = _ms(t)
        t = time.perf_counter()
        features = lesion_features(image, lesion, mm_per_pixel=self.mm_per_pixel)
        timings["features"] = _ms(t)
        timings["total"] = _ms(started)
        risk: Risk = "refer" if probability >= self.model.manifest.threshold else "low"
        reason = report.reason
        if report.lesion_unclear and apply_quality_gate:
            # Weak lesion evidence (a faint real lesion, or a line or stain that is not one):
            # the model's "low" cannot be trusted there, so refer. When in doubt, refer.
            risk, reason = "refer", "lesion_unclear"
        if acral_site:
            # Palm, sole, nail: acral melanoma looks different and the model never saw it. Refer, and say why.
            risk, reason = "refer", "acral_site"
        result = ScreeningResult(
            status="ok",
            reason=reason,
            malignant_probability=round(probability, 4),
            risk=risk,
            features=features,
            timings_ms=timings,
            **common,
        )
        return result, probability, lesion


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 2)
