"""A signed model update applied through the settings page in a real browser, without a restart.

``kiosk serve`` runs in a subprocess on the shipped-style models folder (model
A, plain files); a folder under ``<tmp>/media/pi/STICK`` stands in for the USB
stick and holds model B signed as version 1 (``updates.search_paths`` points
at ``<tmp>/media/*/*``). Chromium (Debian's, headless, driven by Playwright)
unlocks the settings page on the PIN pad, taps *Install this model*, and the
settings page and ``/healthz`` name B's sha256 at once; *Go back to the
earlier model* brings A back, again without a restart. The 7-inch 800x480
screen: no console errors or failed requests, no sideways scrolling, touch
targets of at least 48x48 px.

Needs ``/usr/bin/chromium`` and the ``playwright`` package, like tests/test_browser.py.
"""

from __future__ import annotations

import contextlib
import json
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
from tests.updates_conftest import NAME, sha, shipped_models, write_variant

CHROMIUM = Path(os.environ.get("KIOSK_TEST_CHROMIUM", "/usr/bin/chromium"))
if not CHROMIUM.exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the [test] extra)")
pytest.importorskip("cryptography")

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PIN = "2580"
MIN_TARGET = 48

pytestmark = pytest.mark.skipif(os.name != "posix", reason="kiosk serve is stopped with SIGTERM")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - a local URL
        return json.loads(response.read())


@contextlib.contextmanager
def kiosk_serve(model: Path, folder: Path, *, env: dict[str, str]) -> Iterator[str]:
    """``kiosk serve`` (synthetic camera) in a subprocess until the block ends; yields its base URL."""
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("KIOSK_", "NOTIFY_", "WATCHDOG_"))}
    environ.update(KIOSK_GPIO_ENABLED="false", KIOSK_WEB_PIN=DEMO_PIN_HASH, **env)
    cmd = [
        sys.executable,
        "-m",
        "kiosk",
        "--model",
        str(model),
        "serve",
        "--camera",
        "synthetic",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data-dir",
        str(folder / "data"),
    ]
    log_path = folder / "serve.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=environ, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90  # a cold start on a busy 2-core machine
        while True:
            if proc.poll() is not None:
                pytest.fail(f"kiosk serve exited with {proc.returncode}: {log_path.read_text()}")
            with contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError):
                if get_json(f"{base}/healthz")["status"] == "ok":
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"kiosk serve did not answer /healthz: {log_path.read_text()}")
            time.sleep(0.2)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert "Traceback" not in log_path.read_text()


@pytest.fixture()
def kiosk_with_a_stick(tiny_model_path, tmp_path) -> Iterator[dict]:
    from kiosk import updates

    private, public = updates.keygen(tmp_path / "keys")
    a = write_variant(tiny_model_path, tmp_path / "src-a", b"A")
    b = write_variant(tiny_model_path, tmp_path / "src-b", b"B")
    models = shipped_models(tmp_path / "models", a)
    stick = tmp_path / "media" / "pi" / "STICK"
    stick.mkdir(parents=True)
    updates.sign_model(b, key=private, out=stick / "tiny-b.kioskupdate", version=1)
    env = {"KIOSK_UPDATES_PUBLIC_KEY": str(public), "KIOSK_UPDATES_SEARCH_PATHS": f"{tmp_path}/media/*/*"}
    with kiosk_serve(models / f"{NAME}.tflite", tmp_path, env=env) as base:
        yield {"base": base, "a_sha": sha(a.read_bytes()), "b_sha": sha(b.read_bytes()), "tmp": tmp_path}


@pytest.fixture()
def page(tmp_path) -> Iterator[object]:
    problems: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(
            viewport={"width": 800, "height": 480}, has_touch=True, device_scale_factor=1, locale="en-US"
        )
        context.set_default_timeout(30_000)
        pg = context.new_page()
        pg.on(
            "console", lambda msg: problems.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None
        )
        pg.on("pageerror", lambda exc: problems.append(f"uncaught: {exc}"))
        pg.on("requestfailed", lambda req: problems.append(f"failed: {req.method} {req.url} ({req.failure})"))
        pg.on(
            "response",
            lambda resp: (
                problems.append(f"HTTP {resp.status}: {resp.request.method} {resp.url}") if resp.status >= 400 else None
            ),
        )
        pg.problems = problems  # type: ignore[attr-defined]
        pg.artifacts = tmp_path / "artifacts"  # type: ignore[attr-defined]
        yield pg
        context.close()
        browser.close()


