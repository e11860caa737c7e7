"""melanoma-kiosk-sync.service and .timer: the outbox filled, the inbox read, by the unit's own command lines.

The command test runs exactly the ExecStart= lines of the unit (``kiosk`` as ``python -m kiosk``, the
unit's paths moved into a temporary folder) against a temporary store and settings file.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kiosk.fhir.export import complete_exports, read_ndjson, verify_export
from kiosk.fhir.outcomes import outcome_observation
from kiosk.records import RecordStore
from kiosk.site import KIOSK_FOLDERS
from tests.conftest import REPO_ROOT
from tests.fhir_data import STATION, fill
from tests.test_systemd_units import analyze, one, parse_unit, unexpected

UNITS = REPO_ROOT / "systemd"
SERVICE, TIMER = UNITS / "melanoma-kiosk-sync.service", UNITS / "melanoma-kiosk-sync.timer"
SYNCTHING_UNIT = UNITS / "melanoma-kiosk-syncthing.service"
STATE = "/var/lib/melanoma-kiosk"
KIOSK = "/opt/melanoma-kiosk/venv/bin/kiosk"
CONFIG = "/etc/melanoma-kiosk/kiosk.toml"
needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")


def test_the_service_exports_to_the_outbox_then_imports_from_the_inbox_as_the_kiosk_user() -> None:
    unit = parse_unit(SERVICE)
    assert one(unit, "Service", "Type") == "oneshot"
    assert one(unit, "Service", "User") == "kiosk" and one(unit, "Service", "Group") == "kiosk"
    outbox, inbox = KIOSK_FOLDERS["sendonly"][1], KIOSK_FOLDERS["receiveonly"][1]
    assert unit["Service"]["ExecStart"] == [
        f"{KIOSK} --config {CONFIG} export fhir --out {outbox}",
        f"{KIOSK} --config {CONFIG} import outcomes --empty-ok {inbox}",
    ]
    env = dict(v.split("=", 1) for v in unit["Service"]["Environment"])
    assert env["KIOSK_RECORDS_DATA_DIR"] == STATE  # the same records as melanoma-kiosk.service
    # The same folders as the Syncthing unit's (the ones Syncthing sends from and writes into).
    dirs = one(unit, "Service", "StateDirectory").split()
    assert dirs == ["melanoma-kiosk", "melanoma-kiosk/outbox", "melanoma-kiosk/inbox"]
    assert set(dirs[1:]) <= set(one(parse_unit(SYNCTHING_UNIT), "Service", "StateDirectory").split())
    assert one(unit, "Service", "PrivateNetwork") == "yes" and one(unit, "Service", "IPAddressDeny") == "any"


def test_the_timer_runs_the_service_after_boot_and_every_15_minutes() -> None:
    timer = parse_unit(TIMER)
    assert one(timer, "Timer", "Unit") == SERVICE.name
    assert one(timer, "Timer", "OnBootSec") == "5min" and one(timer, "Timer", "OnUnitActiveSec") == "15min"
    assert one(timer, "Timer", "RandomizedDelaySec") == "2min"
    assert one(timer, "Install", "WantedBy") == "timers.target"
    assert "Install" not in parse_unit(SERVICE)  # started by the timer only


@needs_analyze
def test_the_units_verify_and_the_service_is_hardened() -> None:
    proc = analyze("verify", "--man=no", str(SERVICE), str(TIMER))
    assert unexpected(proc.stdout + proc.stderr) == []
    proc = analyze("security", "--offline=true", "--threshold=20", str(SERVICE))
    match = re.search(r"Overall exposure level for melanoma-kiosk-sync\.service: (\d+(?:\.\d+)?)", proc.stdout)
    assert match and float(match.group(1)) <= 1.0, proc.stdout[-2000:]  # 0.4 SAFE with systemd 252


# --- the unit's commands, run for real -----------------------------------------------------------


def unit_commands(tmp_path: Path, config: Path) -> list[list[str]]:
    """The service's ExecStart= lines as this test runs them: python -m kiosk, the state folder under tmp_path."""
    commands = []
    for line in parse_unit(SERVICE)["Service"]["ExecStart"]:
        argv = shlex.split(line.replace(CONFIG, str(config)).replace(STATE, str(tmp_path / "state")))
        assert argv[0] == KIOSK
        commands.append([sys.executable, "-m", "kiosk", *argv[1:]])
    return commands


