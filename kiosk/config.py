"""Kiosk settings: one typed, validated object from a TOML file and the environment.

Every setting lives in a frozen dataclass, one per ``[section]`` of the TOML
file. The annotations are the schema: a small generic checker reads them (and
each field's metadata for ranges and forms), so adding a setting means adding
one field, not another ``if`` branch. Problems raise
:class:`~kiosk.reasons.ConfigError` with ``key="section.key"`` and a one-line
message a health-centre technician can act on.

Precedence, lowest first: dataclass defaults, the TOML file (``path``, else
``$KIOSK_CONFIG``), then ``KIOSK_<SECTION>_<KEY>`` environment variables.

Relative paths (``model.path``, ``records.data_dir``) are resolved against
:data:`PROJECT_ROOT`, the directory that holds the ``kiosk`` package, so the
service finds them whatever its working directory; ``~`` is expanded. When the
package is installed into site-packages rather than run from a checkout, give
absolute paths.

>>> s = load_settings(env={"KIOSK_MODEL_THREADS": "2"})
>>> s.model.threads, s.web.port, s.web.pin
(2, 8080, None)
>>> load_settings(env={"KIOSK_MODEL_THRAEDS": "2"})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
kiosk.reasons.ConfigError: Setting model.thraeds is invalid: unknown key (did you mean model.threads?); set by ...
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import os
import re
import sys
import textwrap
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from .pinhash import DEMO_PIN_HASH, PIN_RE, parse_pin_hash
from .reasons import ConfigError

__all__ = [
    "PROJECT_ROOT",
    "CameraSettings",
    "ClockSettings",
    "GpioSettings",
    "ModelSettings",
    "RecordsSettings",
    "Settings",
    "UpdatesSettings",
    "StationSettings",
    "VisionSettings",
    "WebSettings",
    "dump_settings",
    "example_toml",
    "load_settings",
    "settings_from_tables",
]

#: The directory containing the ``kiosk`` package (the repository root in a
#: checkout); relative paths in settings are resolved against it.
PROJECT_ROOT: Path = Path(__file__).resolve().parent.parent

#: Names the TOML file when ``load_settings()`` gets no ``path``.
CONFIG_ENV_VAR = "KIOSK_CONFIG"
ENV_PREFIX = "KIOSK_"

Language = Literal["en", "fil", "war"]

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _setting(
    default: Any,
    help: str,  # noqa: A002 - reads naturally at the call sites
    *,
    ge: float | None = None,
    le: float | None = None,
    gt: float | None = None,
    check: Callable[[Any], bool] | None = None,
    expect: str | None = None,
    example: Any = None,
) -> Any:
    """A dataclass field carrying its help text and constraints as metadata.

    ``check``/``expect``: an extra predicate and the words for what it wants.
    ``example``: shown in the example file for settings whose default is unset.
    """
    meta = {"help": help, "ge": ge, "le": le, "gt": gt, "check": check, "expect": expect, "example": example}
    return field(default=default, metadata=meta)


_SOURCE_RE = re.compile(r"(auto|picamera2|synthetic|opencv:[0-9]+|opencv:/.+|replay:.+)")


@dataclass(frozen=True, kw_only=True)
class _Section:
    """Base of every section: checks and normalises each field on construction."""

    SECTION: ClassVar[str] = ""

    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for f in dataclasses.fields(self):
            value = _check_value(f"{self.SECTION}.{f.name}", f, hints[f.name], getattr(self, f.name))
            object.__setattr__(self, f.name, value)  # frozen: normalised once, here
        self._validate()

    def _validate(self) -> None:
        """Cross-field checks; override in sections that need them."""


@dataclass(frozen=True, kw_only=True)
class StationSettings(_Section):
    """Which health station this kiosk is: written per centre by ``deploy/provision-sd --site``."""

    SECTION: ClassVar[str] = "station"

    name: str | None = _setting(
        None,
        "The health station's name, printed on every slip and shown on the settings page.",
        check=lambda v: 0 < len(v.strip()) <= 80 and v.isprintable(),
        expect="1-80 printable characters",
        example="Barangay San Jose Health Station",
    )
    code: str | None = _setting(
        None,
        "The station's short code (capital letters, digits and dashes): with the slip code it makes every "
        "record's identifier unique across stations (FHIR exports, the RHU console).",
        check=lambda v: re.fullmatch(r"[A-Z0-9][A-Z0-9-]{1,31}", v) is not None,
        expect="2-32 capital letters, digits or dashes, e.g. PH-LEY-0001",
        example="PH-LEY-0001",
    )
    time_zone: str = _setting(
        "Asia/Manila",
        "IANA time zone in which slips, history and summaries show dates and times (records stay in UTC).",
        check=lambda v: _is_time_zone(v),
        expect="an IANA time zone name such as Asia/Manila",
    )


@dataclass(frozen=True, kw_only=True)
class ClockSettings(_Section):
    """How the settings page sets a wrong clock by hand (kiosk/clock.py)."""

    SECTION: ClassVar[str] = "clock"

    timedatectl: str = _setting(
        "timedatectl",
        "The program that sets the clock, called as PROGRAM set-ntp false, then PROGRAM set-time "
        "'YYYY-MM-DD HH:MM:SS UTC': systemd's timedatectl (allowed for the kiosk user by install.sh's "
        "polkit rule). Tests give a stand-in.",
        check=lambda v: 0 < len(v) <= 200 and v.isprintable(),
        expect="a program name or absolute path",
    )


def _is_time_zone(name: str) -> bool:
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


@dataclass(frozen=True, kw_only=True)
class ModelSettings(_Section):
    SECTION: ClassVar[str] = "model"

    path: Path = _setting(
        Path("models/melanoma_int8.tflite"),
        "The int8 TFLite model. A relative path is taken from the project root.",
    )
    threads: int = _setting(1, "CPU threads for inference (1-8; a Pi 4 has 4 cores).", ge=1, le=8)


@dataclass(frozen=True, kw_only=True)
class CameraSettings(_Section):
    SECTION: ClassVar[str] = "camera"

    source: str = _setting(
        "auto",
        "Where photos come from: auto, picamera2, synthetic, opencv:N (device index), "
        "opencv:/path (device or video file) or replay:DIR (a folder of images).",
        check=lambda v: _SOURCE_RE.fullmatch(v) is not None,
        expect="auto, picamera2, synthetic, opencv:N, opencv:/path or replay:DIR",
    )
    still_width: int = _setting(2028, "Still capture width in pixels.", ge=16, le=8192)
    still_height: int = _setting(1520, "Still capture height in pixels.", ge=16, le=8192)
    preview_width: int = _setting(640, "Live preview width in pixels.", ge=16, le=8192)
    preview_height: int = _setting(480, "Live preview height in pixels.", ge=16, le=8192)
    metering: str = _setting(
        "centre",
        "How the Pi camera's auto exposure meters the frame: centre (weighted), spot or matrix.",
        check=lambda v: v in ("centre", "spot", "matrix"),
        expect="centre, spot or matrix",
    )
    exposure_value: float = _setting(
        0.0, "Pi camera exposure compensation in stops (negative: darker photos).", ge=-2.0, le=2.0
    )
    protect_highlights: bool = _setting(
        True,
        "Pi camera auto exposure keeps the brightest skin from clipping (the dermatoscope's LEDs); "
        "false: libcamera's normal mode.",
    )
    mm_per_pixel: float | None = _setting(
        None,
        "Millimetres per pixel at the dermatoscope lens, from calibration; "
        "unset = lesion diameter is not reported in mm.",
        gt=0,
        example=0.02,
    )


@dataclass(frozen=True, kw_only=True)
class VisionSettings(_Section):
    SECTION: ClassVar[str] = "vision"

    min_side: int = _setting(128, "Photos with a shorter side (pixels) are rejected as too small.", ge=16, le=4096)


@dataclass(frozen=True, kw_only=True)
class RecordsSettings(_Section):
    SECTION: ClassVar[str] = "records"

    data_dir: Path = _setting(
        Path("~/.local/share/melanoma-kiosk"),
        "Where screening records and photos are kept (~ is expanded).",
    )
    retention_days: int = _setting(365, "Delete records older than this many days; 0 = keep forever.", ge=0)
    photo_retention_days: int = _setting(
        180, "Photos older than this many days are removed when space runs low (records stay); 0 = keep them.", ge=0
    )
    keep_images: bool = _setting(True, "Keep each photo with its record.")


@dataclass(frozen=True, kw_only=True)
class WebSettings(_Section):
    SECTION: ClassVar[str] = "web"

    host: str = _setting(
        "127.0.0.1",
        "Address the web page listens on; 0.0.0.0 exposes it to the local network.",
        check=lambda v: not any(c.isspace() for c in v),
        expect="a host name or IP address without spaces",
    )
    port: int = _setting(8080, "TCP port of the web page.", ge=1, le=65535)
    language: Language = _setting("en", "Language of the page and slip: en, fil (Filipino) or war (Waray).")
    referral_facility: str | None = _setting(
        None,
        "Where a 'refer' result sends the patient (printed on the slip); unset = 'the nearest rural health unit "
        "or provincial hospital dermatology clinic', in the page's language.",
        example="Eastern Visayas Medical Center",
    )
    referral_within_days: int = _setting(14, "How soon a referred patient should be seen, in days.", ge=1, le=365)
    pin: str | None = _setting(
        None,
        "The scrypt hash of the PIN (4-8 digits) that unlocks the screening history and settings, as written by "
        "'kiosk set-pin' (never the PIN itself); unset = history stays locked. The example is the public demo "
        "PIN 2580: never use it on a real kiosk.",
        example=DEMO_PIN_HASH,
    )
    allowed_hosts: str | None = _setting(
        None,
        "More host names or addresses the page may be opened by (the Host header), separated by spaces or commas, "
        "e.g. 'kiosk.local 192.168.1.20'. Always allowed: web.host, 127.0.0.1, localhost, [::1] and this "
        "machine's hostname; with web.host 0.0.0.0 any IP address too. Others get 400 (against DNS rebinding).",
        check=lambda v: all(_HOST_RE.fullmatch(h) for h in _split_hosts(v)),
        expect="host names or IP addresses separated by spaces or commas",
        example="kiosk.local",
    )

    def _validate(self) -> None:
        if self.pin is None:
            return
        # The value itself is never echoed: it may be a PIN.
        if PIN_RE.fullmatch(self.pin.strip()):
            raise _invalid(
                "web.pin",
                "a plain PIN is not accepted; store its hash: run 'kiosk set-pin' "
                "(or put the line from 'kiosk set-pin --print' under [web])",
            )
        try:
            parse_pin_hash(self.pin)
        except ValueError as exc:
            raise _invalid("web.pin", f"{exc}; run 'kiosk set-pin' to set the PIN") from None

    @property
    def allowed_host_names(self) -> tuple[str, ...]:
        """``allowed_hosts`` as lower-case names (brackets kept on IPv6 addresses)."""
        return tuple(h.lower() for h in _split_hosts(self.allowed_hosts or ""))


def _split_hosts(value: str) -> list[str]:
    return [h for h in re.split(r"[\s,]+", value) if h]


_HOST_RE: re.Pattern[str] = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\]")


@dataclass(frozen=True, kw_only=True)
class GpioSettings(_Section):
    SECTION: ClassVar[str] = "gpio"

    enabled: bool = _setting(True, "Use the physical button and LEDs (turn off on a desktop).")
    button_pin: int = _setting(17, "BCM pin of the capture button.", ge=0, le=27)
    ready_led_pin: int = _setting(22, "BCM pin of the 'ready' LED.", ge=0, le=27)
    busy_led_pin: int = _setting(23, "BCM pin of the 'busy' LED.", ge=0, le=27)
    refer_led_pin: int = _setting(24, "BCM pin of the 'refer' LED.", ge=0, le=27)
    shutdown_hold_seconds: float = _setting(
        5.0, "Holding the button this long shuts the Pi down cleanly (the screen warns after 1 s).", ge=2, le=60
    )

    def _validate(self) -> None:
        # Two roles on one pin would make the button light an LED or vice versa.
        seen: dict[int, str] = {}
        for name in ("button_pin", "ready_led_pin", "busy_led_pin", "refer_led_pin"):
            pin = getattr(self, name)
            if pin in seen:
                raise _invalid(f"gpio.{name}", f"pin {pin} is already used by gpio.{seen[pin]}")
            seen[pin] = name


def _absolute_dirs(value: str) -> bool:
    # Absolute only: a mount point relative to the project root is always a mistake.
    return all(part.startswith("/") for part in value.split(":"))


@dataclass(frozen=True, kw_only=True)
class UpdatesSettings(_Section):
    """Signed model updates from a USB stick (see deploy/UPDATES.md).

    Updates are installed where ``model.path`` points: its folder gets the
    versions, and ``model.path`` becomes a link to the active one.
    """

    SECTION: ClassVar[str] = "updates"

    public_key: Path = _setting(
        Path("/etc/melanoma-kiosk/update-key.pub"),
        "The team's ed25519 public key; only updates signed with its private key are installed. "
        "Root-owned outside the project, so the kiosk service cannot replace it.",
    )
    search_paths: str = _setting(
        "/media/*/*",
        "Where inserted USB sticks are found: absolute shell globs separated by ':' (Raspberry Pi "
        "OS mounts a stick at /media/<user>/<LABEL>). *.kioskupdate files up to 3 folders deep are "
        "listed on the settings page.",
        check=_absolute_dirs,
        expect="absolute globs separated by ':', e.g. \"/media/*/*:/mnt/usb\"",
    )
    keep_previous: int = _setting(1, "Earlier models kept on disk (the newest is the one-tap rollback).", ge=1, le=10)

    @property
    def search_path_list(self) -> tuple[str, ...]:
        """``search_paths`` split into globs.

        >>> UpdatesSettings(search_paths="/media/*/*:/mnt/usb").search_path_list
        ('/media/*/*', '/mnt/usb')
        """
        return tuple(self.search_paths.split(":"))


@dataclass(frozen=True, kw_only=True)
class Settings:
    """All kiosk settings; build it with :func:`load_settings`.

    >>> Settings().camera.source
    'auto'
    """

    station: StationSettings = field(default_factory=StationSettings)
    clock: ClockSettings = field(default_factory=ClockSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    camera: CameraSettings = field(default_factory=CameraSettings)
    vision: VisionSettings = field(default_factory=VisionSettings)
    records: RecordsSettings = field(default_factory=RecordsSettings)
    web: WebSettings = field(default_factory=WebSettings)
    gpio: GpioSettings = field(default_factory=GpioSettings)
    updates: UpdatesSettings = field(default_factory=UpdatesSettings)

    def to_toml(self) -> str:
        """Same as :func:`dump_settings`."""
        return dump_settings(self)


# --- the generic checker -----------------------------------------------------


def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


# Typed by hand: functools.cache wants Hashable arguments, which a frozen dataclass's class is not to mypy.
_hints: Callable[[type], dict[str, Any]] = functools.cache(_type_hints)


def _sections() -> dict[str, type[_Section]]:
    hints = _hints(Settings)
    return {f.name: hints[f.name] for f in dataclasses.fields(Settings)}


def _unwrap(tp: Any) -> tuple[Any, bool]:
    """Split ``X | None`` into ``(X, True)``; anything else is ``(tp, False)``."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"unsupported setting type {tp!r}")
        return args[0], True
    return tp, False


