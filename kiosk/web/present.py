"""How a screening is shown: its JSON for the API, and plain words for the page and the slip.

The ABCD features come from :mod:`kiosk.vision.features` as numbers; here they
become short phrases a health worker can read to a patient, each with the
number beside it. The word bands are descriptive only (they match the
features' own scales); the risk band comes from the model alone.

>>> describe_asymmetry(0.03), describe_border(2.1)
('Even shape', 'Irregular, ragged border')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..reasons import N_
from ..result import ScreeningResult
from .i18n import reason_message, translate

__all__ = [
    "FeatureLine",
    "ResultView",
    "describe_asymmetry",
    "describe_border",
    "referral_facility",
    "result_view",
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


def describe_asymmetry(value: float) -> str:
    if value < 0.1:
        return N_("Even shape")
    if value < 0.2:
        return N_("Slightly uneven shape")
    return N_("Uneven shape")


def describe_border(value: float) -> str:
    if value < 1.3:
        return N_("Smooth, regular border")
    if value < 1.7:
        return N_("Slightly irregular border")
    return N_("Irregular, ragged border")


@dataclass(frozen=True)
class FeatureLine:
    letter: str  # A, B, C, D
    label: str  # translated
    words: str  # translated
    value: str  # the number behind the words


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
    features: list[FeatureLine] = field(default_factory=list)
    next_steps: list[str] = field(default_factory=list)

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
    if not features:
        return []
    lines = []
    if features.get("asymmetry") is not None:
        value = float(features["asymmetry"])
        lines.append(FeatureLine("A", translate(N_("Asymmetry")), translate(describe_asymmetry(value)), f"{value:.2f}"))
    if features.get("border_irregularity") is not None:
        value = float(features["border_irregularity"])
        lines.append(FeatureLine("B", translate(N_("Border")), translate(describe_border(value)), f"{value:.2f}"))
    colours = [translate(COLOUR_NAMES.get(c, c)) for c in features.get("colours") or []]
    if colours:
        words = translate(N_("Several colours")) if len(colours) >= 3 else translate(N_("One or two colours"))
        lines.append(FeatureLine("C", translate(N_("Colours")), words, ", ".join(colours)))
    if features.get("diameter_mm") is not None:
        mm = float(features["diameter_mm"])
        words = translate(N_("About %(mm)s mm across"), mm=f"{mm:.1f}")
        if mm > DIAMETER_ALERT_MM:
            words += " " + translate(N_("(larger than 6 mm)"))
        lines.append(FeatureLine("D", translate(N_("Diameter")), words, f"{mm:.1f} mm"))
    elif features.get("diameter_px") is not None:
        px = float(features["diameter_px"])
        words = translate(N_("The size in millimetres needs a calibrated camera"))
        lines.append(
            FeatureLine("D", translate(N_("Diameter")), words, translate(N_("%(px)s pixels across"), px=f"{px:.0f}"))
        )
    return lines


def result_view(
    sid: str | None, result: ScreeningResult, *, at: datetime | None, facility: str | None, days: int, min_side: int
) -> ResultView:
    """The page's view of one screening, in the request's language."""
    local = at.astimezone() if at is not None else None  # the Pi's clock zone: Asia/Manila in the field
    common: dict[str, Any] = {"id": sid, "link_id": sid or "last", "at": local, "result": result}
    if result.status != "ok":
        text = reason_message(result.reason or "internal_error", **reason_params(result, min_side=min_side))
        return ResultView(reason_text=text, **common)
    refer = result.risk == "refer"
    if refer:
        steps = [
            translate(
                N_("Refer the patient to %(facility)s within %(days)s days."),
                facility=referral_facility(facility),
                days=days,
            ),
            translate(N_("Print the referral slip and give it to the patient.")),
        ]
    else:
        steps = [
            translate(
                N_("No referral needed now. Come back if the spot changes in size, shape or colour, bleeds or itches.")
            )
        ]
    steps.append(translate(N_("If you or the patient are worried, refer anyway.")))
    # A screening can carry a reason too: "lesion_unclear" refers whatever the score, and the page says why.
    why = reason_message(result.reason, **reason_params(result, min_side=min_side)) if result.reason else None
    return ResultView(
        reason_text=why,
        risk_words=translate(N_("Refer to a doctor")) if refer else translate(N_("Low risk")),
        risk_icon="\u26a0" if refer else "\u25cf",  # warning sign / disc: the colour is never the only signal
        percent=_percent(result.malignant_probability or 0.0),
        threshold_percent=_percent(result.threshold or 0.0),
        features=feature_lines(result.features),
        next_steps=steps,
        **common,
    )
