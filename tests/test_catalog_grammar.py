"""Translations that do not depend on a facility's article, and catalogs with nothing left undone.

The referral facility is a name from the settings (or a default that begins with its own article:
Filipino "ang ...", Waray "an ..."). A sentence around it ("I-refer ... sa %(facility)s") came out as
"sa ang pinakamalapit ...". So no message embeds the facility; the page shows it on its own line after
the label "Referral facility:". Every button label fitting its button is measured in the browser
(tests/test_browser_visit.py).
"""

from __future__ import annotations

import re

import pytest
from babel.messages.pofile import read_po

from kiosk.web.i18n import TRANSLATIONS_DIR
from tests.test_web import enter_pin, text_of
from tests.test_web_i18n import TRANSLATED, extracted
from tests.web_conftest import PIN, make_settings

# What "preposition + article" looks like when a sentence wraps a name that brings its own article.
DOUBLED = {"fil": re.compile(r"\bsa ang\b", re.I), "war": re.compile(r"\bha an\b", re.I)}


def test_no_message_wraps_the_facility_in_a_sentence():
    assert not [m for m in extracted() if "%(facility)s" in m]


@pytest.mark.parametrize("lang", TRANSLATED)
def test_every_catalog_entry_is_translated_current_and_not_fuzzy(lang):
    with open(TRANSLATIONS_DIR / lang / "LC_MESSAGES" / "messages.po", "rb") as fh:
        catalog = read_po(fh)
    entries = {m.id: m for m in catalog if m.id}
    missing = sorted(extracted() - set(entries))
    assert not missing, f"{lang}: no entry for {missing}"
    for msgid in extracted():
        m = entries[msgid]
        assert isinstance(m.string, str) and m.string.strip() and not m.fuzzy, (lang, msgid)


@pytest.mark.parametrize("lang", TRANSLATED)
@pytest.mark.parametrize("facility", [None, "Eastern Visayas Medical Center"])
def test_the_refer_advice_reads_right_with_any_facility(tmp_path, station, records, clock, lang, facility):
    import dataclasses

    from kiosk.result import ScreeningResult
    from kiosk.web import create_app

    base = make_settings(tmp_path)
    settings = dataclasses.replace(base, web=dataclasses.replace(base.web, referral_facility=facility))
    client = create_app(settings=settings, station=station, testing=True, clock=clock).test_client()
    sid = records.save(ScreeningResult(status="ok", malignant_probability=0.9, risk="refer", threshold=0.35))
    enter_pin(client, PIN)
    # The result page gives the worker's next steps; the slip (no worker advice on it) its see-by date.
    for path, advice_id in (
        (f"/screenings/{sid}?lang={lang}", "next-steps"),
        (f"/screenings/{sid}/slip?lang={lang}", "slip-see-by"),
    ):
        html = client.get(path).get_data(as_text=True)
        advice = text_of(html, advice_id) + " " + text_of(html, "referral-facility")
        assert not DOUBLED[lang].search(advice), advice
        if facility:
            assert text_of(html, "referral-facility").endswith(facility)
