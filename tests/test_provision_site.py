"""Per-centre provisioning: deploy/provision-sd --site, deploy/provision-batch, kiosk/site.py, install.sh's site config.

The images are the look-alike Raspberry Pi OS images of tests/test_deploy.py (no root, no loop
devices: mtools edits the FAT partition inside the file).
"""

from __future__ import annotations

import csv
import re
import shutil
import sys
import tomllib
from pathlib import Path

import pytest

from kiosk.config import load_settings, settings_from_tables
from kiosk.pinhash import verify_pin
from kiosk.site import SiteError, read_site_file, site_from_row
from tests.conftest import REPO_ROOT
from tests.test_deploy import (  # noqa: F401 - bundle, tiny_models and stand_in_wheels are fixtures
    PROVISION,
    boot_file,
    boot_names,
    bundle,
    make_pi_image,
    needs_image_tools,
    run,
    sha256,
    stand_in_wheels,
    throwaway,
    tiny_models,
)

BATCH = REPO_ROOT / "deploy" / "provision-batch"
PIN = "73915086"  # eight digits: not a string the image holds by chance
OTHER_PIN = "40628571"
SITE_TOML = f"""\
[site]
hostname = "kiosk-rhu-07"
pin = "{PIN}"

[station]
name = "Barangay San Jose Health Station"
code = "PH-LEY-0001"

[web]
referral_facility = "Eastern Visayas Medical Center"
referral_within_days = 10
language = "war"
"""


def card_settings(image: Path, layout, tmp_path: Path):
    text = boot_file(image, layout, "melanoma-kiosk-site.toml")
    conf = tmp_path / "kiosk.toml"
    conf.write_text(text)
    return text, load_settings(conf, env={})


# --- the site file, checked by the kiosk's own config ---------------------------------------


def test_site_file_is_read_and_the_pin_hashed(tmp_path):
    site_file = tmp_path / "site.toml"
    site_file.write_text(SITE_TOML)
    site = read_site_file(site_file)
    assert site.hostname == "kiosk-rhu-07" and site.time_zone == "Asia/Manila"
    assert site.values["station"] == {"name": "Barangay San Jose Health Station", "code": "PH-LEY-0001"}
    assert site.values["web"]["referral_within_days"] == 10 and site.values["web"]["language"] == "war"
    assert verify_pin(PIN, site.pin_hash) and PIN not in site.pin_hash
    example = (REPO_ROOT / "config" / "kiosk.example.toml").read_text()
    text = site.config_text(example)
    assert PIN not in text and PIN not in site.to_toml()
    settings = settings_from_tables(tomllib.loads(text), where="x")
    assert settings.station.code == "PH-LEY-0001" and settings.web.referral_facility == "Eastern Visayas Medical Center"
    assert settings.web.pin == site.pin_hash and settings.model.threads == load_settings(env={}).model.threads
    # Read back through to_toml (what provision-batch hands provision-sd): the same site.
    again = tmp_path / "again.toml"
    again.write_text(site.to_toml())
    assert read_site_file(again).values == site.values


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[web]\nreferal_facility = "RHU"\n',
            "Setting web.referal_facility is invalid: unknown key (did you mean web.referral_facility?)",
        ),
        ('[site]\nhostnme = "k"\n', "Setting site.hostnme is invalid: unknown key (did you mean site.hostname?)"),
        ('[web]\npin = "1234"\n', "Setting web.pin is invalid: a plain PIN is not accepted"),
        ("[site]\npin = 1234\n", "Setting site.pin is invalid: a PIN is 4 to 8 digits, written in quotes"),
        ('[site]\npin = "1234"\npin_hash = "scrypt$x"\n', "Setting site.pin_hash is invalid: give the PIN once"),
        ('[station]\ntime_zone = "Asia/Maynila"\n', "Setting station.time_zone is invalid"),
        ('[station]\ncode = "ph ley 1"\n', "Setting station.code is invalid"),
        ("[web]\nreferral_within_days = 0\n", "Setting web.referral_within_days is invalid"),
        ('[model]\npath = "/tmp/m.tflite"\n', "Setting model.path is invalid: not per site"),
        ('[site]\nhostname = "-bad-"\n', "Setting site.hostname is invalid"),
        ('[statoin]\nname = "x"\n', "Setting statoin is invalid: unknown section (did you mean station?)"),
    ],
)
def test_a_bad_site_file_is_one_line_naming_the_key(tmp_path, text, expected):
    site_file = tmp_path / "site.toml"
    site_file.write_text(text)
    with pytest.raises(SiteError) as refused:
        read_site_file(site_file)
    message = str(refused.value)
    assert message.startswith(expected) and "\n" not in message, message
    assert message.endswith(f"in {site_file}")


