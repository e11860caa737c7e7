"""A health centre's whole workflow in one walk, by touch, at 800x480 and 1280x720, in English, Filipino and Waray.

Issue 14's last check: one patient through every page, in a real browser (Chromium, headless), with only
taps (the slip code and the PIN on the pages' own keypads): the spot on the body map, age and sex ->
capture -> the result with its photo and the whole disclaimer on the first screen -> the slip with
every field the receiving doctor needs -> home, *Returning patient*, the slip code, the same spot again
and both photos -> behind the PIN, the doctor's finding (biopsy: melanoma) -> the validation report,
which counts it. Every page stays in the walk's language, has no sideways scrolling, touch targets of
at least 48 px and no label wider than its button; no console errors or failed requests.

Each walk has a kiosk of its own (``kiosk serve``, the tiny model, the demo camera, a named station,
the PIN 2580), so it is deterministic: the demo camera draws seed 0 for the first photo (a "suspicious"
spot) and seed 1 for the follow-up (a "plain" one: neither is a shaky retake, see
:data:`kiosk.synthetic.DEMO_CYCLE`), and the report's numbers are exact. Shares tests/test_browser.py's
fixtures and skips (no Chromium, no Playwright, not POSIX).
"""

from __future__ import annotations

import base64
import re
from datetime import date, timedelta

import cv2
import numpy as np
import pytest

from kiosk.config import WebSettings
from kiosk.records import codes
from kiosk.synthetic import DEMO_CYCLE
from kiosk.validation import Proportion
from kiosk.vision.slipcode import read_slip_code
from kiosk.web.slip import BODY_REGION_NAMES
from tests.browser_helpers import (
    SLIP_FIELDS,
    STATION,
    assert_labels_fit,
    forget_aborted_by_us,
    image_loaded,
    inside_viewport,
)
from tests.test_browser import (  # noqa: F401 - artifacts and browser are fixtures used by name
    PIN,
    VIEWPORTS,
    Screen,
    artifacts,
    browser,
    enter_pin,
    kiosk_serve,
    pytestmark,
    wait_for_preview,
)
from tests.web_conftest import tr

LANGS = ("en", "fil", "war")
SITE, BAND, SEX = "left-forearm", "45-59", "f"
SEE_BY_DAYS = WebSettings().referral_within_days  # the kiosk below keeps the default
# The demo camera's first two photos (seeds 0 and 1) and what the tiny model makes of them (risk, reason):
# the suspicious spot refers on its score; the small plain one barely looks like a lesion to it, so it refers
# for an unclear photo (the kiosk refers when in doubt).
assert DEMO_CYCLE[0] == "suspicious" and DEMO_CYCLE[1] == "plain"
FIRST, FOLLOWUP = ("refer", None), ("refer", "lesion_unclear")


def arrive(screen: Screen, path: str, lang: str, label: str) -> None:
    """The tap before led to ``path`` (a regex, after the kiosk's address); the page is in the walk's
    language, and everything on it fits."""
    base = re.match(r"https?://[^/]+", screen.page.url).group(0)
    screen.page.wait_for_url(re.compile("^" + re.escape(base) + path))
    screen.page.wait_for_load_state("load")
    assert screen.page.locator("html").get_attribute("lang") == lang, (label, screen.page.url)
    assert_labels_fit(screen, label)


def words(screen: Screen, testid: str) -> str:
    return " ".join(screen.testid(testid).inner_text().split())