def _invalid(key: str, detail: str) -> ConfigError:
    return ConfigError("config_invalid", key=key, detail=detail)


def _show(value: Any) -> str:
    text = repr(str(value) if isinstance(value, Path) else value)  # repr keeps it one line
    return text if len(text) <= 60 else text[:57] + "..."


def _expectation(f: dataclasses.Field[Any], base: Any, optional: bool) -> str:
    """Words for what a field accepts, e.g. 'an integer from 1 to 8'."""
    meta = f.metadata
    words: str
    if meta.get("expect"):
        words = meta["expect"]
    elif typing.get_origin(base) is Literal:
        choices = [repr(c) for c in typing.get_args(base)]
        words = "one of " + ", ".join(choices)
    else:
        words = {
            bool: "true or false",
            int: "an integer",
            float: "a number",
            str: "a non-empty string",
            Path: "a path",
        }[base]
        ge, le, gt = meta.get("ge"), meta.get("le"), meta.get("gt")
        if ge is not None and le is not None:
            words += f" from {ge} to {le}"
        elif ge is not None:
            words += f" of at least {ge}"
        elif gt is not None:
            words += f" greater than {gt}" + (f" and at most {le}" if le is not None else "")
    return words + (" (or unset)" if optional else "")


def _check_value(key: str, f: dataclasses.Field[Any], tp: Any, value: Any) -> Any:
    """Return ``value`` checked against the field's type and constraints, normalised."""
    base, optional = _unwrap(tp)
    if value is None:
        if optional:
            return None
        raise _invalid(key, f"expected {_expectation(f, base, optional)}, got nothing")

    def bad(hint: str = "") -> ConfigError:
        return _invalid(key, f"expected {_expectation(f, base, optional)}, got {_show(value)}{hint}")

    if typing.get_origin(base) is Literal:
        if value not in typing.get_args(base):
            raise bad()
        return value
    if base is bool:
        if not isinstance(value, bool):
            raise bad(" (write true or false without quotes)" if isinstance(value, str) else "")
    elif base in (int, float):
        # bool is an int subclass; ``threads = true`` is a mistake, not 1.
        numeric = isinstance(value, int) or (base is float and isinstance(value, float))
        if isinstance(value, bool) or not numeric:
            raise bad(" (remove the quotes)" if isinstance(value, str) else "")
        if base is float:
            value = float(value)
            if not math.isfinite(value):
                raise bad()
        meta = f.metadata
        if (
            (meta["ge"] is not None and value < meta["ge"])
            or (meta["le"] is not None and value > meta["le"])
            or (meta["gt"] is not None and value <= meta["gt"])
        ):
            raise bad()
    elif base is str:
        if not isinstance(value, str):
            raise bad(" (put it in quotes)" if isinstance(value, (int, float)) else "")
        # Strings end up in one-line messages and on the printed slip.
        if not value.strip() or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
            raise bad()
    elif base is Path:
        if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
            raise bad()
        try:
            value = Path(value).expanduser()
        except RuntimeError as exc:  # no home directory to expand ~ against
            raise _invalid(key, f"cannot expand ~ in {_show(value)}: {exc}") from None
        if not value.is_absolute():
            value = PROJECT_ROOT / value
    else:  # pragma: no cover - a programming error in this module
        raise TypeError(f"unsupported setting type {tp!r} for {key}")
    check = f.metadata.get("check")
    if check is not None and not check(value):
        raise bad()
    return value


