"""The RHU console's pages: login, CSRF, the referral list, code search, outcomes back; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient

from kiosk.rhu.accounts import create_user
from kiosk.rhu.db import Database
from kiosk.rhu.importer import import_tree
from kiosk.rhu.photos import PhotoStore
from kiosk.rhu.sample import SampleScreening, sample_screenings, write_sample_export
from kiosk.rhu.web import create_app
from tests.rhu_conftest import pg_url, rhu_db  # noqa: F401 - fixtures

PASSWORD = "correct horse battery"
MANILA = ZoneInfo("Asia/Manila")
TOKEN_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def screenings() -> dict[str, list[SampleScreening]]:
    return {code: sample_screenings(code, 30, seed=4, per_day=5) for code in ("PH-LEY-0002", "PH-LEY-0001")}


@pytest.fixture
def console(rhu_db: Database, tmp_path: Path, screenings: dict[str, list[SampleScreening]]) -> Flask:
    for code, items in screenings.items():
        write_sample_export(tmp_path / "inbox", station_code=code, count=len(items), seed=4, screenings=items)
    import_tree(rhu_db, PhotoStore(tmp_path / "rhu" / "photos"), tmp_path / "inbox")
    create_user(rhu_db, "dr.cruz", PASSWORD)
    clock = Clock()
    app = create_app(
        db=rhu_db, data_dir=tmp_path / "rhu", facility="Palo RHU", facility_code="RHU-PALO", testing=True, clock=clock
    )
    app.config["clock"] = clock
    return app


def _token(client: FlaskClient, path: str = "/login") -> str:
    match = TOKEN_RE.search(client.get(path).get_data(as_text=True))
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def _login(client: FlaskClient, password: str = PASSWORD) -> int:
    token = _token(client)
    return client.post("/login", data={"username": "dr.cruz", "password": password, "csrf_token": token}).status_code


def test_password_is_stored_as_a_salted_scrypt_hash(rhu_db: Database) -> None:
    create_user(rhu_db, "nurse.reyes", "another long secret")
    create_user(rhu_db, "nurse.santos", "another long secret")
    hashes = [r["password_hash"] for r in rhu_db.query("SELECT password_hash FROM users ORDER BY username")]
    assert all(h.startswith("scrypt$16384$8$1$") and "another" not in h for h in hashes)
    assert hashes[0] != hashes[1]  # salted


def test_every_page_needs_a_login_and_the_login_needs_csrf(console: Flask) -> None:
    client = console.test_client()
    for path in ("/", "/find?code=123", "/figures", "/figures.csv"):
        response = client.get(path)
        assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    assert client.post("/login", data={"username": "dr.cruz", "password": PASSWORD}).status_code == 400  # no token
    assert _login(client, "wrong password!") == 401
    assert client.get("/").status_code == 302
    assert _login(client) == 302
    assert client.get("/").status_code == 200
    token = _token(client, "/")
    assert client.post("/logout", data={}).status_code == 400  # CSRF on every form, sign-out too
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/").status_code == 302


def test_five_wrong_passwords_lock_the_user_for_five_minutes(console: Flask) -> None:
    client = console.test_client()
    for _ in range(5):
        assert _login(client, "wrong password!") == 401
    assert _login(client) == 401  # even the right one, while locked
    console.config["clock"].now += 301
    assert _login(client) == 302


def test_the_session_ends_after_eight_hours(console: Flask) -> None:
    client = console.test_client()
    assert _login(client) == 302
    console.config["clock"].now += 8 * 3600 + 1
    assert client.get("/").status_code == 302


def test_other_host_names_are_refused(console: Flask) -> None:
    assert console.test_client().get("/login", headers={"Host": "evil.example"}).status_code == 400


def test_referral_list_by_station_and_due_date(console: Flask, screenings: dict[str, list[SampleScreening]]) -> None:
    client = console.test_client()
    _login(client)
    html = client.get("/").get_data(as_text=True)
    referred = sorted(
        (s for items in screenings.values() for s in items if s.risk == "refer"),
        key=lambda s: (s.station_code, (s.created_at + timedelta(days=14)).astimezone(MANILA).date(), s.key),
    )
    assert len(referred) == 5 and len({s.created_at.date() for s in referred}) == 4  # several due dates
    order = [m.group(1) for m in re.finditer(r'data-testid="referral-([^"]+)"', html)]
    assert order == [s.key for s in referred]
    first = referred[0]
    assert "PH-LEY-0001" in html and f"/screenings/{first.key}/photo.jpg" in html
    assert first.body_site in html and "colour-count" in html
    only = client.get("/?station=PH-LEY-0002").get_data(as_text=True)
    assert [m.group(1) for m in re.finditer(r'data-testid="referral-([^"]+)"', only)] == [
        s.key for s in referred if s.station_code == "PH-LEY-0002"
    ]
    photo = client.get(f"/screenings/{first.key}/photo.jpg")
    assert photo.status_code == 200 and photo.mimetype == "image/jpeg" and photo.data[:2] == b"\xff\xd8"
    assert client.get("/screenings/nope").status_code == 404


def test_find_by_slip_code(console: Flask, screenings: dict[str, list[SampleScreening]]) -> None:
    client = console.test_client()
    _login(client)
    target = screenings["PH-LEY-0002"][7]
    dashed = f"{target.code[:3]}-{target.code[3:6]}-{target.code[6:]}"
    response = client.get(f"/find?code={dashed}")
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/screenings/{target.key}")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert dashed in page and target.body_site in page and target.risk in page
    prefix = target.code[:4]
    expected = sorted(s.key for items in screenings.values() for s in items if s.code.startswith(prefix))
    found = client.get(f"/find?code={prefix}").get_data(as_text=True)
    assert sorted(m.group(1) for m in re.finditer(r'data-testid="referral-([^"]+)"', found)) == expected
    assert 'data-testid="referral-' not in client.get("/find?code=12").get_data(as_text=True)  # too short


def test_outcome_is_saved_and_written_back_for_the_station(
    console: Flask, tmp_path: Path, screenings: dict[str, list[SampleScreening]]
) -> None:
    client = console.test_client()
    _login(client)
    target = next(s for s in screenings["PH-LEY-0001"] if s.risk == "refer")
    url = f"/screenings/{target.key}/outcome"
    form = {"outcome": "melanoma", "seen_on": "2026-01-10", "biopsy": "melanoma", "note": "excised"}
    assert client.post(url, data=form).status_code == 400  # no CSRF token: nothing saved
    outbound = tmp_path / "rhu" / "outbound"
    assert not outbound.exists()
    token = _token(client, f"/screenings/{target.key}")
    bad = client.post(url, data={**form, "outcome": "cured", "csrf_token": token})
    assert bad.status_code == 400 and "outcome must be one of" in bad.get_data(as_text=True)
    assert not outbound.exists()
    response = client.post(url, data={**form, "csrf_token": token})
    assert response.status_code == 302
    assert 'data-testid="outcome-saved"' in client.get(response.headers["Location"]).get_data(as_text=True)
    files = list(outbound.glob("*/outcomes/*.ndjson"))
    assert [f.parent.parent.name for f in files] == ["PH-LEY-0001"]
    line = json.loads(files[0].read_text())
    assert line["resourceType"] == "Observation" and line["status"] == "final"
    assert line["subject"]["identifier"] == {
        "system": "urn:melanoma-kiosk:slip-code",
        "value": f"PH-LEY-0001/{target.code}",
    }
    assert line["focus"][0]["identifier"]["value"] == target.key
    assert line["basedOn"][0]["identifier"] == {"system": "urn:melanoma-kiosk:referral", "value": target.key}
    assert line["valueCodeableConcept"]["coding"][0] == {
        "system": "urn:melanoma-kiosk:CodeSystem:outcome",
        "code": "melanoma",
    }
    assert line["effectiveDateTime"] == "2026-01-10" and line["note"] == [{"text": "biopsy: melanoma; excised"}]
    assert line["performer"][0] == {"identifier": {"system": "urn:melanoma-kiosk:facility", "value": "RHU-PALO"},
                                     "display": "Palo RHU"}  # fmt: skip
    assert line["issued"].endswith("+00:00")
    # Off the open list now; still listed with "include those with an outcome".
    assert f'data-testid="referral-{target.key}"' not in client.get("/").get_data(as_text=True)
    assert f'data-testid="referral-{target.key}"' in client.get("/?all=1").get_data(as_text=True)


def test_follow_through_figures_csv_and_chart(console: Flask, screenings: dict[str, list[SampleScreening]]) -> None:
    client = console.test_client()
    _login(client)
    referred = [s for s in screenings["PH-LEY-0001"] if s.risk == "refer"]
    token = _token(client, "/")
    # One melanoma seen in time (referred: a true positive), one benign seen late (referred: a false positive).
    client.post(
        f"/screenings/{referred[0].key}/outcome",
        data={"outcome": "melanoma", "seen_on": "2026-01-08", "csrf_token": token},
    )
    client.post(
        f"/screenings/{referred[1].key}/outcome",
        data={"outcome": "benign", "seen_on": "2026-03-01", "csrf_token": token},
    )
    csv_text = client.get("/figures.csv?station=PH-LEY-0001").get_data(as_text=True)
    lines = csv_text.splitlines()
    assert lines[0] == (
        "station_code,month,screenings,referrals,seen_in_time,outcomes,true_pos,false_neg,true_neg,false_pos,"
        "sensitivity,specificity"
    )
    assert lines[1:] == [f"PH-LEY-0001,2026-01,30,{len(referred)},1,2,1,0,0,1,1.000,0.000"]
    svg = client.get("/figures.svg")
    assert svg.mimetype == "image/svg+xml" and svg.data.startswith(b"<svg") and b"2026-01" in svg.data
    assert 'data-testid="figures-table"' in client.get("/figures").get_data(as_text=True)
