"""Two real Syncthing instances, a kiosk and an RHU, run inside the caller's private network namespace.

Run by tests/test_syncthing.py as ``unshare -rn sh -c 'ip link set lo up && python -m tests.syncthing_pair DIR'``:
the namespace has nothing but loopback, so nothing can leave it whatever Syncthing tried. Prints one JSON
object: timings, the options each instance reports over its REST API, and what arrived where.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from kiosk.rhu.db import Database
from kiosk.rhu.importer import ExportError, import_tree
from kiosk.rhu.outcomes import record_outcome
from kiosk.rhu.photos import PhotoStore
from kiosk.rhu.sample import write_sample_export
from kiosk.sync.syncthing import SyncSite, configure, generate, serve_command

STATION = "PH-LEY-0001"
DEADLINE_S = 45  # each transfer; the whole run stays under the test's 90 s


def _rest(gui: str, key: str, path: str) -> Any:
    request = urllib.request.Request(f"http://{gui}{path}", headers={"X-API-Key": key})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def _wait(predicate: Any, seconds: float) -> float | None:
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        try:
            if predicate():
                return time.monotonic() - start
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(0.2)
    return None


def main(root: Path) -> dict[str, Any]:
    kiosk_home, rhu_home = root / "kiosk-st", root / "rhu-st"
    kiosk_id, rhu_id = generate(kiosk_home), generate(rhu_home)
    outbox, inbox = root / "kiosk" / "outbox", root / "kiosk" / "inbox"
    rhu_inbox, rhu_outbound = root / "rhu" / "inbox", root / "rhu" / "outbound"
    kiosk_site = SyncSite.from_mapping({
        "name": STATION, "listen": ["tcp://127.0.0.1:22001"], "gui": "127.0.0.1:8385",
        "peers": [{"name": "RHU-PALO", "device_id": rhu_id, "addresses": ["tcp://127.0.0.1:22002"]}],
        "folders": [
            {"id": f"{STATION}-outbox", "path": str(outbox), "type": "sendonly", "peers": ["RHU-PALO"]},
            {"id": f"{STATION}-outcomes", "path": str(inbox), "type": "receiveonly", "peers": ["RHU-PALO"]},
        ],
    })  # fmt: skip
    rhu_site = SyncSite.from_mapping({
        "name": "RHU-PALO", "listen": ["tcp://127.0.0.1:22002"], "gui": "127.0.0.1:8386",
        "peers": [{"name": STATION, "device_id": kiosk_id}],  # no address: the kiosk calls in
        "folders": [
            {"id": f"{STATION}-outbox", "path": str(rhu_inbox / STATION), "type": "receiveonly", "peers": [STATION]},
            {"id": f"{STATION}-outcomes", "path": str(rhu_outbound / STATION), "type": "sendonly", "peers": [STATION]},
        ],
    })  # fmt: skip
    _, kiosk_key = configure(kiosk_home, kiosk_site)
    _, rhu_key = configure(rhu_home, rhu_site)
    env = {"STNOUPGRADE": "1", "STNODEFAULTFOLDER": "1", "HOME": str(root), "PATH": "/usr/bin:/bin"}
    procs = [
        subprocess.Popen(
            serve_command(home), stdout=(root / f"{home.name}.log").open("wb"), stderr=subprocess.STDOUT, env=env
        )  # fmt: skip
        for home in (kiosk_home, rhu_home)
    ]
    result: dict[str, Any] = {"kiosk_id": kiosk_id, "rhu_id": rhu_id}
    try:
        for name, gui, key in (("kiosk", kiosk_site.gui, kiosk_key), ("rhu", rhu_site.gui, rhu_key)):
            result[f"{name}_up_s"] = _wait(lambda g=gui, k=key: _rest(g, k, "/rest/system/ping"), 30)
            result[f"{name}_options"] = _rest(gui, key, "/rest/config")["options"]
            result[f"{name}_gui"] = _rest(gui, key, "/rest/config")["gui"]["address"]
        result["connected_s"] = _wait(
            lambda: _rest(kiosk_site.gui, kiosk_key, "/rest/system/connections")["connections"][rhu_id]["connected"],
            DEADLINE_S,
        )
        # A kiosk export lands in the outbox; the RHU imports it once every file matches the manifest.
        db = Database.open(f"sqlite:///{root / 'rhu' / 'rhu.sqlite3'}")
        started = time.monotonic()
        write_sample_export(outbox, station_code=STATION, count=3, seed=11)

        def imported() -> bool:
            try:
                return sum(s.new for s in import_tree(db, PhotoStore(root / "rhu" / "photos"), rhu_inbox)) == 3
            except ExportError:
                return False  # still arriving

        result["export_arrived_s"] = _wait(imported, DEADLINE_S) and time.monotonic() - started
        key = db.scalar("SELECT key FROM screenings WHERE referred = 1 ORDER BY key") or db.scalar(
            "SELECT key FROM screenings ORDER BY key"
        )
        result["screenings_imported"] = db.scalar("SELECT count(*) FROM screenings")
        started = time.monotonic()
        record_outcome(db, rhu_outbound, key=key, outcome="benign", recorded_by="dr.cruz", facility="Palo RHU",
                       facility_code="RHU-PALO")  # fmt: skip
        result["outcome_key"] = key
        # While both still run: every socket in this namespace (it holds only these two Syncthings).
        result["listening"] = Path("/proc/net/tcp").read_text() + Path("/proc/net/tcp6").read_text()
        result["udp"] = Path("/proc/net/udp").read_text() + Path("/proc/net/udp6").read_text()
        result["outcome_arrived_s"] = _wait(lambda: list((inbox / "outcomes").glob("*.ndjson")), DEADLINE_S) and (
            time.monotonic() - started
        )
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
    return result


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))))
