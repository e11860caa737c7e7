"""Model updates on the settings page, through Flask's test client, with a real station and real models.

A folder stands in for the USB stick; the station starts on the shipped model
(A, plain files), B is signed on the stick. Installing swaps the station's
screener without a restart: the settings page and /healthz name B at once, a
rollback brings A back. Both routes need a PIN session and the CSRF token.
"""

from __future__ import annotations

import re
import threading

import pytest

from kiosk import updates
from kiosk.model import Model
from kiosk.screening import Screener
from kiosk.web import create_app
from tests.updates_conftest import NAME, sha, shipped_models, write_variant
from tests.web_conftest import FAST_RETRY, PIN, clock, csrf_of, make_settings, records, rig  # noqa: F401
from tests.web_conftest import text_of as text_at

pytest.importorskip("cryptography")


@pytest.fixture(scope="module")
def signed(tiny_model_path, tmp_path_factory):
    """Models A and B, the team's keys, and B signed as version 1."""
    root = tmp_path_factory.mktemp("web-updates")
    private, public = updates.keygen(root / "keys")
    a = write_variant(tiny_model_path, root / "a", b"A")
    b = write_variant(tiny_model_path, root / "b", b"B")
    package = updates.sign_model(b, key=private, out=root / "b.kioskupdate", version=1)
    return {
        "a": a,
        "b": b,
        "public": public,
        "package": package,
        "a_sha": sha(a.read_bytes()),
        "b_sha": sha(b.read_bytes()),
    }


@pytest.fixture()
def kiosk_app(signed, tmp_path, rig, records, clock):  # noqa: F811 - fixtures from web_conftest
    from kiosk.station import Station

    models = shipped_models(tmp_path / "models", signed["a"])
    stick = tmp_path / "media" / "pi" / "STICK"
    stick.mkdir(parents=True)
    (stick / "b.kioskupdate").write_bytes(signed["package"].read_bytes())

    def load() -> Screener:
        return Screener(Model.load(models / f"{NAME}.tflite"))

    with Station(screener=load(), camera_factory=rig.factory, records=records, **FAST_RETRY) as station:
        service = updates.UpdateService(
            models_dir=models,
            public_key=signed["public"],
            search_paths=[f"{tmp_path}/media/*/*"],
            log=tmp_path / "updates.jsonl",
            load_screener=load,
            swap=station.swap_screener,
        )
        app = create_app(settings=make_settings(tmp_path), station=station, testing=True, clock=clock, updates=service)
        yield {"app": app, "client": app.test_client(), "station": station, "models": models, "stick": stick}


def unlock(client) -> None:
    r = client.post("/pin", data={"pin": PIN, "next": "/settings", "csrf_token": csrf_of(client, "/pin")})
    assert r.status_code == 303 and r.headers["Location"] == "/settings"


def token_on(html: str) -> str:
    match = re.search(r'name="package" value="([0-9a-f]{64})"', html)
    assert match, "no install button"
    return match.group(1)


def running_sha(kiosk_app) -> str:
    return kiosk_app["client"].get("/healthz").get_json()["model_sha256"]


def test_the_settings_page_lists_installs_and_rolls_back_without_a_restart(kiosk_app, signed):
    client, station = kiosk_app["client"], kiosk_app["station"]
    unlock(client)
    html = client.get("/settings").get_data(as_text=True)
    assert text_at(html, "settings-model-sha256") == signed["a_sha"] == running_sha(kiosk_app)
    offer = text_at(html, "update-offer")
    assert "tiny-B" in offer and "version 1" in offer
    assert re.search(r"AUC 0\.\d{3}", text_at(html, "update-offer-validation"))
    assert "Self-test on this kiosk: passed" in text_at(html, "update-offer-selftest")
    assert 'data-testid="update-no-previous"' in html

    r = client.post("/settings/updates/apply", data={"package": token_on(html), "csrf_token": csrf_of(client)})
    assert r.status_code == 303 and r.headers["Location"] == "/settings"
    html = client.get("/settings").get_data(as_text=True)
    assert text_at(html, "update-outcome") == f"The new model is in use (tiny-B, {signed['b_sha'][:12]})."
    assert text_at(html, "settings-model-sha256") == signed["b_sha"] == running_sha(kiosk_app)
    assert station.model_sha256 == signed["b_sha"]
    assert "version 1" in text_at(html, "settings-model")
    assert "This model is already the one in use" in text_at(html, "update-offer-refusal")
    assert signed["a_sha"][:16] in text_at(html, "update-previous")
    sid = client.post("/api/screenings", headers={"X-CSRF-Token": csrf_of(client)}).get_json()
    assert sid["model_sha256"] == signed["b_sha"]  # the next photo is screened by the new model

    r = client.post("/settings/updates/rollback", data={"csrf_token": csrf_of(client)})
    assert r.status_code == 303
    html = client.get("/settings").get_data(as_text=True)
    assert text_at(html, "update-outcome").startswith("The earlier model is back in use")
    assert text_at(html, "settings-model-sha256") == signed["a_sha"] == running_sha(kiosk_app)