def slip_qr_code(screen: Screen) -> str | None:
    """The slip code read back from the slip's QR code, drawn by the browser 8x as large as on screen.

    On screen the code is about 70 px, under 3 px a module: too fine for OpenCV's detector, which a
    printer's dots or a phone's camera are not. The image is vector (SVG), so it redraws sharp.
    """
    data_url = screen.page.evaluate("""() => {
        const img = document.querySelector('[data-testid=slip-qr]'), canvas = document.createElement('canvas');
        canvas.width = canvas.height = 8 * img.getBoundingClientRect().width;
        const pen = canvas.getContext('2d');
        pen.fillStyle = '#fff';
        pen.fillRect(0, 0, canvas.width, canvas.height);
        pen.drawImage(img, 0, 0, canvas.width, canvas.height);
        return canvas.toDataURL('image/png');
    }""")
    png = base64.b64decode(data_url.split(",", 1)[1])
    image = cv2.cvtColor(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return read_slip_code(image)


def proportion_shown(screen: Screen, testid: str, expected: Proportion) -> None:
    """A report cell shows ``expected`` (``1/1 = 100%`` and its interval's numbers, or a dash for none)."""
    cell = screen.page.locator(testid)
    shown = " ".join(cell.locator(".proportion").inner_text().split())
    if not expected.total:
        assert shown == "\u2013" and cell.locator(".interval").count() == 0, (testid, shown)
        return
    assert shown == f"{expected.successes}/{expected.total} = {expected.value:.0%}", (testid, shown)
    low, high = (f"{x * 100:.0f}" for x in expected.interval)
    assert re.findall(r"\d+", cell.locator(".interval").inner_text()) == ["95", low, high], testid


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_a_patient_walks_from_the_body_map_to_the_validation_report(
    browser,  # noqa: F811 - the fixture imported above
    artifacts,  # noqa: F811
    tiny_model_path,
    tmp_path,
    viewport,
    lang,
):
    with kiosk_serve(tiny_model_path, tmp_path / "kiosk", settings=STATION) as base:
        screen = Screen(browser, viewport, artifacts)
        screen.name = f"walk-{viewport}-{lang}"
        page = screen.page
        try:
            # --- which spot, by touch, then the photo ---------------------------------------------------
            screen.goto(f"{base}/?lang={lang}")
            arrive(screen, r"/\?lang=", lang, "home")
            screen.testid("start-button").tap()
            arrive(screen, r"/details(\?|$)", lang, "details")
            for testid in (f"body-site-{SITE}", f"age-band-{BAND}", f"sex-{SEX}"):
                screen.testid(testid).tap()
                assert screen.testid(testid).locator("input").is_checked(), testid
            screen.testid("details-next").tap()
            arrive(screen, r"/screen\?", lang, "capture")
            wait_for_preview(screen)
            screen.testid("capture-button").tap()

            # --- the result: the scored photo and the whole disclaimer without scrolling ---------------
            arrive(screen, r"/screenings/[^/?]+$", lang, "result")
            risk = screen.testid("result-risk")
            risk.wait_for(state="visible")
            assert risk.get_attribute("data-risk") == FIRST[0]
            assert screen.testid("result-reason").count() == 0  # FIRST[1]: no reason beyond the score
            first_id = screen.testid("screening-id").inner_text().rsplit(" ", 1)[1]
            assert screen.testid("result-photo").is_visible()
            assert image_loaded(screen, "[data-testid=result-photo] img")
            assert page.evaluate("() => [window.scrollX, window.scrollY]") == [0, 0]
            for testid in ("result-photo", "disclaimer"):
                inside_viewport(screen, testid)
            assert words(screen, "disclaimer").startswith(tr(lang, "A referral aid, not a diagnosis."))
            screen.shot("result")

            # --- the slip: every field the receiving doctor needs --------------------------------------
            screen.testid("slip-link").tap()
            arrive(screen, r"/screenings/[^/]+/slip(\?|$)", lang, "slip")
            for testid in SLIP_FIELDS:
                assert screen.testid(testid).count() == 1, testid
            for testid in ("slip-station", "slip-body-site", "slip-see-by", "slip-code"):
                assert words(screen, testid) not in ("", "-"), testid
            assert image_loaded(screen, "[data-testid=slip-photo], [data-testid=slip-qr]")
            station = f"{STATION['KIOSK_STATION_NAME']} ({STATION['KIOSK_STATION_CODE']})"
            assert words(screen, "slip-station") == station
            assert words(screen, "slip-body-site") == tr(lang, BODY_REGION_NAMES[SITE])
            screened_on = date.fromisoformat(words(screen, "slip-date").split()[0])  # "YYYY-MM-DD HH:MM"
            see_by = (screened_on + timedelta(days=SEE_BY_DAYS)).isoformat()
            assert screen.testid("slip-see-by").get_attribute("data-date") == see_by
            assert words(screen, "slip-see-by") == tr(lang, "See a doctor by %(date)s") % {"date": see_by}
            code = words(screen, "slip-code")
            assert re.fullmatch(r"\d{3}-\d{3}-\d{3}", code) and codes.is_valid(code), code
            assert slip_qr_code(screen) == codes.normalise(code)
            screen.shot("slip", full_page=True)

            # --- the patient comes back: the code on the keypad, the same spot, both photos ------------
            screen.testid("home-link").tap()
            arrive(screen, r"/(\?|$)", lang, "home-again")
            screen.testid("followup-button").tap()
            arrive(screen, r"/followup$", lang, "code-entry")
            for digit in codes.normalise(code):
                screen.testid(f"code-key-{digit}").tap()
            assert words(screen, "code-display") == code
            screen.testid("code-submit").tap()
            arrive(screen, rf"/followup/{first_id}$", lang, "followup-capture")
            wait_for_preview(screen)
            assert image_loaded(screen, "[data-testid=followup-earlier-photo]")
            assert words(screen, "followup-body-site") == tr(lang, BODY_REGION_NAMES[SITE])
            screen.testid("followup-capture-button").tap()
            arrive(screen, r"/followup/[^/]+/compare$", lang, "followup-compare")  # seed 1: never a retake
            compare = screen.testid("followup-compare")
            compare.wait_for(state="visible")
            assert compare.locator("img").count() == 2
            page.wait_for_function(
                "() => Array.from(document.querySelectorAll('[data-testid=followup-compare] img'))"
                ".every(i => i.complete && i.naturalWidth > 0)"
            )
            assert screen.testid("result-risk").get_attribute("data-risk") == FOLLOWUP[0]
            screen.shot("followup-compare")

            # --- behind the PIN: what the doctor found ------------------------------------------------
            screen.testid("followup-done").tap()
            arrive(screen, r"/(\?|$)", lang, "home-after-followup")
            screen.testid("history-link").tap()
            arrive(screen, r"/pin\?next=", lang, "pin")
            enter_pin(screen, PIN)
            arrive(screen, r"/history(\?|$)", lang, "history")
            rows = page.locator("[data-testid=history-row]")
            assert rows.count() == 2  # the screening and its follow-up
            page.locator(f"[data-testid=history-row][data-code='{codes.normalise(code)}'] a").tap()
            arrive(screen, rf"/screenings/{first_id}$", lang, "result-unlocked")
            screen.testid("outcome-button").tap()
            arrive(screen, rf"/screenings/{first_id}/outcome$", lang, "outcome")
            screen.testid("outcome-seen-today").tap()
            arrive(screen, rf"/screenings/{first_id}/outcome\?seen=\d{{4}}-\d\d-\d\d$", lang, "outcome-today")
            seen_on = words(screen, "outcome-seen-on")
            screen.testid("outcome-melanoma").tap()
            arrive(screen, rf"/screenings/{first_id}/outcome/saved$", lang, "outcome-saved")
            saved = screen.testid("outcome-saved")
            assert saved.get_attribute("data-outcome") == "melanoma"
            assert words(screen, "outcome-saved") == "\u2714 " + tr(lang, "Biopsy: melanoma") + " \u00b7 " + (
                tr(lang, "seen on %(day)s") % {"day": seen_on}
            )
            screen.shot("outcome-saved")

            # --- the validation report counts it ------------------------------------------------------
            screen.testid("outcome-report-link").tap()
            arrive(screen, r"/settings/validation$", lang, "validation-report")
            screen.testid("validation-report").wait_for(state="visible")
            risks = (FIRST[0], FOLLOWUP[0])
            unclear = [risk == "refer" and reason == "lesion_unclear" for risk, reason in (FIRST, FOLLOWUP)]
            tally = {"referred": risks.count("refer"), "unclear": sum(unclear), "low": risks.count("low"), "retakes": 0}
            counts = tr(
                lang, "referred %(referred)s (%(unclear)s for an unclear photo), low %(low)s, retake %(retakes)s"
            )
            assert words(screen, "validation-screenings") == f"2 \u00b7 {counts % tally}"
            assert words(screen, "validation-confirmed") == "1"
            # Pending: referred and not confirmed, i.e. the follow-up (its outcome is not recorded).
            pending = int(FOLLOWUP[0] == "refer")
            assert words(screen, "validation-pending").split()[0] == str(pending)
            caught = int(FIRST[0] == "refer")
            sensitivity = screen.testid("validation-sensitivity")
            assert (sensitivity.get_attribute("data-successes"), sensitivity.get_attribute("data-total")) == (
                str(caught),
                "1",
            )
            proportion_shown(screen, "[data-testid=validation-sensitivity]", Proportion(caught, 1))
            proportion_shown(screen, "[data-testid=validation-specificity]", Proportion(0, 0))
            by_site = page.locator("[data-testid=validation-by-site] tbody tr")
            assert by_site.evaluate_all("rows => rows.map(r => r.dataset.group)") == ["upper_limb"]
            proportion_shown(
                screen, "[data-testid=validation-by-site] tr[data-group=upper_limb] td >> nth=0", Proportion(caught, 1)
            )
            by_skin = page.locator("[data-testid=validation-by-skin] tbody tr")
            assert by_skin.evaluate_all("rows => rows.map(r => r.dataset.group)") == ["not_recorded"]
            proportion_shown(
                screen,
                "[data-testid=validation-by-skin] tr[data-group=not_recorded] td >> nth=0",
                Proportion(caught, 1),
            )
            screen.shot("validation-report", full_page=True)
            forget_aborted_by_us(screen)
            screen.assert_clean()
        finally:
            screen.close()
