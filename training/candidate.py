"""Judge a finished training run against the shipped model, as a shipped model is judged.

    python -m training.candidate runs/xs160                # about 9 min here (2 cores)
    python -m training.candidate runs/xs160 --skip-field   # no field guard or bench: the clean threshold, 2 min

Into ``RUN/candidate/`` (``models/`` is never touched): the int8 build of ``RUN/export``
(``deploy/build-model``, calibrated on the run's own training side), its threshold chosen on the
honest split (``training.revalidate --update-manifest``, into the candidate's manifest), the
field guard that may lower it (``training.field_guard --update-manifest``), the not-a-lesion set
(``training.notlesion``) and the field bench (``training.field_bench``, at the threshold served). Then
``comparison.md`` sets the issue-11 targets side by side with the shipped model's manifest and
field bench. Ship a candidate only when it is better there; the commands that ship one are in
training/README.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from kiosk.storage import atomic_write_bytes

from .field_bench import TARGETS, meets
from .revalidate import DEFAULT_DATA, REPO_ROOT

SHIPPED = REPO_ROOT / "models" / "melanoma_int8.tflite"
#: The middle of each condition's three severities: where issue 11 sets its field targets.
MIDDLE = 1


def _report_row(manifest: dict) -> dict[str, float | None]:
    """The honest-split numbers of a manifest that ``training.revalidate --update-manifest`` wrote."""
    honest, choice = manifest.get("honest_validation") or {}, manifest.get("threshold_choice") or {}
    argmax = (honest.get("at_argmax") or {}).get("confusion")
    rim = honest.get("auc_by_rim") or {}
    guard = manifest.get("field_guard") or {}
    return {
        "AUC": honest.get("auc"),
        "AUC, photos with a lens rim": (rim.get("with_rim") or {}).get("auc"),
        "threshold": choice.get("threshold", manifest.get("threshold")),
        "sensitivity": choice.get("sensitivity"),
        "sensitivity, lower 95% bound": choice.get("sensitivity_lower_bound_one_sided"),
        "specificity": choice.get("specificity"),
        "argmax accuracy": (argmax["tp"] + argmax["tn"]) / sum(argmax.values()) if argmax else None,
        # training.field_guard may lower the served threshold below the clean one: its operating point.
        "threshold served (after the field guard)": manifest.get("threshold") if guard else None,
        "sensitivity at it": (guard.get("clean_split_at_threshold") or {}).get("sensitivity"),
        "specificity at it": (guard.get("clean_split_at_threshold") or {}).get("specificity"),
    }


def _number(value: float | None, *, share: bool) -> str:
    if value is None:
        return "-"
    return f"{value:.2%}" if share else f"{value:.4f}"


def _middle_rows(bench: dict) -> dict[str, dict]:
    return {
        row["condition"]: row
        for row in bench.get("rows", [])
        if row["severity"] == (0 if row["condition"] == "clean" else MIDDLE)
    }


def comparison(
    candidate: dict,
    shipped: dict,
    *,
    candidate_bench: dict | None,
    shipped_bench: dict | None,
    not_a_lesion: tuple[int, int] | None,
) -> str:
    """Markdown: the honest split, the not-a-lesion set and the field bench's middle severities, both models.

    ``not_a_lesion`` is (photos, told low) for the candidate.
    """
    lines = [
        "# Candidate against the shipped model",
        "",
        "## Honest split",
        "",
        "| | candidate | shipped |",
        "|---|---|---|",
    ]
    mine, theirs = _report_row(candidate), _report_row(shipped)
    for key in mine:
        share = key.startswith(("sensitivity", "specificity", "argmax"))
        if mine[key] is None and theirs[key] is None:
            continue
        lines.append(f"| {key} | {_number(mine[key], share=share)} | {_number(theirs[key], share=share)} |")
    lines.append(f"| int8 file | {candidate.get('sha256', '?')[:8]} | {shipped.get('sha256', '?')[:8]} |")
    lines += [
        "",
        "Targets: AUC >= 0.975; at the threshold a lower 95% bound of sensitivity >= 95% and specificity >= 80%.",
    ]
    if not_a_lesion is not None:
        lines += ["", f"Not-a-lesion set: {not_a_lesion[1]} of {not_a_lesion[0]} photos told low (target: none)."]
    if candidate_bench is None:
        return "\n".join(lines) + "\n"
    lines += ["", "## Field bench, middle severity, gate applied", ""]
    if shipped_bench is None:
        lines.append("The shipped model has no field bench to compare with.")
        shipped_bench = {}
    elif any(candidate_bench.get(k) != shipped_bench.get(k) for k in ("images", "per_class", "seed", "gate")):
        lines.append("**The two benches did not screen the same photos: the shipped columns are not comparable.**")
    targets = ", ".join(f"{name} {op} {value:.0%}" for name, (op, value) in TARGETS.items())
    lines += [
        f"Targets: {targets}. Each cell: candidate (shipped).",
        "",
        "| condition | melanomas told low | passing benign told low | retake | targets met |",
        "|---|---|---|---|---|",
    ]
    ours, other = _middle_rows(candidate_bench), _middle_rows(shipped_bench)
    met = {"candidate": dict.fromkeys(TARGETS, 0), "shipped": dict.fromkeys(TARGETS, 0)}
    for condition, row in ours.items():
        before = other.get(condition)
        cells = []
        for key in ("melanoma_low", "benign_pass_low", "retake_rate"):
            was = f" ({before[key]:.1%})" if before else ""
            cells.append(f"{row[key]:.1%}{was}")
        verdict = "all" if all(meets(row).values()) else "no"
        if before:
            verdict += f" ({'all' if all(meets(before).values()) else 'no'})"
        lines.append(f"| {condition} | {' | '.join(cells)} | {verdict} |")
        for side, judged in (("candidate", row), ("shipped", before)):
            if judged and condition != "clean":
                for key, ok in meets(judged).items():
                    met[side][key] += ok
    counted = [len([c for c in rows if c != "clean"]) for rows in (ours, other)]
    lines += ["", "| target (clean photos not counted) | conditions meeting it: candidate | shipped |", "|---|---|---|"]
    for key in TARGETS:
        lines.append(f"| {key} | {met['candidate'][key]} of {counted[0]} | {met['shipped'][key]} of {counted[1]} |")
    # What a decision to ship turns on: a target the shipped model meets and the candidate does not.
    lost, gained = [], []
    for condition, row in ours.items():
        before = other.get(condition)
        if before is None:
            continue
        for key, ok in meets(row).items():
            shipped_ok = meets(before)[key]
            if shipped_ok and not ok:
                lost.append(f"{condition} {key} {before[key]:.1%} -> {row[key]:.1%}")
            elif ok and not shipped_ok:
                gained.append(f"{condition} {key} {before[key]:.1%} -> {row[key]:.1%}")
    lines += ["", f"Targets lost: {'; '.join(lost) or 'none'}.", f"Targets newly met: {'; '.join(gained) or 'none'}."]
    return "\n".join(lines) + "\n"


def _step(name: str, argv: list[str]) -> None:
    print(f"== {name}", file=sys.stderr, flush=True)
    # Their reports go to stderr with the progress, so stdout holds the comparison alone.
    done = subprocess.run([sys.executable, *argv], cwd=REPO_ROOT, check=False, stdout=sys.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed (exit {done.returncode}); its own message is above")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.candidate", description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path, help="a finished run folder (training.train --out), holding export/")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--shipped", type=Path, default=SHIPPED, help="the int8 model to compare with")
    p.add_argument("--workers", type=int, default=2, help="field bench worker processes")
    p.add_argument(
        "--skip-field", action="store_true", help="leave out the field guard and the field bench (7 of the 9 min)"
    )
    args = p.parse_args(argv)
    run: Path = args.run
    if not (run / "export" / "export.json").is_file():
        print(f"error: {run} holds no export (run training.train to its end, or --resume it)", file=sys.stderr)
        return 2
    if not (run / "split.json").is_file():
        print(f"error: {run} has no split.json, so its validation side is unknown", file=sys.stderr)
        return 2
    if not (args.data / "benign").is_dir():
        print(f"error: no images at {args.data} (give --data)", file=sys.stderr)
        return 2
    shipped_manifest_path = args.shipped.with_suffix(".json")
    if not shipped_manifest_path.is_file():
        print(f"error: no manifest beside {args.shipped}", file=sys.stderr)
        return 2
    from .data import materialise_split
    from .notlesion import screen_set

    out = run / "candidate"
    out.mkdir(parents=True, exist_ok=True)
    model = out / "melanoma_int8.tflite"
    calibration, validation = materialise_split(args.data, run)
    try:
        _step(
            "int8 build (deploy/build-model)",
            ["-m", "training.convert", str(run / "export"), "--calibration", str(calibration), "--validation",
             str(validation), "--out", str(out / "melanoma_int8")],
        )  # fmt: skip
        _step(
            "honest split (training.revalidate)",
            ["-m", "training.revalidate", "--model", str(model), "--data", str(args.data), "--out",
             str(out / "revalidate"), "--update-manifest"],
        )  # fmt: skip
        if not args.skip_field:
            _step(
                "field guard (training.field_guard)",
                ["-m", "training.field_guard", "--model", str(model), "--data", str(args.data), "--workers",
                 str(args.workers), "--out", str(out / "field_guard"), "--update-manifest"],
            )  # fmt: skip
        print("== not-a-lesion set (training.notlesion)", file=sys.stderr, flush=True)
        outcomes, low = screen_set(model)
        if not args.skip_field:
            _step(
                "field bench (training.field_bench)",
                ["-m", "training.field_bench", "--model", str(model), "--data", str(args.data), "--workers",
                 str(args.workers), "--out", str(out / "field")],
            )  # fmt: skip
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    shipped_bench_path = args.shipped.with_name(args.shipped.stem + "-report") / "field_bench.json"
    text = comparison(
        json.loads(model.with_suffix(".json").read_text()),
        json.loads(shipped_manifest_path.read_text()),
        candidate_bench=None if args.skip_field else json.loads((out / "field" / "field_bench.json").read_text()),
        shipped_bench=json.loads(shipped_bench_path.read_text()) if shipped_bench_path.is_file() else None,
        not_a_lesion=(sum(outcomes.values()), len(low)),
    )
    atomic_write_bytes(out / "comparison.md", text.encode())
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
