"""``kiosk serve`` for real: waitress in a subprocess, /healthz and the MJPEG stream over TCP, clean SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.conftest import REPO_ROOT, serve_command

pytestmark = pytest.mark.skipif(os.name != "posix", reason="SIGTERM semantics are POSIX")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str, timeout: float = 2.0):
    return urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 - a local test URL


def test_kiosk_serve_answers_and_stops_cleanly_on_sigterm(tiny_model_path, tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK_")}
    env["KIOSK_GPIO_ENABLED"] = "false"
    cmd = serve_command(tiny_model_path, port=port, data_dir=tmp_path / "data")
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90  # a cold start on a busy 2-core machine
        health = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with get(f"{base}/healthz") as response:
                    health = (response.status, response.headers["Server"], json.loads(response.read()))
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        assert health is not None, (
            f"kiosk serve did not answer (exit {proc.poll()}): {proc.stderr.read() if proc.poll() is not None else ''}"
        )
        status, server, body = health
        assert status == 200 and server == "kiosk"  # waitress (ident=kiosk), not a development server
        assert body["status"] == "ok" and body["camera"] == "ok" and len(body["model_sha256"]) == 64

        # A viewer is still watching the preview when the stop comes: it must not hold the shutdown up.
        stream = get(f"{base}/stream.mjpg", timeout=5)
        assert stream.headers["Content-Type"].startswith("multipart/x-mixed-replace")
        data = b""
        while data.count(b"--frame\r\n") < 2 and len(data) < 2_000_000:
            data += stream.read1(65536)
        assert b"Content-Type: image/jpeg" in data and b"\xff\xd8" in data

        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=10)
        elapsed = time.monotonic() - started
        stream.close()
        assert code == 0, proc.stderr.read()
        assert elapsed < 5, f"took {elapsed:.1f} s to stop"
        log = proc.stderr.read()
        assert "serving on http://127.0.0.1:" in log and "Traceback" not in log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_kiosk_serve_refuses_a_bad_camera_spec_in_one_line(tiny_model_path, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK_")}
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "kiosk",
            "--model",
            str(tiny_model_path),
            "serve",
            "--camera",
            "webcam",
            "--port",
            str(free_port()),
            "--data-dir",
            str(tmp_path / "data"),
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2
    assert "camera.source" in r.stderr and "Traceback" not in r.stderr


def test_kiosk_serve_on_a_taken_port_is_one_line(tiny_model_path, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK_")}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = subprocess.run(
            serve_command(tiny_model_path, port=port, data_dir=tmp_path / "data"),
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert r.returncode == 2
    assert f"Setting web.port is invalid: cannot listen on 127.0.0.1:{port}" in r.stderr
    assert "Traceback" not in r.stderr
