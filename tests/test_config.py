"""Settings: defaults, TOML, environment overrides, and one-line errors that name the key."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from kiosk.config import (
    PROJECT_ROOT,
    GpioSettings,
    ModelSettings,
    Settings,
    WebSettings,
    dump_settings,
    example_toml,
    load_settings,
)
from kiosk.pinhash import DEMO_PIN_HASH
from kiosk.reasons import ConfigError, KioskError

EXAMPLE = PROJECT_ROOT / "config" / "kiosk.example.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kiosk.toml"
    path.write_text(text, encoding="utf-8")
    return path


def error_of(*args: object, **kwargs: object) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_settings(*args, **kwargs)  # type: ignore[arg-type]
    err = info.value
    assert isinstance(err, KioskError) and err.code == "config_invalid"
    assert "\n" not in str(err)  # one line, always
    return err


# --- defaults ----------------------------------------------------------------


def test_defaults_without_file_or_env() -> None:
    s = load_settings(env={})
    assert s == Settings()
    assert s.model.path == PROJECT_ROOT / "models" / "melanoma_int8.tflite"
    assert s.model.path.is_absolute()
    assert s.model.threads == 1
    assert (s.camera.source, s.camera.still_width, s.camera.still_height) == ("auto", 2028, 1520)
    assert (s.camera.preview_width, s.camera.preview_height) == (640, 480)
    assert s.camera.mm_per_pixel is None
    assert s.vision.min_side == 128
    assert s.records.data_dir == Path.home() / ".local" / "share" / "melanoma-kiosk"
    assert (s.records.retention_days, s.records.keep_images) == (365, True)
    assert (s.web.host, s.web.port, s.web.language, s.web.pin) == ("127.0.0.1", 8080, "en", None)
    assert s.web.referral_within_days == 14
    assert s.web.referral_facility is None  # the page says "the nearest rural health unit ..." in its language
    g = s.gpio
    assert (g.enabled, g.button_pin, g.ready_led_pin, g.busy_led_pin, g.refer_led_pin) == (True, 17, 22, 23, 24)
    assert g.shutdown_hold_seconds == 5.0


def test_settings_are_frozen() -> None:
    s = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.model.threads = 4  # type: ignore[misc]


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(ConfigError, match=r"model\.threads"):
        ModelSettings(threads=0)
    assert WebSettings(pin=DEMO_PIN_HASH).pin == DEMO_PIN_HASH
    with pytest.raises(ConfigError, match=r"web\.pin is invalid: a plain PIN is not accepted.*kiosk set-pin"):
        WebSettings(pin="0042")


# --- TOML file ---------------------------------------------------------------


def test_toml_file_values(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[model]
path = "/opt/models/m.tflite"
threads = 4

[camera]
source = "opencv:0"
mm_per_pixel = 1        # an integer is fine for a float setting

[records]
data_dir = "data/records"
keep_images = false

[web]
language = "war"
pin = "scrypt$16384$8$1$cdbLCOq_yfWhIfhkJA-5XA$P84PQMhCz0T6o9XwhRBbN2UksE5AyY9R3uXyXLjiBYs"
""",
    )
    s = load_settings(path, env={})
    assert s.model.path == Path("/opt/models/m.tflite")
    assert s.model.threads == 4
    assert s.camera.source == "opencv:0"
    assert s.camera.mm_per_pixel == 1.0 and isinstance(s.camera.mm_per_pixel, float)
    assert s.records.data_dir == PROJECT_ROOT / "data" / "records"  # relative -> project root
    assert s.records.keep_images is False
    assert (s.web.language, s.web.pin) == ("war", DEMO_PIN_HASH)
    assert s.gpio == GpioSettings()  # untouched sections keep their defaults


def test_tilde_is_expanded(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, '[records]\ndata_dir = "~/kiosk-data"\n'), env={})
    assert s.records.data_dir == Path.home() / "kiosk-data"


def test_missing_explicit_file(tmp_path: Path) -> None:
    err = error_of(tmp_path / "nope.toml", env={})
    assert err.params["key"] == "config"
    assert "file not found" in str(err) and "nope.toml" in str(err)


def test_invalid_toml_reports_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[model]\nthreads = 2\npath = "unterminated\n')
    err = error_of(path, env={})
    assert err.params["key"] == "config"
    assert "invalid TOML" in str(err)
    assert re.search(r"line 3\b", str(err)), str(err)


def test_config_that_is_a_directory(tmp_path: Path) -> None:
    err = error_of(tmp_path, env={})
    assert err.params["key"] == "config" and "cannot read" in str(err)


