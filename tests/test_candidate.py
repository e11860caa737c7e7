"""training.candidate: a finished run judged against the shipped model, side by side."""

from __future__ import annotations

from training.candidate import comparison, main


def manifest(*, auc: float, threshold: float, specificity: float, sha: str) -> dict:
    confusion = {"tp": 90, "fp": 10, "tn": 85, "fn": 15}
    return {
        "sha256": sha,
        "threshold": threshold,
        "honest_validation": {
            "auc": auc,
            "auc_by_rim": {"with_rim": {"auc": auc - 0.01}},
            "at_argmax": {"confusion": confusion},
        },
        "threshold_choice": {
            "sensitivity": 0.965,
            "sensitivity_lower_bound_one_sided": 0.9504,
            "specificity": specificity,
        },
    }


def row(condition: str, severity: int, *, melanoma_low: float, benign_pass_low: float, retake: float = 0.01) -> dict:
    return {
        "condition": condition,
        "severity": severity,
        "melanoma_low": melanoma_low,
        "benign_pass_low": benign_pass_low,
        "retake_rate": retake,
    }


def bench(rows: list[dict], *, seed: int = 1234) -> dict:
    return {"images": 300, "per_class": 150, "seed": seed, "gate": "defaults", "rows": rows}


CANDIDATE_ROWS = [
    row("clean", 0, melanoma_low=0.02, benign_pass_low=0.75),
    row("noise", 0, melanoma_low=0.20, benign_pass_low=0.10),  # the mildest severity: not judged
    row("noise", 1, melanoma_low=0.04, benign_pass_low=0.65),
    row("exposure_over", 1, melanoma_low=0.03, benign_pass_low=0.62, retake=0.40),
]
SHIPPED_ROWS = [
    row("clean", 0, melanoma_low=0.03, benign_pass_low=0.71),
    row("noise", 1, melanoma_low=0.06, benign_pass_low=0.55),
    row("exposure_over", 1, melanoma_low=0.047, benign_pass_low=0.575, retake=0.543),
]


def test_the_comparison_sets_every_target_beside_the_shipped_models():
    text = comparison(
        manifest(auc=0.97, threshold=0.18, specificity=0.78, sha="ab" * 32),
        manifest(auc=0.9669, threshold=0.1719, specificity=0.7593, sha="cd" * 32),
        candidate_bench=bench(CANDIDATE_ROWS),
        shipped_bench=bench(SHIPPED_ROWS),
        not_a_lesion=(177, 1),
    )
    lines = text.splitlines()
    assert "| AUC | 0.9700 | 0.9669 |" in lines
    assert "| specificity | 78.00% | 75.93% |" in lines
    assert "| argmax accuracy | 87.50% | 87.50% |" in lines  # (90 + 85) / 200
    assert "| int8 file | abababab | cdcdcdcd |" in lines
    assert "Not-a-lesion set: 1 of 177 photos told low (target: none)." in lines
    # The middle severity only, each cell candidate (shipped), and whether every target is met.
    assert "| noise | 4.0% (6.0%) | 65.0% (55.0%) | 1.0% (1.0%) | all (no) |" in lines
    assert "| exposure_over | 3.0% (4.7%) | 62.0% (57.5%) | 40.0% (54.3%) | no (no) |" in lines
    assert not any(line.startswith("| noise | 20.0%") for line in lines)
    # Counts leave the clean photos out: 2 conditions here.
    assert "| melanoma_low | 2 of 2 | 1 of 2 |" in lines
    assert "| benign_pass_low | 2 of 2 | 0 of 2 |" in lines
    assert "| retake_rate | 1 of 2 | 1 of 2 |" in lines
    assert "not comparable" not in text
    assert not any(line.startswith("| threshold served") for line in lines)  # neither had a field guard
    assert "Targets lost: none." in lines
    assert (
        "Targets newly met: noise melanoma_low 6.0% -> 4.0%; noise benign_pass_low 55.0% -> 65.0%; "
        "exposure_over benign_pass_low 57.5% -> 62.0%." in lines
    )
    # The other way round, the same changes are targets lost.
    backwards = comparison(
        manifest(auc=0.9669, threshold=0.1719, specificity=0.7593, sha="cd" * 32),
        manifest(auc=0.97, threshold=0.18, specificity=0.78, sha="ab" * 32),
        candidate_bench=bench(SHIPPED_ROWS),
        shipped_bench=bench(CANDIDATE_ROWS),
        not_a_lesion=None,
    )
    assert "Targets lost: noise melanoma_low 4.0% -> 6.0%;" in backwards and "Targets newly met: none." in backwards


def test_benches_of_other_photos_are_flagged_and_a_skipped_bench_leaves_the_section_out():
    shipped = manifest(auc=0.9669, threshold=0.1719, specificity=0.7593, sha="cd" * 32)
    text = comparison(
        shipped,
        shipped,
        candidate_bench=bench(CANDIDATE_ROWS),
        shipped_bench=bench(SHIPPED_ROWS, seed=1),
        not_a_lesion=None,
    )
    assert "not comparable" in text and "Not-a-lesion" not in text
    text = comparison(shipped, shipped, candidate_bench=None, shipped_bench=None, not_a_lesion=(177, 0))
    assert "Field bench" not in text and "| threshold | 0.1719 | 0.1719 |" in text


def test_a_run_without_an_export_is_one_line_and_writes_nothing(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    assert main([str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds no export" in err
    assert list(run.iterdir()) == []


def test_a_threshold_the_field_guard_lowered_is_shown_with_its_operating_point():
    guarded = manifest(auc=0.97, threshold=0.125, specificity=0.78, sha="ab" * 32)
    guarded["threshold_choice"]["threshold"] = 0.18
    guarded["field_guard"] = {"clean_split_at_threshold": {"sensitivity": 0.98, "specificity": 0.70}}
    shipped = manifest(auc=0.9669, threshold=0.1719, specificity=0.7593, sha="cd" * 32)
    lines = comparison(guarded, shipped, candidate_bench=None, shipped_bench=None, not_a_lesion=None).splitlines()
    assert "| threshold | 0.1800 | 0.1719 |" in lines  # the clean one, chosen by revalidate
    assert "| threshold served (after the field guard) | 0.1250 | - |" in lines
    assert "| specificity at it | 70.00% | - |" in lines