def test_the_outcome_line_is_translated(kiosk_app, signed):
    from babel.support import Translations

    from kiosk.reasons import REASONS
    from kiosk.web.i18n import TRANSLATIONS_DIR

    client = kiosk_app["client"]
    unlock(client)
    html = client.get("/settings?lang=fil").get_data(as_text=True)
    client.post("/settings/updates/apply", data={"package": token_on(html), "csrf_token": csrf_of(client)})
    shown = text_at(client.get("/settings").get_data(as_text=True), "update-outcome")
    template = Translations.load(str(TRANSLATIONS_DIR), ["fil"]).gettext(REASONS["update_installed"])
    assert template != REASONS["update_installed"]
    assert shown == template.format(name="tiny-B", sha=signed["b_sha"][:12])


def test_installing_needs_a_pin_session(kiosk_app, signed):
    client = kiosk_app["client"]
    token = sha(signed["package"].read_bytes())
    for path, data in (("/settings/updates/apply", {"package": token}), ("/settings/updates/rollback", {})):
        r = client.post(path, data={**data, "csrf_token": csrf_of(client)})
        assert r.status_code == 303 and r.headers["Location"].startswith("/pin?next=")
    assert running_sha(kiosk_app) == signed["a_sha"]
    assert updates.current_model_info(kiosk_app["models"]).slot is None  # the folder was not touched


def test_installing_needs_the_csrf_token(kiosk_app, signed):
    client = kiosk_app["client"]
    unlock(client)
    token = token_on(client.get("/settings").get_data(as_text=True))
    for headers, data in (
        ({}, {"package": token}),
        ({}, {"package": token, "csrf_token": "forged"}),
        ({"X-CSRF-Token": "forged"}, {"package": token}),
    ):
        r = client.post("/settings/updates/apply", data=data, headers=headers)
        assert r.status_code == 400 and "This page has expired" in r.get_data(as_text=True)
    assert running_sha(kiosk_app) == signed["a_sha"]
    assert updates.current_model_info(kiosk_app["models"]).slot is None


def test_a_refusal_is_one_translated_line_and_changes_nothing(kiosk_app, signed):
    client = kiosk_app["client"]
    unlock(client)
    html = client.get("/settings").get_data(as_text=True)
    (kiosk_app["stick"] / "b.kioskupdate").unlink()  # the stick was pulled out after the page was shown
    r = client.post("/settings/updates/apply", data={"package": token_on(html), "csrf_token": csrf_of(client)})
    assert r.status_code == 303
    html = client.get("/settings").get_data(as_text=True)
    assert text_at(html, "update-outcome") == (
        "That update is no longer on the USB stick. Insert the stick and open the page again."
    )
    assert 'data-testid="update-none"' in html
    r = client.post("/settings/updates/rollback", data={"csrf_token": csrf_of(client)})
    assert text_at(client.get("/settings").get_data(as_text=True), "update-outcome") == (
        "There is no earlier model to go back to."
    )
    assert running_sha(kiosk_app) == signed["a_sha"]


def test_without_an_update_service_the_page_offers_none(tmp_path, rig, records, clock, screener):  # noqa: F811
    from kiosk.station import Station

    with Station(screener=screener, camera_factory=rig.factory, records=records, **FAST_RETRY) as station:
        client = create_app(settings=make_settings(tmp_path), station=station, testing=True, clock=clock).test_client()
        unlock(client)
        html = client.get("/settings").get_data(as_text=True)
        assert 'id="updates"' not in html and text_at(html, "settings-model-sha256") == screener.model.sha256
        r = client.post("/settings/updates/rollback", data={"csrf_token": csrf_of(client)})
        assert r.status_code == 404


def test_the_swap_waits_for_a_screening_in_progress(kiosk_app, signed, rig):  # noqa: F811
    station = kiosk_app["station"]
    new = Screener(Model.load(signed["b"]))
    rig.hold_capture = threading.Event()
    results = []
    screening = threading.Thread(target=lambda: results.append(station.capture_and_screen()))
    screening.start()
    assert rig.capture_entered.wait(5)
    swapped = threading.Event()
    swapper = threading.Thread(target=lambda: (station.swap_screener(new), swapped.set()))
    swapper.start()
    assert not swapped.wait(0.3)  # never during a screening
    assert station.model_sha256 == signed["a_sha"]
    rig.hold_capture.set()
    screening.join(10)
    swapper.join(10)
    assert swapped.is_set() and station.model_sha256 == signed["b_sha"]
    [(_, result)] = results
    assert result.model_sha256 == signed["a_sha"]  # the photo in progress finished on the old model
    assert station.capture_and_screen()[1].model_sha256 == signed["b_sha"]