def test_kiosk_config_env_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[web]\nport = 9000\n")
    assert load_settings(env={"KIOSK_CONFIG": str(path)}).web.port == 9000
    # An explicit path wins over KIOSK_CONFIG.
    other = tmp_path / "other.toml"
    other.write_text("[web]\nport = 9001\n")
    assert load_settings(other, env={"KIOSK_CONFIG": str(path)}).web.port == 9001
    err = error_of(env={"KIOSK_CONFIG": str(tmp_path / "missing.toml")})
    assert "file not found" in str(err)


def test_kiosk_config_from_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIOSK_CONFIG", str(write(tmp_path, "[vision]\nmin_side = 256\n")))
    monkeypatch.setenv("KIOSK_MODEL_THREADS", "3")
    s = load_settings()
    assert (s.vision.min_side, s.model.threads) == (256, 3)


# --- environment overrides ---------------------------------------------------


def test_env_overrides_file_with_type_conversion(tmp_path: Path) -> None:
    path = write(tmp_path, "[model]\nthreads = 4\n[gpio]\nenabled = true\n")
    s = load_settings(
        path,
        env={
            "KIOSK_MODEL_THREADS": "2",
            "KIOSK_RECORDS_DATA_DIR": "/var/lib/kiosk",
            "KIOSK_CAMERA_MM_PER_PIXEL": "0.02",
            "KIOSK_GPIO_ENABLED": "no",
            "KIOSK_GPIO_SHUTDOWN_HOLD_SECONDS": "3",
            "KIOSK_WEB_LANGUAGE": "fil",
            "KIOSK_WEB_PIN": DEMO_PIN_HASH,
            "KIOSK_CAMERA_SOURCE": "replay:/srv/photos",
        },
    )
    assert s.model.threads == 2 and isinstance(s.model.threads, int)
    assert s.records.data_dir == Path("/var/lib/kiosk")
    assert s.camera.mm_per_pixel == pytest.approx(0.02)
    assert s.gpio.enabled is False
    assert s.gpio.shutdown_hold_seconds == 3.0 and isinstance(s.gpio.shutdown_hold_seconds, float)
    assert s.web.language == "fil" and s.web.pin == DEMO_PIN_HASH
    assert s.camera.source == "replay:/srv/photos"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", True),
        ("0", False),
        ("true", True),
        ("FALSE", False),
        ("yes", True),
        ("No", False),
        ("on", True),
        ("off", False),
        (" on ", True),
    ],
)
def test_env_bool_words(text: str, expected: bool) -> None:
    assert load_settings(env={"KIOSK_RECORDS_KEEP_IMAGES": text}).records.keep_images is expected


def test_env_bad_bool() -> None:
    err = error_of(env={"KIOSK_GPIO_ENABLED": "maybe"})
    assert err.params["key"] == "gpio.enabled"
    assert "true or false" in str(err) and "KIOSK_GPIO_ENABLED" in str(err)


def test_env_bad_int_names_key_and_variable() -> None:
    err = error_of(env={"KIOSK_WEB_PORT": "eighty"})
    assert err.params["key"] == "web.port"
    assert str(err) == (
        "Setting web.port is invalid: expected an integer from 1 to 65535, got 'eighty'; set by KIOSK_WEB_PORT"
    )


def test_env_empty_unsets_optional(tmp_path: Path) -> None:
    path = write(tmp_path, '[web]\npin = "4321"\n')
    assert load_settings(path, env={"KIOSK_WEB_PIN": ""}).web.pin is None


def test_unrelated_kiosk_variables_are_ignored() -> None:
    s = load_settings(env={"KIOSK_LOG_LEVEL": "debug", "KIOSK_MODE": "x", "PATH": "/bin", "kiosk_model_threads": "9"})
    assert s == Settings()


def test_env_unknown_key_with_suggestion() -> None:
    err = error_of(env={"KIOSK_MODEL_THRAEDS": "2"})
    assert err.params["key"] == "model.thraeds"
    assert str(err) == (
        "Setting model.thraeds is invalid: unknown key (did you mean model.threads?); set by KIOSK_MODEL_THRAEDS"
    )


# --- validation --------------------------------------------------------------


def test_unknown_key_in_file_with_suggestion(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, "[model]\nthraeds = 2\n"), env={})
    assert err.params["key"] == "model.thraeds"
    assert str(err).startswith("Setting model.thraeds is invalid: unknown key (did you mean model.threads?)")


def test_unknown_key_without_close_match(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, "[web]\nzzz = 1\n"), env={})
    assert "unknown key" in str(err) and "did you mean" not in str(err)