def test_a_csv_row_is_typed_like_the_environment():
    row = {
        "site.hostname": "kiosk-2",
        "site.pin": PIN,
        "station.code": "PH-LEY-0002",
        "web.referral_within_days": "21",
        "web.language": "",  # empty: the default
    }
    site = site_from_row(row, where="in sites.csv row 2")
    assert site.values["web"]["referral_within_days"] == 21 and "language" not in site.values["web"]
    assert verify_pin(PIN, site.pin_hash)
    for bad, expected in (
        ({"web.referral_within_days": "two weeks"}, "Setting web.referral_within_days is invalid"),
        ({"stations.code": "PH-LEY-0002"}, "Setting stations is invalid: unknown section"),
        ({"station.cod": "PH-LEY-0002"}, "Setting station.cod is invalid: unknown key (did you mean station.code?)"),
        ({"hostname": "k"}, "column 'hostname' is not a setting"),
    ):
        with pytest.raises(SiteError) as refused:
            site_from_row(bad, where="in sites.csv row 3")
        assert str(refused.value).startswith(expected) and str(refused.value).endswith("in sites.csv row 3")


# --- provision-sd --site on look-alike images ----------------------------------------------------


@needs_image_tools
@pytest.mark.parametrize("flavour", ["bookworm", "trixie"])
def test_provision_with_a_site_puts_its_settings_on_the_card_and_no_plain_pin(flavour, bundle, tmp_path):
    image = tmp_path / f"{flavour}.img"
    layout = make_pi_image(image, flavour)
    site_file = tmp_path / "site.toml"
    site_file.write_text(SITE_TOML.replace('code = "PH-LEY-0001"', 'code = "PH-LEY-0001"\ntime_zone = "Asia/Tokyo"'))
    proc = run([sys.executable, PROVISION, image, "--bundle", bundle, "--site", site_file])
    assert proc.returncode == 0, proc.stderr

    assert "melanoma-kiosk-site.toml" in boot_names(image, layout)
    text, settings = card_settings(image, layout, tmp_path)
    assert settings.station.name == "Barangay San Jose Health Station" and settings.station.code == "PH-LEY-0001"
    assert settings.station.time_zone == "Asia/Tokyo"
    assert settings.web.referral_facility == "Eastern Visayas Medical Center"
    assert settings.web.referral_within_days == 10 and settings.web.language == "war"
    assert verify_pin(PIN, settings.web.pin) and not verify_pin(OTHER_PIN, settings.web.pin)
    # The bundle's example underneath: every other key still documented, model.path left to install.sh.
    assert text.count("[model]") == 1 and not re.search(r"^path =", text, re.M)

    hook = boot_file(image, layout, "firstrun.sh" if flavour == "bookworm" else "melanoma-kiosk-firstboot.sh")
    assert run(["bash", "-n", "-c", hook]).returncode == 0
    assert 'KIOSK_SITE_CONFIG="$BOOT/melanoma-kiosk-site.toml"' in hook
    assert 'rm -f "$BOOT/melanoma-kiosk-site.toml"' in hook
    assert "timedatectl set-timezone Asia/Tokyo" in hook and "/usr/share/zoneinfo/Asia/Tokyo" in hook
    if flavour == "bookworm":
        assert "set_hostname kiosk-rhu-07" in hook
    else:
        user_data = boot_file(image, layout, "user-data")
        assert 'hostname: "kiosk-rhu-07"' in user_data and 'timezone: "Asia/Tokyo"' in user_data

    data = image.read_bytes()
    assert PIN.encode() not in data and PIN.encode("utf-16-le") not in data
    assert settings.web.pin.encode() in data  # the hash is there: the search would have found the PIN


