"""Syncthing by provisioning: a site file's [sync] table reaches the card, install.sh configures and enables it.

The look-alike images, the bundle and the throwaway root are those of tests/test_deploy.py; the
install test runs the real kiosk.sync.syncthing with Debian's real syncthing (skipped without it).
"""

from __future__ import annotations

import re
import shutil
import stat
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from kiosk.site import SiteError, read_site_file, site_from_row
from kiosk.sync.syncthing import CLOSED_OPTIONS, SyncSite
from tests.conftest import REPO_ROOT
from tests.test_deploy import (  # noqa: F401 - bundle, tiny_models, stand_in_wheels and throwaway are fixtures
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
from tests.test_provision_site import BATCH, ROWS, SITE_TOML, write_sites

RHU = "MFZWI3D-BONSGYC-YLTMRWG-C43ENR5-QXGZDMM-FZWI3DP-BONSGYY-LTMRWAD"  # Syncthing's documented example id
SYNC_TOML = f"""
[[sync.peers]]
name = "RHU-PALO"
device_id = "{RHU}"
addresses = ["tcp://192.168.1.10:22000"]
"""
#: What the site above becomes: the kiosk's defaults filled in from its station code.
EXPECTED = {
    "name": "PH-LEY-0001",
    "listen": ["tcp://127.0.0.1:22000"],
    "gui": "127.0.0.1:8384",
    "peers": [{"name": "RHU-PALO", "device_id": RHU, "addresses": ["tcp://192.168.1.10:22000"]}],
    "folders": [
        {
            "id": "PH-LEY-0001-outbox",
            "label": "PH-LEY-0001-outbox",
            "path": "/var/lib/melanoma-kiosk/outbox",
            "type": "sendonly",
            "peers": ["RHU-PALO"],
        },
        {
            "id": "PH-LEY-0001-outcomes",
            "label": "PH-LEY-0001-outcomes",
            "path": "/var/lib/melanoma-kiosk/inbox",
            "type": "receiveonly",
            "peers": ["RHU-PALO"],
        },
    ],
}
needs_syncthing = pytest.mark.skipif(shutil.which("syncthing") is None, reason="syncthing is not installed")


def site_file(tmp_path: Path, extra: str = SYNC_TOML) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(SITE_TOML + extra)
    return path


# --- the [sync] table in a site file ----------------------------------------------------------------


def test_a_sync_table_is_checked_and_completed_for_the_kiosk(tmp_path):
    site = read_site_file(site_file(tmp_path))
    assert site.sync == SyncSite.from_mapping(EXPECTED)
    assert "sync" not in site.values  # not a kiosk setting: kiosk.toml would refuse the section
    again = tmp_path / "again.toml"
    again.write_text(site.to_toml())  # what provision-batch hands provision-sd
    assert read_site_file(again) == site
    assert read_site_file(site_file(tmp_path, extra="")).sync is None


def test_site_sync_names_a_file_that_many_sites_share(tmp_path):
    (tmp_path / "rhu-palo.toml").write_text(SYNC_TOML)
    path = tmp_path / "site.toml"
    path.write_text(SITE_TOML.replace("[site]\n", '[site]\nsync = "rhu-palo.toml"\n'))
    assert read_site_file(path).sync == SyncSite.from_mapping(EXPECTED)
    row = {"station.code": "PH-LEY-0002", "site.sync": "rhu-palo.toml"}
    sync = site_from_row(row, where="in sites.csv row 2", base=tmp_path).sync
    assert sync is not None and sync.name == "PH-LEY-0002"
    assert [f.id for f in sync.folders] == ["PH-LEY-0002-outbox", "PH-LEY-0002-outcomes"]
    assert site_from_row({"station.code": "PH-LEY-0003"}, where="in sites.csv row 3").sync is None


def test_the_example_site_file_reads_with_and_without_its_sync_example(tmp_path):
    example = REPO_ROOT / "config" / "site.example.toml"
    assert read_site_file(example).sync is None
    text = example.read_text()
    start = text.index("# [[sync.peers]]")
    uncommented = tmp_path / "site.toml"
    uncommented.write_text(text[:start] + re.sub(r"^# ", "", text[start:], flags=re.M))
    assert read_site_file(uncommented).sync == SyncSite.from_mapping(EXPECTED)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ('[sync]\npeers = "RHU-PALO"\n', "Setting sync.peers is invalid: expected a list of tables ([[sync.peers]]"),
        ("[sync.peers]\nname = 'RHU-PALO'\n", "Setting sync.peers is invalid: expected a list of tables"),
        (SYNC_TOML.replace(RHU, RHU[:-1] + "E"), "Setting sync.peers[0].device_id is invalid: a check character"),
        (SYNC_TOML.replace(RHU, "RHU-PALO"), "Setting sync.peers[0].device_id is invalid: not a Syncthing device id"),
        (
            SYNC_TOML.replace("tcp://192.168.1.10:22000", "rhu.local:22000"),
            "Setting sync.peers[0].addresses is invalid: 'rhu.local:22000' is not tcp://IP:PORT",
        ),
        (
            SYNC_TOML.replace('addresses = ["tcp://192.168.1.10:22000"]', ""),
            "Setting sync.peers[0].addresses is invalid: the kiosk listens on loopback only, so it calls the RHU",
        ),
        (SYNC_TOML.replace("addresses", "adresses"), "Setting sync.peers[0].adresses is invalid: unknown key"),
        ('[sync]\ngui = "0.0.0.0:8384"\n' + SYNC_TOML, "Setting sync.gui is invalid: the GUI and REST API stay on"),
        ('[sync]\nlisten = ["tcp://0.0.0.0:22000"]\npeerz = []\n', "Setting sync.peerz is invalid: unknown key (did"),
        ("[sync]\n", "Setting sync.peers is invalid: name the RHU"),
        (
            SYNC_TOML + '[[sync.folders]]\nid = "x"\ntype = "sendonly"\npath = "/home/pi/outbox"\n',
            "Setting sync.folders[0].path is invalid: a kiosk's Syncthing writes only sendonly /var/lib/",
        ),
        (
            SYNC_TOML + '[[sync.folders]]\nid = "x"\ntype = "sendreceive"\n',
            "Setting sync.folders[0].type is invalid: must be sendonly or receiveonly",
        ),
    ],
)
def test_a_bad_sync_table_is_one_line_naming_the_key(tmp_path, extra, expected):
    path = site_file(tmp_path, extra=extra)
    with pytest.raises(SiteError) as refused:
        read_site_file(path)
    message = str(refused.value)
    assert message.startswith(expected) and "\n" not in message, message
    assert message.endswith(f"in {path}")


