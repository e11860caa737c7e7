"""How a screening is shown: its JSON for the API, and plain words for the page and the slip.

The ABCD features come from :mod:`kiosk.vision.features` as numbers; here each
becomes the measured number with its scale in words, never a judgement: "Even
shape" beside a "Refer" would sound like reassurance the kiosk cannot give. The
risk band comes from the model alone, and the score is worded as a model score,
not a chance of cancer. Diameter is in millimetres only when the camera is
calibrated (``camera.mm_per_pixel``); pixels are never shown.

>>> score_number(0.9531, threshold=0.13671875)
('0.95', '0.14')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..clock import local_time
from ..reasons import N_
from ..result import ScreeningResult, score_number
from .i18n import reason_message, translate

__all__ = [
    "FeatureLine",
    "ResultView",
    "referral_facility",
    "result_view",
    "score_number",
    "screening_json",
]

#: Where "refer" sends a patient when the kiosk's settings name no facility.
DEFAULT_FACILITY = N_("the nearest rural health unit or provincial hospital dermatology clinic")


def referral_facility(configured: str | None) -> str:
    """The facility named in the settings (a proper name, as written), else the default in the page's language."""
    return configured if configured else translate(DEFAULT_FACILITY)


#: The keys of ``kiosk screen --json``, in its order.
SCREEN_KEYS = (
    "image",
    "status",
    "reason",
    "malignant_probability",
    "risk",
    "threshold",
    "features",
    "model_sha256",
    "timings_ms",
)

COLOUR_NAMES = {
    "white": N_("white"),
    "red": N_("red"),
    "light_brown": N_("light brown"),
    "dark_brown": N_("dark brown"),
    "blue_grey": N_("blue-grey"),
    "black": N_("black"),
}
DIAMETER_ALERT_MM = 6.0  # the "D" of the ABCD rule


@dataclass(frozen=True)
class FeatureLine:
    letter: str  # A, B, C, D
    label: str  # translated
    words: str  # translated: the scale or what was measured, never a judgement
    value: str  # the measured value ("-" when not measured)


@dataclass(frozen=True, kw_only=True)
class ResultView:
    """Everything a result page or slip shows, already translated."""

    id: str | None
    link_id: str  # the id in URLs: the record id, or "last" for an unsaved result
    at: datetime | None  # local time
    result: ScreeningResult
    reason_text: str | None = None
    risk_words: str | None = None
    risk_icon: str | None = None
    percent: str | None = None
    threshold_percent: str | None = None
    score_text: str | None = None  # "Model score 0.95 (not a chance of cancer). Refer at or above 0.14."
    features: list[FeatureLine] = field(default_factory=list)
    features_note: str | None = None  # with "refer": the features do not override the referral
    next_steps: list[str] = field(default_factory=list)
    facility: str | None = None  # where "refer" sends the patient, shown on its own line after its label

    @property
    def refer(self) -> bool:
        return self.result.risk == "refer"


def reason_params(result: ScreeningResult, *, min_side: int) -> dict[str, Any]:
    """What the reason's message needs (only ``too_small`` has parameters a result can supply)."""
    params: dict[str, Any] = {}
    quality = result.quality or {}
    if "width" in quality and "height" in quality:
        params.update(width=int(quality["width"]), height=int(quality["height"]))
    params["minimum"] = min_side
    return params


def screening_json(sid: str | None, result: ScreeningResult, *, image: str | None, min_side: int) -> dict[str, Any]:
    """The API's screening object: ``kiosk screen --json``'s keys plus ``id`` and a translated ``reason_message``."""
    data = result.to_dict()
    body = {"image": image, **{k: data[k] for k in SCREEN_KEYS[1:]}}
    body["id"] = sid
    body["reason_message"] = (
        reason_message(result.reason, **reason_params(result, min_side=min_side)) if result.reason else None
    )
    return body


def _percent(value: float) -> str:
    return f"{value * 100:.0f}%"


def feature_lines(features: dict[str, Any]) -> list[FeatureLine]:
    """The ABCD lines: each measured value with its scale; no line is a verdict."""
    if not features:
        return []
    lines = []
    if features.get("asymmetry") is not None:
        value = float(features["asymmetry"])
        words = translate(N_("0 means both halves match; higher means less alike"))
        lines.append(FeatureLine("A", translate(N_("Asymmetry")), words, f"{value:.2f}"))
    if features.get("border_irregularity") is not None:
        value = float(features["border_irregularity"])
        words = translate(N_("1.0 is a smooth circle; higher means a more uneven edge"))
        lines.append(FeatureLine("B", translate(N_("Border")), words, f"{value:.2f}"))
    colours = [translate(COLOUR_NAMES.get(c, c)) for c in features.get("colours") or []]
    if colours:
        words = translate(N_("Colours seen: %(count)s"), count=len(colours))
        lines.append(FeatureLine("C", translate(N_("Colours")), words, ", ".join(colours)))
    if features.get("diameter_mm") is not None:
        mm = float(features["diameter_mm"])
        words = translate(N_("Across the widest part"))
        if mm > DIAMETER_ALERT_MM:
            words += " " + translate(N_("(larger than 6 mm)"))
        lines.append(FeatureLine("D", translate(N_("Diameter")), words, f"{mm:.1f} mm"))
    elif features:
        words = translate(N_("Not measured: the camera is not calibrated for millimetres"))
        lines.append(FeatureLine("D", translate(N_("Diameter")), words, "-"))
    return lines


def result_view(
    sid: str | None,
    result: ScreeningResult,
    *,
    at: datetime | None,
    facility: str | None,
    days: int,
    min_side: int,
    zone: str | None = None,
) -> ResultView:
    """The page's view of one screening, in the request's language; ``at`` shown in ``zone`` ([station] time_zone)."""
    # Without a zone, the Pi's own (set to the station's at first boot).
    local = (local_time(at, zone) if zone else at.astimezone()) if at is not None else None
    common: dict[str, Any] = {"id": sid, "link_id": sid or "last", "at": local, "result": result}
    if result.status != "ok":
        text = reason_message(result.reason or "internal_error", **reason_params(result, min_side=min_side))
        return ResultView(reason_text=text, **common)
    refer = result.risk == "refer"
    if refer:
        # The facility goes on its own line after a label: a sentence around it would need the
        # right article for every facility's name in Filipino and Waray ("sa ang ...").
        steps = [translate(N_("Refer the patient to a doctor within %(days)s days."), days=days)]
    else:
        steps = [
            translate(
                N_("No referral needed now. Come back if the spot changes in size, shape or colour, bleeds or itches.")
            )
        ]
    steps.append(translate(N_("If you or the patient are worried, refer anyway.")))
    probability = result.malignant_probability or 0.0
    threshold = result.threshold or 0.0
    score_shown, threshold_shown = score_number(probability, threshold=threshold)
    score = translate(
        N_("Model score %(score)s (not a chance of cancer). Refer at or above %(threshold)s."),
        score=score_shown,
        threshold=threshold_shown,
    )
    reason = result.reason
    return ResultView(
        risk_words=translate(N_("Refer to a doctor")) if refer else translate(N_("Low risk")),
        risk_icon="\u26a0" if refer else "\u25cf",  # warning sign / disc: the colour is never the only signal
        percent=_percent(probability),
        threshold_percent=_percent(threshold),
        score_text=score,
        reason_text=reason_message(reason) if reason else None,  # why an "ok" result refers (acral site...)
        features=feature_lines(result.features),
        features_note=translate(N_("These measurements do not override the referral.")) if refer else None,
        next_steps=steps,
        facility=referral_facility(facility) if refer else None,
        **common,
    )
