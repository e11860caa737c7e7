"""Syncthing for a kiosk or an RHU, from the site file: only the given peers, nothing that reaches further.

A kiosk shares its outbox (``kiosk export fhir --out``) as a **send-only**
folder with the RHU and receives the RHU's outcomes in a **receive-only**
inbox; the RHU has the mirror image, one pair of folders per station.
:func:`configure` writes Syncthing's ``config.xml`` so that it:

- knows only the peers in the site file, at their static addresses
  (``tcp://192.168.1.10:22000``; a peer without addresses may only call in);
- has global and local discovery, relays, NAT traversal (UPnP/NAT-PMP) and
  STUN, usage reporting, crash reporting and automatic upgrades turned off;
- listens where the site file says (default ``tcp://127.0.0.1:22000``: a kiosk
  that only dials out to the RHU listens on nothing but loopback), with its GUI
  and REST API on 127.0.0.1 only, guarded by a random API key.

The site file's ``[sync]`` table (TOML)::

    [sync]
    name = "PH-LEY-0001"
    listen = ["tcp://127.0.0.1:22000"]
    gui = "127.0.0.1:8384"
    [[sync.peers]]
    name = "RHU-PALO"
    device_id = "MFZWI3D-..."
    addresses = ["tcp://192.168.1.10:22000"]
    [[sync.folders]]
    id = "PH-LEY-0001-outbox"
    path = "/var/lib/melanoma-kiosk/outbox"
    type = "sendonly"
    peers = ["RHU-PALO"]

>>> site = SyncSite.from_mapping({"name": "k", "peers": [{"name": "rhu", "device_id": "A" * 56}],
...     "folders": [{"id": "k-outbox", "path": "/tmp/outbox", "type": "sendonly", "peers": ["rhu"]}]})
>>> site.listen, site.gui, site.folders[0].type, site.peers[0].addresses
(('tcp://127.0.0.1:22000',), '127.0.0.1:8384', 'sendonly', ())
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import shutil
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import _toml_value  # the config's own TOML string writer
from ..storage import atomic_write_bytes

__all__ = [
    "FOLDER_TYPES",
    "Folder",
    "Peer",
    "SiteError",
    "SyncSite",
    "configure",
    "normal_device_id",
    "refuse_unknown_keys",
    "device_id",
    "generate",
    "serve_command",
]

FOLDER_TYPES = ("sendonly", "receiveonly")
_DEVICE_ID_RE = re.compile(r"[A-Z2-7]{7}(?:-[A-Z2-7]{7}){7}|[A-Z2-7]{56}")
_BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_FOLDER_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
_TCP_RE = re.compile(r"tcp[46]?://(\[[0-9a-fA-F:]+\]|[0-9.]+):([0-9]{1,5})")
_NAME_RE = re.compile(r"[A-Za-z0-9._ -]{1,64}")
#: The keys a ``[sync]`` table, a peer and a folder may have: anything else is a typo, refused.
SYNC_KEYS = ("name", "listen", "gui", "peers", "folders")
PEER_KEYS = ("name", "device_id", "addresses")
FOLDER_KEYS = ("id", "label", "path", "type", "peers")
#: Every option that would reach beyond the peers, and its "off" value (Syncthing 1.19's names).
CLOSED_OPTIONS = {
    "globalAnnounceEnabled": "false",  # global discovery
    "localAnnounceEnabled": "false",  # local (LAN broadcast) discovery
    "relaysEnabled": "false",
    "natEnabled": "false",  # UPnP / NAT-PMP port mapping
    "stunKeepaliveStartS": "0",  # 0: never contact a STUN server
    "stunKeepaliveMinS": "0",
    "urAccepted": "-1",  # usage reporting: declined, and never asked again
    "crashReportingEnabled": "false",
    "autoUpgradeIntervalH": "0",
    "startBrowser": "false",
    "announceLANAddresses": "false",
}
#: Address lists emptied, so that even a setting turned back on has nowhere to go.
CLOSED_LISTS = ("globalAnnounceServer", "stunServer")


class SiteError(ValueError):
    """The site file's [sync] table cannot be used (one line: which key, and why).

    ``key`` (``sync.peers[0].device_id``) and ``reason`` are set when one key is to blame, so that
    provisioning can word it like its other settings ("Setting KEY is invalid: REASON").
    """

    def __init__(self, message: str, *, key: str | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.key, self.reason = key, reason


def _bad(key: str, reason: str) -> SiteError:
    return SiteError(f"{key}: {reason}", key=key, reason=reason)


def _luhn32(data: str) -> str:
    """Syncthing's check character for 13 base32 characters (lib/protocol/luhn.go)."""
    factor, total = 1, 0
    for ch in data:
        addend = factor * _BASE32.index(ch)
        factor = 1 if factor == 2 else 2
        total += addend // 32 + addend % 32
    return _BASE32[(32 - total % 32) % 32]


