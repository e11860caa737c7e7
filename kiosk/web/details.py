"""The optional details step before a capture: which spot (a body map), an age band and sex, all by touch.

``/details`` shows the body map as two views of big labelled buttons (the
front; the back with the palms and soles), the age bands and sex; nothing is
typed and everything may be skipped. *Next* opens the capture page with the
choices in its query string (``/screen?body_site=left-forearm&age_band=45-59&sex=female``);
the capture page carries them in hidden fields and they go with the capture
(``POST /api/screenings``), so the record and the slip can say which spot was
checked. Palm, sole and nail are marked on the map: the model was not trained
on acral sites, so a screening there always refers (:class:`kiosk.screening.Screener`).

The names of regions, age bands and sexes are here too, translated, for any
page that shows a record's details (:func:`site_name`, :func:`details_summary`).

>>> chosen({"body_site": "left-palm", "age_band": "45-59", "sex": "female", "name": "Juan", "age": "x"})
{'body_site': 'left-palm', 'age_band': '45-59', 'sex': 'female'}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from flask import Blueprint, render_template, request
from flask.typing import ResponseReturnValue

from ..reasons import N_
from ..records import AGE_BANDS, BODY_REGIONS, InvalidPatientInfo, PatientInfo
from .i18n import translate

__all__ = ["CHOSEN_FIELDS", "bp", "chosen", "details_summary", "patient_from_form", "site_name"]

bp = Blueprint("details", __name__)

#: What the step chooses (the other PatientInfo fields, age and skin type, come only through the API).
CHOSEN_FIELDS = ("body_site", "age_band", "sex")
#: ``data-testid="sex-<letter>"`` -> the recorded value.
SEX_LETTERS = {"f": "female", "m": "male", "x": "other"}

PART_NAMES = {
    "head-neck": N_("Head and neck"),
    "trunk-front": N_("Chest and belly"),
    "trunk-back": N_("Upper and lower back"),  # not "Back": that msgid is the navigation button
    "genital": N_("Genitals"),
    "upper-arm": N_("Upper arm"),
    "forearm": N_("Forearm"),
    "hand": N_("Back of hand"),
    "palm": N_("Palm"),
    "fingernail": N_("Fingernail"),
    "thigh": N_("Thigh"),
    "lower-leg": N_("Lower leg"),
    "foot": N_("Top of foot"),
    "sole": N_("Sole"),
    "toenail": N_("Toenail"),
}
#: Shorter labels on the map itself, where the row already says hand or foot.
MAP_LABELS = {"fingernail": N_("Nail"), "toenail": N_("Nail")}
SIDE_NAMES = {"left": N_("left"), "right": N_("right")}
GROUP_NAMES = {
    "head_neck": N_("Head and neck"),
    "trunk": N_("Trunk"),
    "upper_limb": N_("Arm or hand"),
    "lower_limb": N_("Leg or foot"),
    "palm_sole": N_("Palm or sole"),
    "nail": N_("Nail"),
    "genital": N_("Genitals"),
    "other": N_("Other"),
}
SEX_NAMES = {"female": N_("Female"), "male": N_("Male"), "other": N_("Other")}

Row = tuple[tuple[str, ...], str | None, tuple[str, ...]]  # (patient's right, middle, patient's left)

# The front view is seen facing the patient: the patient's right is on the viewer's left.
# Each row: (patient's right, middle, patient's left); a side cell holds one or two parts.
FRONT_ROWS: tuple[Row, ...] = (
    ((), "head-neck", ()),
    (("upper-arm", "forearm"), "trunk-front", ("upper-arm", "forearm")),
    (("hand", "fingernail"), "genital", ("hand", "fingernail")),
    (("thigh", "lower-leg"), None, ("thigh", "lower-leg")),
    (("foot", "toenail"), None, ("foot", "toenail")),
)
# The back view is seen from behind: the patient's left is on the viewer's left. Palms and soles are here.
BACK_ROWS: tuple[Row, ...] = (
    (("palm",), "trunk-back", ("palm",)),
    (("sole",), None, ("sole",)),
)


#: The regions on the back view (the step opens on it when one of these was chosen).
BACK_REGIONS = frozenset({"trunk-back", *(f"{side}-{part}" for side in ("left", "right") for part in ("palm", "sole"))})


@dataclass(frozen=True)
class Button:
    region: str  # a key of BODY_REGIONS: the field's value and the data-testid suffix
    label: str  # translated
    acral: bool


def _button(region: str) -> Button:
    part = region.removeprefix("left-").removeprefix("right-")
    label = translate(MAP_LABELS.get(part, PART_NAMES[part]))
    return Button(region=region, label=label, acral=PatientInfo(body_site=region).acral)


def _side(side: str, parts: tuple[str, ...]) -> list[Button]:
    return [_button(f"{side}-{part}") for part in parts]


def _view(rows: tuple[Row, ...], *, from_behind: bool) -> list[list[list[Button]]]:
    """Rows of three cells as the viewer sees them (left, middle, right), each a list of buttons."""
    view = []
    for right, middle, left in rows:
        centre = [_button(middle)] if middle else []
        cells = [_side("right", right), centre, _side("left", left)]
        view.append(cells[::-1] if from_behind else cells)
    return view


def site_name(site: str | None) -> str | None:
    """A body-map region or group in the page's language: ``left-forearm`` -> "Forearm (left)".

    The side comes after the part, in brackets, so no language needs an adjective form of it.
    """
    if not site:
        return None
    if site in GROUP_NAMES:
        return translate(GROUP_NAMES[site])
    side, _, part = site.partition("-")
    if side in SIDE_NAMES and part in PART_NAMES:
        return translate(N_("%(part)s (%(side)s)"), part=translate(PART_NAMES[part]), side=translate(SIDE_NAMES[side]))
    return translate(PART_NAMES[site]) if site in PART_NAMES else site


def age_band_name(band: str) -> str:
    return band.replace("-plus", "+").replace("-", "\u2013")  # 75-plus -> 75+, 45-59 -> 45–59


def chosen(values: Mapping[str, str]) -> dict[str, str]:
    """The valid choices among ``values`` (a query string or form); anything else is dropped, never guessed."""
    out: dict[str, str] = {}
    for key in CHOSEN_FIELDS:
        value = values.get(key)
        if not value:
            continue
        try:
            PatientInfo.from_dict({key: value})
        except (InvalidPatientInfo, TypeError, ValueError):
            continue
        out[key] = value
    return out


def patient_from_form(form: Mapping[str, str]) -> PatientInfo | None:
    """The patient fields of a capture form (the capture page without JavaScript); raises InvalidPatientInfo."""
    patient = PatientInfo.from_dict({key: form[key] for key in CHOSEN_FIELDS if key in form})
    return None if patient.is_empty else patient


def details_summary(details: Mapping[str, str | None]) -> list[str]:
    """The chosen details as short translated phrases, in the order the step asks for them."""
    parts = []
    if details.get("body_site"):
        parts.append(site_name(details["body_site"]) or "")
    if details.get("age_band"):
        parts.append(translate(N_("Age %(band)s"), band=age_band_name(str(details["age_band"]))))
    if details.get("sex"):
        parts.append(translate(SEX_NAMES.get(str(details["sex"]), str(details["sex"]))))
    return parts


@bp.app_context_processor
def _globals() -> dict[str, object]:
    return {"chosen_details": lambda: chosen(request.values), "details_summary": details_summary}


@bp.get("/details")
def details() -> ResponseReturnValue:
    picked = chosen(request.args)
    site = picked.get("body_site")
    return render_template(
        "details.html",
        front=_view(FRONT_ROWS, from_behind=False),
        back=_view(BACK_ROWS, from_behind=True),
        back_first=site in BACK_REGIONS,
        age_bands=[(band, age_band_name(band)) for band in AGE_BANDS],
        sexes=[(letter, value, translate(SEX_NAMES[value])) for letter, value in SEX_LETTERS.items()],
        picked=picked,
        regions=BODY_REGIONS,
    )