@needs_image_tools
def test_provision_without_a_site_still_sets_manila_time(bundle, tmp_path):
    image = tmp_path / "bookworm.img"
    layout = make_pi_image(image, "bookworm")
    assert run([sys.executable, PROVISION, image, "--bundle", bundle]).returncode == 0
    firstrun = boot_file(image, layout, "firstrun.sh")
    assert "timedatectl set-timezone Asia/Manila" in firstrun and "KIOSK_SITE_CONFIG" not in firstrun
    assert "melanoma-kiosk-site.toml" not in boot_names(image, layout)


@needs_image_tools
def test_a_bad_site_file_leaves_the_image_byte_identical(bundle, tmp_path):
    image = tmp_path / "trixie.img"
    make_pi_image(image, "trixie")
    before = sha256(image)
    site_file = tmp_path / "site.toml"
    site_file.write_text(SITE_TOML.replace("referral_facility", "referal_facility"))
    proc = run([sys.executable, PROVISION, image, "--bundle", bundle, "--site", site_file])
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith(
        "provision-sd: error: --site: Setting web.referal_facility is invalid: unknown key "
        "(did you mean web.referral_facility?)"
    )
    site_file.write_text(SITE_TOML)
    proc = run([sys.executable, PROVISION, image, "--bundle", bundle, "--site", site_file, "--hostname", "kiosk-9"])
    assert proc.returncode == 1 and "differ" in proc.stderr
    assert sha256(image) == before


# --- provision-batch -----------------------------------------------------------------------------


