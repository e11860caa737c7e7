"""What the kiosk records about a patient: never a name.

A health worker gives these by touch before a capture, and every one is
optional: the body site (a region of the body map, or only its group), an age
band (or an exact age), sex, and the Fitzpatrick skin type when known.

Body-map regions are kebab-case (``left-forearm``, ``right-sole``: also the
``data-testid`` suffix of the map's buttons); each belongs to one of the
groups the model card and the validation report count by (``upper_limb``,
``palm_sole``, ...). Palm, sole and nail are *acral* sites: the model was not
trained on them, so a screening there always refers.

>>> PatientInfo(body_site="left-palm", age_band="45-59").body_site_group
'palm_sole'
>>> PatientInfo(body_site="left-palm").acral, PatientInfo(body_site="trunk-back").acral
(True, False)
>>> PatientInfo(age=61).effective_age_band
'60-74'
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "ACRAL_GROUPS",
    "AGE_BANDS",
    "BODY_REGIONS",
    "BODY_SITES",
    "BODY_SITE_GROUPS",
    "SEXES",
    "InvalidPatientInfo",
    "PatientInfo",
    "age_band_for",
    "body_site_group",
]

Sex = Literal["female", "male", "other"]
BodySiteGroup = Literal["head_neck", "trunk", "upper_limb", "lower_limb", "palm_sole", "nail", "genital", "other"]
SEXES: tuple[str, ...] = typing.get_args(Sex)
BODY_SITE_GROUPS: tuple[str, ...] = typing.get_args(BodySiteGroup)
#: Older name for the groups (records from before the body map hold a group as their site).
BODY_SITES = BODY_SITE_GROUPS
#: Groups the model was not trained on (acral lentiginous melanoma: about half of melanomas in East Asia).
ACRAL_GROUPS: frozenset[str] = frozenset({"palm_sole", "nail"})


def _sided(group: str, *parts: str) -> dict[str, str]:
    return {f"{side}-{part}": group for side in ("left", "right") for part in parts}


#: Body-map region -> group, in the order the map lists them (front view first).
BODY_REGIONS: dict[str, str] = {
    "head-neck": "head_neck",
    "trunk-front": "trunk",
    "trunk-back": "trunk",
    **_sided("upper_limb", "upper-arm", "forearm", "hand"),
    **_sided("palm_sole", "palm"),
    **_sided("lower_limb", "thigh", "lower-leg", "foot"),
    **_sided("palm_sole", "sole"),
    **_sided("nail", "fingernail", "toenail"),
    "genital": "genital",
}

#: Age bands (``data-testid="age-band-<band>"``); the last has no upper bound.
AGE_BANDS: tuple[str, ...] = ("0-14", "15-29", "30-44", "45-59", "60-74", "75-plus")
_BAND_LOWER = (0, 15, 30, 45, 60, 75)


class InvalidPatientInfo(ValueError):
    """A patient field is out of range or not one of the allowed values (one-line message)."""


def body_site_group(site: str | None) -> str | None:
    """The group a body-map region (or a group given directly) belongs to.

    >>> body_site_group("right-toenail"), body_site_group("trunk"), body_site_group(None)
    ('nail', 'trunk', None)
    """
    if site is None:
        return None
    if site in BODY_REGIONS:
        return BODY_REGIONS[site]
    if site in BODY_SITE_GROUPS:
        return site
    raise InvalidPatientInfo(
        f"body_site must be a body-map region or one of {', '.join(BODY_SITE_GROUPS)}; got {_show(site)}"
    )


def age_band_for(age: int) -> str:
    """The band an exact age falls in.

    >>> age_band_for(14), age_band_for(15), age_band_for(99)
    ('0-14', '15-29', '75-plus')
    """
    band = AGE_BANDS[0]
    for lower, name in zip(_BAND_LOWER, AGE_BANDS, strict=True):
        if age >= lower:
            band = name
    return band


@dataclass(frozen=True, kw_only=True)
class PatientInfo:
    """What the kiosk records about the patient: never a name.

    >>> PatientInfo(age=61, sex="female", body_site="lower_limb").to_dict()
    {'age': 61, 'sex': 'female', 'body_site': 'lower_limb', 'age_band': None, 'skin_type': None}
    >>> PatientInfo(body_site="arm")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    kiosk.records.patient.InvalidPatientInfo: body_site must be a body-map region or one of head_neck, ...; got 'arm'
    """

    age: int | None = None
    sex: Sex | None = None
    body_site: str | None = None  # a key of BODY_REGIONS, or a group of BODY_SITE_GROUPS
    age_band: str | None = None  # one of AGE_BANDS; when ``age`` is given it must agree
    skin_type: int | None = None  # Fitzpatrick I-VI as 1-6, when the health worker knows it

    def __post_init__(self) -> None:
        age = self.age
        if age is not None and (isinstance(age, bool) or not isinstance(age, int) or not 0 <= age <= 120):
            raise InvalidPatientInfo(f"age must be a whole number from 0 to 120; got {_show(age)}")
        if self.sex is not None and self.sex not in SEXES:
            raise InvalidPatientInfo(f"sex must be one of {', '.join(SEXES)}; got {_show(self.sex)}")
        if self.body_site is not None and not isinstance(self.body_site, str):
            raise InvalidPatientInfo(f"body_site must be text; got {_show(self.body_site)}")
        body_site_group(self.body_site)  # raises for an unknown site
        if self.age_band is not None and self.age_band not in AGE_BANDS:
            raise InvalidPatientInfo(f"age_band must be one of {', '.join(AGE_BANDS)}; got {_show(self.age_band)}")
        if self.age_band is not None and age is not None and age_band_for(age) != self.age_band:
            raise InvalidPatientInfo(f"age {age} is not in the age band {self.age_band}")
        skin = self.skin_type
        if skin is not None and (isinstance(skin, bool) or not isinstance(skin, int) or not 1 <= skin <= 6):
            raise InvalidPatientInfo(f"skin_type must be a Fitzpatrick type from 1 to 6; got {_show(skin)}")

    @property
    def is_empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in dataclasses.fields(self))

    @property
    def body_site_group(self) -> str | None:
        return body_site_group(self.body_site)

    @property
    def acral(self) -> bool:
        """Palm, sole or nail: outside what the model was trained on, so the kiosk refers."""
        return self.body_site_group in ACRAL_GROUPS

    @property
    def effective_age_band(self) -> str | None:
        """The age band, from the exact age when only that was given."""
        if self.age_band is not None:
            return self.age_band
        return None if self.age is None else age_band_for(self.age)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PatientInfo:
        """Build from JSON or a web form: ``""`` means not given; age and skin type may be digit strings.

        >>> PatientInfo.from_dict({"age": "7", "sex": "", "body_site": "nail"})
        PatientInfo(age=7, sex=None, body_site='nail', age_band=None, skin_type=None)
        """
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(names))
        if unknown:  # also how a stray "name" field from a form is refused
            raise InvalidPatientInfo(f"unknown patient field {unknown[0]!r}; the kiosk records only {', '.join(names)}")
        values = {k: (None if isinstance(v, str) and not v.strip() else v) for k, v in data.items()}
        for key, what in (("age", "a whole number from 0 to 120"), ("skin_type", "a Fitzpatrick type from 1 to 6")):
            value = values.get(key)
            if isinstance(value, str):
                if not re.fullmatch(r"\s*[0-9]{1,3}\s*", value):
                    raise InvalidPatientInfo(f"{key} must be {what}; got {_show(value)}")
                values[key] = int(value)
        return cls(**values)


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
