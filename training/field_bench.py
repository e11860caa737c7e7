"""Field-conditions benchmark: the honest validation split under the conditions a Pi camera gives.

    python -m training.field_bench                       # 300 images (150 per class), all conditions
    python -m training.field_bench --all --workers 2     # every honest validation image

Every image of a seeded, stratified subset of the near-duplicate-free validation split
(``training.revalidate.honest_split``) is corrupted by each condition of
``training.conditions`` at three severities (seeded, so reruns give the same photos) and
screened by the kiosk's own :class:`kiosk.screening.Screener` -- the same gate, lesion crop,
colour constancy and int8 model as on the kiosk. Per condition and severity:

* ``auc``, ``sensitivity``, ``specificity`` at the manifest's threshold, gate ignored;
* ``retake_rate``: the share of photos the gate sends back;
* with the gate applied, ``melanoma_low``: the share of all melanomas told "low", and
  ``benign_pass_low``: the share of gate-passing benign lesions told "low".

Writes ``field_bench.json``, ``field_bench.md`` and ``field_bench.png`` into ``--out``
(default: the model's report folder). Targets (issue 11, middle severity): melanoma_low <= 5%,
benign_pass_low >= 60%, retake_rate <= 30%.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import sys
from pathlib import Path

import numpy as np

from kiosk.progress import progress
from kiosk.result import ScreeningResult
from kiosk.storage import atomic_write_bytes

from .conditions import CONDITIONS, apply
from .revalidate import DEFAULT_DATA, REPO_ROOT, fast_auc

TARGETS = {"melanoma_low": ("<=", 0.05), "benign_pass_low": (">=", 0.60), "retake_rate": ("<=", 0.30)}
SEED = 1234
#: Photos per class of the honest validation split that the bench screens (the field guard leaves them out).
PER_CLASS = 150

_screener = None  # one per worker process


def photo_seed(index: int) -> int:
    """The seed of the corrupted copies of the bench's ``index``-th photo (every tool that redraws them uses it)."""
    return SEED * 100003 + index


def _init_worker(model_path: str) -> None:
    global _screener
    from kiosk.model import Model
    from kiosk.screening import Screener

    _screener = Screener(Model.load(model_path))  # the kiosk's default gate thresholds


def _screen_one(job: tuple[str, int, int, list[tuple[str, int]]]) -> list[tuple[float, bool, str]]:
    """(probability, gate passed, risk with the gate applied) of one image under every (condition, severity)."""
    from kiosk.vision.loader import load_image

    path, _label, index, variants = job
    image = load_image(Path(path))
    out = []
    for name, severity in variants:
        photo = image if name == "clean" else apply(name, image, severity=severity, seed=photo_seed(index))
        assert _screener is not None, "_init_worker runs first"
        out.append(kiosk_outcome(_screener.screen_image(photo, apply_quality_gate=False)))
    return out


def kiosk_outcome(result: ScreeningResult) -> tuple[float, bool, str]:
    """(probability, gate passed, what the kiosk with its gate on says) of one gate-off result.

    The kiosk sends back a photo that fails the gate, and refers an unclear lesion whatever its
    score (``lesion_unclear``), so neither is ever "low".
    """
    passed = result.reason is None
    unclear = bool(result.quality.get("lesion_unclear"))
    risk = ("refer" if unclear else str(result.risk)) if passed else "retake"
    return float(result.malignant_probability or 0.0), passed, risk


def summarise(labels: np.ndarray, rows: list[tuple[float, bool, str]], threshold: float) -> dict:
    """The metrics of one condition from (probability, passed, risk) per image."""
    p = np.array([r[0] for r in rows])
    passed = np.array([r[1] for r in rows])
    low = np.array([r[2] == "low" for r in rows])
    mel, ben = labels == 1, labels == 0
    refer = p >= threshold
    return {
        "n": len(rows),
        "auc": fast_auc(labels, p),
        "sensitivity": float((refer & mel).sum() / mel.sum()),
        "specificity": float((~refer & ben).sum() / ben.sum()),
        "retake_rate": float((~passed).mean()),
        "melanoma_low": float((low & mel).sum() / mel.sum()),
        "benign_pass_low": float((low & ben).sum() / max(1, (passed & ben).sum())),
    }