def run_service(tmp_path: Path, config: Path) -> list[subprocess.CompletedProcess[str]]:
    """One run of the service: its commands in order, stopping at the first that fails (as systemd does)."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), KIOSK_RECORDS_DATA_DIR=str(tmp_path / "state"))
    done = []
    for argv in unit_commands(tmp_path, config):
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300, check=False, cwd=tmp_path)
        done.append(proc)
        if proc.returncode != 0:
            break
    return done


@pytest.fixture()
def kiosk_state(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """(settings file, screening ids): a kiosk's records in tmp_path/state, its Syncthing folders beside them."""
    state = tmp_path / "state"
    with RecordStore(state, station_code=STATION) as store:
        ids = fill(store)
    for folder in ("outbox", "inbox"):
        (state / folder / ".stfolder").mkdir(parents=True)  # what configure() makes for Syncthing
    config = tmp_path / "kiosk.toml"
    config.write_text(f'[station]\ncode = "{STATION}"\nname = "Barangay San Jose Health Station"\n')
    return config, ids


def outcome_line(store_dir: Path, screening: str, outcome: str) -> str:
    with RecordStore(store_dir, station_code=STATION) as store:
        found = store.get(screening)
        assert found is not None and found.code
        code = found.code
    at = datetime(2026, 3, 9, 1, 20, tzinfo=UTC)
    line = outcome_observation(station_code=STATION, slip_code=code, outcome=outcome, recorded_at=at, rhu_code="RHU")
    return json.dumps(line) + "\n"


def test_one_run_fills_the_outbox_and_puts_the_inboxs_outcome_in_the_store_once(tmp_path, kiosk_state) -> None:
    config, ids = kiosk_state
    state = tmp_path / "state"
    outcomes = state / "inbox" / "outcomes"  # the RHU's outbound/<station>/outcomes/, as its Syncthing writes it
    outcomes.mkdir()
    (outcomes / "o-1.ndjson").write_text(outcome_line(state, ids["refer"], "melanoma"))
    # A file Syncthing is still receiving: its temporary name, never read (the real one comes later).
    (outcomes / ".syncthing.o-2.ndjson.tmp").write_text(outcome_line(state, ids["low"], "melanoma"))

    export, imported = run_service(tmp_path, config)
    assert export.returncode == 0 and imported.returncode == 0, export.stderr + imported.stderr
    assert export.stdout.splitlines()[-1].startswith("exported 6 screenings and 5 photos in 1 batch(es)")
    assert imported.stdout == (
        "Outcomes: 1 imported, 0 already here, 0 for other stations, 0 with unknown slip codes, 0 unreadable.\n"
    )
    batches = complete_exports(state / "outbox")
    assert len(batches) == 1 and verify_export(batches[0]).ok
    assert len(read_ndjson(batches[0] / "Encounter.ndjson")) == 6
    # Nothing half-written left for Syncthing: only the batch and Syncthing's marker.
    assert sorted(p.name for p in (state / "outbox").iterdir()) == [".stfolder", batches[0].name]
    with RecordStore(state, station_code=STATION) as store:
        assert [(o.outcome, o.source) for o in store.outcomes(ids["refer"])] == [("melanoma", "rhu:RHU")]
        assert store.outcomes(ids["low"]) == []

    # What the daily validation report counts: the outcome imported from the inbox.
    report = subprocess.run(
        [sys.executable, "-m", "kiosk", "--config", str(config), "validation-report", "--json"],
        capture_output=True, text=True, check=False, timeout=300,
        env=dict(os.environ, PYTHONPATH=str(REPO_ROOT), KIOSK_RECORDS_DATA_DIR=str(state)),
    )  # fmt: skip
    assert report.returncode == 0, report.stderr
    counted = json.loads(report.stdout)
    assert counted["outcomes"] == {"not_seen": 0, "benign": 0, "melanoma": 1, "other_skin_cancer": 0, "other": 0}
    assert counted["confirmed"] == 1 and counted["overall"]["melanoma_referred"] == 1

    # The next run (15 minutes later): nothing exported twice, the same outcome not stored twice.
    export, imported = run_service(tmp_path, config)
    assert (export.returncode, export.stdout) == (0, "nothing new to export\n")
    assert imported.stdout.startswith("Outcomes: 0 imported, 1 already here")
    assert len(complete_exports(state / "outbox")) == 1
    with RecordStore(state, station_code=STATION) as store:
        assert len(store.outcomes(ids["refer"])) == 1


def test_an_empty_inbox_is_a_successful_run(tmp_path, kiosk_state) -> None:
    config, _ = kiosk_state
    export, imported = run_service(tmp_path, config)  # only .stfolder in the inbox: the RHU sent nothing yet
    assert export.returncode == 0 and imported.returncode == 0, imported.stderr
    assert imported.stdout.startswith("Outcomes: 0 imported, 0 already here")
    # Without --empty-ok (the USB stick's "Import outcomes") an empty folder stays an error, in one line.
    argv = [sys.executable, "-m", "kiosk", "--config", str(config), "import", "outcomes", str(tmp_path / "state/inbox")]
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), KIOSK_RECORDS_DATA_DIR=str(tmp_path / "state"))
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1 and "no outcomes/*.ndjson" in proc.stderr
