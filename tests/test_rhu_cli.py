"""``kiosk rhu``: import, create-user, figures, and serve (loopback or a LAN address only), as a user runs them."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from kiosk.rhu.sample import write_sample_export

ROOT = Path(__file__).resolve().parents[1]


def kiosk(*args: str, stdin: str = "", timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("KIOSK_RHU_DATABASE", None)
    return subprocess.run(
        [sys.executable, "-m", "kiosk", "rhu", *args], input=stdin, capture_output=True, text=True, timeout=timeout,
        env=env,
    )  # fmt: skip


def test_import_twice_then_figures(tmp_path: Path) -> None:
    write_sample_export(tmp_path / "stick", station_code="PH-LEY-0001", count=12, seed=3)
    data = str(tmp_path / "rhu")
    first = kiosk("--data-dir", data, "import", str(tmp_path / "stick"))
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip().endswith("12 screenings, 12 new")
    again = kiosk("--data-dir", data, "import", str(tmp_path / "stick"))
    assert again.stdout.strip().endswith("12 screenings, already imported")
    figures = kiosk("--data-dir", data, "figures")
    assert figures.stdout.splitlines()[1].startswith("PH-LEY-0001,2026-01,12,")


def test_damaged_export_is_one_line_and_exit_2(tmp_path: Path) -> None:
    folder = write_sample_export(tmp_path / "stick", station_code="PH-LEY-0001", count=2, seed=3)
    (folder / "Patient.ndjson").write_text("{}\n")
    done = kiosk("--data-dir", str(tmp_path / "rhu"), "import", str(tmp_path / "stick"))
    assert done.returncode == 2
    assert re.fullmatch(r"kiosk: error: Patient.ndjson in .* does not match its sha256: .*\n", done.stderr)


def test_create_user_hashes_and_refuses_a_short_password(tmp_path: Path) -> None:
    data = str(tmp_path / "rhu")
    assert kiosk("--data-dir", data, "create-user", "dr.cruz", "--password-stdin", stdin="short\n").returncode == 2
    done = kiosk("--data-dir", data, "create-user", "dr.cruz", "--password-stdin", stdin="a long passphrase\n")
    assert done.returncode == 0 and done.stdout == "user dr.cruz created\n"
    dup = kiosk("--data-dir", data, "create-user", "dr.cruz", "--password-stdin", stdin="a long passphrase\n")
    assert (
        dup.returncode == 2
        and dup.stderr == "kiosk: error: The RHU console cannot do this: the user 'dr.cruz' exists already\n"
    )
    assert b"a long passphrase" not in (tmp_path / "rhu" / "rhu.sqlite3").read_bytes()


@pytest.mark.parametrize(
    ("host", "why"), [("0.0.0.0", "not every address"), ("::", "not every address"), ("8.8.8.8", "never served to")]
)
def test_serve_refuses_every_address_and_public_ones(tmp_path: Path, host: str, why: str) -> None:
    done = kiosk("--data-dir", str(tmp_path / "rhu"), "serve", "--host", host)
    assert done.returncode == 2 and why in done.stderr and len(done.stderr.splitlines()) == 1


def test_serve_answers_on_loopback_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "kiosk", "rhu", "--data-dir", str(tmp_path / "rhu"), "serve", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert url, line
        with urllib.request.urlopen(url.group(0) + "login", timeout=10) as response:
            assert response.status == 200 and b"Sign in" in response.read()
        proc.send_signal(signal.SIGTERM)
        start = time.monotonic()
        assert proc.wait(timeout=15) == 0 and time.monotonic() - start < 15
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