def test_unknown_section_with_suggestion(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, "[camra]\nsource = 'auto'\n"), env={})
    assert err.params["key"] == "camra"
    assert "unknown section (did you mean camera?)" in str(err)


def test_key_outside_any_section(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, "threads = 2\n"), env={})
    assert "model.threads" in str(err) and "[model]" in str(err)


def test_section_that_is_not_a_table(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, "model = 3\n"), env={})
    assert err.params["key"] == "model" and "table" in str(err)


@pytest.mark.parametrize(
    ("toml", "key", "fragment"),
    [
        ('[model]\nthreads = "2"\n', "model.threads", "remove the quotes"),
        ("[model]\nthreads = 2.5\n", "model.threads", "an integer from 1 to 8"),
        ("[model]\nthreads = true\n", "model.threads", "an integer"),  # bool is not an int here
        ('[gpio]\nenabled = "yes"\n', "gpio.enabled", "true or false"),
        ("[web]\npin = 1234\n", "web.pin", "put it in quotes"),
        ('[web]\nlanguage = "de"\n', "web.language", "one of 'en', 'fil', 'war'"),
        ("[records]\ndata_dir = 5\n", "records.data_dir", "a path"),
        ('[web]\nhost = ""\n', "web.host", "got ''"),
    ],
)
def test_wrong_type(tmp_path: Path, toml: str, key: str, fragment: str) -> None:
    err = error_of(write(tmp_path, toml), env={})
    assert err.params["key"] == key
    assert str(err).startswith(f"Setting {key} is invalid: expected")
    assert fragment in str(err)
    assert str(tmp_path / "kiosk.toml") in str(err)  # says which file


@pytest.mark.parametrize(
    ("env", "key", "fragment"),
    [
        ({"KIOSK_MODEL_THREADS": "0"}, "model.threads", "from 1 to 8, got 0"),
        ({"KIOSK_MODEL_THREADS": "9"}, "model.threads", "from 1 to 8, got 9"),
        ({"KIOSK_WEB_PORT": "70000"}, "web.port", "from 1 to 65535"),
        ({"KIOSK_RECORDS_RETENTION_DAYS": "-1"}, "records.retention_days", "at least 0"),
        ({"KIOSK_CAMERA_MM_PER_PIXEL": "0"}, "camera.mm_per_pixel", "greater than 0"),
        ({"KIOSK_CAMERA_MM_PER_PIXEL": "nan"}, "camera.mm_per_pixel", "greater than 0"),
        ({"KIOSK_GPIO_BUTTON_PIN": "40"}, "gpio.button_pin", "from 0 to 27"),
        ({"KIOSK_GPIO_SHUTDOWN_HOLD_SECONDS": "1.5"}, "gpio.shutdown_hold_seconds", "from 2 to 60"),
        ({"KIOSK_WEB_PIN": "12"}, "web.pin", "not a PIN hash"),
        ({"KIOSK_WEB_PIN": "12a4"}, "web.pin", "not a PIN hash"),
        ({"KIOSK_WEB_PIN": "١٢٣٤"}, "web.pin", "not a PIN hash"),  # Arabic-Indic digits are not a keypad PIN
        ({"KIOSK_WEB_PIN": "2580"}, "web.pin", "a plain PIN is not accepted; store its hash: run 'kiosk set-pin'"),
        ({"KIOSK_WEB_PIN": "scrypt$1048576$64$1$" + "A" * 22 + "$" + "A" * 43}, "web.pin", "out of range"),
        ({"KIOSK_WEB_ALLOWED_HOSTS": "kiosk.local evil/x"}, "web.allowed_hosts", "host names or IP addresses"),
        ({"KIOSK_WEB_REFERRAL_FACILITY": "a\nb"}, "web.referral_facility", "non-empty string"),
    ],
)
def test_out_of_range(env: dict[str, str], key: str, fragment: str) -> None:
    err = error_of(env=env)
    assert err.params["key"] == key
    assert fragment in str(err)
    assert next(iter(env)) in str(err)  # names the variable that set it


@pytest.mark.parametrize(
    "source",
    [
        "auto",
        "picamera2",
        "synthetic",
        "opencv:0",
        "opencv:12",
        "opencv:/dev/video0",
        "replay:/srv/photos",
        "replay:photos",
    ],
)
def test_camera_source_forms_accepted(source: str) -> None:
    assert load_settings(env={"KIOSK_CAMERA_SOURCE": source}).camera.source == source