def test_a_csv_names_its_sync_file_in_a_column(tmp_path):
    for row, expected in (
        ({"sync.peers": "x"}, "column 'sync.peers': a CSV gives the [sync] table as a file, in a site.sync column"),
        ({"station.code": "PH-LEY-0002", "site.sync": "none.toml"}, "Setting site.sync is invalid: cannot read"),
    ):
        with pytest.raises(SiteError) as refused:
            site_from_row(row, where="in sites.csv row 2", base=tmp_path)
        assert str(refused.value).startswith(expected) and str(refused.value).endswith("in sites.csv row 2")
    (tmp_path / "more.toml").write_text(SYNC_TOML + "[web]\nlanguage = 'war'\n")
    with pytest.raises(SiteError, match="must hold a \\[sync\\] table and nothing else"):
        site_from_row({"site.sync": "more.toml"}, where="in sites.csv row 2", base=tmp_path)


# --- on the card --------------------------------------------------------------------------------------


@needs_image_tools
@pytest.mark.parametrize("flavour", ["bookworm", "trixie"])
def test_provision_puts_the_checked_sync_table_on_the_card(flavour, bundle, tmp_path):
    image = tmp_path / f"{flavour}.img"
    layout = make_pi_image(image, flavour)
    proc = run([sys.executable, PROVISION, image, "--bundle", bundle, "--site", site_file(tmp_path)])
    assert proc.returncode == 0, proc.stderr
    assert {"melanoma-kiosk-site.toml", "melanoma-kiosk-sync.toml"} <= boot_names(image, layout)
    card = tmp_path / "card-sync.toml"
    card.write_text(boot_file(image, layout, "melanoma-kiosk-sync.toml"))
    assert SyncSite.from_toml(card) == SyncSite.from_mapping(EXPECTED)  # what install.sh will configure from
    assert "[sync]" not in boot_file(image, layout, "melanoma-kiosk-site.toml")  # kiosk.toml would refuse it

    hook = boot_file(image, layout, "firstrun.sh" if flavour == "bookworm" else "melanoma-kiosk-firstboot.sh")
    assert run(["bash", "-n", "-c", hook]).returncode == 0
    assert 'KIOSK_SYNC_CONFIG="$BOOT/melanoma-kiosk-sync.toml"' in hook
    assert 'rm -f "$BOOT/melanoma-kiosk-sync.toml"' in hook
    assert 'cp /etc/melanoma-kiosk/syncthing-device-id "$BOOT/melanoma-kiosk-syncthing-id.txt"' in hook
    assert "apt-get install -y --no-install-recommends syncthing" in hook  # the fallback, online
    assert '[ ! -f "$BOOT/melanoma-kiosk/debs/SHA256SUMS" ]' in hook  # only for a bundle without the .deb
    if shutil.which("shellcheck"):
        script = tmp_path / "hook.sh"
        script.write_text(hook)
        checked = run(["shellcheck", "--shell=bash", script])
        assert checked.returncode == 0, checked.stdout


