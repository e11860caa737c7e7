"""training.model_card's honest-validation, threshold and field sections, from the shipped manifest (no TensorFlow)."""

from __future__ import annotations

from kiosk.manifest import read_manifest
from tests.conftest import REPO_ROOT
from training.model_card import field_bench_section, honest_section, targets_table, threshold_section

MANIFEST = read_manifest(REPO_ROOT / "models" / "melanoma_int8.json")


def test_threshold_and_honest_sections_quote_the_manifest():
    choice, honest = MANIFEST.extra["threshold_choice"], MANIFEST.extra["honest_validation"]
    text = threshold_section(MANIFEST) + honest_section(MANIFEST)
    assert f"**{MANIFEST.threshold:.4f}**" in text and choice["method"] in text
    assert f"{100 * choice['sensitivity_lower_bound_one_sided']:.2f}%" in text
    assert f"AUC **{honest['auc']:.4f}**" in text
    assert f"{honest['split']['moved_to_train']} of the old split's validation images" in text


def test_targets_judge_the_honest_split_and_the_field_conditions():
    field = {
        "images": 4,
        "per_class": 2,
        "gate": "defaults",
        "rows": [
            {
                "condition": "clean",
                "severity": 0,
                "parameter": None,
                "n": 4,
                "auc": 1.0,
                "sensitivity": 1.0,
                "specificity": 1.0,
                "retake_rate": 0.0,
                "melanoma_low": 0.0,
                "benign_pass_low": 1.0,
            },
            {
                "condition": "noise",
                "severity": 1,
                "parameter": 300.0,
                "n": 4,
                "auc": 0.9,
                "sensitivity": 0.5,
                "specificity": 1.0,
                "retake_rate": 0.5,
                "melanoma_low": 0.5,
                "benign_pass_low": 1.0,
            },
        ],
    }
    table = targets_table(
        MANIFEST.extra["validation_metrics"],
        file_bytes=1000,
        speedup=None,
        honest=MANIFEST.extra["honest_validation"],
        choice=MANIFEST.extra["threshold_choice"],
        field=field,
    )
    honest_auc = MANIFEST.extra["honest_validation"]["auc"]
    assert honest_auc < 0.975, "the shipped model does not reach the AUC target yet"
    assert f"| AUC, honest split | >= 0.975 | {honest_auc:.4f} | **NOT met** |" in table
    assert "melanomas told low | <= 5% in every one | 0 of 1 meet it; worst noise 50.00% | **NOT met** |" in table
    assert "passing benign told low | >= 60% in every one | 1 of 1 meet it" in table
    section = field_bench_section(field, "melanoma_int8")
    assert "| noise | 300 full-well electrons | 0.900 | 50.0% | 100.0% | 50.0% | 50.0% | 100.0% |" in section


def test_the_threshold_section_says_what_the_field_guard_found():
    from dataclasses import replace

    from training.model_card import field_guard_line

    guard = MANIFEST.extra["field_guard"]
    worst = max(guard["families"], key=lambda f: guard["families"][f])
    line = field_guard_line(MANIFEST)
    assert line in threshold_section(MANIFEST)
    assert f"{guard['photos']} honest validation melanomas" in line and f"the most: {worst}" in line
    assert "the clean threshold stands" in line  # the shipped threshold needed no lowering
    lowered = {**guard, "binding_family": "exposure", "clean_threshold": 0.2}
    text = field_guard_line(replace(MANIFEST, extra={**MANIFEST.extra, "field_guard": lowered}))
    assert text.startswith("- Lowered from 0.2000 by the field guard") and "exposure needed it" in text
    assert (
        field_guard_line(replace(MANIFEST, extra={k: v for k, v in MANIFEST.extra.items() if k != "field_guard"})) == ""
    )


def test_the_committed_card_holds_the_threshold_section_of_the_committed_manifest():
    assert threshold_section(MANIFEST) in (REPO_ROOT / "models" / "MODEL_CARD.md").read_text()
