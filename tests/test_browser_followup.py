"""The slip and a returning patient in a real browser (Chromium, headless), at 800x480 and 1280x720.

A screening of a named spot, then its slip with every field the receiving
doctor needs (station, body site, see-by date, slip code, its QR code, the
photo); then the patient comes back: *Returning patient* on the home page,
the slip code typed on the keypad, the same spot captured again, and both
photos side by side. Same conventions as ``tests/test_browser.py`` (whose
fixtures this module uses): no console errors or failed requests, no
sideways scrolling, touch targets of at least 48 px.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.browser_helpers import SLIP_FIELDS, STATION, image_loaded
from tests.test_browser import (  # noqa: F401 - fixtures: browser, artifacts and screen are used by name
    PAPER_PAGES,
    Screen,
    artifacts,
    browser,
    kiosk_serve,
    screen,
    wait_for_preview,
)

MAX_TRIES = 8  # captures until the drawn camera gives a "refer" (bounded: most of its lesions refer)


@pytest.fixture(scope="module")
def station_url(tiny_model_path, tmp_path_factory) -> Iterator[str]:
    """The kiosk with the synthetic camera and a named station."""
    with kiosk_serve(tiny_model_path, tmp_path_factory.mktemp("kiosk-followup"), settings=STATION) as base:
        yield base


def screen_the_left_forearm(screen: Screen, base: str) -> dict:
    """A capture through the page's own API with the body site given, repeated until it refers."""
    screen.goto(f"{base}/?lang=en")
    for _ in range(MAX_TRIES):
        body = screen.page.evaluate("""async () => {
            const token = document.querySelector('meta[name=csrf-token]').content;
            const r = await fetch('/api/screenings', {method: 'POST', credentials: 'same-origin',
                headers: {'X-CSRF-Token': token, 'Content-Type': 'application/json'},
                body: JSON.stringify({patient: {body_site: 'left-forearm'}})});
            return await r.json();
        }""")
        if body.get("risk") == "refer":
            return body
    pytest.fail(f"no 'refer' in {MAX_TRIES} drawn captures")


def test_the_slip_then_a_follow_up_by_code_with_both_photos(screen, station_url):
    page = screen.page
    first = screen_the_left_forearm(screen, station_url)
    screen.goto(f"{station_url}/screenings/{first['id']}?lang=en")
    screen.testid("slip-link").tap()
    page.wait_for_url(re.compile(r"/slip"))
    for testid in SLIP_FIELDS:
        assert screen.testid(testid).count() == 1, testid
    assert screen.testid("slip-station").inner_text() == "Barangay San Jose Health Station (PH-LEY-0001)"
    assert screen.testid("slip-body-site").inner_text() == "Left forearm"
    assert re.fullmatch(r"See a doctor by \d{4}-\d\d-\d\d", screen.testid("slip-see-by").inner_text())
    code = screen.testid("slip-code").inner_text()
    assert re.fullmatch(r"\d{3}-\d{3}-\d{3}", code)
    assert image_loaded(screen, "[data-testid=slip-photo], [data-testid=slip-qr]")
    screen.assert_fits("slip")
    screen.shot("slip-fields", full_page=True)
    # The longest slips (a referral with a body site, in Filipino and Waray) still print on their pages.
    for paper, lang in (("58", "fil"), ("80", "war"), ("a6", "war")):
        screen.goto(f"{station_url}/screenings/{first['id']}/slip?paper={paper}&lang={lang}")
        page.emulate_media(media="print")
        try:
            pdf = page.pdf(prefer_css_page_size=True, print_background=True)
        finally:
            page.emulate_media(media="screen")
        (screen.artifacts / f"{screen.name}-slip-refer-{paper}-{lang}.pdf").write_bytes(pdf)
        pages = len(re.findall(rb"/Type\s*/Page\b", pdf))
        assert pages == PAPER_PAGES[paper], f"the {paper} slip ({lang}) prints on {pages} pages"

    # A new browser session: the patient comes back with the slip, and nothing else.
    back = Screen(page.context.browser, screen.name, screen.artifacts)
    try:
        back.goto(f"{station_url}/?lang=en")
        back.testid("followup-button").tap()
        back.page.wait_for_url(re.compile(r"/followup$"))
        back.assert_fits("code-entry")
        for digit in code.replace("-", ""):
            back.testid(f"code-key-{digit}").tap()
        assert back.testid("code-display").inner_text() == code
        back.testid("code-submit").tap()
        back.page.wait_for_url(re.compile(rf"/followup/{first['id']}$"))
        wait_for_preview(back)
        assert image_loaded(back, "[data-testid=followup-earlier-photo]")
        back.assert_fits("followup-capture")
        for _ in range(MAX_TRIES):  # a drawn photo may ask for a retake; the page stays on the same spot
            with back.page.expect_navigation():
                back.testid("followup-capture-button").tap()
            if "/compare" in back.page.url:
                break
            wait_for_preview(back)
        compare = back.testid("followup-compare")
        compare.wait_for(state="visible")
        assert compare.locator("img").count() == 2
        back.page.wait_for_function(
            "() => Array.from(document.querySelectorAll('[data-testid=followup-compare] img'))"
            ".every(i => i.complete && i.naturalWidth > 0)"
        )
        assert back.testid("followup-changes").is_visible()
        back.assert_fits("followup-compare")
        back.shot("followup-compare")
        back.assert_clean()
    finally:
        back.close()
    screen.assert_clean()
