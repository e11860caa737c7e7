"""The physical controls: one big button and three LEDs on the GPIO header.

A short press of the button takes a photo; holding it for
``shutdown_hold_seconds`` asks for a clean shutdown instead (and takes no
photo). The LEDs say what the kiosk is doing: *ready* (green), *busy*
(amber; blinking when the camera is reconnecting) and *refer* (red). The refer LED stays lit after a "refer" result
until the next patient's photo starts, so the health worker can look away
from the screen and still see it.

Everything is optional: :func:`open_panel` returns ``None`` (and logs one
line) when GPIO is turned off or the machine has none, and the kiosk carries
on with the touchscreen alone.

>>> from gpiozero.pins.mock import MockFactory
>>> panel = Panel(button_pin=17, ready_led_pin=22, busy_led_pin=23, refer_led_pin=24,
...               on_capture=lambda: None, on_shutdown_request=lambda: None,
...               pin_factory=MockFactory())
>>> panel.follow("busy"); panel.busy_led.is_lit, panel.ready_led.is_lit
(True, False)
>>> panel.show_result("refer"); panel.refer_led.is_lit, panel.ready_led.is_lit
(True, True)
>>> panel.close()
"""

from __future__ import annotations

import sys
import threading
import time
import warnings
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from gpiozero import LED, Button

from .result import ScreeningResult

if TYPE_CHECKING:
    from .config import GpioSettings
    from .station.events import StationEvent

__all__ = ["Panel", "open_panel"]

Log = Callable[[str], None]