def by_testid(page, name: str):
    return page.locator(f"[data-testid={name}]")


def text(page, name: str) -> str:
    return " ".join(by_testid(page, name).first.inner_text().split())


def shot(page, label: str) -> None:
    """A screenshot for CI to keep ($KIOSK_TEST_ARTIFACTS/browser), or into the test's own folder."""
    root = os.environ.get("KIOSK_TEST_ARTIFACTS")
    folder = Path(root) / "browser" if root else Path(page.artifacts)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"800x480-update-{label}.png"), full_page=True)


def assert_fits(page, label: str) -> None:
    """No sideways scrolling, and every visible control is a big enough touch target."""
    width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"{label}: scrolls sideways ({width[0]} px > {width[1]} px)"
    small = page.evaluate(
        """(minimum) => Array.from(document.querySelectorAll(
            'a[href], button, input:not([type=hidden]), select, textarea, [role=button]'))
        .filter(e => { const s = getComputedStyle(e), r = e.getBoundingClientRect();
                       return r.width > 0 && r.height > 0 && s.visibility !== 'hidden'; })
        .map(e => { const r = e.getBoundingClientRect();
                    return {what: e.outerHTML.slice(0, 80),
                            width: Math.round(r.width), height: Math.round(r.height)}; })
        .filter(t => t.width < minimum || t.height < minimum)""",
        MIN_TARGET,
    )
    assert small == [], f"{label}: touch targets under {MIN_TARGET} px: {small}"


def test_a_signed_update_from_the_stick_is_applied_and_rolled_back_on_the_settings_page(kiosk_with_a_stick, page):
    kiosk = kiosk_with_a_stick
    base, a_sha, b_sha = kiosk["base"], kiosk["a_sha"], kiosk["b_sha"]
    assert get_json(f"{base}/healthz")["model_sha256"] == a_sha

    page.goto(f"{base}/settings?lang=en")
    page.wait_for_url(re.compile(r"/pin\?next="))
    by_testid(page, "pin-clear").tap()
    for digit in PIN:
        by_testid(page, f"pin-digit-{digit}").tap()
    with page.expect_navigation():
        by_testid(page, "pin-submit").tap()
    page.wait_for_url(re.compile(r"/settings$"))
    assert text(page, "settings-model-sha256") == a_sha
    offer = text(page, "update-offer")
    assert "tiny-B" in offer and "version 1" in offer and "Self-test on this kiosk: passed" in offer
    assert re.search(r"AUC 0\.\d{3}", offer)
    assert_fits(page, "settings with an update")
    shot(page, "offered")

    with page.expect_navigation():
        by_testid(page, "update-apply").tap()  # one tap
    page.wait_for_url(re.compile(r"/settings$"))
    assert text(page, "update-outcome") == f"The new model is in use (tiny-B, {b_sha[:12]})."
    assert text(page, "settings-model-sha256") == b_sha
    assert get_json(f"{base}/healthz")["model_sha256"] == b_sha  # the same process: no restart
    assert "This model is already the one in use" in text(page, "update-offer-refusal")
    assert a_sha[:16] in text(page, "update-previous")
    assert_fits(page, "settings after the update")
    shot(page, "installed")

    with page.expect_navigation():
        by_testid(page, "update-rollback").tap()
    page.wait_for_url(re.compile(r"/settings$"))
    assert text(page, "update-outcome") == f"The earlier model is back in use (tiny-A, {a_sha[:12]})."
    assert text(page, "settings-model-sha256") == a_sha
    assert get_json(f"{base}/healthz")["model_sha256"] == a_sha
    assert page.problems == []  # type: ignore[attr-defined]
    log = [json.loads(line) for line in (kiosk["tmp"] / "data" / "updates.jsonl").read_text().splitlines()]
    assert [(line["action"], line["outcome"]) for line in log] == [("install", "ok"), ("rollback", "ok")]
