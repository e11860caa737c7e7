"""The Syncthing and RHU console units: they verify, they are hardened, and Syncthing runs as the kiosk user."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.test_systemd_units import analyze, parse_unit, unexpected

UNITS = Path(__file__).resolve().parents[1] / "systemd"
SYNC, RHU = UNITS / "melanoma-kiosk-syncthing.service", UNITS / "melanoma-rhu.service"
needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")


def test_syncthing_runs_as_the_kiosk_user_without_upgrades_or_a_browser() -> None:
    unit = parse_unit(SYNC)["Service"]
    assert unit["User"] == ["kiosk"] and unit["Group"] == ["kiosk"]
    command = unit["ExecStart"][0].split()
    assert command[:2] == ["/usr/bin/syncthing", "serve"]
    assert {"--no-browser", "--no-restart", "--no-upgrade", "--home=/var/lib/melanoma-kiosk/syncthing"} <= set(command)
    assert unit["IPAddressDeny"] == ["any"]


@needs_analyze
@pytest.mark.parametrize("path", [SYNC, RHU], ids=lambda p: p.name)
def test_unit_verifies_and_is_hardened(path: Path) -> None:
    proc = analyze("verify", "--man=no", str(path))
    assert unexpected(proc.stdout + proc.stderr) == []
    proc = analyze("security", "--offline=true", "--threshold=20", str(path))
    match = re.search(rf"Overall exposure level for {re.escape(path.name)}: (\d+(?:\.\d+)?)", proc.stdout + proc.stderr)
    assert match and float(match.group(1)) <= 2.0, proc.stdout[-2000:]