@pytest.mark.parametrize("source", ["webcam", "opencv:", "opencv:video0", "replay:", "AUTO", "picamera"])
def test_camera_source_forms_rejected(source: str) -> None:
    err = error_of(env={"KIOSK_CAMERA_SOURCE": source})
    assert err.params["key"] == "camera.source"
    assert "auto, picamera2, synthetic, opencv:N, opencv:/path or replay:DIR" in str(err)


def test_gpio_pins_must_differ() -> None:
    err = error_of(env={"KIOSK_GPIO_BUSY_LED_PIN": "22"})
    assert err.params["key"] == "gpio.busy_led_pin"
    assert "already used by gpio.ready_led_pin" in str(err)
    assert "KIOSK_GPIO_BUSY_LED_PIN" in str(err)


# --- writing TOML and the example file ---------------------------------------


def test_dump_round_trips(tmp_path: Path) -> None:
    s = load_settings(
        env={
            "KIOSK_MODEL_THREADS": "3",
            "KIOSK_CAMERA_MM_PER_PIXEL": "0.0173",
            "KIOSK_WEB_PIN": DEMO_PIN_HASH,
            "KIOSK_WEB_ALLOWED_HOSTS": "kiosk.local, 192.168.1.20",
            "KIOSK_WEB_REFERRAL_FACILITY": 'Eastern Visayas "Regional" Medical Center \\ Tacloban',
            "KIOSK_GPIO_ENABLED": "false",
            "KIOSK_RECORDS_DATA_DIR": "/var/lib/kiosk",
        }
    )
    path = tmp_path / "dumped.toml"
    path.write_text(dump_settings(s), encoding="utf-8")
    assert load_settings(path, env={}) == s
    assert s.to_toml() == dump_settings(s)


def test_dump_of_defaults_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "d.toml"
    path.write_text(dump_settings(Settings()), encoding="utf-8")
    assert load_settings(path, env={}) == Settings()


@hsettings(max_examples=60, deadline=None)
@given(
    facility=st.text(
        st.characters(min_codepoint=0x20, blacklist_characters="\x7f", blacklist_categories=("Cs",)), min_size=1
    ).filter(str.strip),
    threads=st.integers(1, 8),
    mm=st.floats(min_value=1e-6, max_value=10, allow_nan=False),
)
def test_dump_round_trips_any_values(facility: str, threads: int, mm: float) -> None:
    s = Settings(
        model=ModelSettings(threads=threads),
        web=WebSettings(referral_facility=facility),
        camera=dataclasses.replace(Settings().camera, mm_per_pixel=mm),
    )

    data = tomllib.loads(dump_settings(s))
    assert data["web"]["referral_facility"] == facility
    assert data["camera"]["mm_per_pixel"] == mm
    assert data["model"]["threads"] == threads


def test_example_file_is_in_sync() -> None:
    assert EXAMPLE.read_text(encoding="utf-8") == example_toml(), (
        "config/kiosk.example.toml is stale: run `python -m kiosk.config > config/kiosk.example.toml`"
    )


def test_example_file_loads_to_defaults() -> None:
    assert load_settings(EXAMPLE, env={}) == Settings()


def test_example_file_lists_every_key_with_a_valid_value(tmp_path: Path) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    uncommented = re.sub(r"(?m)^# ([a-z_]+ = )", r"\1", text)
    path = tmp_path / "uncommented.toml"
    path.write_text(uncommented, encoding="utf-8")
    s = load_settings(path, env={})  # every example value is valid...

    data = tomllib.loads(uncommented)
    for section in dataclasses.fields(Settings):
        names = {f.name for f in dataclasses.fields(getattr(s, section.name))}
        assert set(data[section.name]) == names  # ...and every key is there
    # Uncommented defaults equal the real defaults, apart from the unset ones shown with an example.
    assert (
        dataclasses.replace(s, camera=Settings().camera, web=Settings().web, station=Settings().station) == Settings()
    )
    assert dataclasses.replace(s.station, name=None, code=None) == Settings().station
    assert s.camera.mm_per_pixel == 0.02 and s.web.pin == DEMO_PIN_HASH
    assert dataclasses.replace(s.camera, mm_per_pixel=None) == Settings().camera
    assert dataclasses.replace(s.web, pin=None, referral_facility=None, allowed_hosts=None) == Settings().web


def test_every_setting_has_help() -> None:
    for section in dataclasses.fields(Settings):
        for f in dataclasses.fields(section.default_factory()):  # type: ignore[misc]
            assert f.metadata.get("help"), f"{section.name}.{f.name} has no help text"


def test_env_variable_without_key() -> None:
    err = error_of(env={"KIOSK_MODEL": "x"})
    assert err.params["key"] == "model" and "KIOSK_MODEL_PATH" in str(err)