#: Conditions whose photo the gate sends back also move the kiosk's exposure (``Station``'s EXPOSURE_NUDGES,
#: half a stop): their severities are half a stop apart, so a retake is the same photo one severity milder.
NUDGED = {"exposure_over": "overexposed", "exposure_under": "too_dark"}


def after_retake(
    labels: np.ndarray,
    results: list[list[tuple[float, bool, str]]],
    variants: list[tuple[str, int]],
    threshold: float,
) -> list[dict]:
    """What the kiosk says after one automatic retake, for the exposure conditions at severities 1 and 2.

    A photo the gate sends back is taken again half a stop nearer the right exposure, which is the same photo
    one severity milder (+1 EV retaken at +0.5 EV); a photo that passed the first time keeps its answer.
    ``results`` holds one (probability, passed, risk) per variant for each image. A model of the retake, not a
    photo taken twice: the lesion and the framing stay exactly the same.
    """
    from kiosk.station.station import EXPOSURE_NUDGES

    index = {v: k for k, v in enumerate(variants)}
    rows = []
    for name, reason in NUDGED.items():
        steps = np.diff(CONDITIONS[name].severities)
        if not np.allclose(np.abs(steps), abs(EXPOSURE_NUDGES[reason])):
            raise ValueError(f"{name}'s severities are not one exposure nudge apart")
        for severity in (1, 2):
            if (name, severity) not in index:
                continue
            first, milder = index[(name, severity)], index[(name, severity - 1)]
            outcomes = [r[first] if r[first][1] else r[milder] for r in results]
            parameters = CONDITIONS[name].severities
            rows.append(
                {
                    "condition": name,
                    "severity": severity,
                    "parameter": parameters[severity],
                    "retake_parameter": parameters[severity - 1],
                    **summarise(labels, outcomes, threshold),
                }
            )
    return rows


def pick_subset(val, per_class: int | None, seed: int = SEED):
    if per_class is None:
        return list(val)
    rng = random.Random(seed)
    picked = []
    for label in (0, 1):
        same = [s for s in val if s.label == label]
        picked += rng.sample(same, min(per_class, len(same)))
    return sorted(picked, key=lambda s: s.path)


def in_workers(
    function, jobs: list, *, initializer, model_path: Path, workers: int, label: str = "field bench"
) -> list:
    """``function`` over ``jobs`` in order, in ``workers`` spawned processes (each set up by ``initializer``
    with the model's path), or in this one when ``workers`` is 1."""
    if workers > 1:
        with multiprocessing.get_context("spawn").Pool(workers, initializer, (str(model_path),)) as pool:
            return list(progress(pool.imap(function, jobs, chunksize=4), label=label, total=len(jobs)))
    initializer(str(model_path))
    return [function(job) for job in progress(jobs, label=label)]


def run(
    model_path: Path,
    root: Path,
    *,
    per_class: int | None = PER_CLASS,
    workers: int = 1,
    conditions: list[str] | None = None,
) -> dict:
    from kiosk.manifest import manifest_path_for, read_manifest

    from .revalidate import honest_split

    manifest = read_manifest(manifest_path_for(model_path))
    _, val, _, _ = honest_split(root)
    samples = pick_subset(val, per_class)
    names = conditions or list(CONDITIONS)
    variants = [("clean", 0)] + [(n, s) for n in names for s in range(3)]
    jobs = [(str(root / s.path), s.label, i, variants) for i, s in enumerate(samples)]
    results = in_workers(_screen_one, jobs, initializer=_init_worker, model_path=model_path, workers=workers)
    labels = np.array([s.label for s in samples])
    table = []
    for k, (name, severity) in enumerate(variants):
        row = summarise(labels, [r[k] for r in results], manifest.threshold)
        value = None if name == "clean" else CONDITIONS[name].severities[severity]
        table.append({"condition": name, "severity": severity, "parameter": value, **row})
    return {
        "model_sha256": manifest.sha256,
        "threshold": manifest.threshold,
        "images": len(samples),
        "melanomas": int(labels.sum()),
        "per_class": per_class,
        "seed": SEED,
        "gate": "kiosk.vision.quality defaults (QualityThresholds())",
        "targets": TARGETS,
        "rows": table,
        "after_retake": after_retake(labels, results, variants, manifest.threshold),
    }


