"""Issue 14 in a real browser: the details step by touch, the result with its photo, and labels that fit.

At the kiosk's two screens (800x480, 1280x720) and in its three languages: touch a body-map region,
an age band and sex, capture, and the record holds them; the result shows the scored photo with the
model's square and the disclaimer inside the viewport without scrolling. Then every page's buttons are
measured in every language: no label is wider than its button (``scrollWidth <= clientWidth``).
Shares the kiosk-serving helpers and fixtures of tests/test_browser.py (same skips).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser_helpers import assert_labels_fit, forget_aborted_by_us, inside_viewport
from tests.test_browser import (  # noqa: F401 - browser and artifacts are fixtures
    PIN,
    VIEWPORTS,
    Screen,
    artifacts,
    browser,
    enter_pin,
    kiosk_serve,
    wait_for_preview,
)

LANGS = ("en", "fil", "war")
# One walk per screen and language, each through a different part of the map: the front view, the
# back view with an acral site (always "refer"), the back of the trunk.
WALKS = {"en": ("left-forearm", "45-59", "f"), "fil": ("right-sole", "60-74", "m"), "war": ("trunk-back", "0-14", "x")}
BACK_VIEW = {"right-sole", "trunk-back"}
SEXES = {"f": "female", "m": "male", "x": "other"}


@pytest.fixture(scope="module")
def kiosk_at(tiny_model_path, tmp_path_factory) -> Iterator[tuple[str, Path]]:
    folder = tmp_path_factory.mktemp("kiosk-visit")
    with kiosk_serve(tiny_model_path, folder) as base:
        yield base, folder / "data"


def stored_details(data_dir: Path, sid: str) -> tuple[str | None, ...]:
    """What the kiosk's records hold for ``sid`` (read-only: the kiosk is still running)."""
    with sqlite3.connect(f"file:{data_dir / 'records.sqlite3'}?mode=ro", uri=True) as conn:
        row = conn.execute(
            "SELECT patient_body_site, patient_age_band, patient_sex, risk, reason FROM screenings WHERE id = ?", (sid,)
        ).fetchone()
    assert row is not None, sid
    return tuple(row)


@pytest.fixture(params=list(VIEWPORTS))
def screen(request, browser, artifacts) -> Iterator[Screen]:  # noqa: F811 - the fixtures imported above
    s = Screen(browser, request.param, artifacts)
    yield s
    s.close()


@pytest.mark.parametrize("lang", LANGS)
def test_details_by_touch_then_capture_then_the_result_with_its_photo(screen, kiosk_at, lang):
    base, data_dir = kiosk_at
    site, band, sex = WALKS[lang]
    page = screen.page
    screen.goto(f"{base}/?lang={lang}")
    screen.testid("start-button").tap()
    page.wait_for_url(re.compile(r"/details(\?|$)"))
    assert screen.testid("body-view-front").is_visible() and not screen.testid("body-view-back").is_visible()
    if site in BACK_VIEW:
        screen.testid("body-view-back-tab").tap()
        screen.testid("body-view-back").wait_for(state="visible")
        assert not screen.testid("body-view-front").is_visible()
    screen.testid(f"body-site-{site}").tap()
    screen.testid(f"age-band-{band}").tap()
    screen.testid(f"sex-{sex}").tap()
    for testid in (f"body-site-{site}", f"age-band-{band}", f"sex-{sex}"):
        assert screen.testid(testid).locator("input").is_checked(), testid
    for testid in ("details-next", "details-skip"):
        inside_viewport(screen, testid)  # no scrolling to go on, even at 800x480
    assert_labels_fit(screen, f"details-{lang}")
    screen.shot(f"details-{lang}")

    screen.testid("details-next").tap()
    page.wait_for_url(re.compile(r"/screen\?"))
    wait_for_preview(screen)
    assert screen.testid("details-summary").is_visible()
    screen.testid("capture-button").tap()
    page.wait_for_url(re.compile(r"/screenings/[^/?]+$"))
    screen.testid("result-risk").wait_for(state="visible")
    # The page may open as /screenings/last (the station's poll can win the race): the id is on the page.
    sid = screen.testid("screening-id").inner_text().rsplit(" ", 1)[1]
    body_site, age_band, stored_sex, risk, reason = stored_details(data_dir, sid)
    assert (body_site, age_band, stored_sex) == (site, band, SEXES[sex])
    if site == "right-sole":  # acral: refers whatever the tiny model scored, and says why
        assert (risk, reason) == ("refer", "acral_site")
        assert screen.testid("result-reason").is_visible()

    # The scored photo, loaded, with the model's square over it; the disclaimer and the slip link on screen.
    photo = screen.testid("result-photo")
    assert page.evaluate("() => document.querySelector('[data-testid=result-photo] img').naturalWidth") > 0
    assert photo.locator("svg rect").count() == 1
    crop = photo.locator("svg rect").bounding_box()
    image = photo.locator("img").bounding_box()
    assert image["x"] - 3 <= crop["x"] and crop["x"] + crop["width"] <= image["x"] + image["width"] + 3  # stroke: 3 px
    for testid in ("disclaimer", "result-photo", "slip-link"):
        inside_viewport(screen, testid)
    assert screen.testid("disclaimer").count() == 1  # beside the result, not again in the footer
    assert_labels_fit(screen, f"result-{lang}")
    screen.shot(f"result-{lang}")
    screen.assert_clean()


def test_every_button_label_fits_in_every_language(screen, kiosk_at):
    """The CI check for translations: every page's buttons in English, Filipino and Waray at this screen size."""
    base, _ = kiosk_at
    page = screen.page
    screen.goto(f"{base}/screen?lang=en")
    wait_for_preview(screen)
    screen.testid("capture-button").tap()
    page.wait_for_url(re.compile(r"/screenings/[^/?]+$"))
    result_url = page.url
    screen.goto(f"{base}/pin?next=/history&lang=en")
    enter_pin(screen, PIN)
    pages = {
        "home": "/",
        "details": "/details",
        "screen": "/screen?body_site=left-palm&age_band=75-plus&sex=other",
        "result": result_url.removeprefix(base),
        "slip": result_url.removeprefix(base) + "/slip",
        "pin": "/pin",
        "history": "/history",
        "settings": "/settings",
    }
    for lang in LANGS:
        for name, path in pages.items():
            screen.goto(f"{base}{path}{'&' if '?' in path else '?'}lang={lang}")
            assert_labels_fit(screen, f"{name}-{lang}")
            if name == "details":  # the other view's buttons too
                screen.testid("body-view-back-tab").tap()
                screen.testid("body-view-back").wait_for(state="visible")
                assert_labels_fit(screen, f"details-back-{lang}")
            if name == "pin" and lang != "en":
                screen.shot(f"pin-{lang}")
    # Walking this fast, a page's own status poll, preview or History's lazy thumbnails are cut off by the
    # next navigation: that is us.
    forget_aborted_by_us(screen)
    screen.assert_clean()
