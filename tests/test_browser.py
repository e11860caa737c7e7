"""The touchscreen page in a real browser: Debian's Chromium, headless, driven by Playwright.

``kiosk serve`` runs in a subprocess (the tiny model, the synthetic camera or a
replay folder of blank skin), and each test taps through the page at the two
screens the kiosk ships with, the 7-inch 800x480 and the 1280x720 Touch
Display 2: no console errors or failed requests, no sideways scrolling, touch
targets of at least 48x48 px, a live preview, capture to result, the three
languages, a retake with its reason, the slips for 58 mm, 80 mm and A6 paper,
and the PIN lockout. Screenshots (and the slips' PDFs) go to
``$KIOSK_TEST_ARTIFACTS`` (default: a temporary folder) for CI to keep.

Needs ``/usr/bin/chromium`` (``apt-get install chromium``; Playwright's own
browser download is never used) and the ``playwright`` Python package (the
``[test]`` extra); the module skips with the reason when either is missing.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiosk.pinhash import DEMO_PIN_HASH
from tests.conftest import REPO_ROOT

CHROMIUM = Path(os.environ.get("KIOSK_TEST_CHROMIUM", "/usr/bin/chromium"))
if not CHROMIUM.exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the [test] extra)")

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORTS = {"800x480": (800, 480), "1280x720": (1280, 720)}
PIN = "2580"
MIN_TARGET = 48  # px: the smallest touch target the page may have
# The widest line each paper can print (thermal heads print narrower than the roll), in CSS px (96/in).
PAPER_WIDTH_PX = {"58": 48 / 25.4 * 96, "80": 72 / 25.4 * 96, "a6": 105 / 25.4 * 96}
# The page each slip asks for (CSS @page size), in mm: the roll's width by the longest slip; A6.
PAPER_MM = {"58": (58, 360), "80": (80, 300), "a6": (105, 148)}  # 58 mm wraps most: a longer roll page
# Rolls print the slip as one page; A6 as two sheets: the patient's part, then the doctor's with its return part.
PAPER_PAGES = {"58": 1, "80": 1, "a6": 2}
RISK_WORDS = {"low": "Low risk", "refer": "Refer to a doctor"}

pytestmark = pytest.mark.skipif(os.name != "posix", reason="kiosk serve is stopped with SIGTERM")


# --- the kiosk and the browser ---------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def kiosk_serve(
    model: Path, folder: Path, *, camera: str = "synthetic", settings: dict[str, str] | None = None
) -> Iterator[str]:
    """``kiosk serve`` in a subprocess until the block ends; yields its base URL (``settings``: KIOSK_* overrides)."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KIOSK_", "NOTIFY_", "WATCHDOG_"))}
    env.update(KIOSK_GPIO_ENABLED="false", KIOSK_WEB_PIN=DEMO_PIN_HASH)  # the hash of PIN (2580)
    env.update(settings or {})
    cmd = [
        sys.executable,
        "-m",
        "kiosk",
        "--model",
        str(model),
        "serve",
        "--camera",
        camera,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data-dir",
        str(folder / "data"),
    ]
    with open(folder / "serve.log", "w") as log:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90  # a cold start on a busy 2-core machine
        while True:
            if proc.poll() is not None:
                pytest.fail(f"kiosk serve exited with {proc.returncode}: {(folder / 'serve.log').read_text()}")
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2) as response:  # noqa: S310 - local URL
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"kiosk serve did not answer /healthz: {(folder / 'serve.log').read_text()}")
            time.sleep(0.2)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert "Traceback" not in (folder / "serve.log").read_text()


@pytest.fixture(scope="module")
def kiosk_url(tiny_model_path, tmp_path_factory) -> Iterator[str]:
    """The kiosk with the synthetic camera (it draws a lesion for every photo)."""
    with kiosk_serve(tiny_model_path, tmp_path_factory.mktemp("kiosk-synthetic")) as base:
        yield base


