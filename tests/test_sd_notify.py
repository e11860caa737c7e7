"""sd_notify against a real AF_UNIX datagram socket standing in for systemd."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid

import pytest

from kiosk import systemd
from kiosk.systemd import Watchdog


class FakeSystemd:
    """A bound datagram socket that collects what the kiosk sends."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)

    def receive(self, timeout: float = 2.0) -> bytes | None:
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(4096)
        except (TimeoutError, BlockingIOError):  # timeout=0 reads without waiting
            return None

    def drain(self) -> list[bytes]:
        got = []
        while (message := self.receive(timeout=0)) is not None:
            got.append(message)
        return got

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def fake(short_dir, monkeypatch):
    path = str(short_dir / "notify")
    server = FakeSystemd(path)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    yield server
    server.close()


def test_messages_arrive_exactly(fake):
    assert systemd.ready() is True
    assert systemd.status("loading the model") is True
    assert systemd.watchdog() is True
    assert systemd.stopping() is True
    assert fake.drain() == [b"READY=1", b"STATUS=loading the model", b"WATCHDOG=1", b"STOPPING=1"]


def test_status_is_one_line_and_cannot_inject_assignments(fake):
    assert systemd.status("camera lost\nREADY=1")
    assert fake.drain() == [b"STATUS=camera lost READY=1"]


def test_status_utf8(fake):
    systemd.status("Handa na — ready")
    assert fake.drain() == ["STATUS=Handa na — ready".encode()]


def test_abstract_socket(monkeypatch):
    name = f"kiosk-test-{uuid.uuid4().hex}"
    server = FakeSystemd("\0" + name)
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert systemd.ready() is True
        assert server.receive() == b"READY=1"
    finally:
        server.close()


def test_without_notify_socket_nothing_is_sent(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.notify("READY=1") is False
    assert systemd.ready() is False
    assert systemd.watchdog(env={}) is False


@pytest.mark.parametrize("value", ["", "relative/path", "@", "vsock:2:1234"])
def test_unusable_notify_socket_values(value):
    assert systemd.notify("READY=1", env={"NOTIFY_SOCKET": value}) is False


def test_nobody_listening_returns_false(short_dir):
    assert systemd.notify("READY=1", env={"NOTIFY_SOCKET": str(short_dir / "gone")}) is False


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "30000000"}, 30.0),
        ({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": str(os.getpid())}, 0.5),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # someone else's watchdog
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "x"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "thirty"}, None),
    ],
)
def test_watchdog_interval(env, expected):
    assert systemd.watchdog_interval(env=env) == expected


def test_watchdog_interval_reads_the_environment(monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert systemd.watchdog_interval() == 2.0


# --- Watchdog -----------------------------------------------------------------

INTERVAL = 0.2  # pings every 0.1 s


def test_watchdog_pings_while_healthy_and_stops_while_not(fake):
    healthy = threading.Event()
    healthy.set()
    lines: list[str] = []
    with Watchdog(healthy=healthy.is_set, interval=INTERVAL, log=lines.append) as dog:
        assert dog.running
        # Healthy: pings keep coming, about every INTERVAL / 2.
        assert [fake.receive() for _ in range(3)] == [b"WATCHDOG=1"] * 3

        healthy.clear()
        time.sleep(INTERVAL)  # let a ping already in flight land
        fake.drain()
        assert fake.receive(timeout=INTERVAL * 3) is None  # silence: systemd would restart us

        healthy.set()
        assert fake.receive() == b"WATCHDOG=1"  # recovered in time: pinging again
    assert not dog.running
    fake.drain()
    assert fake.receive(timeout=INTERVAL) is None  # stopped means stopped
    assert len(lines) == 2
    assert lines[0].startswith("watchdog: health check failed; not pinging systemd")
    assert lines[1] == "watchdog: healthy again; pinging systemd"


def test_a_raising_health_check_counts_as_unhealthy(fake):
    lines: list[str] = []

    def broken() -> bool:
        raise RuntimeError("camera thread died")

    dog = Watchdog(healthy=broken, interval=INTERVAL, log=lines.append)
    assert dog.check() is False
    assert dog.check() is False
    assert fake.drain() == []
    assert lines == [
        (
            "watchdog: health check raised RuntimeError: camera thread died; "
            "not pinging systemd, which restarts the kiosk if this lasts 0.2 s"
        )
    ]


def test_watchdog_uses_watchdog_usec(fake, monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", str(int(INTERVAL * 1e6)))
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    with Watchdog(healthy=lambda: True) as dog:
        assert dog.interval == INTERVAL
        assert fake.receive() == b"WATCHDOG=1"


def test_watchdog_without_systemd_does_nothing(monkeypatch):
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    calls = []
    with Watchdog(healthy=lambda: calls.append(1) or True) as dog:
        assert dog.interval is None
        assert not dog.running
    assert calls == []
