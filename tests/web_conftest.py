"""Fixtures and fakes for the station and web tests: a pytest plugin (tests/conftest.py loads it).

Tests get the fixtures (``rig``, ``records``, ``station``, ``clock``, ``settings``, ``app``,
``client``) by naming them, and import only the helpers (``Rig``, ``wait_until``, ``PIN``...).

The screener is always the real tiny int8 model (``screener`` from conftest);
only the camera is fake: :class:`Rig` is its switchboard, so a test can
unplug it, make it stall, or hold a capture open while a second tap arrives.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from html.parser import HTMLParser

import numpy as np
import pytest

from kiosk.camera import Camera
from kiosk.camera.base import unavailable
from kiosk.config import RecordsSettings, Settings, WebSettings
from kiosk.pinhash import hash_pin
from kiosk.records import RecordStore
from kiosk.station import Station
from kiosk.synthetic import random_lesion

PIN = "2580"
FACILITY = "Eastern Visayas Medical Center"
FAST_RETRY = {"retry_initial": 0.01, "retry_max": 0.05, "watchdog_interval": 0.02}


class Rig:
    """The fake camera's world: switches a test flips, counters it reads."""

    def __init__(self) -> None:
        self.fail_open = False
        self.fail_capture = False
        self.stall_frames = False
        self.hold_capture: threading.Event | None = None  # capture() waits on it when set
        self.capture_entered = threading.Event()
        self.opened = 0
        self.open_attempts = 0
        self.captures = 0
        self.closed = 0
        self.lock = threading.Lock()
        self.cameras: list[RigCamera] = []
        self.preview = random_lesion(1, width=160, height=120)

    def factory(self) -> Camera:
        with self.lock:
            self.open_attempts += 1
            if self.fail_open:
                raise unavailable("fake camera unplugged")
            self.opened += 1
        camera = RigCamera(self)
        self.cameras.append(camera)
        return camera


class RigCamera(Camera):
    name = "rig"

    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        self._closed = threading.Event()

    def capture(self) -> np.ndarray:
        rig = self.rig
        with rig.lock:
            rig.captures += 1
            seed = 4 + rig.captures
        rig.capture_entered.set()
        if rig.fail_capture:
            raise unavailable("fake camera stopped")
        if rig.hold_capture is not None:
            rig.hold_capture.wait(10)
        return random_lesion(seed, width=640, height=480)

    def frames(self) -> Iterator[np.ndarray]:
        while not self._closed.is_set():
            if self.rig.stall_frames:
                self._closed.wait(0.05)  # a driver stuck in read(); only close() frees it
                continue
            yield self.rig.preview
            time.sleep(0.01)

    def close(self) -> None:
        if not self._closed.is_set():
            self._closed.set()
            with self.rig.lock:
                self.rig.closed += 1


class FakeClock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def wait_until(condition: Callable[[], bool], *, timeout: float = 5.0, step: float = 0.01) -> bool:
    """Poll ``condition`` until true or ``timeout``; a bounded loop for threaded behaviour."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return bool(condition())


def pin_hash(pin: str) -> str:
    """The stored form of ``pin`` at a low scrypt cost (the parameters travel in the hash): quick tests."""
    return hash_pin(pin, n=2**10)


def make_settings(tmp_path, *, pin: str | None = PIN) -> Settings:
    return Settings(
        web=WebSettings(pin=pin_hash(pin) if pin else None, referral_facility=FACILITY, referral_within_days=14),
        records=RecordsSettings(data_dir=tmp_path / "data"),
    )


class _TextAt(HTMLParser):
    """The text inside the first element with a given data-testid (nested elements included)."""

    VOID = frozenset({"input", "img", "br", "meta", "link", "hr"})

    def __init__(self, testid: str) -> None:
        super().__init__()
        self.testid, self.depth, self.parts, self.found = testid, 0, [], False

    def handle_starttag(self, tag, attrs):
        if self.depth:
            self.depth += tag not in self.VOID
        elif not self.found and dict(attrs).get("data-testid") == self.testid:
            self.found, self.depth = True, 1

    def handle_endtag(self, tag):
        if self.depth:
            self.depth -= 1

    def handle_data(self, data):
        if self.depth:
            self.parts.append(data)


def text_of(html: str, testid: str) -> str:
    """The whitespace-collapsed text of the first element with ``data-testid=testid`` (asserts it exists)."""
    parser = _TextAt(testid)
    parser.feed(html)
    assert parser.found, f"no {testid}"
    return " ".join("".join(parser.parts).split())


def catalog(lang: str):
    """The compiled catalog the kiosk translates ``lang`` with (English: the msgids themselves)."""
    from babel.support import NullTranslations, Translations

    from kiosk.web.i18n import TRANSLATIONS_DIR

    if lang == "en":
        return NullTranslations()
    return Translations.load(str(TRANSLATIONS_DIR), [lang])


def tr(lang: str, msgid: str) -> str:
    """``msgid`` as the kiosk shows it in ``lang``."""
    return catalog(lang).gettext(msgid)


def csrf_of(client, path: str = "/") -> str:
    """The CSRF token a page hands its script (from the meta tag), for this client's session."""
    html = client.get(path).get_data(as_text=True)
    match = re.search(r'<meta name="csrf-token" content="([^"]+)">', html)
    assert match, "no csrf meta tag"
    return match.group(1)


@pytest.fixture()
def rig() -> Rig:
    return Rig()


@pytest.fixture()
def records(tmp_path) -> Iterator[RecordStore]:
    with RecordStore(tmp_path / "data") as store:
        yield store


@pytest.fixture()
def station(screener, rig, records) -> Iterator[Station]:
    with Station(
        screener=screener,
        camera_factory=rig.factory,
        records=records,
        stall_timeout=1.0,
        capture_timeout=5.0,
        **FAST_RETRY,
    ) as st:
        yield st


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture()
def settings(tmp_path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture()
def app(settings, station, clock):
    from kiosk.web import create_app

    return create_app(settings=settings, station=station, testing=True, clock=clock)


@pytest.fixture()
def client(app):
    return app.test_client()