@pytest.fixture(scope="module")
def blank_skin_url(tiny_model_path, tmp_path_factory) -> Iterator[str]:
    """The kiosk with a replay camera whose only photo is skin without any spot."""
    import cv2

    from kiosk.synthetic import draw_skin

    folder = tmp_path_factory.mktemp("kiosk-blank-skin")
    photos = folder / "photos"
    photos.mkdir()
    cv2.imwrite(
        str(photos / "blank_skin.png"), cv2.cvtColor(draw_skin(seed=3, width=640, height=480), cv2.COLOR_RGB2BGR)
    )
    with kiosk_serve(tiny_model_path, folder, camera=f"replay:{photos}") as base:
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    root = os.environ.get("KIOSK_TEST_ARTIFACTS")
    folder = Path(root) / "browser" if root else tmp_path_factory.mktemp("browser-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Screen:
    """One page at one viewport, with what went wrong in it collected as it happens."""

    def __init__(self, browser, viewport: str, artifacts: Path) -> None:
        width, height = VIEWPORTS[viewport]
        self.name = viewport
        self.artifacts = artifacts
        self.context = browser.new_context(
            viewport={"width": width, "height": height}, has_touch=True, device_scale_factor=1, locale="en-US"
        )
        self.context.set_default_timeout(20_000)
        self.page = self.context.new_page()
        self.problems: list[str] = []
        page = self.page
        page.on(
            "console",
            lambda msg: (
                self.problems.append(f"console {msg.type}: {msg.text} ({msg.location})")
                if msg.type == "error"
                else None
            ),
        )
        page.on("pageerror", lambda exc: self.problems.append(f"uncaught: {exc}"))
        page.on("requestfailed", lambda req: self.problems.append(f"failed: {req.method} {req.url} ({req.failure})"))
        page.on(
            "response",
            lambda resp: (
                self.problems.append(f"HTTP {resp.status}: {resp.request.method} {resp.url}")
                if resp.status >= 400
                else None
            ),
        )

    def goto(self, url: str) -> None:
        self.page.goto(url)
        self.page.wait_for_load_state("load")

    def shot(self, label: str, *, full_page: bool = False) -> None:
        self.page.screenshot(path=str(self.artifacts / f"{self.name}-{label}.png"), full_page=full_page)

    def testid(self, name: str):
        return self.page.locator(f"[data-testid={name}]")

    def assert_fits(self, label: str) -> None:
        """No sideways scrolling, and every visible control is a big enough touch target."""
        width = self.page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1], f"{self.name} {label}: scrolls sideways ({width[0]} px > {width[1]} px)"
        small = self.page.evaluate(
            """(minimum) => Array.from(document.querySelectorAll(
                'a[href], button, input:not([type=hidden]), select, textarea, [role=button]'))
            .filter(e => { const s = getComputedStyle(e), r = e.getBoundingClientRect();
                           return r.width > 0 && r.height > 0 && s.visibility !== 'hidden'; })
            .map(e => { const r = e.getBoundingClientRect();
                        return {what: e.outerHTML.slice(0, 80), width: Math.round(r.width),
                                height: Math.round(r.height)}; })
            .filter(t => t.width < minimum || t.height < minimum)""",
            MIN_TARGET,
        )
        assert small == [], f"{self.name} {label}: touch targets under {MIN_TARGET} px: {small}"

    def assert_clean(self) -> None:
        assert self.problems == [], f"{self.name}: " + "\n".join(self.problems)

    def close(self) -> None:
        self.context.close()


@pytest.fixture(params=list(VIEWPORTS))
def screen(request, browser, artifacts) -> Iterator[Screen]:
    s = Screen(browser, request.param, artifacts)
    yield s
    s.close()


def wait_for_preview(screen: Screen) -> None:
    """The live preview <img> has decoded at least one MJPEG frame."""
    screen.page.wait_for_function(
        "() => { const img = document.querySelector('[data-testid=preview]'); return img && img.naturalWidth > 0; }",
        timeout=20_000,
    )


def disclaimer_text(screen: Screen) -> str:
    box = screen.testid("disclaimer")
    box.wait_for(state="visible")
    return " ".join(box.inner_text().split())


# --- the tests ---------------------------------------------------------------------------