def _from_env(key: str, f: dataclasses.Field[Any], tp: Any, text: str) -> Any:
    """Convert an environment variable's text to the field's type (checked later)."""
    base, optional = _unwrap(tp)
    stripped = text.strip()
    if optional and not stripped:
        return None  # KIOSK_WEB_PIN= unsets it
    if base is bool:
        word = stripped.lower()
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
        raise _invalid(key, f"expected true or false (1/0, yes/no, on/off), got {_show(text)}")
    if base in (int, float):
        try:
            return base(stripped)
        except ValueError:
            raise _invalid(key, f"expected {_expectation(f, base, optional)}, got {_show(text)}") from None
    if base is str:
        return text
    return stripped  # Path, Literal


def _suggest(word: str, choices: list[str], prefix: str = "") -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {prefix}{close[0]}?)" if close else ""


def _field_of(cls: type[_Section], section: str, name: str, source: str) -> dataclasses.Field[Any]:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if name not in fields:
        hint = _suggest(name, list(fields), prefix=f"{section}.")
        raise _invalid(f"{section}.{name}", f"unknown key{hint}; {source}")
    return fields[name]


def _read_toml(file: Path) -> dict[str, Any]:
    try:
        with open(file, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise _invalid("config", f"file not found: {file}") from None
    except OSError as exc:
        raise _invalid("config", f"cannot read {file}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise _invalid("config", f"{file} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        # The message already says "(at line N, column M)".
        raise _invalid("config", f"invalid TOML in {file}: {exc}") from None


def load_settings(path: str | os.PathLike[str] | None = None, *, env: Mapping[str, str] | None = None) -> Settings:
    """Read settings from ``path`` (or ``$KIOSK_CONFIG``) and ``KIOSK_*`` overrides.

    With neither a path nor ``$KIOSK_CONFIG`` the defaults apply. ``env``
    defaults to ``os.environ``. Environment variables are
    ``KIOSK_<SECTION>_<KEY>`` in upper case (``KIOSK_MODEL_THREADS=2``); a
    ``KIOSK_`` variable whose next word is not a section name (say
    ``KIOSK_LOG_LEVEL``) is left alone, but one naming a section with an
    unknown key is an error. An empty value unsets an optional setting.

    >>> load_settings(env={"KIOSK_GPIO_ENABLED": "off", "KIOSK_WEB_PORT": "80"}).gpio.enabled
    False
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    if path is None:
        path = environ.get(CONFIG_ENV_VAR) or None
    sections = _sections()
    raw: dict[str, dict[str, Any]] = {name: {} for name in sections}
    sources: dict[str, str] = {}  # "section.key" -> where its value came from, for messages

    if path is not None:
        file = Path(path).expanduser()
        _take_tables(raw, sources, _read_toml(file), f"in {file}")

    for var in sorted(environ):
        if not var.startswith(ENV_PREFIX) or var == CONFIG_ENV_VAR:
            continue
        section, _, name_upper = var[len(ENV_PREFIX) :].partition("_")
        section = section.lower()
        if section not in sections:
            continue  # not a setting: other KIOSK_* variables are someone else's
        name = name_upper.lower()
        where = f"set by {var}"
        if not name:
            first = dataclasses.fields(sections[section])[0].name.upper()
            raise _invalid(section, f"the variable needs a key, e.g. {var}_{first}; {where}")
        f = _field_of(sections[section], section, name, where)
        key = f"{section}.{name}"
        try:
            raw[section][name] = _from_env(key, f, _hints(sections[section])[name], environ[var])
        except ConfigError as exc:
            raise _invalid(key, f"{exc.params['detail']}; {where}") from None
        sources[key] = where

    return _build(raw, sources)


def settings_from_tables(tables: Mapping[str, Any], *, where: str) -> Settings:
    """Settings from TOML already parsed (``deploy/provision-sd --site``); ``where`` ends each message.

    >>> settings_from_tables({"station": {"code": "PH-LEY-0001"}}, where="in site.toml").station.code
    'PH-LEY-0001'
    >>> settings_from_tables({"web": {"referal_facility": "RHU"}}, where="in site.toml")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    kiosk.reasons.ConfigError: Setting web.referal_facility is invalid: unknown key (did you mean ...); in site.toml
    """
    raw: dict[str, dict[str, Any]] = {name: {} for name in _sections()}
    sources: dict[str, str] = {}
    _take_tables(raw, sources, tables, where)
    return _build(raw, sources)


def _take_tables(
    raw: dict[str, dict[str, Any]], sources: dict[str, str], tables: Mapping[str, Any], where: str
) -> None:
    sections = _sections()
    for section, table in tables.items():
        if section not in sections:
            if not isinstance(table, dict):  # a key outside any [section]
                owners = [s for s, cls in sections.items() if section in {f.name for f in dataclasses.fields(cls)}]
                hint = f" (did you mean {owners[0]}.{section} under [{owners[0]}]?)" if owners else ""
                raise _invalid(section, f"settings belong under a [section]{hint}; {where}")
            raise _invalid(section, f"unknown section{_suggest(section, list(sections))}; {where}")
        if not isinstance(table, dict):
            raise _invalid(section, f"expected a [{section}] table, got {_show(table)}; {where}")
        for name, value in table.items():
            _field_of(sections[section], section, name, where)
            raw[section][name] = value
            sources[f"{section}.{name}"] = where


def _build(raw: dict[str, dict[str, Any]], sources: dict[str, str]) -> Settings:
    sections = _sections()
    built: dict[str, _Section] = {}
    for section, cls in sections.items():
        try:
            built[section] = cls(**raw[section])
        except ConfigError as exc:
            key = str(exc.params.get("key"))
            if key in sources:
                raise _invalid(key, f"{exc.params['detail']}; {sources[key]}") from None
            raise
    return Settings(**built)  # type: ignore[arg-type]


# --- writing TOML ------------------------------------------------------------

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)  # finite by validation; repr round-trips floats exactly
    if isinstance(value, Path):
        value = value.as_posix()
    out = []
    for ch in str(value):
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:  # TOML forbids raw control characters
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


_HEADER = """\
# Melanoma screening kiosk settings (TOML).
# Environment variables KIOSK_<SECTION>_<KEY> override this file,
# e.g. KIOSK_MODEL_THREADS=2 or KIOSK_RECORDS_DATA_DIR=/var/lib/kiosk.
"""


def _render(header: str, value_of: Callable[[str, dataclasses.Field[Any]], Any], *, comment_out: bool) -> str:
    lines = header.splitlines()
    for section, cls in _sections().items():
        lines += ["", f"[{section}]"]
        for f in dataclasses.fields(cls):
            lines += textwrap.wrap(f.metadata["help"], 76, initial_indent="# ", subsequent_indent="# ")
            value = value_of(section, f)
            if value is None:
                # TOML has no null: an unset setting is simply absent.
                lines.append(f"# {f.name} = {_toml_value(f.metadata['example'])}")
            else:
                lines.append(f"{'# ' if comment_out else ''}{f.name} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def dump_settings(settings: Settings) -> str:
    """A TOML document that :func:`load_settings` reads back to equal ``settings``.

    >>> s = load_settings(env={"KIOSK_WEB_LANGUAGE": "war"})
    >>> 'language = "war"' in dump_settings(s)
    True
    """
    return _render(_HEADER, lambda section, f: getattr(getattr(settings, section), f.name), comment_out=False)


def example_toml() -> str:
    """The text of ``config/kiosk.example.toml``: every key, commented out at its default.

    Regenerate the file with ``python -m kiosk.config > config/kiosk.example.toml``.

    >>> "# threads = 1" in example_toml()
    True
    """
    header = _HEADER + "# Every key below is commented out at its default; uncomment to change it.\n"
    # The raw defaults (relative paths, ~), not this machine's resolved ones.
    return _render(header, lambda section, f: f.default, comment_out=True)


if __name__ == "__main__":
    sys.stdout.write(example_toml())
