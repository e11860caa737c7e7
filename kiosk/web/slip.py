"""What the referral slip prints: for the patient, and for the doctor who receives them.

The slip names the sending station, the date (in ``[station] time_zone``),
"see a doctor by" (created + ``[web] referral_within_days``, for a referral),
the body site, the photo, the result with its ABCD words, the software and
model version, the slip code (``482-193-677``) and its QR code, a blank line
for the patient's name (the kiosk never stores names), and a return part the
doctor ticks (:data:`kiosk.records.OUTCOMES`) and sends back, which the
health worker then enters behind the PIN. The patient's part is in the page's
language; the doctor's part also in English (:func:`in_language`).

>>> qr_data_uri("482193677").startswith("data:image/svg+xml")
True
>>> see_by(datetime(2026, 3, 30, 20, 0, tzinfo=UTC), days=14, zone=ZoneInfo("Asia/Manila"))
datetime.date(2026, 4, 14)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import segno
from flask import g

from .. import __version__
from ..reasons import N_
from ..records import BODY_REGIONS, OUTCOMES, StoredScreening, codes
from .i18n import current_language, translate

__all__ = [
    "BODY_GROUP_NAMES",
    "BODY_REGION_NAMES",
    "OUTCOME_LABELS",
    "SlipView",
    "body_site_name",
    "in_language",
    "qr_data_uri",
    "see_by",
    "slip_view",
]

#: Body-map region -> its name on the slip (translated at the edge).
BODY_REGION_NAMES: dict[str, str] = {
    "head-neck": N_("Head or neck"),
    "trunk-front": N_("Chest or belly"),
    "trunk-back": N_("Upper or lower back"),  # not "Back": that msgid is the page's Back button
    "left-upper-arm": N_("Left upper arm"),
    "right-upper-arm": N_("Right upper arm"),
    "left-forearm": N_("Left forearm"),
    "right-forearm": N_("Right forearm"),
    "left-hand": N_("Back of the left hand"),
    "right-hand": N_("Back of the right hand"),
    "left-palm": N_("Left palm"),
    "right-palm": N_("Right palm"),
    "left-thigh": N_("Left thigh"),
    "right-thigh": N_("Right thigh"),
    "left-lower-leg": N_("Left lower leg"),
    "right-lower-leg": N_("Right lower leg"),
    "left-foot": N_("Top of the left foot"),
    "right-foot": N_("Top of the right foot"),
    "left-sole": N_("Left sole"),
    "right-sole": N_("Right sole"),
    "left-fingernail": N_("Left fingernail"),
    "right-fingernail": N_("Right fingernail"),
    "left-toenail": N_("Left toenail"),
    "right-toenail": N_("Right toenail"),
    "genital": N_("Genital area"),
}
#: Body-site group -> its name (records from before the body map hold only a group).
BODY_GROUP_NAMES: dict[str, str] = {
    "head_neck": N_("Head or neck"),
    "trunk": N_("Trunk"),
    "upper_limb": N_("Arm or hand"),
    "lower_limb": N_("Leg or foot"),
    "palm_sole": N_("Palm or sole"),
    "nail": N_("Nail"),
    "genital": N_("Genital area"),
    "other": N_("Other site"),
}
#: The return part's tick boxes, one per outcome kind, in OUTCOMES' order.
OUTCOME_LABELS: dict[str, str] = {
    "not_seen": N_("Not examined yet"),
    "benign": N_("Seen: benign"),
    "melanoma": N_("Biopsy: melanoma"),
    "other_skin_cancer": N_("Biopsy: other skin cancer"),
    "other": N_("Other finding"),
}
assert tuple(OUTCOME_LABELS) == OUTCOMES, "one tick box per outcome kind"
assert set(BODY_REGION_NAMES) == set(BODY_REGIONS), "a name for every body-map region"


@contextlib.contextmanager
def in_language(code: str) -> Iterator[None]:
    """Translate in ``code`` inside the block (the doctor's English lines), then the page's language again."""
    saved = current_language()
    g.kiosk_language = code
    try:
        yield
    finally:
        g.kiosk_language = saved


def body_site_name(site: str | None) -> str | None:
    """The body site in the request's language (None when none was given)."""
    if not site:
        return None
    name = BODY_REGION_NAMES.get(site) or BODY_GROUP_NAMES.get(site)
    return translate(name) if name else site


def qr_data_uri(text: str) -> str:
    """A QR code of ``text`` as an SVG data URI (the page's CSP allows ``data:`` images, no inline SVG)."""
    return str(segno.make(text, error="m", micro=False).svg_data_uri(scale=4, border=2))


def see_by(created: datetime, *, days: int, zone: ZoneInfo) -> date:
    """The last day to see a doctor: ``days`` after the screening's local date."""
    return (created.astimezone(zone) + timedelta(days=days)).date()


@dataclass(frozen=True)
class Bilingual:
    """A line in the page's language and in English (``english`` None when they are the same)."""

    text: str
    english: str | None = None


def _both(msgid: str, **variables: object) -> Bilingual:
    text = translate(msgid, **variables)
    with in_language("en"):
        english = translate(msgid, **variables)
    return Bilingual(text, english if english != text else None)


@dataclass(frozen=True, kw_only=True)
class SlipView:
    """Everything the slip shows beyond the result itself, already translated."""

    station: str | None  # "name (code)"
    date: str  # local date and time, YYYY-MM-DD HH:MM
    see_by: str | None  # YYYY-MM-DD, for a referral
    body_site: Bilingual | None
    code: str | None  # 482-193-677
    qr: str | None  # data URI
    photo_url: str | None
    software: str
    model: str
    outcomes: list[tuple[str, Bilingual]] = field(default_factory=list)


def slip_view(
    stored: StoredScreening | None,
    *,
    at: datetime | None,
    refer: bool,
    station_name: str | None,
    station_code: str | None,
    zone: ZoneInfo,
    days: int,
    photo_url: str | None,
    model_name: str | None,
) -> SlipView:
    """The slip's view of a screening (``stored`` None: shown but not saved, so no code and no photo)."""
    moment = at if at is not None else datetime.now(UTC)
    station = " ".join(p for p in (station_name, f"({station_code})" if station_code else None) if p) or None
    code = stored.code if stored is not None else None
    site = stored.patient.body_site if stored is not None and stored.patient is not None else None
    sha = stored.result.model_sha256 if stored is not None else None
    site_name = BODY_REGION_NAMES.get(site or "") or BODY_GROUP_NAMES.get(site or "")
    return SlipView(
        station=station,
        date=moment.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
        see_by=see_by(moment, days=days, zone=zone).isoformat() if refer else None,
        body_site=_both(site_name) if site_name else (Bilingual(site) if site else None),
        code=codes.format_code(code) if code else None,
        # The QR holds the code as the keypad takes it: digits, readable by any phone or the kiosk's camera.
        qr=qr_data_uri(code) if code else None,
        photo_url=photo_url,
        software=__version__,
        model=" ".join(p for p in (model_name, (sha or "")[:12]) if p) or "-",
        outcomes=[(kind, _both(OUTCOME_LABELS[kind])) for kind in OUTCOMES],
    )