@needs_image_tools
def test_provision_without_sync_puts_no_syncthing_on_the_card(bundle, tmp_path):
    image = tmp_path / "trixie.img"
    layout = make_pi_image(image, "trixie")
    proc = run([sys.executable, PROVISION, image, "--bundle", bundle, "--site", site_file(tmp_path, extra="")])
    assert proc.returncode == 0, proc.stderr
    assert "melanoma-kiosk-sync.toml" not in boot_names(image, layout)
    hook = boot_file(image, layout, "melanoma-kiosk-firstboot.sh")
    assert "KIOSK_SYNC_CONFIG" not in hook and "syncthing" not in hook


@needs_image_tools
def test_a_bad_sync_table_leaves_the_image_byte_identical(bundle, tmp_path):
    image = tmp_path / "bookworm.img"
    make_pi_image(image, "bookworm")
    before = sha256(image)
    bad = site_file(tmp_path, extra=SYNC_TOML.replace(RHU, RHU[:-1] + "E"))
    proc = run([sys.executable, PROVISION, image, "--bundle", bundle, "--site", bad])
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith(
        "provision-sd: error: --site: Setting sync.peers[0].device_id is invalid: a check character is wrong"
    )
    assert sha256(image) == before


@needs_image_tools
def test_provision_batch_gives_a_row_the_sync_file_its_column_names(bundle, tmp_path):
    image = tmp_path / "raspios.img"
    layout = make_pi_image(image, "trixie")
    (tmp_path / "rhu-palo.toml").write_text(SYNC_TOML)
    sites = tmp_path / "sites.csv"
    write_sites(sites, [{**ROWS[0], "site.sync": "rhu-palo.toml"}, {**ROWS[1], "site.sync": ""}])
    out = tmp_path / "cards"
    proc = run([sys.executable, BATCH, sites, "--image", image, "--bundle", bundle, "--out", out])
    assert proc.returncode == 0, proc.stderr
    card = tmp_path / "card-sync.toml"
    card.write_text(boot_file(out / "kiosk-rhu-07.img", layout, "melanoma-kiosk-sync.toml"))
    assert SyncSite.from_toml(card) == SyncSite.from_mapping(EXPECTED)
    assert "melanoma-kiosk-sync.toml" not in boot_names(out / "kiosk-rhu-08.img", layout)


# --- install.sh on first boot ---------------------------------------------------------------------------

RUNUSER = """#!/bin/sh
# runuser -u USER -- COMMAND...: logged, then run as whoever runs the test
echo "runuser $*" >>"$CALLS"
while [ "$1" != -- ]; do shift; done
shift
exec "$@"
"""