#: Default debounce: long enough for a worn push button's contact chatter,
#: short enough that a quick tap still counts as a press.
BOUNCE_TIME = 0.05
#: Half-period of the amber blink that says "no photo possible now".
FAULT_BLINK = 0.5


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class Panel:
    """The capture button and the ready / busy / refer LEDs.

    ``on_capture`` runs once when a short press is *released*; it does not
    run for a press that became a hold. ``on_shutdown_request`` runs once
    when the button has been held for ``shutdown_hold_seconds``. Both run in
    a background thread and should return quickly (hand the work to the
    station rather than doing it there).

    ``on_hold_notice(True)`` runs once a press has lasted
    ``hold_notice_seconds`` (default: 1 s, or half the shutdown hold if that
    is shorter), so the screen can warn "keep holding to turn off, let go to
    cancel" before anything happens; ``on_hold_notice(False)`` follows when
    that press ends without a shutdown request, and that press takes no
    photo (the screen said "let go to cancel"). A press that does become a
    shutdown request gets no ``False``: the kiosk is going down.

    Debouncing happens twice, on purpose: gpiozero's ``bounce_time`` asks the
    pin driver to filter contact chatter, and the panel itself ignores a
    press or release shorter than ``bounce_time``. The driver's filter
    differs between pin libraries (some drop edges and then miss a release),
    and a missed release must never look like a five-second hold.

    ``pin_factory``: a gpiozero pin factory (``MockFactory()`` in tests);
    ``None`` uses gpiozero's default, which raises ``BadPinFactory`` on a
    machine without GPIO. ``log`` receives one line when a callback fails.
    """

    def __init__(
        self,
        *,
        button_pin: int,
        ready_led_pin: int,
        busy_led_pin: int,
        refer_led_pin: int,
        shutdown_hold_seconds: float = 5.0,
        on_capture: Callable[[], None],
        on_shutdown_request: Callable[[], None],
        on_hold_notice: Callable[[bool], None] | None = None,
        hold_notice_seconds: float | None = None,
        bounce_time: float = BOUNCE_TIME,
        pin_factory: Any = None,
        log: Log | None = None,
    ) -> None:
        if bounce_time < 0:
            raise ValueError("bounce_time must be 0 or more")
        if shutdown_hold_seconds <= bounce_time:
            raise ValueError("shutdown_hold_seconds must be longer than bounce_time")
        if hold_notice_seconds is None:
            hold_notice_seconds = min(1.0, shutdown_hold_seconds / 2)
        if not bounce_time < hold_notice_seconds < shutdown_hold_seconds:
            raise ValueError("hold_notice_seconds must lie between bounce_time and shutdown_hold_seconds")
        self._on_hold_notice = on_hold_notice
        self._notice_after = hold_notice_seconds
        self._on_capture = on_capture
        self._on_shutdown_request = on_shutdown_request
        self._bounce_time = bounce_time
        self._hold_time = shutdown_hold_seconds
        self._log = log or _stderr
        self._lock = threading.Lock()  # guards the press state below and the LEDs
        self._closed = False
        # The press being debounced: when it started (monotonic), whether it
        # became a hold, and a counter that makes a pending release stale as
        # soon as another edge arrives.
        self._pressed_at: float | None = None
        self._released_at = 0.0
        self._held = False
        self._edge = 0
        self._pending: threading.Timer | None = None
        # Which press a notice timer belongs to (chatter within a press keeps it).
        self._press = 0
        self._noticed = False
        self._notice_timer: threading.Timer | None = None

        self._devices: list[Any] = []
        try:
            self.ready_led = self._add(LED(ready_led_pin, pin_factory=pin_factory))
            self.busy_led = self._add(LED(busy_led_pin, pin_factory=pin_factory))
            self.refer_led = self._add(LED(refer_led_pin, pin_factory=pin_factory))
            # Pull-up: the button connects the pin to ground, no resistor needed.
            self.button = self._add(
                Button(
                    button_pin,
                    pull_up=True,
                    bounce_time=bounce_time or None,
                    hold_time=shutdown_hold_seconds,
                    hold_repeat=False,
                    pin_factory=pin_factory,
                )
            )
        except BaseException:
            self._close_devices()  # never leave half the pins claimed
            raise
        self.button.when_pressed = self._pressed
        self.button.when_released = self._released
        self.button.when_held = self._held_down

    def _add(self, device: Any) -> Any:
        self._devices.append(device)
        return device

    # --- the button -------------------------------------------------------

    def _pressed(self) -> None:
        timer = None
        with self._lock:
            self._edge += 1  # a release within bounce_time was chatter: the press goes on
            if self._pressed_at is None and not self._closed:
                self._pressed_at = time.monotonic()
                self._held = False
                self._press += 1
                self._noticed = False
                if self._on_hold_notice is not None:
                    timer = self._notice_timer = threading.Timer(
                        self._notice_after, self._notice_due, args=(self._press,)
                    )
                    timer.daemon = True
        if timer is not None:
            timer.start()

    def _notice_due(self, press: int) -> None:
        with self._lock:
            if (
                self._closed
                or press != self._press
                or self._pressed_at is None
                or self._held
                or not self.button.is_pressed
            ):
                return  # released (or closed) in the meantime
            self._noticed = True
        notice = self._on_hold_notice
        assert notice is not None  # the notice timer runs only with a callback
        self._call(lambda: notice(True), "on_hold_notice")

    def _released(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._edge += 1
            edge = self._edge
            self._released_at = time.monotonic()
            if self._bounce_time == 0:
                timer = None
            else:
                # Decide once the line has stayed released for bounce_time.
                timer = self._pending = threading.Timer(self._bounce_time, self._settle, args=(edge,))
                timer.daemon = True
        if timer is None:
            self._settle(edge)
        else:
            timer.start()

    def _settle(self, edge: int) -> None:
        with self._lock:
            if edge != self._edge or self._closed or self._pressed_at is None:
                return  # pressed again since (chatter), or closed
            duration = self._released_at - self._pressed_at
            held, noticed = self._held, self._noticed
            self._pressed_at = None
            self._held = self._noticed = False
            if self._notice_timer is not None:
                self._notice_timer.cancel()
        if noticed and not held:
            # The screen said "let go to cancel": cancelled means nothing happens, no photo either.
            notice = self._on_hold_notice
            assert notice is not None  # noticed only with a callback
            self._call(lambda: notice(False), "on_hold_notice")
            return
        if held or duration >= self._hold_time:
            return  # a long hold is a shutdown request, never a photo
        if duration < self._bounce_time:
            return  # a glitch, not a press
        self._call(self._on_capture, "on_capture")

    def _held_down(self) -> None:
        with self._lock:
            # gpiozero's hold timer can fire after a release it missed; read
            # the pin itself before asking to shut the kiosk down.
            if self._closed or self._held or self._pressed_at is None or not self.button.is_pressed:
                return
            self._held = True
        self._call(self._on_shutdown_request, "on_shutdown_request")

    def _call(self, callback: Callable[[], None], name: str) -> None:
        try:
            callback()
        except Exception as exc:  # noqa: BLE001 - a failing callback must not kill the button thread
            self._log(f"gpio: {name} failed: {type(exc).__name__}: {exc}")

    # --- the LEDs ---------------------------------------------------------

    def _set(self, *, ready: bool, busy: bool, refer: bool | None) -> None:
        """Set the LEDs together; ``refer=None`` leaves the refer LED as it is."""
        with self._lock:
            if self._closed:
                return  # events can still arrive while the kiosk shuts down
            self.ready_led.value = ready
            self.busy_led.value = busy
            if refer is not None:
                self.refer_led.value = refer

    def show_ready(self) -> None:
        """Green: press the button for a photo. A lit refer LED stays lit."""
        self._set(ready=True, busy=False, refer=None)

    def show_busy(self) -> None:
        """Amber: a photo is being taken or screened; a new patient, so refer goes out."""
        self._set(ready=False, busy=True, refer=False)

    def show_result(self, risk: str | None) -> None:
        """Red for a "refer" result, kept until the next :meth:`show_busy`.

        Any other risk ("low", or ``None`` for a retake or an error) turns the
        refer LED off. The kiosk is ready for the next photo either way.
        """
        self._set(ready=True, busy=False, refer=risk == "refer")

    def show_fault(self) -> None:
        """Amber blinking: no photo can be taken now (the camera is reconnecting).

        The screen says why. A lit refer LED stays lit: the last result still stands.
        """
        with self._lock:
            if self._closed:
                return
            self.ready_led.off()
            self.busy_led.blink(on_time=FAULT_BLINK, off_time=FAULT_BLINK)

    def follow(self, event: StationEvent | ScreeningResult | str) -> None:
        """Show a station event on the LEDs; pass it to ``station.subscribe(panel.follow)``.

        Takes a :class:`kiosk.station.events.StationEvent` (``kind`` "busy",
        "result", "ready" or "camera"), or simply ``"ready"``, ``"busy"`` or a
        :class:`ScreeningResult`. Events this panel has no light for are
        ignored, so a newer station cannot break an older panel.
        """
        kind = getattr(event, "kind", None)
        if kind is not None:  # a StationEvent (duck-typed: the station must not need gpiozero, nor we it)
            if kind == "result":
                screening = getattr(event, "screening", None)
                if screening is not None:
                    self.follow(screening.result)
            elif kind == "camera" and getattr(event, "camera_status", "ok") != "ok":
                self.show_fault()
            elif kind == "busy" or (kind == "camera" and getattr(event, "busy", False)):
                self.show_busy()
            elif kind in ("ready", "camera"):
                self.show_ready()
        elif isinstance(event, ScreeningResult):
            self.show_result(event.risk if event.status == "ok" else None)
        elif event == "ready":
            self.show_ready()
        elif event == "busy":
            self.show_busy()

    # --- lifetime ---------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Turn the LEDs off and release the pins; safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._edge += 1
            for timer in (self._pending, self._notice_timer):
                if timer is not None:
                    timer.cancel()
        self._close_devices()

    def _close_devices(self) -> None:
        for device in reversed(self._devices):
            try:
                if isinstance(device, LED):
                    device.off()
                device.close()
            except Exception:  # noqa: BLE001, S110 - closing is best effort
                pass
        self._devices.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        if self._closed:
            return "<Panel closed>"
        return (
            f"<Panel button={self.button.pin} ready={self.ready_led.pin} "
            f"busy={self.busy_led.pin} refer={self.refer_led.pin}>"
        )


def open_panel(
    settings: GpioSettings,
    *,
    on_capture: Callable[[], None],
    on_shutdown_request: Callable[[], None],
    on_hold_notice: Callable[[bool], None] | None = None,
    log: Log,
    pin_factory: Any = None,
) -> Panel | None:
    """The panel described by ``settings``, or ``None`` when there is no GPIO to use.

    Returns ``None`` and logs one line when ``settings.enabled`` is false or
    the pins cannot be opened (no GPIO on this machine, no permission, pins
    taken by another program). It never raises for a hardware problem: the
    kiosk works without the button and LEDs. On success it logs one line
    naming the pins.

    >>> from kiosk.config import GpioSettings
    >>> open_panel(GpioSettings(enabled=False), on_capture=print,
    ...            on_shutdown_request=print, log=print)
    gpio: disabled in settings; the kiosk runs without the button and LEDs
    """
    without = "the kiosk runs without the button and LEDs"
    if not settings.enabled:
        log(f"gpio: disabled in settings; {without}")
        return None
    # gpiozero warns once per pin library it tries before giving up; fold
    # those into our one line instead of letting them spill onto stderr.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            panel = Panel(
                button_pin=settings.button_pin,
                ready_led_pin=settings.ready_led_pin,
                busy_led_pin=settings.busy_led_pin,
                refer_led_pin=settings.refer_led_pin,
                shutdown_hold_seconds=settings.shutdown_hold_seconds,
                on_capture=on_capture,
                on_shutdown_request=on_shutdown_request,
                on_hold_notice=on_hold_notice,
                pin_factory=pin_factory,
                log=log,
            )
        except Exception as exc:  # noqa: BLE001 - BadPinFactory, lgpio/OSError, pins in use...: all mean "no GPIO"
            tried = "; ".join(str(w.message) for w in caught)
            detail = f"{type(exc).__name__}: {exc}" + (f" ({tried})" if tried else "")
            log(f"gpio: not available ({' '.join(detail.split())}); {without}")
            return None
    factory = type(panel.button.pin_factory).__name__
    log(
        f"gpio: button on BCM {settings.button_pin}, LEDs ready/busy/refer on BCM "
        f"{settings.ready_led_pin}/{settings.busy_led_pin}/{settings.refer_led_pin} ({factory})"
    )
    return panel
