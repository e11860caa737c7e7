"""The physical panel on gpiozero's mock pins: button presses, holds, LEDs, no-GPIO fallbacks."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
from gpiozero.pins.mock import MockFactory

import kiosk.gpio
from kiosk.config import GpioSettings
from kiosk.gpio import Panel, open_panel
from kiosk.result import ScreeningResult
from tests.conftest import REPO_ROOT

BUTTON, READY, BUSY, REFER = 17, 22, 23, 24
# Margins are wide because a training run may share these two cores: a glitch
# only counts as a press if this thread stalls for longer than BOUNCE.
BOUNCE = 0.05  # the real default
PRESS = 0.15  # a short press: well over BOUNCE, well under HOLD
HOLD = 0.4
SETTLE = 0.3  # how long "nothing else happens" is watched for


class Recorder:
    """Counts callback calls and lets a test wait for one, with a bound."""

    def __init__(self) -> None:
        self.calls = 0
        self._event = threading.Event()

    def __call__(self) -> None:
        self.calls += 1
        self._event.set()

    def wait(self, timeout: float = 2.0) -> bool:
        return self._event.wait(timeout)


@pytest.fixture
def factory():
    f = MockFactory()
    yield f
    f.reset()


@pytest.fixture
def panel(factory, monkeypatch):
    monkeypatch.setattr(kiosk.gpio, "FAULT_BLINK", 0.05)  # blink fast: tests wait for a few blinks
    capture, shutdown = Recorder(), Recorder()
    p = Panel(
        button_pin=BUTTON,
        ready_led_pin=READY,
        busy_led_pin=BUSY,
        refer_led_pin=REFER,
        shutdown_hold_seconds=HOLD,
        bounce_time=BOUNCE,
        on_capture=capture,
        on_shutdown_request=shutdown,
        pin_factory=factory,
    )
    p.capture, p.shutdown = capture, shutdown  # for the tests' convenience
    yield p
    p.close()


def leds(factory) -> tuple[bool, bool, bool]:
    """(ready, busy, refer) as the mock pins see them."""
    return tuple(bool(factory.pin(n).state) for n in (READY, BUSY, REFER))


def chatter(pin, times: int = 3) -> None:
    """A worn contact: a few microsecond-long glitches."""
    for _ in range(times):
        pin.drive_low()
        pin.drive_high()


# --- the button ---------------------------------------------------------------


def test_short_press_with_contact_chatter_captures_exactly_once(panel, factory):
    pin = factory.pin(BUTTON)
    chatter(pin)
    pin.drive_low()  # the real press
    time.sleep(PRESS)
    pin.drive_high()  # released, then the contacts bounce on the way up
    pin.drive_low()
    pin.drive_high()
    assert panel.capture.wait()
    time.sleep(SETTLE)
    assert panel.capture.calls == 1
    assert panel.shutdown.calls == 0


def test_glitches_alone_take_no_photo(panel, factory):
    chatter(factory.pin(BUTTON), times=5)
    time.sleep(SETTLE)
    assert panel.capture.calls == 0


def test_two_presses_take_two_photos(panel, factory):
    pin = factory.pin(BUTTON)
    for _ in range(2):
        pin.drive_low()
        time.sleep(PRESS)
        pin.drive_high()
        time.sleep(PRESS)
    deadline = time.monotonic() + 2
    while panel.capture.calls < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert panel.capture.calls == 2


def test_a_release_glitch_during_the_press_is_not_a_second_press(panel, factory):
    pin = factory.pin(BUTTON)
    pin.drive_low()
    time.sleep(PRESS)
    pin.drive_high()  # a brief bounce in the middle of the press
    pin.drive_low()
    time.sleep(PRESS)
    pin.drive_high()
    assert panel.capture.wait()
    time.sleep(SETTLE)
    assert panel.capture.calls == 1


def test_hold_requests_shutdown_and_takes_no_photo(panel, factory):
    pin = factory.pin(BUTTON)
    pin.drive_low()
    assert panel.shutdown.wait(timeout=HOLD + 2)
    pin.drive_high()
    time.sleep(SETTLE)
    assert panel.shutdown.calls == 1
    assert panel.capture.calls == 0


class Notices:
    """Records on_hold_notice calls; lets a test wait for a given sequence, with a bound."""

    def __init__(self) -> None:
        self.seen: list[bool] = []
        self._changed = threading.Condition()

    def __call__(self, shown: bool) -> None:
        with self._changed:
            self.seen.append(shown)
            self._changed.notify_all()

    def wait_for(self, expected: list[bool], timeout: float = 3.0) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self.seen == expected, timeout)


@pytest.fixture
def noticing_panel(factory):
    capture, shutdown, notices = Recorder(), Recorder(), Notices()
    p = Panel(
        button_pin=BUTTON,
        ready_led_pin=READY,
        busy_led_pin=BUSY,
        refer_led_pin=REFER,
        shutdown_hold_seconds=1.0,
        hold_notice_seconds=0.3,
        bounce_time=BOUNCE,
        on_capture=capture,
        on_shutdown_request=shutdown,
        on_hold_notice=notices,
        pin_factory=factory,
    )
    p.capture, p.shutdown, p.notices = capture, shutdown, notices
    yield p
    p.close()


def test_a_short_press_shows_no_hold_notice(noticing_panel, factory):
    pin = factory.pin(BUTTON)
    pin.drive_low()
    time.sleep(PRESS)
    pin.drive_high()
    assert noticing_panel.capture.wait()
    time.sleep(0.5)
    assert noticing_panel.notices.seen == [] and noticing_panel.shutdown.calls == 0


def test_a_long_press_warns_first_and_letting_go_cancels_everything(noticing_panel, factory):
    pin = factory.pin(BUTTON)
    pin.drive_low()
    assert noticing_panel.notices.wait_for([True])
    chatter(pin)  # a worn contact during the hold does not end the press
    pin.drive_high()
    assert noticing_panel.notices.wait_for([True, False])
    time.sleep(1.0)  # past the shutdown hold: nothing else happens
    assert noticing_panel.shutdown.calls == 0 and noticing_panel.capture.calls == 0
    assert noticing_panel.notices.seen == [True, False]


def test_holding_on_after_the_notice_requests_shutdown_without_withdrawing_it(noticing_panel, factory):
    pin = factory.pin(BUTTON)
    pin.drive_low()
    assert noticing_panel.notices.wait_for([True])
    assert noticing_panel.shutdown.wait(timeout=3)
    pin.drive_high()
    time.sleep(SETTLE)
    assert noticing_panel.notices.seen == [True] and noticing_panel.capture.calls == 0


def test_hold_notice_must_come_before_the_shutdown(factory):
    with pytest.raises(ValueError, match="hold_notice_seconds"):
        Panel(
            button_pin=BUTTON,
            ready_led_pin=READY,
            busy_led_pin=BUSY,
            refer_led_pin=REFER,
            shutdown_hold_seconds=1.0,
            hold_notice_seconds=1.0,
            on_capture=Recorder(),
            on_shutdown_request=Recorder(),
            on_hold_notice=Notices(),
            pin_factory=factory,
        )


def test_a_press_after_a_hold_is_a_photo_again(panel, factory):
    pin = factory.pin(BUTTON)
    pin.drive_low()
    assert panel.shutdown.wait(timeout=HOLD + 2)
    pin.drive_high()
    time.sleep(SETTLE)
    pin.drive_low()
    time.sleep(PRESS)
    pin.drive_high()
    assert panel.capture.wait()
    assert panel.shutdown.calls == 1


def test_a_failing_callback_is_logged_and_the_button_keeps_working(factory):
    lines: list[str] = []
    calls = Recorder()

    def broken() -> None:
        calls()
        raise RuntimeError("station gone")

    with Panel(
        button_pin=BUTTON,
        ready_led_pin=READY,
        busy_led_pin=BUSY,
        refer_led_pin=REFER,
        shutdown_hold_seconds=HOLD,
        bounce_time=0,
        on_capture=broken,
        on_shutdown_request=lambda: None,
        pin_factory=factory,
        log=lines.append,
    ):
        pin = factory.pin(BUTTON)
        for _ in range(2):
            pin.drive_low()
            pin.drive_high()
        assert calls.calls == 2  # bounce_time=0: decided at once, in this thread
    assert lines == ["gpio: on_capture failed: RuntimeError: station gone"] * 2


# --- the LEDs -----------------------------------------------------------------


def test_leds_start_dark(panel, factory):
    assert leds(factory) == (False, False, False)


def test_led_states(panel, factory):
    panel.show_ready()
    assert leds(factory) == (True, False, False)
    panel.show_busy()
    assert leds(factory) == (False, True, False)
    panel.show_result("low")
    assert leds(factory) == (True, False, False)
    panel.show_busy()
    panel.show_result("refer")
    assert leds(factory) == (True, False, True)


def test_refer_stays_lit_until_the_next_patient(panel, factory):
    panel.show_result("refer")
    panel.show_ready()
    panel.show_ready()
    assert leds(factory) == (True, False, True)
    panel.show_busy()
    assert leds(factory) == (False, True, False)


def test_follow_maps_station_events(panel, factory):
    refer = ScreeningResult(status="ok", malignant_probability=0.9, risk="refer", threshold=0.5)
    low = ScreeningResult(status="ok", malignant_probability=0.1, risk="low", threshold=0.5)
    panel.follow("busy")
    assert leds(factory) == (False, True, False)
    panel.follow(refer)
    panel.follow("ready")
    assert leds(factory) == (True, False, True)
    panel.follow("busy")
    panel.follow(low)
    assert leds(factory) == (True, False, False)
    panel.follow("busy")
    panel.follow(ScreeningResult.retake("blurry"))
    assert leds(factory) == (True, False, False)
    panel.follow("something-new")  # unknown events change nothing
    assert leds(factory) == (True, False, False)


@dataclass(frozen=True)
class Event:
    """Shaped like kiosk.station.StationEvent (the panel duck-types it)."""

    kind: str
    busy: bool = False
    camera_status: str = "ok"
    screening: object = None


def refer_screening():
    return SimpleNamespace(result=ScreeningResult(status="ok", malignant_probability=0.9, risk="refer", threshold=0.5))


def wait_for_blinking(factory, pin: int, changes: int = 3, timeout: float = 2.0) -> bool:
    factory.pin(pin).clear_states()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(factory.pin(pin).states) > changes:
            return True
        time.sleep(0.05)
    return False


def test_follow_maps_station_events_objects(panel, factory):
    panel.follow(Event("busy", busy=True))
    assert leds(factory) == (False, True, False)
    panel.follow(Event("result", screening=refer_screening()))
    panel.follow(Event("ready"))
    assert leds(factory) == (True, False, True)
    panel.follow(Event("camera", camera_status="reconnecting: unplugged"))
    assert not panel.ready_led.is_lit and panel.refer_led.is_lit  # the last result still stands
    assert wait_for_blinking(factory, BUSY), "amber should blink while the camera is away"
    panel.follow(Event("camera", camera_status="ok"))  # it came back
    assert leds(factory) == (True, False, True)
    panel.follow(Event("result"))  # a result without a screening changes nothing
    panel.follow(Event("something-new"))
    assert leds(factory) == (True, False, True)


def test_follow_a_real_station_event(panel, factory):
    station = pytest.importorskip("kiosk.station")
    panel.follow(station.StationEvent(kind="busy", busy=True, camera_status="ok"))
    assert leds(factory) == (False, True, False)
    panel.follow(station.StationEvent(kind="ready", busy=False, camera_status="ok"))
    assert leds(factory) == (True, False, False)


def test_fault_blink_stops_on_the_next_state(panel, factory):
    panel.show_fault()
    assert wait_for_blinking(factory, BUSY)
    panel.show_busy()
    factory.pin(BUSY).clear_states()
    time.sleep(0.2)  # several blink half-periods
    assert len(factory.pin(BUSY).states) == 1 and factory.pin(BUSY).state


def test_close_turns_leds_off_and_later_events_are_ignored(factory):
    p = Panel(
        button_pin=BUTTON,
        ready_led_pin=READY,
        busy_led_pin=BUSY,
        refer_led_pin=REFER,
        on_capture=lambda: None,
        on_shutdown_request=lambda: None,
        pin_factory=factory,
    )
    p.show_result("refer")
    p.close()
    p.close()
    assert p.closed
    assert leds(factory) == (False, False, False)
    p.follow("busy")  # an event racing the shutdown: no exception
    p.show_result("refer")


# --- open_panel ---------------------------------------------------------------


def test_open_panel_disabled_returns_none_with_one_line():
    lines: list[str] = []
    panel = open_panel(
        GpioSettings(enabled=False), on_capture=lambda: None, on_shutdown_request=lambda: None, log=lines.append
    )
    assert panel is None
    assert lines == ["gpio: disabled in settings; the kiosk runs without the button and LEDs"]


def test_open_panel_with_pins_logs_them(factory):
    lines: list[str] = []
    panel = open_panel(
        GpioSettings(), on_capture=lambda: None, on_shutdown_request=lambda: None, log=lines.append, pin_factory=factory
    )
    assert panel is not None
    try:
        assert lines == ["gpio: button on BCM 17, LEDs ready/busy/refer on BCM 22/23/24 (MockFactory)"]
        assert panel.button.hold_time == 5.0
    finally:
        panel.close()


def test_open_panel_pins_in_use_returns_none(factory):
    lines: list[str] = []
    first = open_panel(
        GpioSettings(),
        on_capture=lambda: None,
        on_shutdown_request=lambda: None,
        log=lambda _: None,
        pin_factory=factory,
    )
    try:
        second = open_panel(
            GpioSettings(),
            on_capture=lambda: None,
            on_shutdown_request=lambda: None,
            log=lines.append,
            pin_factory=factory,
        )
        assert second is None
        assert len(lines) == 1 and lines[0].startswith("gpio: not available (GPIOPinInUse")
        assert first is not None and not first.closed  # the failed attempt released nothing of the first's
    finally:
        first.close()


NO_GPIO_SCRIPT = """
import kiosk.gpio
from kiosk.config import GpioSettings
from kiosk.gpio import open_panel
lines = []
panel = open_panel(GpioSettings(), on_capture=lambda: None, on_shutdown_request=lambda: None, log=lines.append)
print(repr(panel))
print(len(lines))
print(lines[0])
"""


def test_open_panel_on_a_machine_without_gpio_returns_none_with_one_line():
    # A pin factory name that does not exist makes gpiozero raise BadPinFactory,
    # exactly as on a laptop; a subprocess keeps gpiozero's global factory clean here.
    env = {**os.environ, "GPIOZERO_PIN_FACTORY": "no-such-factory"}
    proc = subprocess.run(
        [sys.executable, "-c", NO_GPIO_SCRIPT],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    assert out[:2] == ["None", "1"]
    assert out[2].startswith("gpio: not available (BadPinFactory")
    assert out[2].endswith("; the kiosk runs without the button and LEDs")
    assert proc.stderr == ""  # no warnings or tracebacks spilled around the one line