def meets(row: dict) -> dict[str, bool]:
    return {k: (row[k] <= v if op == "<=" else row[k] >= v) for k, (op, v) in TARGETS.items()}


def markdown(report: dict, *, severities: tuple[int, ...] = (1,)) -> str:
    lines = [
        "| condition | severity | AUC | sens. | spec. | retake | melanomas told low "
        "| passing benign told low | targets |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        if row["condition"] != "clean" and row["severity"] not in severities:
            continue
        ok = meets(row)
        verdict = "met" if all(ok.values()) else "NOT met (" + ", ".join(k for k, v in ok.items() if not v) + ")"
        param = "" if row["parameter"] is None else f"{row['parameter']:g} {CONDITIONS[row['condition']].unit}"
        lines.append(
            f"| {row['condition']} | {param} | {row['auc']:.3f} | {row['sensitivity']:.1%} | "
            f"{row['specificity']:.1%} | {row['retake_rate']:.1%} | {row['melanoma_low']:.1%} | "
            f"{row['benign_pass_low']:.1%} | {verdict} |"
        )
    return "\n".join(lines) + "\n"


def retake_markdown(report: dict) -> str:
    """The exposure rows after the kiosk's automatic half-stop retake (empty when none were run)."""
    rows = report.get("after_retake") or []
    if not rows:
        return ""
    lines = [
        "After the kiosk's automatic half-stop retake (a photo sent back is taken again one severity milder):",
        "",
        "| condition | first photo | retake | still sent back | melanomas told low | passing benign told low |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        unit = CONDITIONS[row["condition"]].unit
        lines.append(
            f"| {row['condition']} | {row['parameter']:g} {unit} | {row['retake_parameter']:g} {unit} | "
            f"{row['retake_rate']:.1%} | {row['melanoma_low']:.1%} | {row['benign_pass_low']:.1%} |"
        )
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in CONDITIONS if any(r["condition"] == n for r in report["rows"])]
    clean = next(r for r in report["rows"] if r["condition"] == "clean")
    fig, axes = plt.subplots(1, 3, figsize=(15, 5.5), sharey=False)
    keys = [
        ("melanoma_low", "melanomas told low (gate applied)"),
        ("benign_pass_low", "passing benign told low"),
        ("retake_rate", "photos sent back"),
    ]
    x = np.arange(len(names))
    for ax, (key, title) in zip(axes, keys, strict=True):
        for severity, marker in zip(range(3), ("o", "s", "^"), strict=True):
            ys = [
                next(r[key] for r in report["rows"] if r["condition"] == n and r["severity"] == severity) for n in names
            ]
            ax.scatter(x, ys, marker=marker, label=f"severity {severity}")
        ax.axhline(clean[key], color="grey", lw=1, label="clean")
        op, target = TARGETS[key]
        ax.axhline(target, color="red", ls="--", lw=1, label=f"target {op} {target:.0%}")
        ax.set_xticks(x, names, rotation=70, fontsize=8)
        ax.set_title(title)
        ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Field conditions, {report['images']} honest validation images, threshold {report['threshold']:.4f}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.field_bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=REPO_ROOT / "models" / "melanoma_int8.tflite")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--out", type=Path, default=None, help="default: the model's -report folder")
    p.add_argument("--per-class", type=int, default=PER_CLASS, help=f"images per class (default {PER_CLASS})")
    p.add_argument("--all", action="store_true", help="every honest validation image")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--conditions", nargs="*", choices=list(CONDITIONS), default=None)
    args = p.parse_args(argv)
    if not (args.data / "benign").is_dir():
        print(f"error: no images at {args.data} (give --data)", file=sys.stderr)
        return 2
    out = args.out or args.model.with_name(args.model.stem + "-report")
    report = run(
        args.model,
        args.data,
        per_class=None if args.all else args.per_class,
        workers=args.workers,
        conditions=args.conditions,
    )
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "field_bench.json", json.dumps(report, indent=1).encode())
    table = markdown(report, severities=(0, 1, 2))
    atomic_write_bytes(
        out / "field_bench.md",
        (
            f"Field conditions, {report['images']} images, threshold {report['threshold']:.4f}\n\n"
            + table
            + ("\n" + retake_markdown(report) if report["after_retake"] else "")
        ).encode(),
    )
    plot(report, out / "field_bench.png")
    print(markdown(report))
    print(retake_markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
