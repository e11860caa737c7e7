"""The local validation report: exact counts and Wilson intervals on hand-made cases, and the command."""

from __future__ import annotations

import csv
import io
import json
import math
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from kiosk.cli import main
from kiosk.records import ClinicalOutcome, PatientInfo, RecordStore
from kiosk.result import ScreeningResult
from kiosk.validation import NOT_RECORDED, Case, Proportion, validation_report

# scipy.stats.binomtest(k, n).proportion_ci(method="wilson"), computed once (scipy is not a kiosk dependency).
WILSON_3_OF_4 = (0.30064184258240184, 0.9544127391902995)
WILSON_2_OF_5 = (0.11762077423264794, 0.769275718723987)
WILSON_0_OF_3 = (0.0, 0.5614970317550454)
WILSON_1_OF_1 = (0.20654931437723745, 1.0)


def hand_made() -> list[Case]:
    """3 melanomas referred, 1 told low; 5 benign: 2 low, 3 referred (by site and skin type where given)."""
    return [
        Case(decision="refer", outcome="melanoma", body_site_group="upper_limb", skin_type=4),
        Case(decision="refer", outcome="melanoma", body_site_group="upper_limb", skin_type=5),
        Case(decision="refer", outcome="melanoma", body_site_group="palm_sole"),
        Case(decision="low", outcome="melanoma", body_site_group="trunk", skin_type=4),
        Case(decision="low", outcome="benign", body_site_group="trunk", skin_type=4),
        Case(decision="low", outcome="benign"),
        Case(decision="refer", outcome="benign", body_site_group="upper_limb", skin_type=4),
        Case(decision="refer", outcome="benign", unclear=True),
        Case(decision="refer", outcome="benign", body_site_group="head_neck", skin_type=3),
    ]


def test_sensitivity_and_specificity_with_wilson_intervals() -> None:
    report = validation_report(hand_made())
    sens, spec = report.overall.sensitivity, report.overall.specificity
    assert (sens.successes, sens.total, spec.successes, spec.total) == (3, 4, 2, 5)
    assert sens.value == 0.75 and spec.value == 0.4
    assert sens.interval == pytest.approx(WILSON_3_OF_4, abs=1e-12)
    assert spec.interval == pytest.approx(WILSON_2_OF_5, abs=1e-12)
    assert Proportion(0, 3).interval == pytest.approx(WILSON_0_OF_3, abs=1e-12)
    assert Proportion(1, 1).interval == pytest.approx(WILSON_1_OF_1, abs=1e-12)
    assert sens.text() == "3/4 = 75% (95% CI 30-95%)"
    assert report.confirmed == 9 and report.pending == 0
    assert (report.screenings, report.referred, report.low, report.referred_unclear) == (9, 6, 3, 1)


def test_groups_by_body_site_and_skin_type_in_a_fixed_order() -> None:
    report = validation_report(hand_made())
    sites = {
        k: (v.melanoma_referred, v.melanoma_low, v.benign_low, v.benign_referred)
        for k, v in report.by_body_site.items()
    }
    assert list(sites) == ["head_neck", "trunk", "upper_limb", "palm_sole", NOT_RECORDED]
    assert sites == {
        "head_neck": (0, 0, 0, 1),
        "trunk": (0, 1, 1, 0),
        "upper_limb": (2, 0, 0, 1),
        "palm_sole": (1, 0, 0, 0),
        NOT_RECORDED: (0, 0, 1, 1),
    }
    skins = {
        k: (v.melanoma_referred, v.melanoma_low, v.benign_low, v.benign_referred)
        for k, v in report.by_skin_type.items()
    }
    assert list(skins) == ["3", "4", "5", NOT_RECORDED]
    assert skins["4"] == (1, 1, 1, 1) and skins[NOT_RECORDED] == (1, 0, 1, 1)
    # A group without melanomas has no sensitivity: nan, shown as 0/0, and null in JSON.
    head = report.by_body_site["head_neck"]
    assert math.isnan(head.sensitivity.value) and head.sensitivity.text() == "0/0"
    assert report.to_dict()["by_body_site"]["head_neck"]["sensitivity"]["value"] is None


def test_pending_other_cancers_and_retakes_are_counted_apart() -> None:
    cases = hand_made() + [
        Case(decision="refer"),  # referred, nothing recorded yet: pending
        Case(decision="refer", outcome="not_seen"),  # referred, not seen yet: pending
        Case(decision="low"),  # low and no outcome: not pending (nobody was asked to go)
        Case(decision="refer", outcome="other_skin_cancer"),
        Case(decision="low", outcome="other_skin_cancer"),
        Case(decision="refer", outcome="other"),
        Case(decision="retake", outcome="melanoma"),  # no decision was made: in no figure
        Case(decision="error"),
    ]
    report = validation_report(cases)
    assert report.overall.sensitivity.total == 4 and report.overall.specificity.total == 5  # unchanged
    assert report.pending == 2
    assert (report.other_skin_cancer.successes, report.other_skin_cancer.total) == (1, 2)
    assert (report.retakes, report.outcomes_on_retakes, report.other_outcomes) == (2, 1, 1)
    assert report.outcomes == {"not_seen": 1, "benign": 5, "melanoma": 5, "other_skin_cancer": 2, "other": 1}
    assert report.confirmed == 11


