"""A real ``kiosk serve``: viewers that stop reading the live preview never lock out /healthz or a capture.

Issue 12 item 5: eight stalled MJPEG readers used to hold all eight waitress
threads, for minutes. Now at most three viewers get a stream (the others a
503 with a one-line reason), a stream whose reader stops reading ends after a
few seconds, and the API keeps its threads. Every wait here is bounded.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import time

import pytest

from kiosk.station.preview import MAX_VIEWERS
from kiosk.web.stream import SLOW_READER_TIMEOUT
from tests.conftest import REPO_ROOT, serve_command
from tests.web_conftest import wait_until

pytestmark = pytest.mark.skipif(os.name != "posix", reason="SIGTERM semantics are POSIX")

STALLED_VIEWERS = 8  # as many as the server has threads


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def request(
    port: int,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read(200_000) if path != "/stream.mjpg" else response.read(2000)
        return response.status, dict(response.getheaders()), data
    finally:
        conn.close()


def stalled_viewer(port: int) -> socket.socket:
    """Ask for the stream and then never read a byte (a small receive buffer fills at once)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    return sock


def test_stalled_preview_viewers_leave_threads_for_the_api(tiny_model_path, tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KIOSK_", "NOTIFY_", "WATCHDOG_"))}
    env["KIOSK_GPIO_ENABLED"] = "false"
    cmd = serve_command(tiny_model_path, port=port, data_dir=tmp_path / "data")
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    viewers: list[socket.socket] = []

    def healthy() -> bool:
        try:
            return request(port, "GET", "/healthz", timeout=2)[0] == 200
        except OSError:
            return proc.poll() is not None

    try:
        assert wait_until(healthy, timeout=90, step=0.2), "kiosk serve did not start"  # a cold start on 2 cores
        assert proc.poll() is None

        viewers = [stalled_viewer(port) for _ in range(STALLED_VIEWERS)]
        time.sleep(1.0)  # let every request reach the server and the accepted streams fill their buffers

        started = time.monotonic()
        status, _, body = request(port, "GET", "/healthz", timeout=5)
        assert status == 200 and json.loads(body)["status"] == "ok"
        assert time.monotonic() - started < 2

        # A capture (the page's no-script form, as the touchscreen would send it) answers too.
        status, headers, html = request(port, "GET", "/screen")
        assert status == 200
        token = re.search(rb'<meta name="csrf-token" content="([^"]+)">', html).group(1).decode()
        cookie = headers["Set-Cookie"].split(";", 1)[0]
        started = time.monotonic()
        status, headers, _ = request(
            port,
            "POST",
            "/screen",
            body=f"csrf_token={token}".encode(),
            timeout=20,
            headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie},
        )
        assert status == 303, status
        assert time.monotonic() - started < 10

        # Every preview slot is held by a stalled viewer: one more viewer is told so in one line...
        status, _, body = request(port, "GET", "/stream.mjpg", headers={"Accept": "application/json"})
        assert status == 503 and json.loads(body)["reason"] == "preview_busy"
        assert f"at most {MAX_VIEWERS}" in json.loads(body)["message"]

        # ...until the stalled streams are dropped, which frees their slots for a viewer who reads.
        def a_reader_gets_the_stream() -> bool:
            return request(port, "GET", "/stream.mjpg")[0] == 200

        assert wait_until(a_reader_gets_the_stream, timeout=SLOW_READER_TIMEOUT + 25, step=0.5)

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        log = proc.stderr.read()
        assert "a viewer stopped reading" in log and "Traceback" not in log
    finally:
        for sock in viewers:
            sock.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
