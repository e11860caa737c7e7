"""Recording what the doctor found, behind the PIN, and the validation report page (Flask test client)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from kiosk.records import OUTCOMES, ClinicalOutcome, RecordStore
from kiosk.result import ScreeningResult
from tests.web_conftest import PIN, csrf_of
from tests.web_conftest import text_of as text_of_testid

REFER = ScreeningResult(status="ok", malignant_probability=0.7, risk="refer", threshold=0.2)
LOW = ScreeningResult(status="ok", malignant_probability=0.05, risk="low", threshold=0.2)
MANILA = ZoneInfo("Asia/Manila")


def unlock(client) -> None:
    r = client.post("/pin", data={"pin": PIN, "next": "/history", "csrf_token": csrf_of(client, "/pin")})
    assert r.status_code == 303


def post_outcome(client, sid: str, **form: str):
    return client.post(f"/screenings/{sid}/outcome", data={"csrf_token": csrf_of(client, "/"), **form})


def test_the_outcome_screen_needs_the_pin_and_offers_every_kind(client, records: RecordStore) -> None:
    sid = records.save(REFER)
    r = client.get(f"/screenings/{sid}/outcome")
    assert r.status_code == 303 and r.headers["Location"].startswith("/pin")
    r = post_outcome(client, sid, outcome="melanoma")  # the form without a PIN session: nothing stored
    assert r.status_code == 303 and r.headers["Location"].startswith("/pin")
    assert records.outcomes(sid) == []
    assert 'data-testid="outcome-button"' not in client.get(f"/screenings/{sid}").get_data(as_text=True)

    unlock(client)
    result_page = client.get(f"/screenings/{sid}").get_data(as_text=True)
    assert f'href="/screenings/{sid}/outcome" data-testid="outcome-button"' in result_page
    html = client.get(f"/screenings/{sid}/outcome").get_data(as_text=True)
    for kind in OUTCOMES:
        assert f'data-testid="outcome-{kind}"' in html
    assert "Biopsy: melanoma" in html and "Seen: benign" in html and "Not seen yet" in html
    assert text_of_testid(html, "outcome-seen-on") == "not known"


def test_a_tap_stores_the_outcome_with_its_seen_on_day(client, records: RecordStore) -> None:
    sid = records.save(REFER)
    unlock(client)
    today = datetime.now(UTC).astimezone(MANILA).date()
    html = client.get(f"/screenings/{sid}/outcome?seen={today.isoformat()}").get_data(as_text=True)
    assert text_of_testid(html, "outcome-seen-on") == today.isoformat()
    assert f'name="seen_on" value="{today.isoformat()}"' in html
    r = post_outcome(client, sid, outcome="melanoma", seen_on=today.isoformat())
    assert r.status_code == 303 and r.headers["Location"] == f"/screenings/{sid}/outcome/saved"
    saved = client.get(r.headers["Location"]).get_data(as_text=True)
    assert "Biopsy: melanoma" in text_of_testid(saved, "outcome-saved")
    [stored] = records.outcomes(sid)
    assert (stored.outcome, stored.seen_on, stored.source) == ("melanoma", today, "kiosk")
    # "Not seen yet" has no day it was seen, whatever the form says.
    assert post_outcome(client, sid, outcome="not_seen", seen_on=today.isoformat()).status_code == 303
    newest = records.latest_outcome(sid)
    assert newest is not None and newest.outcome == "not_seen" and newest.seen_on is None


@pytest.mark.parametrize(
    ("form", "reason"),
    [
        ({"outcome": "cured"}, "invalid_outcome"),
        ({"outcome": ""}, "invalid_outcome"),
        ({}, "invalid_outcome"),
        ({"outcome": "benign", "seen_on": "2020-01-01"}, "invalid_outcome_date"),  # before the screening
        ({"outcome": "benign", "seen_on": "2999-01-01"}, "invalid_outcome_date"),  # after today
        ({"outcome": "benign", "seen_on": "yesterday"}, "invalid_outcome_date"),
        ({"outcome": "benign", "seen_on": "2026-02-30"}, "invalid_outcome_date"),
    ],
)
def test_a_bad_outcome_is_one_translated_line_and_stores_nothing(client, records, form, reason) -> None:
    sid = records.save(REFER)
    unlock(client)
    r = post_outcome(client, sid, **form)
    assert r.status_code == 400
    html = r.get_data(as_text=True)
    assert f'data-reason="{reason}"' in html and "Traceback" not in html
    assert records.outcomes(sid) == []
    # The same refusal in Filipino: the message is translated, still one line.
    client.get("/?lang=fil")
    fil = post_outcome(client, sid, **form).get_data(as_text=True)
    line = text_of_testid(fil, "error-message")
    assert line and "\n" not in line and line != text_of_testid(html, "error-message")


def test_the_form_needs_its_csrf_token(client, records) -> None:
    sid = records.save(REFER)
    unlock(client)
    r = client.post(f"/screenings/{sid}/outcome", data={"outcome": "benign"})
    assert r.status_code == 400 and 'data-reason="csrf_failed"' in r.get_data(as_text=True)
    r = client.post(f"/screenings/{sid}/outcome", data={"outcome": "benign", "csrf_token": "forged"})
    assert r.status_code == 400
    assert records.outcomes(sid) == []


def test_an_unknown_screening_is_404(client) -> None:
    unlock(client)
    assert client.get("/screenings/nope/outcome").status_code == 404
    assert post_outcome(client, "nope", outcome="benign").status_code == 404


def test_a_store_that_cannot_write_acknowledges_nothing(client, records, monkeypatch) -> None:
    import sqlite3

    sid = records.save(REFER)
    unlock(client)

    def broken(outcome: ClinicalOutcome) -> bool:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(records, "record_outcome", broken)
    r = post_outcome(client, sid, outcome="benign")
    assert r.status_code == 503 and 'data-reason="outcome_not_saved"' in r.get_data(as_text=True)
    assert "outcome-saved" not in r.get_data(as_text=True)


def test_the_day_stepper_stays_between_the_screening_and_today(client, records) -> None:
    now = datetime.now(UTC)
    records._clock = lambda: now - timedelta(days=3)  # a screening three days ago
    sid = records.save(REFER)
    unlock(client)
    today = now.astimezone(MANILA).date()
    first = (now - timedelta(days=3)).astimezone(MANILA).date()
    html = client.get(f"/screenings/{sid}/outcome?seen={first.isoformat()}").get_data(as_text=True)
    assert 'data-testid="outcome-seen-earlier"' not in html and 'data-testid="outcome-seen-later"' in html
    html = client.get(f"/screenings/{sid}/outcome?seen={today.isoformat()}").get_data(as_text=True)
    assert 'data-testid="outcome-seen-later"' not in html
    assert f"seen={(today - timedelta(days=1)).isoformat()}" in html
    html = client.get(f"/screenings/{sid}/outcome?seen=1999-01-01").get_data(as_text=True)  # off the end
    assert text_of_testid(html, "outcome-seen-on") == "not known"


def test_the_report_page_counts_what_was_recorded(client, records) -> None:
    assert client.get("/settings/validation").status_code == 303  # PIN first
    ids = [records.save(r) for r in (REFER, REFER, REFER, LOW, LOW, LOW, REFER, REFER, REFER, REFER)]
    unlock(client)
    kinds = ["melanoma", "melanoma", "melanoma", "melanoma", "benign", "benign", "benign", "benign", "benign"]
    for sid, kind in zip(ids, kinds, strict=False):
        assert post_outcome(client, sid, outcome=kind).status_code == 303
    html = client.get("/settings/validation").get_data(as_text=True)
    assert 'data-testid="validation-report"' in html
    assert "This is the start of a local validation study, with small numbers" in html
    assert 'data-testid="validation-sensitivity" data-successes="3" data-total="4"' in html
    assert 'data-testid="validation-specificity" data-successes="2" data-total="5"' in html
    sens = text_of_testid(html, "validation-sensitivity")
    assert sens.startswith("3/4 = 75% (95% CI 30-95%)")
    assert text_of_testid(html, "validation-pending").startswith("1 ")  # the tenth: referred, nothing recorded
    assert f'href="/screenings/{ids[-1]}/outcome"' in html  # and it is listed with its outcome button
    settings = client.get("/settings").get_data(as_text=True)
    assert 'href="/settings/validation" data-testid="settings-validation-report"' in settings