def normal_device_id(text: object, *, key: str = "device_id") -> str:
    """``text`` as Syncthing writes a device id (8 groups of 7), its four check characters verified.

    A typo in a copied device id is caught here, not by a kiosk that never connects.

    >>> normal_device_id("mfzwi3d bonsgyc ylTMRWG C43ENR5 QXGZDMM FZWI3DP BONSGYY LTMRWAD")
    'MFZWI3D-BONSGYC-YLTMRWG-C43ENR5-QXGZDMM-FZWI3DP-BONSGYY-LTMRWAD'
    >>> normal_device_id("MFZWI3D-BONSGYC-YLTMRWG-C43ENR5-QXGZDMM-FZWI3DP-BONSGYY-LTMRWAE")
    Traceback (most recent call last):
    ...
    kiosk.sync.syncthing.SiteError: device_id: a check character is wrong: a typo? (copy it again from the peer)
    """
    if not isinstance(text, str):
        raise _bad(key, "a Syncthing device id, written in quotes")
    plain = re.sub(r"[\s-]", "", text).upper()
    if not re.fullmatch(r"[A-Z2-7]{56}", plain):
        raise _bad(key, "not a Syncthing device id (8 groups of 7 of A-Z and 2-7, e.g. MFZWI3D-BONSGYC-...)")
    if any(_luhn32(plain[i : i + 13]) != plain[i + 13] for i in range(0, 56, 14)):
        raise _bad(key, "a check character is wrong: a typo? (copy it again from the peer)")
    return "-".join(plain[i : i + 7] for i in range(0, 56, 7))


@dataclass(frozen=True)
class Peer:
    name: str
    device_id: str
    addresses: tuple[str, ...] = ()  # static tcp://HOST:PORT; empty: it calls in, we never look it up


@dataclass(frozen=True)
class Folder:
    id: str
    path: Path
    type: str  # sendonly (an outbox) or receiveonly (an inbox)
    peers: tuple[str, ...]
    label: str = ""


def _tcp_address(text: object, *, where: str) -> str:
    match = _TCP_RE.fullmatch(text) if isinstance(text, str) else None
    try:
        if not match or not 0 < int(match.group(2)) < 65536:
            raise ValueError(text)
        ipaddress.ip_address(match.group(1).strip("[]"))
    except ValueError:
        raise _bad(where, f"{text!r} is not tcp://IP:PORT (a static IP address: a host name would need DNS)") from None
    return str(text)


