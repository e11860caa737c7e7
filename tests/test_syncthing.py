"""Syncthing set up from the site file: only the given peers, nothing that reaches further; two real instances.

The two-instance test runs Debian's syncthing twice inside a private network namespace with nothing but
loopback (``unshare -rn``, then ``ip link set lo up``), bounded to 90 s; it skips with a reason when
syncthing or unshare cannot be used here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from kiosk.sync.syncthing import CLOSED_OPTIONS, SiteError, SyncSite, configure

ROOT = Path(__file__).resolve().parents[1]
PEER = "MFZWI3D-BONSGYC-YLTMRWG-C43ENR5-QXGZDMM-FZWI3DP-BONSGYY-LTMRWAD"

needs_syncthing = pytest.mark.skipif(shutil.which("syncthing") is None, reason="syncthing is not installed "
                                     "(Debian: apt-get install syncthing)")  # fmt: skip


def _site(tmp_path: Path, **changes: object) -> dict[str, object]:
    return {
        "name": "PH-LEY-0001",
        "peers": [{"name": "RHU-PALO", "device_id": PEER, "addresses": ["tcp://192.168.1.10:22000"]}],
        "folders": [
            {"id": "PH-LEY-0001-outbox", "path": str(tmp_path / "outbox"), "type": "sendonly", "peers": ["RHU-PALO"]}
        ],  # fmt: skip
        **changes,
    }


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"gui": "0.0.0.0:8384"}, "sync.gui: the GUI and REST API stay on 127.0.0.1"),
        ({"peers": [{"name": "x", "device_id": "nope"}]}, r"sync.peers\[0\].device_id"),
        ({"peers": [{"name": "x", "device_id": PEER, "addresses": ["tcp://rhu.example:22000"]}]}, "static IP"),
        ({"listen": ["quic://0.0.0.0:22000"]}, "sync.listen"),
        ({"folders": [{"id": "o", "path": "/x", "type": "sendreceive", "peers": ["RHU-PALO"]}]}, "sendonly or"),
        ({"folders": [{"id": "o", "path": "/x", "type": "sendonly", "peers": ["nobody"]}]}, "name peers listed"),
        # Shapes TOML allows but a [sync] table must not have: each refused by key, never an AttributeError.
        ({"peers": {"name": "x", "device_id": PEER}}, r"^sync.peers: expected a list of tables"),
        ({"peers": ["RHU-PALO"]}, r"^sync.peers: expected a list of tables"),
        ({"peers": [{"device_id": PEER, "addresses": "tcp://192.168.1.10:22000"}]}, r"addresses: expected a list"),
        ({"peers": [{"device_id": PEER, "adresses": []}]}, r"^sync.peers\[0\].adresses: unknown key"),
        ({"peerz": []}, r"^sync.peerz: unknown key"),
        ({"peers": [{"device_id": PEER, "addresses": ["tcp://999.1.1.1:22000"]}]}, "is not tcp://IP:PORT"),
        ({"peers": [{"device_id": PEER[:-1] + "E"}]}, r"^sync.peers\[0\].device_id: a check character is wrong"),
        ({"peers": [{"device_id": 42}]}, r"^sync.peers\[0\].device_id: a Syncthing device id, written in quotes"),
        ({"peers": [{"name": "a", "device_id": PEER}, {"name": "b", "device_id": PEER}]}, "is listed twice"),
        ({"folders": [{"id": "o", "path": "/x", "type": "sendonly", "peers": "RHU-PALO"}]}, "peers: expected a list"),
        ({"gui": "127.0.0.1.evil:8384"}, "sync.gui"),
    ],
)
def test_site_file_mistakes_are_one_line_errors(tmp_path: Path, changes: dict[str, object], message: str) -> None:
    with pytest.raises(SiteError, match=message) as refused:
        SyncSite.from_mapping(_site(tmp_path, **changes))
    assert "\n" not in str(refused.value) and refused.value.key and str(refused.value).startswith(refused.value.key)


def test_device_ids_are_normalised_and_the_table_reads_back(tmp_path: Path) -> None:
    site = SyncSite.from_mapping(
        _site(tmp_path, peers=[{"name": "RHU-PALO", "device_id": PEER.replace("-", "").lower()}])
    )
    assert site.peers[0].device_id == PEER  # as Syncthing writes it, so config.xml and its REST API agree
    assert SyncSite.from_mapping(tomllib.loads(site.to_toml())["sync"]) == site


@needs_syncthing
def test_config_knows_only_the_peers_and_reaches_nowhere_else(tmp_path: Path) -> None:
    site = SyncSite.from_mapping(_site(tmp_path))
    did, key = configure(tmp_path / "home", site)
    root = ET.parse(tmp_path / "home" / "config.xml").getroot()
    devices = {d.get("id"): [a.text for a in d.findall("address")] for d in root.findall("device")}
    assert devices == {did: ["dynamic"], PEER: ["tcp://192.168.1.10:22000"]}
    folder = root.find("folder")
    assert folder is not None and folder.get("type") == "sendonly" and folder.get("path") == str(tmp_path / "outbox")
    assert sorted(d.get("id") for d in folder.findall("device")) == sorted([did, PEER])
    options = root.find("options")
    assert options is not None
    assert {tag: options.findtext(tag) for tag in CLOSED_OPTIONS} == CLOSED_OPTIONS
    assert [n.text for n in options.findall("listenAddress")] == ["tcp://127.0.0.1:22000"]
    assert [n.text for n in options.findall("globalAnnounceServer")] == [None]
    assert [n.text for n in options.findall("stunServer")] == [None]
    assert root.findtext("gui/address") == "127.0.0.1:8384" and root.findtext("gui/apikey") == key
    assert (tmp_path / "outbox" / ".stfolder").is_dir()
    assert (tmp_path / "outbox" / ".stignore").read_text() == ".*.partial\n"
    assert oct((tmp_path / "home" / "config.xml").stat().st_mode & 0o777) == "0o600"
    assert configure(tmp_path / "home", site, api_key=key) == (did, key)  # same device, rewritten in place


def _namespace_command() -> list[str] | None:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return None
    probe = subprocess.run(["unshare", "-rn", "sh", "-c", "ip link set lo up"], capture_output=True, timeout=10)
    return ["unshare", "-rn"] if probe.returncode == 0 else None


@needs_syncthing
def test_two_real_syncthing_instances_carry_an_export_in_and_an_outcome_back(tmp_path: Path) -> None:
    unshare = _namespace_command()
    if unshare is None:
        pytest.skip("cannot make a private network namespace here (unshare -rn and ip are needed)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    inner = f"ip link set lo up && exec {sys.executable} -m tests.syncthing_pair {tmp_path}"
    done = subprocess.run([*unshare, "sh", "-c", inner], capture_output=True, text=True, timeout=90, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    for side in ("kiosk", "rhu"):
        options = result[f"{side}_options"]
        # As the running Syncthing reports them over its REST API, not just as written.
        assert options["globalAnnounceEnabled"] is False and options["localAnnounceEnabled"] is False
        assert options["relaysEnabled"] is False and options["natEnabled"] is False
        # An empty element reads back as [""]: no server (a missing one would be "default").
        assert options["stunKeepaliveStartS"] == 0 and options["stunServers"] == [""]
        assert options["globalAnnounceServers"] == [""]
        assert options["urAccepted"] == -1 and options["crashReportingEnabled"] is False
        assert options["autoUpgradeIntervalH"] == 0
        assert result[f"{side}_gui"].startswith("127.0.0.1:")
    assert result["connected_s"] is not None
    assert result["export_arrived_s"] and result["export_arrived_s"] < 45
    assert result["screenings_imported"] == 3
    assert result["outcome_arrived_s"] and result["outcome_arrived_s"] < 45
    lines = [json.loads(p.read_text()) for p in (tmp_path / "kiosk" / "inbox" / "outcomes").glob("*.ndjson")]
    assert [line["focus"][0]["identifier"]["value"] for line in lines] == [result["outcome_key"]]

    # Nothing listened anywhere but on loopback (state 0A = LISTEN; local address 0100007F = 127.0.0.1).
    def sockets(table: str) -> list[list[str]]:
        return [row.split() for row in table.splitlines() if row.split() and row.split()[0].endswith(":")]

    listening = [row[1] for row in sockets(result["listening"]) if row[3] == "0A"]
    assert listening and all(a.startswith("0100007F:") or a.startswith("0" * 24 + "01000000:") for a in listening)
    assert sockets(result["udp"]) == []  # no local discovery, no STUN, no NAT-PMP
