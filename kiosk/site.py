"""One health centre's settings for its SD card: read a site file or a CSV row, check it, write its kiosk.toml.

``deploy/provision-sd --site SITE.toml`` and ``deploy/provision-batch SITES.csv`` use this
module, so a card is refused on the laptop, with the bad key named, and never comes up with a
setting the kiosk would refuse at start. A site file is the kiosk's own settings TOML (every
key of :mod:`kiosk.config` is allowed, checked by the same typed config) plus a ``[site]``
table for what is not a kiosk setting::

    [site]
    hostname = "kiosk-rhu-07"     # the Pi's host name
    pin = "48213907"              # hashed here (salted scrypt); or pin_hash = "scrypt$..."

    [station]
    name = "Barangay San Jose Health Station"
    code = "PH-LEY-0001"
    time_zone = "Asia/Manila"     # the default

    [web]
    referral_facility = "Eastern Visayas Medical Center"
    referral_within_days = 14
    language = "war"

The plain PIN never leaves this process: only its hash goes into the card's settings.
In a CSV the header row names the same keys with dots (``site.hostname``, ``station.name``,
``web.referral_within_days``...); an empty cell leaves that setting at its default.

A ``[sync]`` table (optional) sets up Syncthing to the rural health unit, checked by
:meth:`kiosk.sync.syncthing.SyncSite.from_mapping`; without one the kiosk has no Syncthing
(USB stick only). A kiosk needs only its RHU: the name defaults to the station code, and
the folders to ``<code>-outbox`` (send-only, ``/var/lib/melanoma-kiosk/outbox``) and
``<code>-outcomes`` (receive-only, ``/var/lib/melanoma-kiosk/inbox``) shared with every peer::

    [[sync.peers]]
    name = "RHU-PALO"
    device_id = "MFZWI3D-BONSGYC-YLTMRWG-C43ENR5-QXGZDMM-FZWI3DP-BONSGYY-LTMRWAD"
    addresses = ["tcp://192.168.1.10:22000"]

``site.sync = "rhu-palo.toml"`` (a file holding such a ``[sync]`` table, relative to the site
file or the CSV) instead lets many sites, or every row of a CSV, share one RHU's table.

>>> site = site_from_tables({"site": {"hostname": "kiosk-1"}, "station": {"code": "PH-LEY-0001"}}, where="in x")
>>> site.hostname, site.time_zone, site.sync
('kiosk-1', 'Asia/Manila', None)
>>> print(site.config_text("[station]\\n# code = \\"\\"\\n[web]\\n"), end="")
[station]
code = "PH-LEY-0001"
# code = ""
[web]
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import _toml_value, load_settings, settings_from_tables  # the config's own TOML writer
from .pinhash import PIN_RE, hash_pin, is_pin_hash
from .reasons import ConfigError
from .sync import syncthing
from .sync.syncthing import SyncSite

__all__ = ["KIOSK_FOLDERS", "SITE_KEYS", "Site", "SiteError", "read_site_file", "site_from_row", "site_from_tables"]

#: The ``[site]`` table: what provisioning needs that is not a kiosk setting.
SITE_KEYS = ("hostname", "pin", "pin_hash", "sync")
#: A kiosk's Syncthing folders by type: (folder id suffix, path). The only folders its unit may write
#: (StateDirectory= of systemd/melanoma-kiosk-syncthing.service), so no other path is accepted.
KIOSK_FOLDERS = {
    "sendonly": ("outbox", "/var/lib/melanoma-kiosk/outbox"),
    "receiveonly": ("outcomes", "/var/lib/melanoma-kiosk/inbox"),
}
#: Settings a site may not set, and why.
NOT_PER_SITE = {"model.path": "install.sh points it at the bundle's model"}
_HOSTNAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


class SiteError(ValueError):
    """The site file or row is unusable; the message is one line naming the key."""


@dataclass(frozen=True, kw_only=True)
class Site:
    """A checked site: host name, time zone, and ``values`` (section -> key -> TOML value) for kiosk.toml."""

    hostname: str | None
    time_zone: str
    values: dict[str, dict[str, Any]]
    sync: SyncSite | None = None  # the checked [sync] table; None: no Syncthing (USB stick only)

    @property
    def pin_hash(self) -> str | None:
        pin = self.values.get("web", {}).get("pin")
        return pin if isinstance(pin, str) else None

    def to_toml(self) -> str:
        """This site as a site file again (the PIN only as its hash): what provision-batch hands provision-sd.

        >>> print(Site(hostname="kiosk-1", time_zone="UTC", values={"web": {"language": "war"}}).to_toml(), end="")
        [site]
        hostname = "kiosk-1"
        <BLANKLINE>
        [web]
        language = "war"
        """
        lines = ["[site]"] + ([f"hostname = {_toml_value(self.hostname)}"] if self.hostname else [])
        for section, keys in self.values.items():
            lines += ["", f"[{section}]"] + [f"{key} = {_toml_value(value)}" for key, value in keys.items()]
        if self.sync:
            lines += ["", self.sync.to_toml().rstrip("\n")]
        return "\n".join(lines) + "\n"

    def config_text(self, example: str) -> str:
        """``example`` (the bundle's kiosk.example.toml) with this site's settings set under their headers."""
        lines = example.splitlines()
        out: list[str] = []
        done: set[str] = set()
        for line in lines:
            out.append(line)
            header = re.fullmatch(r"\[([a-z_]+)\]\s*", line)
            if header and header.group(1) in self.values:
                section = header.group(1)
                out += [f"{key} = {_toml_value(value)}" for key, value in self.values[section].items()]
                done.add(section)
        for section in self.values:  # an older example without that section
            if section not in done and self.values[section]:
                out += ["", f"[{section}]"]
                out += [f"{key} = {_toml_value(value)}" for key, value in self.values[section].items()]
        return "\n".join(out) + "\n"


def _read_toml(file: Path, *, prefix: str = "", suffix: str = "") -> dict[str, Any]:
    """The tables of a TOML file; SiteError (one line, ``prefix`` + why + ``suffix``) when it cannot be read."""
    try:
        return tomllib.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SiteError(f"{prefix}cannot read {file}: {exc.strerror or exc}{suffix}") from None
    except UnicodeDecodeError:
        raise SiteError(f"{prefix}{file} is not UTF-8 text{suffix}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SiteError(f"{prefix}invalid TOML in {file}: {exc}{suffix}") from None


def read_site_file(path: str | os.PathLike[str]) -> Site:
    """The site in a TOML file; SiteError naming the file and the key when anything is wrong."""
    file = Path(path)
    tables = _read_toml(file)
    return site_from_tables(tables, where=f"in {file}", base=file.parent)


def site_from_tables(tables: Mapping[str, Any], *, where: str, base: Path | None = None) -> Site:
    """The site in parsed TOML (``[site]``, an optional ``[sync]``, kiosk settings); ``base``: for site.sync."""
    tables = dict(tables)
    site = tables.pop("site", {})
    if not isinstance(site, dict):
        raise SiteError(f"Setting site is invalid: expected a [site] table; {where}")
    # Out before the kiosk's own check, which refuses sections it does not know.
    sync_table = tables.pop("sync", None)
    settings_part = {k: dict(v) if isinstance(v, dict) else v for k, v in tables.items()}
    _take_site(site, settings_part, where)
    if sync_table is not None and site.get("sync") is not None:
        raise SiteError(f"Setting site.sync is invalid: give the [sync] table or site.sync, not both; {where}")
    if site.get("sync") is not None:
        sync_table = _read_sync_file(site["sync"], base, where)
    try:
        settings = settings_from_tables(settings_part, where=where)
    except ConfigError as exc:
        raise SiteError(str(exc)) from None
    values = {s: dict(t) for s, t in settings_part.items() if isinstance(t, dict) and t}
    checked = _checked(values, settings.station.time_zone, site.get("hostname"), where)
    return _with_sync(checked, sync_table, where)


def site_from_row(row: Mapping[str, str | None], *, where: str, base: Path | None = None) -> Site:
    """The site in one CSV row (``{"station.name": "...", "site.pin": "...", ...}``); cells are text.

    ``site.sync`` names a file holding the row's ``[sync]`` table, relative to ``base`` (the CSV's folder).
    """
    site: dict[str, Any] = {}
    env: dict[str, str] = {}
    columns: dict[str, tuple[str, str]] = {}
    for column, cell in row.items():
        if column is None:
            raise SiteError(f"a row has more cells than the header has columns; {where}")
        value = (cell or "").strip()
        section, dot, key = column.strip().partition(".")
        if not dot or not section or not key:
            raise SiteError(f"column {column!r} is not a setting: name it section.key, e.g. station.name; {where}")
        if not value:
            continue
        if section == "site":
            site[key] = value
            continue
        if section == "sync":
            raise SiteError(
                f"column {column!r}: a CSV gives the [sync] table as a file, in a site.sync column; {where}"
            )
        var = f"KIOSK_{section.upper()}_{key.upper()}"
        env[var] = value
        columns[var] = (section, key)
    settings_part: dict[str, dict[str, Any]] = {}
    for var, (section, key) in columns.items():
        settings_part.setdefault(section, {})[key] = env[var]
    _take_site(site, settings_part, where)
    if "pin" in settings_part.get("web", {}):
        env["KIOSK_WEB_PIN"] = settings_part["web"]["pin"]
    try:
        _known_sections(settings_part, where)
        settings = load_settings(None, env=env)  # the same parser as KIOSK_* variables: text to typed values
    except ConfigError as exc:
        raise SiteError(re.sub(r"set by KIOSK_[A-Z_]+$", where, str(exc))) from None
    values: dict[str, dict[str, Any]] = {}
    for section, keys in settings_part.items():
        for key, text in keys.items():
            typed = getattr(getattr(settings, section), key)
            values.setdefault(section, {})[key] = text if isinstance(typed, Path) else typed
    checked = _checked(values, settings.station.time_zone, site.get("hostname"), where)
    sync_file = site.get("sync")
    return _with_sync(checked, _read_sync_file(sync_file, base, where) if sync_file else None, where)


def _known_sections(settings_part: Mapping[str, Any], where: str) -> None:
    # KIOSK_* variables of unknown sections are ignored by load_settings; a CSV column is not.
    settings_from_tables({s: {} for s in settings_part}, where=where)


def _take_site(site: dict[str, Any], settings_part: dict[str, Any], where: str) -> None:
    """Check ``[site]`` and move its PIN, hashed, to ``web.pin``."""
    for key in site:
        if key not in SITE_KEYS:
            close = [k for k in SITE_KEYS if k[:3] == str(key)[:3]]
            hint = f" (did you mean site.{close[0]}?)" if close else f" (known: {', '.join(SITE_KEYS)})"
            raise SiteError(f"Setting site.{key} is invalid: unknown key{hint}; {where}")
    pin, pin_hash = site.get("pin"), site.get("pin_hash")
    web = settings_part.get("web")
    given = [name for name, v in (("site.pin", pin), ("site.pin_hash", pin_hash)) if v is not None]
    if isinstance(web, dict) and "pin" in web:
        given.append("web.pin")
    if len(given) > 1:
        raise SiteError(f"Setting {given[1]} is invalid: give the PIN once ({' or '.join(given)}); {where}")
    if pin is not None:
        if not isinstance(pin, str) or not PIN_RE.fullmatch(pin):
            raise SiteError(f"Setting site.pin is invalid: a PIN is 4 to 8 digits, written in quotes; {where}")
        settings_part.setdefault("web", {})["pin"] = hash_pin(pin)
    elif pin_hash is not None:
        if not is_pin_hash(pin_hash):
            raise SiteError(
                "Setting site.pin_hash is invalid: not a PIN hash (use the value from 'kiosk set-pin --print'); "
                + where
            )
        settings_part.setdefault("web", {})["pin"] = pin_hash
    hostname = site.get("hostname")
    if hostname is not None and (not isinstance(hostname, str) or not _HOSTNAME_RE.fullmatch(hostname)):
        raise SiteError(
            f"Setting site.hostname is invalid: letters, digits and '-' only, at most 63, no '-' at either end; {where}"
        )


def _checked(values: dict[str, dict[str, Any]], time_zone: str, hostname: Any, where: str) -> Site:
    for key, why in NOT_PER_SITE.items():
        section, _, name = key.partition(".")
        if name in values.get(section, {}):
            raise SiteError(f"Setting {key} is invalid: not per site ({why}); {where}")
    return Site(hostname=hostname, time_zone=time_zone, values=values)


def _read_sync_file(name: Any, base: Path | None, where: str) -> Any:
    """The ``[sync]`` table of the file that site.sync names."""
    if not isinstance(name, str) or not name.strip():
        raise SiteError(f"Setting site.sync is invalid: the name of a file holding a [sync] table; {where}")
    path = Path(name).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    tables = _read_toml(path, prefix="Setting site.sync is invalid: ", suffix=f"; {where}")
    if set(tables) != {"sync"}:
        raise SiteError(f"Setting site.sync is invalid: {path} must hold a [sync] table and nothing else; {where}")
    return tables["sync"]


def _with_sync(site: Site, table: Any, where: str) -> Site:
    """``site`` with its ``[sync]`` table completed for a kiosk (name, folders) and checked."""
    if table is None:
        return site
    if not isinstance(table, dict):
        raise SiteError(f"Setting sync is invalid: expected a [sync] table; {where}")
    try:
        syncthing.refuse_unknown_keys(table, syncthing.SYNC_KEYS, "sync")  # a typo first, before any default
        table = _kiosk_defaults(dict(table), site.values.get("station", {}).get("code") or site.hostname, where)
        sync = SyncSite.from_mapping(table)
    except syncthing.SiteError as exc:
        raise SiteError(f"Setting {exc.key} is invalid: {exc.reason}; {where}") from None
    for i, folder in enumerate(sync.folders):
        if folder.path.as_posix() != KIOSK_FOLDERS[folder.type][1]:
            kinds = " and ".join(f"{kind} {path}" for kind, (_, path) in KIOSK_FOLDERS.items())
            raise SiteError(
                f"Setting sync.folders[{i}].path is invalid: a kiosk's Syncthing writes only {kinds}; {where}"
            )
    calls_out = all(re.match(r"tcp[46]?://(127\.|\[::1\])", address) for address in sync.listen)
    for i, peer in enumerate(sync.peers):
        if calls_out and not peer.addresses:  # nobody could ever reach a kiosk that listens on loopback
            raise SiteError(
                f"Setting sync.peers[{i}].addresses is invalid: the kiosk listens on loopback only, so it calls "
                f"the RHU: give its tcp://IP:PORT; {where}"
            )
    return dataclasses.replace(site, sync=sync)


def _kiosk_defaults(table: dict[str, Any], code: str | None, where: str) -> dict[str, Any]:
    """A kiosk's defaults: its name is the station code; an outbox and an inbox shared with every peer."""
    if "name" not in table:
        if not code:
            raise SiteError(f"Setting sync.name is invalid: give it, or station.code (this kiosk at the RHU); {where}")
        table["name"] = code
    if not table.get("peers"):
        raise SiteError(f"Setting sync.peers is invalid: name the RHU ([[sync.peers]], device_id, addresses); {where}")
    every_peer = [p.name for p in SyncSite.from_mapping({**table, "folders": []}).peers]  # checks the peers first
    if "folders" not in table:
        table["folders"] = [
            {"id": f"{table['name']}-{suffix}", "type": kind} for kind, (suffix, _) in KIOSK_FOLDERS.items()
        ]
    if isinstance(table["folders"], list):
        # A folder left as it is (not a table, an unknown type) is refused, by key, by SyncSite.from_mapping.
        table["folders"] = [
            {"path": KIOSK_FOLDERS[f["type"]][1], "peers": every_peer, **f}
            if isinstance(f, dict) and f.get("type") in KIOSK_FOLDERS
            else f
            for f in table["folders"]
        ]
    return table