def write_sites(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


ROWS = [
    {
        "site.hostname": "kiosk-rhu-07",
        "site.pin": PIN,
        "station.name": "Barangay San Jose Health Station",
        "station.code": "PH-LEY-0001",
        "web.referral_facility": "Eastern Visayas Medical Center",
        "web.referral_within_days": "14",
        "web.language": "war",
    },
    {
        "site.hostname": "kiosk-rhu-08",
        "site.pin": OTHER_PIN,
        "station.name": "Barangay Santo Niño Health Station",
        "station.code": "PH-LEY-0002",
        "web.referral_facility": "Leyte Provincial Hospital",
        "web.referral_within_days": "7",
        "web.language": "fil",
    },
]


@needs_image_tools
def test_provision_batch_makes_one_image_per_site(bundle, tmp_path):
    image = tmp_path / "raspios.img"
    layout = make_pi_image(image, "trixie")
    pristine = sha256(image)
    sites = tmp_path / "sites.csv"
    write_sites(sites, ROWS)
    out = tmp_path / "cards"
    proc = run([sys.executable, BATCH, sites, "--image", image, "--bundle", bundle, "--out", out])
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["kiosk-rhu-07.img", "kiosk-rhu-08.img"]
    assert sha256(image) == pristine  # the source image is only copied
    for row, pin, other in ((ROWS[0], PIN, OTHER_PIN), (ROWS[1], OTHER_PIN, PIN)):
        card = out / f"{row['site.hostname']}.img"
        _, settings = card_settings(card, layout, tmp_path)
        assert settings.station.name == row["station.name"] and settings.station.code == row["station.code"]
        assert settings.web.referral_facility == row["web.referral_facility"]
        assert settings.web.referral_within_days == int(row["web.referral_within_days"])
        assert settings.web.language == row["web.language"] and settings.station.time_zone == "Asia/Manila"
        assert verify_pin(pin, settings.web.pin) and not verify_pin(other, settings.web.pin)
        assert f'hostname: "{row["site.hostname"]}"' in boot_file(card, layout, "user-data")
        data = card.read_bytes()
        assert PIN.encode() not in data and OTHER_PIN.encode() not in data


@needs_image_tools
def test_provision_batch_checks_every_row_before_writing(bundle, tmp_path):
    image = tmp_path / "raspios.img"
    make_pi_image(image, "bookworm")
    sites = tmp_path / "sites.csv"
    write_sites(sites, [ROWS[0], {**ROWS[1], "web.referral_within_days": "soon"}])
    out = tmp_path / "cards"
    proc = run([sys.executable, BATCH, sites, "--image", image, "--bundle", bundle, "--out", out])
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert "web.referral_within_days" in proc.stderr and f"in {sites} row 3" in proc.stderr
    assert not out.exists() or not list(out.iterdir())

    write_sites(sites, [ROWS[0], {**ROWS[1], "site.hostname": "kiosk-rhu-07"}])
    proc = run([sys.executable, BATCH, sites, "--image", image, "--bundle", bundle, "--out", out])
    assert proc.returncode == 1 and "rows 2 and 3" in proc.stderr
    assert not out.exists() or not list(out.iterdir())


# --- install.sh: the site's settings become kiosk.toml ---------------------------------------------


@pytest.mark.slow
def test_install_starts_kiosk_toml_from_the_site_config(bundle, throwaway, tmp_path):
    root, env, calls = throwaway
    site_file = tmp_path / "site.toml"
    site_file.write_text(SITE_TOML)
    site_conf = tmp_path / "melanoma-kiosk-site.toml"
    site_conf.write_text(read_site_file(site_file).config_text((bundle / "config/kiosk.example.toml").read_text()))
    proc = run(["bash", bundle / "install.sh"], env=dict(env, KIOSK_SITE_CONFIG=str(site_conf)))
    assert proc.returncode == 0, proc.stderr + proc.stdout
    settings = load_settings(root / "etc/melanoma-kiosk/kiosk.toml", env={})
    assert settings.model.path == Path("/opt/melanoma-kiosk/models/tiny_int8.tflite")
    assert settings.station.code == "PH-LEY-0001" and verify_pin(PIN, settings.web.pin)
    rules = (root / "etc/polkit-1/rules.d/50-melanoma-kiosk.rules").read_text()
    assert "org.freedesktop.timedate1.set-time" in rules and "timedate1.set-timezone" not in rules
    missing = run(["bash", bundle / "install.sh"], env=dict(env, KIOSK_SITE_CONFIG=str(tmp_path / "none.toml")))
    assert missing.returncode == 1 and "does not exist" in missing.stderr


def test_the_bundle_stamps_its_build_date_into_the_kiosk(bundle):
    """kiosk/clock.py's floor on the Pi: the wheel's kiosk/_build.py, written by build-bundle (not an install mtime)."""
    import zipfile
    from datetime import UTC, datetime, timedelta

    wheel = next((bundle / "wheels" / "cp311").glob("melanoma_kiosk-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        source = z.read("kiosk/_build.py").decode()
    stamp = datetime.fromisoformat(re.search(r'BUILD_DATE = "([^"]+)"', source)[1])
    assert timedelta(0) <= datetime.now(UTC) - stamp < timedelta(hours=6)


@needs_image_tools
@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed (.ci/run installs it)")
def test_site_hooks_pass_shellcheck(bundle, tmp_path):
    site_file = tmp_path / "site.toml"
    site_file.write_text(SITE_TOML)
    scripts = []
    for flavour, hook in (("bookworm", "firstrun.sh"), ("trixie", "melanoma-kiosk-firstboot.sh")):
        image = tmp_path / f"{flavour}.img"
        layout = make_pi_image(image, flavour)
        proc = run([sys.executable, PROVISION, image, "--bundle", bundle, "--site", site_file])
        assert proc.returncode == 0, proc.stderr
        scripts.append(tmp_path / hook)
        scripts[-1].write_text(boot_file(image, layout, hook))
    proc = run(["shellcheck", "--shell=bash", *scripts])
    assert proc.returncode == 0, proc.stdout