def test_csv_has_one_row_per_group_and_blank_cells_for_no_cases() -> None:
    rows = list(csv.DictReader(io.StringIO(validation_report(hand_made()).to_csv())))
    assert [(r["grouping"], r["group"]) for r in rows][:2] == [("overall", "all"), ("body_site", "head_neck")]
    overall = rows[0]
    assert (overall["melanoma_referred"], overall["melanoma_low"], overall["benign_low"]) == ("3", "1", "2")
    assert (overall["sensitivity"], overall["sensitivity_ci95_low"], overall["sensitivity_ci95_high"]) == (
        "0.7500",
        "0.3006",
        "0.9544",
    )
    assert overall["specificity"] == "0.4000" and overall["specificity_ci95_low"] == "0.1176"
    head = next(r for r in rows if r["group"] == "head_neck")
    assert head["sensitivity"] == "" and head["specificity"] == "0.0000"


def test_an_empty_store_reports_nothing_confirmed() -> None:
    report = validation_report([])
    assert report.confirmed == 0 and report.overall.sensitivity.text() == "0/0"
    assert "start of a local validation study" in report.to_dict()["note"]


# --- the command, on a real record store ---------------------------------------------------


def refer(p: float = 0.7, *, reason: str | None = None) -> ScreeningResult:
    return ScreeningResult(status="ok", malignant_probability=p, risk="refer", threshold=0.2, reason=reason)


LOW = ScreeningResult(status="ok", malignant_probability=0.05, risk="low", threshold=0.2)


def fill(store: RecordStore) -> None:
    at = datetime(2026, 11, 20, 9, tzinfo=UTC)
    plan = [
        (refer(), "melanoma", PatientInfo(body_site="left-forearm", skin_type=4)),
        (refer(), "melanoma", None),
        (refer(), "melanoma", None),
        (LOW, "melanoma", None),
        (LOW, "benign", PatientInfo(body_site="right-sole")),
        (LOW, "benign", None),
        (refer(), "benign", None),
        (refer(reason="lesion_unclear"), "benign", None),
        (refer(), "benign", None),
        (refer(), None, None),  # pending
        (ScreeningResult.retake("blurry"), None, None),
    ]
    for result, outcome, patient in plan:
        sid = store.save(result, patient=patient)
        if outcome is not None:
            if outcome == "melanoma":  # first "not seen", then the biopsy: the newest counts
                store.record_outcome(ClinicalOutcome(screening_id=sid, outcome="not_seen", recorded_at=at))
            store.record_outcome(
                ClinicalOutcome(
                    screening_id=sid, outcome=outcome, recorded_at=at.replace(day=28), seen_on=date(2026, 11, 27)
                )
            )


def test_command_prints_the_report_as_text_json_and_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    with RecordStore(data) as store:
        fill(store)
    out_csv = tmp_path / "report.csv"
    assert main(["validation-report", "--data-dir", str(data), "--json", "--csv", str(out_csv)]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["overall"]["sensitivity"]["successes"] == 3 and got["overall"]["sensitivity"]["total"] == 4
    assert got["overall"]["specificity"] == {"successes": 2, "total": 5, "value": 0.4, "ci95": [0.1176, 0.7693]}
    assert (got["pending"], got["retakes"], got["referred_unclear"], got["screenings"]) == (1, 1, 1, 11)
    assert list(got["by_body_site"]) == ["upper_limb", "palm_sole", NOT_RECORDED]
    assert out_csv.read_text().splitlines()[1].startswith("overall,all,3,1,2,3,0.7500,0.3006,0.9544,0.4000,0.1176")

    assert main(["validation-report", "--data-dir", str(data)]) == 0
    text = capsys.readouterr().out
    assert "This is the start of a local validation study, with small numbers" in text
    assert "sensitivity (melanomas referred): 3/4 = 75% (95% CI 30-95%)" in text
    assert "specificity (benign lesions called low): 2/5 = 40% (95% CI 12-77%)" in text
    assert "Pending (referred, no confirmed outcome yet): 1" in text


def test_command_without_records_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validation-report", "--data-dir", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kiosk: error: The file does not exist:") and err.count("\n") == 1
    assert not (tmp_path / "nothing").exists()  # a report never creates an empty store