@pytest.mark.slow
@needs_syncthing
def test_install_configures_syncthing_from_the_sync_table_only_when_there_is_one(bundle, throwaway, tmp_path):
    root, env, calls = throwaway
    runuser = tmp_path / "runuser"
    runuser.write_text(RUNUSER)
    runuser.chmod(0o755)
    env = dict(env, RUNUSER=str(runuser))
    etc, state = root / "etc/melanoma-kiosk", root / "var/lib/melanoma-kiosk"
    unit = root / "etc/systemd/system/melanoma-kiosk-syncthing.service"

    plain = run(["bash", bundle / "install.sh"], env=env)  # a site without [sync]: USB only
    assert plain.returncode == 0, plain.stderr + plain.stdout
    assert not (etc / "sync.toml").exists() and not unit.exists() and not state.exists()
    assert "syncthing" not in calls.read_text() and "Syncthing" not in plain.stdout

    card = tmp_path / "melanoma-kiosk-sync.toml"
    card.write_text(read_site_file(site_file(tmp_path)).sync.to_toml())
    # First boot without syncthing installed (Raspberry Pi OS has none): sync.toml kept, nothing enabled.
    missing = run(["bash", bundle / "install.sh"], env=dict(env, KIOSK_SYNC_CONFIG=str(card), SYNCTHING="no-st"))
    assert missing.returncode == 0, missing.stderr + missing.stdout
    assert "warning: syncthing is not installed" in missing.stdout
    assert (etc / "sync.toml").read_text() == card.read_text()
    assert stat.S_IMODE((etc / "sync.toml").stat().st_mode) == 0o640
    assert "chown root:kiosk " + str(etc / "sync.toml.new") in calls.read_text()
    assert "melanoma-kiosk-syncthing" not in calls.read_text() and not (etc / "syncthing-device-id").exists()
    assert "melanoma-kiosk-sync.timer" not in calls.read_text()  # no outbox to fill without Syncthing

    # After apt install syncthing, install.sh again (no KIOSK_SYNC_CONFIG now): configured, enabled.
    calls.write_text("")
    again = run(["bash", bundle / "install.sh"], env=env)
    assert again.returncode == 0, again.stderr + again.stdout
    device_id = (etc / "syncthing-device-id").read_text().strip()
    assert f"Syncthing device id of this kiosk: {device_id}" in again.stdout
    assert unit.read_bytes() == (bundle / "systemd/melanoma-kiosk-syncthing.service").read_bytes()
    log = calls.read_text().splitlines()
    assert f"chown kiosk:kiosk {state} {state / 'syncthing'}" in log
    assert [c.split(" -- ")[0] for c in log if c.startswith("runuser")] == ["runuser -u kiosk"]
    assert "systemctl enable melanoma-kiosk-syncthing.service" in log
    # Run by hand (the hook sets KIOSK_START=0 and reboots instead): restarted, to read the new config.xml.
    assert "systemctl restart melanoma-kiosk-syncthing.service" in log
    # ... and the timer that fills its outbox and reads its inbox, enabled with it.
    assert "systemctl enable --now melanoma-kiosk-sync.timer" in log
    for name in ("melanoma-kiosk-sync.service", "melanoma-kiosk-sync.timer"):
        assert (root / "etc/systemd/system" / name).read_bytes() == (bundle / "systemd" / name).read_bytes()
    assert stat.S_IMODE(state.stat().st_mode) == 0o700 and stat.S_IMODE((state / "syncthing").stat().st_mode) == 0o700

    # The config Syncthing will run with: this site's peer at its static address, nothing reaching further.
    config = ET.parse(state / "syncthing/config.xml").getroot()
    devices = {d.get("id"): [a.text for a in d.findall("address")] for d in config.findall("device")}
    assert devices == {device_id: ["dynamic"], RHU: ["tcp://192.168.1.10:22000"]}
    folders = {f.get("id"): (f.get("path"), f.get("type")) for f in config.findall("folder")}
    assert folders == {
        "PH-LEY-0001-outbox": ("/var/lib/melanoma-kiosk/outbox", "sendonly"),
        "PH-LEY-0001-outcomes": ("/var/lib/melanoma-kiosk/inbox", "receiveonly"),
    }
    options = config.find("options")
    assert {tag: options.findtext(tag) for tag in CLOSED_OPTIONS} == CLOSED_OPTIONS
    assert [n.text for n in options.findall("listenAddress")] == ["tcp://127.0.0.1:22000"]
    assert config.findtext("gui/address") == "127.0.0.1:8384"
    assert (state / "outbox/.stfolder").is_dir() and (state / "inbox/.stfolder").is_dir()  # under the root
    assert (state / "outbox/.stignore").read_text() == ".*.partial\n"