def _table(value: object, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _bad(key, "expected a table")
    return value


def _tables(value: object, key: str) -> list[Mapping[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise _bad(key, f"expected a list of tables ([[{key}]] in TOML)")
    return value


def _strings(value: object, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(key, 'expected a list of strings, e.g. ["..."]')
    return tuple(value)


def refuse_unknown_keys(table: Mapping[str, Any], keys: Sequence[str], where: str) -> None:
    """SiteError for the first key of ``table`` not in ``keys`` (a typo), with the likely one or the known ones."""
    for key in table:
        if key not in keys:
            close = [k for k in keys if k[:3] == str(key)[:3]]
            hint = f"did you mean {where}.{close[0]}?" if close else f"known: {', '.join(keys)}"
            raise _bad(f"{where}.{key}", f"unknown key ({hint})")


def _name(value: object, key: str) -> str:
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value):
        raise _bad(key, "1-64 letters, digits, spaces, '.', '_' or '-'")
    return value


@dataclass(frozen=True)
class SyncSite:
    name: str
    peers: tuple[Peer, ...]
    folders: tuple[Folder, ...]
    listen: tuple[str, ...] = ("tcp://127.0.0.1:22000",)
    gui: str = "127.0.0.1:8384"

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str]) -> SyncSite:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise SiteError(f"{path}: {exc}") from None
        if not isinstance(data.get("sync"), Mapping):
            raise SiteError(f"{path}: no [sync] table")
        return cls.from_mapping(data["sync"])

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> SyncSite:
        """The checked ``[sync]`` table; SiteError naming the first key that is wrong."""
        data = _table(data, "sync")
        refuse_unknown_keys(data, SYNC_KEYS, "sync")
        if "name" not in data:
            raise _bad("sync.name", "this device's name is required")
        name = _name(data["name"], "sync.name")
        peers: list[Peer] = []
        for i, p in enumerate(_tables(data.get("peers"), "sync.peers")):
            where = f"sync.peers[{i}]"
            refuse_unknown_keys(p, PEER_KEYS, where)
            did = normal_device_id(p.get("device_id"), key=f"{where}.device_id")
            addresses = tuple(
                _tcp_address(a, where=f"{where}.addresses") for a in _strings(p.get("addresses"), f"{where}.addresses")
            )
            peer_name = _name(p.get("name", did[:7]), f"{where}.name")
            if any(q.name == peer_name or q.device_id == did for q in peers):
                raise _bad(where, f"{peer_name} ({did[:7]}) is listed twice")
            peers.append(Peer(name=peer_name, device_id=did, addresses=addresses))
        names = {p.name for p in peers}
        folders: list[Folder] = []
        for i, f in enumerate(_tables(data.get("folders"), "sync.folders")):
            where = f"sync.folders[{i}]"
            refuse_unknown_keys(f, FOLDER_KEYS, where)
            fid, kind, path = f.get("id"), f.get("type"), f.get("path")
            if not isinstance(fid, str) or not _FOLDER_ID_RE.fullmatch(fid):
                raise _bad(f"{where}.id", "1-64 letters, digits, '.', '_' or '-'")
            if kind not in FOLDER_TYPES:
                raise _bad(f"{where}.type", f"must be sendonly or receiveonly, got {kind!r}")
            if not isinstance(path, str) or not Path(path).is_absolute():
                raise _bad(f"{where}.path", "an absolute folder path is required")
            shared = _strings(f.get("peers"), f"{where}.peers")
            if not shared or set(shared) - names:
                raise _bad(f"{where}.peers", f"name peers listed in sync.peers ({', '.join(sorted(names)) or 'none'})")
            label = f.get("label", fid)
            if not isinstance(label, str):
                raise _bad(f"{where}.label", "a string")
            if any(g.id == fid or g.path == Path(path) for g in folders):
                raise _bad(where, f"folder {fid} or its path {path} is listed twice")
            folders.append(Folder(id=fid, path=Path(path), type=kind, peers=shared, label=label))
        listen = tuple(
            _tcp_address(a, where="sync.listen") for a in _strings(data.get("listen"), "sync.listen") or cls.listen
        )
        gui = data.get("gui", cls.gui)
        match = re.fullmatch(r"(127\.0\.0\.1|\[::1\]):([0-9]{1,5})", gui) if isinstance(gui, str) else None
        if not match or not 0 < int(match.group(2)) < 65536:
            raise _bad("sync.gui", f"the GUI and REST API stay on 127.0.0.1 (127.0.0.1:PORT, got {gui!r})")
        return cls(name=name, peers=tuple(peers), folders=tuple(folders), listen=listen, gui=gui)

    def to_toml(self) -> str:
        """This site as a ``[sync]`` table again: what provisioning puts on the card, read back by :meth:`from_toml`.

        >>> site = SyncSite.from_mapping({"name": "k", "peers": [{"name": "rhu", "device_id": "A" * 56}]})
        >>> SyncSite.from_mapping(tomllib.loads(site.to_toml())["sync"]) == site
        True
        """
        lines = ["[sync]", f"name = {_toml(self.name)}", f"listen = {_toml(self.listen)}", f"gui = {_toml(self.gui)}"]
        for peer in self.peers:
            lines += ["", "[[sync.peers]]", f"name = {_toml(peer.name)}", f"device_id = {_toml(peer.device_id)}"]
            lines += [f"addresses = {_toml(peer.addresses)}"]
        for folder in self.folders:
            lines += ["", "[[sync.folders]]", f"id = {_toml(folder.id)}", f"label = {_toml(folder.label)}"]
            lines += [f"path = {_toml(folder.path.as_posix())}", f"type = {_toml(folder.type)}"]
            lines += [f"peers = {_toml(folder.peers)}"]
        return "\n".join(lines) + "\n"


def _toml(value: str | Sequence[str]) -> str:
    return _toml_value(value) if isinstance(value, str) else "[" + ", ".join(map(_toml, value)) + "]"


def _syncthing(binary: str | None) -> str:
    found = binary or shutil.which("syncthing")
    if not found:
        raise SiteError("syncthing is not installed (Debian: apt-get install syncthing)")
    return found


def generate(home: Path, *, binary: str | None = None) -> str:
    """Make this device's key and certificate in ``home`` (once) and return its device id."""
    home = Path(home)
    if not (home / "cert.pem").exists():
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        subprocess.run(
            [_syncthing(binary), "generate", f"--home={home}", "--no-default-folder", "--skip-port-probing"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
    return device_id(home, binary=binary)


def device_id(home: Path, *, binary: str | None = None) -> str:
    out = subprocess.run(
        [_syncthing(binary), "serve", f"--home={home}", "--device-id"], check=True, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    match = _DEVICE_ID_RE.search(out.stdout + out.stderr)
    if not match:
        raise SiteError(f"syncthing printed no device id for {home}")
    return match.group(0)


def _set(parent: ET.Element, tag: str, text: str) -> None:
    node = parent.find(tag)
    if node is None:
        node = ET.SubElement(parent, tag)
    node.text = text


def _device_element(did: str, name: str, addresses: Sequence[str]) -> ET.Element:
    device = ET.Element("device", id=did, name=name, compression="metadata", introducer="false")
    for address in addresses or ("dynamic",):  # "dynamic" with discovery off: only an incoming call finds it
        ET.SubElement(device, "address").text = address
    ET.SubElement(device, "paused").text = "false"
    ET.SubElement(device, "autoAcceptFolders").text = "false"
    return device


def configure(
    home: Path, site: SyncSite, *, binary: str | None = None, api_key: str | None = None, root: Path = Path("/")
) -> tuple[str, str]:
    """Write ``home/config.xml`` for ``site``; returns (this device's id, the REST API key).

    Folders are created (with Syncthing's ``.stfolder`` marker) when missing, under ``root``
    (install.sh's KIOSK_ROOT: config.xml names them as the running system sees them).
    The file is rewritten whole from the site file each time, atomically.
    """
    home, prefix = Path(home), Path(root)
    did = generate(home, binary=binary)
    tree = ET.parse(home / "config.xml")
    config = tree.getroot()
    for old in config.findall("device") + config.findall("folder"):
        config.remove(old)
    config.insert(0, _device_element(did, site.name, ()))
    for peer in site.peers:
        config.insert(1, _device_element(peer.device_id, peer.name, peer.addresses))
    by_name = {p.name: p for p in site.peers}
    for folder in site.folders:
        made = prefix / folder.path.relative_to(folder.path.anchor)
        made.mkdir(parents=True, exist_ok=True)
        (made / ".stfolder").mkdir(exist_ok=True)
        if folder.type == "sendonly":  # an export still being written (.<id>.partial/) is not sent
            atomic_write_bytes(made / ".stignore", b".*.partial\n")
        element = ET.Element(
            "folder", id=folder.id, label=folder.label, path=str(folder.path), type=folder.type,
            rescanIntervalS="60", fsWatcherEnabled="true", fsWatcherDelayS="1", ignorePerms="true",
            autoNormalize="true",
        )  # fmt: skip
        ET.SubElement(element, "filesystemType").text = "basic"
        for shared in (did, *(by_name[n].device_id for n in folder.peers)):
            ET.SubElement(element, "device", id=shared)
        ET.SubElement(element, "minDiskFree", unit="%").text = "1"
        ET.SubElement(element, "markerName").text = ".stfolder"
        config.insert(1, element)
    gui = config.find("gui")
    assert gui is not None, "syncthing generate writes a <gui> element"
    gui.set("enabled", "true")
    gui.set("tls", "false")  # loopback only: TLS would add nothing but a certificate warning
    _set(gui, "address", site.gui)
    key = api_key or secrets.token_urlsafe(24)
    _set(gui, "apikey", key)
    options = config.find("options")
    assert options is not None
    for tag in ("listenAddress", *CLOSED_LISTS):
        for node in options.findall(tag):
            options.remove(node)
    for address in site.listen:
        ET.SubElement(options, "listenAddress").text = address
    for tag in CLOSED_LISTS:
        # Present and empty: no server at all (a missing element would mean Syncthing's "default" servers).
        ET.SubElement(options, tag)
    for tag, value in CLOSED_OPTIONS.items():
        _set(options, tag, value)
    for tag in ("urURL", "releasesURL", "crashReportingURL"):
        _set(options, tag, "")  # nowhere to report to, even if switched back on
    ET.indent(tree)
    atomic_write_bytes(home / "config.xml", ET.tostring(config, encoding="utf-8", xml_declaration=False), mode=0o600)
    return did, key


def serve_command(home: Path, *, binary: str | None = None) -> list[str]:
    """How systemd (systemd/melanoma-kiosk-syncthing.service) and the tests start Syncthing."""
    return [_syncthing(binary), "serve", f"--home={home}", "--no-browser", "--no-restart", "--no-upgrade",
            "--no-default-folder"]  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m kiosk.sync.syncthing --site SITE.toml --home DIR``: configure, print the device id."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m kiosk.sync.syncthing", description=main.__doc__)
    parser.add_argument("--site", required=True, help="the site file (TOML) with a [sync] table")
    parser.add_argument("--home", required=True, help="Syncthing's folder (keys, config.xml, database)")
    parser.add_argument("--root", default="/", help="make the folders under this root (install.sh's KIOSK_ROOT)")
    parser.add_argument("--syncthing", help="the syncthing program (default: syncthing on PATH)")
    args = parser.parse_args(argv)
    try:
        did, _key = configure(
            Path(args.home), SyncSite.from_toml(args.site), binary=args.syncthing, root=Path(args.root)
        )
    except (SiteError, OSError, subprocess.SubprocessError) as exc:
        print(f"syncthing: error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    print(did)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
