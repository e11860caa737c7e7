"""The web app attacked as a hostile user would (issue 12, items 6-14), through Flask's test client.

Each test names the item it guards. The fixtures are the same as test_web.py's: the real tiny model, a fake
camera (``rig``) whose ``captures`` counter tells whether a photo was taken.
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import stat
import subprocess
import sys
import tempfile

import cv2
import pytest

from kiosk.pinhash import DEMO_PIN, DEMO_PIN_HASH, hash_pin, is_pin_hash, verify_pin
from kiosk.records.store import _ID_RE as RECORD_ID_RE
from kiosk.synthetic import random_lesion
from kiosk.web import MAX_UPLOAD_BYTES, create_app
from kiosk.web.i18n import WEB_REASONS
from tests.web_conftest import (
    PIN,
    catalog,
    csrf_of,
    pin_hash,  # noqa: F401
)

JPEG = cv2.imencode(".jpg", random_lesion(3, width=320, height=240))[1].tobytes()
PNG = cv2.imencode(".png", random_lesion(3, width=320, height=240))[1].tobytes()


def post(client, token, **kwargs):
    headers = {"X-CSRF-Token": token, **kwargs.pop("headers", {})}
    return client.post("/api/screenings", headers=headers, **kwargs)


def enter_pin(client, pin=PIN, *, next_page="/history"):
    return client.post("/pin", data={"pin": pin, "next": next_page, "csrf_token": csrf_of(client, "/pin")})


def assert_one_line_reason(response, reasons):
    body = response.get_json()
    assert body is not None, response.get_data(as_text=True)[:200]
    assert body["status"] == "error" and body["reason"] in reasons, body
    assert body["message"] and "\n" not in body["message"] and "Traceback" not in body["message"]


# --- 6. a failed upload is a 4xx, never a camera photo ---------------------------------------------

FAILED_UPLOADS = {
    "empty multipart body": dict(data=b"", content_type="multipart/form-data; boundary=xyz"),
    "multipart without a boundary": dict(
        data=b'--xyz\r\nContent-Disposition: form-data; name="image"; '
        b'filename="a.jpg"\r\n\r\n' + JPEG + b"\r\n--xyz--\r\n",
        content_type="multipart/form-data",
    ),
    "wrong field name": dict(data={"photo": (io.BytesIO(JPEG), "a.jpg")}, content_type="multipart/form-data"),
    "image as a text field": dict(data={"image": "not a file"}, content_type="multipart/form-data"),
    "raw JPEG body": dict(data=JPEG, content_type="image/jpeg"),
    "raw JPEG, no content type": dict(data=JPEG),
    "octet stream": dict(data=PNG, content_type="application/octet-stream"),
    "invalid JSON": dict(data=b'{"patient": ', content_type="application/json"),
    "JSON array": dict(data=b"[]", content_type="application/json"),
    "JSON string": dict(data=b'"capture"', content_type="application/json"),
    "JSON with an image key": dict(data=json.dumps({"image": "base64..."}), content_type="application/json"),
    "JSON capture false": dict(data=b'{"capture": false}', content_type="application/json"),
    "empty JSON body": dict(data=b"", content_type="application/json"),
    "text body": dict(data=b"image=1", content_type="text/plain"),
    "unknown form field": dict(data={"imag": "x"}, content_type="application/x-www-form-urlencoded"),
}


@pytest.mark.parametrize("case", FAILED_UPLOADS)
def test_item6_a_failed_upload_is_a_4xx_with_a_translated_reason_and_takes_no_photo(client, rig, case):
    token = csrf_of(client)
    r = post(client, token, **FAILED_UPLOADS[case])
    assert 400 <= r.status_code < 500 and r.status_code != 404, (r.status_code, r.get_data(as_text=True)[:200])
    assert_one_line_reason(r, {"no_image", "unsupported_upload", "invalid_json", "unknown_field"})
    reason = r.get_json()["reason"]
    assert reason in WEB_REASONS and catalog("fil").gettext(WEB_REASONS[reason]) != WEB_REASONS[reason]
    assert rig.captures == 0  # nobody in front of the kiosk was photographed instead


@pytest.mark.parametrize(
    "request_kwargs",
    [
        {},  # what the page's script sends: fetch(POST) without a body (kiosk.js)
        {"json": {"capture": True}},
        {"json": {"patient": {"age": 54, "body_site": "trunk"}}},
        {"data": {"age": "54"}, "content_type": "application/x-www-form-urlencoded"},
    ],
)
def test_item6_only_an_explicit_capture_request_captures(client, rig, request_kwargs):
    r = post(client, csrf_of(client), **request_kwargs)
    assert r.status_code == 201, r.get_data(as_text=True)[:300]
    assert r.get_json()["image"] == "camera" and rig.captures == 1


def test_item6_a_real_upload_still_screens_the_file(client, rig):
    r = post(
        client, csrf_of(client), data={"image": (io.BytesIO(PNG), "lesion.png")}, content_type="multipart/form-data"
    )
    assert r.status_code == 201 and r.get_json()["image"] == "lesion.png" and rig.captures == 0


# --- 7. no request gives a 500 -----------------------------------------------------------------------


def test_item7_the_requests_that_gave_500_are_4xx_now(client, rig):
    token = csrf_of(client)
    nested = post(client, token, data=b"[" * 100_000 + b"]" * 100_000, content_type="application/json")
    assert nested.status_code == 400 and nested.get_json()["reason"] == "invalid_json"
    nested_object = post(
        client, token, data=b'{"patient": ' * 5000 + b"1" + b"}" * 5000, content_type="application/json"
    )
    assert nested_object.status_code == 400
    for bad_token in ("\u00e9t\u00e9", "\u00b2" * 43, token + "\u00e9"):
        r = client.post("/api/screenings", headers={"X-CSRF-Token": bad_token})
        assert r.status_code == 400 and r.get_json()["reason"] == "csrf_failed"
        r = client.post("/pin", data={"pin": PIN, "csrf_token": "\u0663\u0664\u00e9"})
        assert r.status_code == 400
    enter_pin(client)
    for query in ("limit=\u00b2", "offset=\u00b2", "limit=\u0663", "offset=" + "9" * 30, "limit=" + "1" * 30):
        r = client.get(f"/api/screenings?{query}")
        assert r.status_code == 400 and r.get_json()["reason"] == "bad_request", query
    for query in ("page=\u00b2", "page=" + "9" * 30, "page=\u0663", "page=-1", "page=0"):
        r = client.get(f"/history?{query}")
        assert r.status_code == 200, query  # a page number that is not one shows the first page
    assert rig.captures == 0


def test_item7_the_api_is_described_in_openapi_3(client):
    r = client.get("/api/openapi.json")
    assert r.status_code == 200
    spec = r.get_json()
    assert spec["openapi"].startswith("3.")
    routes = {
        (rule.rule, method)
        for rule in client.application.url_map.iter_rules()
        for method in rule.methods - {"HEAD", "OPTIONS"}
        if rule.endpoint.startswith("api.")
    }
    described = {
        (re.sub(r"\{(\w+)\}", r"<\1>", path), method.upper())
        for path, item in spec["paths"].items()
        for method in item
        if method != "parameters"
    }
    assert routes <= described, routes - described


# --- 8. oversized uploads are refused before they reach the disk -----------------------------------------


class CountingBody:
    """A chunked request body (no Content-Length) that counts what the server read of it."""

    def __init__(self, size: int) -> None:
        head = (
            b'--b\r\nContent-Disposition: form-data; name="image"; filename="big.jpg"\r\n'
            b"Content-Type: image/jpeg\r\n\r\n"
        )
        mib = random.Random(12).randbytes(2**20)  # like JPEG data: the multipart parser streams it on
        self.parts = [head, *(mib for _ in range(size // 2**20)), b"\r\n--b--\r\n"]
        self.read_bytes = 0
        self._buffer = b""

    def read(self, n: int = -1) -> bytes:
        while self.parts and (n < 0 or len(self._buffer) < n):
            self._buffer += self.parts.pop(0)
        out, self._buffer = (self._buffer, b"") if n < 0 else (self._buffer[:n], self._buffer[n:])
        self.read_bytes += len(out)
        return out

    def readline(self, limit: int = -1) -> bytes:  # pragma: no cover - werkzeug reads in blocks
        return self.read(limit)


def test_item8_an_upload_within_the_limit_is_never_spooled_to_a_temp_file(client, monkeypatch):
    import werkzeug.formparser

    spooled: list[object] = []
    real = tempfile.SpooledTemporaryFile

    def recording(*args, **kwargs):
        spooled.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(werkzeug.formparser, "SpooledTemporaryFile", recording)
    photo = random.Random(3).randbytes(5 * 2**20)  # 5 MB: werkzeug would put it on disk after 500 KB
    r = post(
        client, csrf_of(client), data={"image": (io.BytesIO(photo), "big.jpg")}, content_type="multipart/form-data"
    )
    assert r.status_code == 400 and r.get_json()["reason"] in ("not_an_image", "corrupt_image")
    assert spooled == []  # held in memory (bounded by MAX_CONTENT_LENGTH), never written to the card


def test_item8_a_chunked_body_over_the_limit_is_413_and_never_spooled_past_it(app, monkeypatch):
    """Through the real server: waitress reads a whole body (to a temp file) before the app sees it."""
    import socket
    import threading

    import waitress.buffers
    from waitress import create_server

    from kiosk.web import SERVER_LIMITS

    written: list[int] = []

    class CountingFile:
        def __init__(self, inner):
            self.inner, self.size = inner, 0
            written.append(0)
            self.index = len(written) - 1

        def write(self, data):
            self.size += len(data)
            written[self.index] = self.size
            return self.inner.write(data)

        def __getattr__(self, name):
            return getattr(self.inner, name)

    real_make = waitress.buffers.TempfileBasedBuffer.newfile
    monkeypatch.setattr(waitress.buffers.TempfileBasedBuffer, "newfile", lambda self: CountingFile(real_make(self)))
    server = create_server(app, host="127.0.0.1", port=0, threads=2, **SERVER_LIMITS)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        with socket.create_connection(("127.0.0.1", server.effective_port), timeout=30) as sock:
            sock.sendall(
                b"POST /api/screenings HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
                b"Content-Type: multipart/form-data; boundary=b\r\n\r\n"
            )
            chunk = random.Random(5).randbytes(2**20)
            sent = 0
            try:
                while sent < MAX_UPLOAD_BYTES + 30 * 2**20:
                    sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                    sent += len(chunk)
            except OSError:  # the server stopped reading and closed: what we want
                pass
            answer = b""
            try:
                while b"\r\n\r\n" not in answer:
                    part = sock.recv(4096)
                    if not part:
                        break
                    answer += part
            except OSError:
                pass
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert max(written, default=0) <= SERVER_LIMITS["max_request_body_size"] + 2**20, written
    finally:
        server.close()
        thread.join(timeout=5)


def test_item8_a_declared_length_over_the_limit_is_refused_before_reading(client):
    body = CountingBody(2 * 2**20)
    r = client.post(
        "/api/screenings",
        content_type="multipart/form-data; boundary=b",
        headers={"X-CSRF-Token": csrf_of(client)},
        environ_overrides={"wsgi.input": body, "CONTENT_LENGTH": str(MAX_UPLOAD_BYTES + 1)},
    )
    assert r.status_code == 413 and body.read_bytes == 0


def test_item8_waitress_refuses_a_body_past_the_limit_itself(tiny_model_path, tmp_path, monkeypatch):
    """waitress reads a whole body before the app sees it: the daemon must give it the upload limit."""
    import kiosk.daemon
    from kiosk.config import ModelSettings, RecordsSettings, Settings

    seen: dict[str, object] = {}

    class Stop(Exception):
        pass

    def fake_create_server(app, **kwargs):
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr(kiosk.daemon, "create_server", fake_create_server)
    settings = Settings(model=ModelSettings(path=tiny_model_path), records=RecordsSettings(data_dir=tmp_path / "d"))
    with pytest.raises(Stop):
        kiosk.daemon.run_server(settings=settings, camera_spec="synthetic", port=0, log=lambda line: None)
    assert MAX_UPLOAD_BYTES < seen["max_request_body_size"] <= MAX_UPLOAD_BYTES + 2**20


# --- 9. the PIN is a salted slow hash ---------------------------------------------------------------------


def test_item9_the_pin_is_kept_as_a_salted_scrypt_hash_compared_in_constant_time(tmp_path):
    first, second = hash_pin("2580", n=2**10), hash_pin("2580", n=2**10)
    assert first != second and first.startswith("scrypt$1024$8$1$")  # salted, parameters recorded
    assert verify_pin("2580", first) and not verify_pin("2581", first) and not verify_pin("", first)
    assert is_pin_hash(DEMO_PIN_HASH) and verify_pin(DEMO_PIN, DEMO_PIN_HASH)
    from kiosk.web.pin import PinGuard

    guard = PinGuard(first, clock=lambda: 0.0)
    assert "2580" not in repr(vars(guard))  # nothing in memory holds the PIN itself
    assert guard.check("2580").status == "ok"


def run_kiosk(*args, stdin="", env=None, cwd=None):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "kiosk", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=120,
    )


def test_item9_a_plain_pin_in_the_config_is_refused_at_start_with_how_to_set_one(tmp_path):
    config = tmp_path / "kiosk.toml"
    config.write_text('[web]\npin = "2580"\n')
    done = run_kiosk("--config", str(config), "serve", "--port", "0")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "a plain PIN is not accepted" in lines[0] and "kiosk set-pin" in lines[0], lines
    assert "2580" not in lines[0]  # the PIN is not echoed into a log


def test_item9_set_pin_writes_the_hash_atomically_keeping_the_rest_of_the_file(tmp_path):
    config = tmp_path / "kiosk.toml"
    original = '# the clinic\'s kiosk\n[model]\nthreads = 2\n\n[web]\n# pin = "old"\npin = "1234"\nport = 8081\n'
    config.write_text(original)
    config.chmod(0o640)
    done = run_kiosk("--config", str(config), "set-pin", "--pin-stdin", stdin="864209\n")
    assert done.returncode == 0, done.stderr
    text = config.read_text()
    stored = re.search(r'^pin = "(scrypt\$[^"]+)"$', text, re.M).group(1)
    assert verify_pin("864209", stored) and "864209" not in text
    assert text == original.replace('pin = "1234"', f'pin = "{stored}"')  # every other line kept
    assert stat.S_IMODE(config.stat().st_mode) == 0o640
    assert not [p for p in tmp_path.iterdir() if p.name != "kiosk.toml"]  # no temp file left behind
    printed = run_kiosk("set-pin", "--pin-stdin", "--print", stdin="4321\n")
    assert printed.returncode == 0 and printed.stdout.startswith('[web]\npin = "scrypt$')
    assert verify_pin("4321", printed.stdout.split('"')[1])
    refused = run_kiosk("--config", str(config), "set-pin", "--pin-stdin", stdin="12\n")
    assert refused.returncode == 2 and "4 to 8 digits" in refused.stderr and config.read_text() == text


def test_item9_demo_mode_unlocks_with_the_readme_pin(monkeypatch):
    import kiosk.cli
    from kiosk.config import load_settings

    got = {}
    monkeypatch.delenv("KIOSK_WEB_PIN", raising=False)
    monkeypatch.setattr(kiosk.cli, "cmd_serve", lambda args: got.setdefault("settings", load_settings(None)) and 0)
    assert kiosk.cli.main(["demo", "--port", "0"]) == 0
    assert verify_pin("2580", got["settings"].web.pin)


# --- 10. the lockout survives a restart --------------------------------------------------------------------


def test_item10_the_pin_lockout_survives_a_restart(settings, station, clock):
    first = create_app(settings=settings, station=station, testing=True, clock=clock).test_client()
    for _ in range(3):
        enter_pin(first, "1111")
    # "Restart": a new app (new PinGuard, new session key) on the same records folder.
    second = create_app(settings=settings, station=station, testing=True, clock=clock).test_client()
    enter_pin(second, "1111")
    r = enter_pin(second, "1111")  # the fifth wrong PIN in a row, across the restart
    assert "Too many wrong PINs" in r.get_data(as_text=True)
    third = create_app(settings=settings, station=station, testing=True, clock=clock).test_client()
    r = enter_pin(third, PIN)  # locked, even with the right PIN
    assert r.status_code == 200 and "Too many wrong PINs" in r.get_data(as_text=True)
    state = json.loads((station.records.data_dir / "pin-lockout.json").read_text())
    assert state == {"wrong": 5, "locked_until": clock.now + 300.0 - 0.0}
    clock.advance(301)
    fourth = create_app(settings=settings, station=station, testing=True, clock=clock).test_client()
    assert enter_pin(fourth, PIN).status_code == 303


def test_item10_a_clock_set_back_never_locks_for_longer_than_one_lockout(settings, station, clock):
    client = create_app(settings=settings, station=station, testing=True, clock=clock).test_client()
    for _ in range(5):
        enter_pin(client, "1111")
    clock.now -= 3600  # an offline Pi's clock restored an hour back at boot
    guard = create_app(settings=settings, station=station, testing=True, clock=clock).extensions["kiosk"].pin
    assert guard.retry_after() == 300.0


# --- 11. Lock revokes the session ----------------------------------------------------------------------------


def copy_session(source, target):
    cookie = source.get_cookie("session")
    target.set_cookie("session", cookie.value)


def test_item11_lock_revokes_the_session_even_for_a_copied_cookie(app):
    worker, thief = app.test_client(), app.test_client()
    assert enter_pin(worker).status_code == 303
    copy_session(worker, thief)
    assert thief.get("/history").status_code == 200  # the copy works while the worker's session is open...
    lock = worker.post("/pin/lock", data={"csrf_token": csrf_of(worker, "/history")})
    assert lock.status_code == 303
    for browser in (worker, thief):  # ...and not after Lock
        r = browser.get("/history")
        assert r.status_code == 303 and r.headers["Location"].startswith("/pin?next=")
        assert browser.get("/api/screenings").get_json()["reason"] == "pin_required"


def test_item11_a_pin_change_locks_every_session(app):
    worker = app.test_client()
    enter_pin(worker)
    assert worker.get("/history").status_code == 200
    app.extensions["kiosk"].pin.change_pin(pin_hash("97531"))
    assert worker.get("/history").status_code == 303
    assert enter_pin(worker, PIN).status_code == 200  # the old PIN is wrong now
    assert enter_pin(worker, "97531").status_code == 303


# --- 12. no open redirect after the PIN ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("next_page", "location"),
    [
        ("/\t/evil.example", "/history"),
        ("/\n/evil.example", "/history"),
        ("/\r\n/evil.example", "/history"),
        ("//evil.example", "/history"),
        ("/\\evil.example", "/history"),
        ("https://evil.example/", "/history"),
        ("/history/../\t/evil.example", "/history"),
        ("/static/kiosk.js", "/history"),
        ("/history?page=2", "/history?page=2"),
        ("/history?page=2&lang=fil&x=//evil", "/history?page=2&lang=fil"),
        ("/settings", "/settings"),
        ("/settings?lang=war", "/settings?lang=war"),
    ],
)
def test_item12_a_correct_pin_leads_only_to_a_known_page(client, next_page, location):
    r = enter_pin(client, next_page=next_page)
    assert r.status_code == 303 and r.headers["Location"] == location
    page = client.get("/pin", query_string={"next": next_page}).get_data(as_text=True)
    assert re.search(r'name="next" value="([^"]*)"', page).group(1) == location.replace("&", "&amp;")


# --- 13. the Host header is checked -------------------------------------------------------------------------------

ROUTES = [
    "/",
    "/screen",
    "/history",
    "/settings",
    "/pin",
    "/healthz",
    "/api/state",
    "/api/screenings",
    "/api/openapi.json",
    "/stream.mjpg",
    "/static/kiosk.js",
    "/favicon.ico",
    "/no-such-page",
    "/screenings/last",
    "/screenings/last/slip",
]


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8080", "127.0.0.1.evil.example", "kiosk.local"])
def test_item13_every_route_refuses_a_foreign_host(client, rig, host):
    for path in ROUTES:
        r = client.get(path, headers={"Host": host})
        assert r.status_code == 400, (path, r.status_code)
        assert r.get_data(as_text=True).count("\n") <= 1 and "evil" not in r.get_data(as_text=True)
    token = csrf_of(client)
    for path in ("/api/screenings", "/screen", "/pin", "/pin/lock"):
        r = client.post(path, headers={"Host": host, "X-CSRF-Token": token})
        assert r.status_code == 400, path
    assert rig.captures == 0


def test_item13_the_kiosks_own_names_are_allowed(settings, station, clock):
    import dataclasses
    import socket

    web = dataclasses.replace(settings.web, allowed_hosts="kiosk.local, 192.168.1.20")
    client = create_app(
        settings=dataclasses.replace(settings, web=web), station=station, testing=True, clock=clock
    ).test_client()
    for host in (
        "localhost",
        "127.0.0.1:8080",
        "[::1]:8080",
        "kiosk.local",
        "KIOSK.LOCAL:80",
        "192.168.1.20",
        socket.gethostname(),
    ):
        assert client.get("/healthz", headers={"Host": host}).status_code == 200, host
    for host in ("10.0.0.9", "evil.example", ""):
        assert client.get("/healthz", headers={"Host": host}).status_code == 400, host
    wildcard = create_app(settings=settings, station=station, testing=True, clock=clock, host="0.0.0.0").test_client()
    assert wildcard.get("/healthz", headers={"Host": "10.0.0.9:8080"}).status_code == 200  # an address, no rebinding
    assert wildcard.get("/healthz", headers={"Host": "evil.example"}).status_code == 400


# --- 14. results are readable only by their session or a PIN session ------------------------------------------------

NETWORK = {"REMOTE_ADDR": "192.168.1.50"}


def test_item14_a_result_is_readable_by_the_session_that_took_it_and_by_a_pin_session(app, rig):
    taker, other = app.test_client(), app.test_client()
    r = post(taker, csrf_of(taker))
    sid = r.get_json()["id"]
    assert RECORD_ID_RE.fullmatch(sid) and re.fullmatch(r".*-[0-9a-f]{32}", sid)  # 128 random bits in the id
    for path in (f"/api/screenings/{sid}", f"/screenings/{sid}", f"/screenings/{sid}/slip"):
        assert taker.get(path).status_code in (200, 303), path  # a retake's slip redirects to its result
        assert other.get(path).status_code == 404, path
    state = other.get("/api/state").get_json()
    assert "id" not in state["last"] and sid not in json.dumps(state)
    enter_pin(other)
    assert other.get(f"/api/screenings/{sid}").status_code == 200


def test_item14_the_last_result_shows_on_the_kiosks_own_screen_not_on_the_network(app, station, rig):
    screen, network = app.test_client(), app.test_client()
    sid, _ = station.capture_and_screen()  # the physical button: no browser session took it
    network_last = network.get("/screenings/last", environ_base=NETWORK)
    assert network_last.status_code == 404
    assert network.get(f"/screenings/{sid}", environ_base=NETWORK).status_code == 404
    assert screen.get("/screenings/last").status_code == 200  # Chromium on the Pi (loopback)
    assert screen.get(f"/screenings/{sid}").status_code == 200  # ...and then its result and slip by id
    # A network client that captures sees its own result, through the same page flow as kiosk.js.
    token = csrf_of(network, "/screen")
    mine = network.post("/api/screenings", headers={"X-CSRF-Token": token}, environ_base=NETWORK).get_json()["id"]
    assert network.get(f"/screenings/{mine}", environ_base=NETWORK).status_code == 200
    assert network.get("/screenings/last", environ_base=NETWORK).status_code == 200


def test_item14_ids_are_not_guessable(records):
    from kiosk.result import ScreeningResult

    ids = [records.save(ScreeningResult.retake("blurry")) for _ in range(50)]
    randoms = [sid.rsplit("-", 1)[1] for sid in ids]
    assert len(set(randoms)) == 50 and all(re.fullmatch(r"[0-9a-f]{32}", r) for r in randoms)
    assert ids == sorted(ids)  # still in save order
    assert records.get(ids[0][:-1] + ("0" if ids[0][-1] != "0" else "1")) is None


def test_item10_the_pin_lockout_survives_kill_9(tiny_model_path, tmp_path):
    """The real service: five wrong PINs over HTTP, kill -9, start again: still locked."""
    import http.cookiejar
    import signal
    import socket
    import time
    import urllib.parse
    import urllib.request

    def serve(port):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KIOSK_", "NOTIFY_", "WATCHDOG_"))}
        env.update(KIOSK_GPIO_ENABLED="false", KIOSK_WEB_PIN=pin_hash(PIN))
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kiosk",
                "--model",
                str(tiny_model_path),
                "serve",
                "--camera",
                "synthetic",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--data-dir",
                str(tmp_path / "data"),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def wait_ready(base, proc):
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2):  # noqa: S310 - local URL
                    return
            except OSError:
                time.sleep(0.2)
        pytest.fail("kiosk serve did not start")

    def try_pin(base, pin):
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        page = opener.open(f"{base}/pin", timeout=10).read().decode()
        token = re.search(r'<meta name="csrf-token" content="([^"]+)">', page).group(1)
        form = urllib.parse.urlencode({"pin": pin, "next": "/history", "csrf_token": token}).encode()
        return opener.open(f"{base}/pin", data=form, timeout=30).read().decode()

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    proc = serve(port)
    try:
        wait_ready(base, proc)
        for _ in range(5):
            answer = try_pin(base, "1111")
        assert "Too many wrong PINs" in answer
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    proc = serve(port)
    try:
        wait_ready(base, proc)
        assert "Too many wrong PINs" in try_pin(base, PIN)  # the right PIN, still refused after kill -9
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