def test_home_capture_result_languages_and_slips(screen, kiosk_url):
    page = screen.page
    screen.goto(f"{kiosk_url}/?lang=en")
    screen.testid("start-button").wait_for(state="visible")
    screen.assert_fits("home")
    screen.shot("home")

    screen.testid("start-button").tap()
    page.wait_for_url("**/details")
    screen.testid("details-skip").tap()  # the details step is optional (tests/test_browser_visit.py walks it)
    page.wait_for_url("**/screen")
    wait_for_preview(screen)
    assert screen.testid("capture-button").is_visible()
    screen.assert_fits("capture")
    screen.shot("capture")

    screen.testid("capture-button").tap()
    page.wait_for_url(re.compile(r"/screenings/[^/]+$"))
    risk = screen.testid("result-risk")
    risk.wait_for(state="visible")
    level = risk.get_attribute("data-risk")
    assert level in RISK_WORDS, level
    assert " ".join(risk.inner_text().split()).endswith(RISK_WORDS[level])  # words, not only a colour or a number
    probability = screen.testid("result-probability")
    score = probability.inner_text()
    assert probability.is_visible() and re.search(r"^Model score \d\.\d+ \(not a chance of cancer\)", score), score
    assert screen.testid("slip-link").is_visible() and screen.testid("new-screening").is_visible()
    # The next action is on the first screen, without scrolling, even at 800x480.
    assert screen.testid("slip-link").bounding_box()["y"] + MIN_TARGET <= page.viewport_size["height"]
    english = disclaimer_text(screen)
    assert "not a diagnosis" in english
    screen.assert_fits("result")
    screen.shot("result")
    screen.shot("result-full", full_page=True)
    result_url = page.url.split("?")[0]

    # Languages: every switch changes the disclaimer; ?lang=en brings English back.
    seen = {"en": english}
    for code in ("fil", "war"):
        screen.testid("language-switch").locator(f"[data-testid=language-option-{code}]").tap()
        page.wait_for_url(re.compile(rf"lang={code}"))
        assert page.locator("html").get_attribute("lang") == code
        seen[code] = disclaimer_text(screen)
        assert seen[code] not in [text for lang, text in seen.items() if lang != code], seen
        assert screen.testid("result-risk").get_attribute("data-risk") == level
        screen.assert_fits(f"result-{code}")
        screen.shot(f"result-{code}")
    screen.goto(f"{result_url}?lang=en")
    assert disclaimer_text(screen) == english

    # The referral slips: they render, and in print every line stays within the paper's printable width
    # and the whole slip on one page, in every language (Filipino and Waray run longest).
    for paper, width in PAPER_WIDTH_PX.items():
        for lang in ("en", "fil", "war"):
            screen.goto(f"{result_url}/slip?paper={paper}&lang={lang}")
            slip = screen.testid("slip")
            slip.wait_for(state="visible")
            assert slip.get_attribute("data-paper") == paper
            assert slip.locator("[data-testid=result-risk]").get_attribute("data-risk") == level
            screen.assert_fits(f"slip-{paper}-{lang}")
            if lang == "en":
                screen.shot(f"slip-{paper}", full_page=True)
            page.emulate_media(media="print")
            try:
                assert not screen.testid("print-button").is_visible()  # the tools never print
                overflow = page.evaluate("""() => {
                    const doc = document.documentElement, slip = document.querySelector('[data-testid=slip]');
                    const box = slip.getBoundingClientRect();
                    const out = Array.from(slip.querySelectorAll('*')).map(e => [e, e.getBoundingClientRect()])
                        .filter(([e, r]) => r.width > 0 && (r.left < box.left - 0.5 || r.right > box.right + 0.5))
                        .map(([e, r]) => e.outerHTML.slice(0, 60));
                    return {page: doc.scrollWidth - window.innerWidth, slip: slip.scrollWidth - slip.clientWidth,
                            width: box.width, out};
                }""")
                assert overflow["page"] <= 0 and overflow["slip"] <= 0 and overflow["out"] == [], (
                    paper,
                    lang,
                    overflow,
                )
                assert overflow["width"] <= width + 0.5, (paper, lang, overflow)
                pdf = page.pdf(prefer_css_page_size=True, print_background=True)
            finally:
                page.emulate_media(media="screen")
            assert pdf.startswith(b"%PDF")
            (screen.artifacts / f"{screen.name}-slip-{paper}-{lang}.pdf").write_bytes(pdf)
            pages = len(re.findall(rb"/Type\s*/Page\b", pdf))
            assert pages == PAPER_PAGES[paper], f"the {paper} slip ({lang}) prints on {pages} pages"
            box = re.search(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", pdf)
            assert box, "no MediaBox in the PDF"
            size_mm = (round(float(box.group(1)) / 72 * 25.4), round(float(box.group(2)) / 72 * 25.4))
            assert size_mm == PAPER_MM[paper], f"the {paper} slip prints on {size_mm} mm paper"
    screen.assert_clean()


def test_a_photo_without_a_spot_asks_for_a_retake_with_the_reason(screen, blank_skin_url):
    from kiosk.reasons import message

    page = screen.page
    screen.goto(f"{blank_skin_url}/screen?lang=en")
    wait_for_preview(screen)
    screen.testid("capture-button").tap()
    page.wait_for_url(re.compile(r"/screenings/[^/]+$"))
    reason = screen.testid("retake-reason")
    reason.wait_for(state="visible")
    assert reason.get_attribute("data-reason") == "no_lesion"
    assert " ".join(reason.inner_text().split()) == message("no_lesion")
    assert screen.testid("result-risk").count() == 0  # a photo without a spot is never scored
    assert screen.testid("retake-button").is_visible()
    screen.assert_fits("retake")
    screen.shot("retake")
    screen.testid("retake-button").tap()
    page.wait_for_url("**/screen")
    wait_for_preview(screen)
    screen.assert_clean()


def enter_pin(screen: Screen, pin: str) -> None:
    """Tap ``pin`` on the on-screen pad (no keyboard on a kiosk) and submit it."""
    screen.testid("pin-clear").tap()
    for digit in pin:
        screen.testid(f"pin-digit-{digit}").tap()
    assert screen.testid("pin-display").inner_text() == "\u25cf" * len(pin)
    with screen.page.expect_navigation():
        screen.testid("pin-submit").tap()


def pin_message(screen: Screen) -> str:
    return " ".join(screen.testid("pin-message").inner_text().split())


def test_pin_pad_unlocks_then_five_wrong_pins_lock_it(screen, browser, tiny_model_path, tmp_path):
    # A kiosk of its own: the lockout belongs to the whole kiosk and lasts five minutes.
    with kiosk_serve(tiny_model_path, tmp_path / "kiosk") as base:
        screen.goto(f"{base}/history?lang=en")
        screen.page.wait_for_url(re.compile(r"/pin\?next="))
        screen.testid("pin-digit-5").wait_for(state="visible")
        screen.assert_fits("pin")
        screen.shot("pin")
        enter_pin(screen, PIN)
        screen.page.wait_for_url(re.compile(r"/history(\?|$)"))
        screen.assert_fits("history")
        screen.shot("history")
        screen.assert_clean()

        # Another browser session: five wrong PINs lock the pad, and then even the right one is refused.
        other = Screen(browser, screen.name, screen.artifacts)
        try:
            other.goto(f"{base}/pin?next=/history&lang=en")
            for attempt in range(1, 5):
                enter_pin(other, "1111")
                text = pin_message(other)
                assert text.startswith("Wrong PIN.") and f"{5 - attempt} tries left" in text, text
            enter_pin(other, "1111")
            assert pin_message(other).startswith("Too many wrong PINs."), pin_message(other)
            other.assert_fits("pin-locked")
            other.shot("pin-locked")
            enter_pin(other, PIN)
            assert other.page.url.split("?")[0].endswith("/pin")
            assert pin_message(other).startswith("Too many wrong PINs."), pin_message(other)
            other.goto(f"{base}/history")
            other.page.wait_for_url(re.compile(r"/pin\?next="))
            assert pin_message(other).startswith("Too many wrong PINs.")  # the pad says so before any try
            other.assert_clean()
        finally:
            other.close()


def test_the_power_button_notice_covers_every_page_and_goes_away(screen, kiosk_url):
    """The station's notice (the physical button held) as the script shows it; /api/state is stubbed
    here because only a held GPIO button sets it (tests/test_daemon.py holds a mock one)."""
    notice = {"value": "power_hold"}

    def state(route) -> None:
        route.fulfill(json={"busy": False, "camera": "ok", "camera_ok": True, "last": None, "notice": notice["value"]})

    screen.page.route("**/api/state", state)
    box = screen.testid("station-notice")
    for path, lang, words in (
        ("/", "fil", "Bitawan para kanselahin"),
        ("/pin?lang=war", "war", "Buhii para kanselahon"),
        ("/?lang=en", "en", "Let go to cancel"),
    ):
        screen.goto(kiosk_url + path + ("" if "lang=" in path else f"?lang={lang}"))
        box.wait_for(state="visible")
        assert words in box.inner_text()
    screen.shot("notice-power-hold")
    notice["value"] = "shutting_down"
    screen.page.wait_for_function(
        "() => document.querySelector('[data-testid=station-notice]').innerText.includes('turning off')"
    )
    notice["value"] = None
    box.wait_for(state="hidden")
    screen.assert_clean()
    # The overlay's styles must not leak onto the pages' own notices (here: the error page).
    screen.goto(kiosk_url + "/screenings/no-such-screening")
    assert screen.page.evaluate("() => getComputedStyle(document.querySelector('section.notice')).position") == "static"
