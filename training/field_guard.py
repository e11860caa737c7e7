"""A threshold that keeps melanomas told "low" rare under camera conditions too, not only on clean photos.

    python -m training.field_guard                                   # the shipped model, about 3 min on 2 cores
    python -m training.field_guard --model runs/NAME/candidate/melanoma_int8.tflite

The Clopper-Pearson rule (``training.threshold``) holds sensitivity on clean dermoscopy. A model can
meet it and still tell many melanomas "low" on a dim, darker-skinned or noisy photo (``runs/ef160``
told 11.3% of melanomas on a whole photo re-toned to type V "low"). This takes every melanoma of the
honest validation split *outside* the field bench's 300 photos, makes one copy per family of
``training.augment`` (its own parameter draws, with the bench's severities held out), screens each
with the kiosk's Screener, gate applied, and finds the **guarded threshold**: the highest threshold,
not above the clean one, at which no family tells more than 5% of them "low" (a photo the gate sends
back, or whose lesion is unclear, is never "low"). Leaving the bench's photos out keeps the bench a
measurement of the threshold it is given.

It writes ``field_guard.json`` into ``--out`` (default: the model's report folder) and prints the
clean honest split's sensitivity and specificity at both thresholds. With ``--update-manifest`` (after
``training.revalidate --update-manifest``) it records the guard in the manifest and, where the guard is
lower, serves it: the threshold only ever moves down (when in doubt, refer).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from kiosk.storage import atomic_write_bytes

from .augment import FAMILIES, CameraAugment
from .field_bench import PER_CLASS, SEED, in_workers, pick_subset
from .revalidate import DEFAULT_DATA, REPO_ROOT

#: The field bench's target for melanomas told "low", which the guard holds for every family.
MAX_LOW = 0.05

_screener = None  # one per worker process


def _init_worker(model_path: str) -> None:
    global _screener
    from kiosk.model import Model
    from kiosk.screening import Screener

    _screener = Screener(Model.load(model_path))


def _guard_one(job: tuple[str, int]) -> list[tuple[float, bool]]:
    """(exact malignant probability, could be told "low") of one melanoma under each family, in FAMILIES order."""
    from kiosk.vision.loader import load_image

    path, index = job
    assert _screener is not None, "_init_worker runs first"
    image = load_image(Path(path))
    out = []
    for k, family in enumerate(FAMILIES):
        photo = CameraAugment.apply(image, [family], rng=np.random.default_rng([SEED, index, k]))
        result, exact, _ = _screener.evaluate_image(photo)
        eligible = result.reason is None and not result.quality.get("lesion_unclear")
        out.append((float(exact), bool(eligible)))
    return out


def guarded_threshold(
    clean_threshold: float, outcomes: dict[str, list[tuple[float, bool]]], *, max_low: float = MAX_LOW
) -> dict:
    """The highest threshold <= ``clean_threshold`` at which each family's share of melanomas told low is <= max_low.

    ``outcomes``: per family, (exact probability, could be told "low") for each melanoma. A melanoma is told
    "low" at threshold t when it could be and its probability is below t; so with n photos and at most
    k = floor(max_low x n) of them allowed, t may not be above the (k+1)-th lowest eligible probability.

    >>> guarded_threshold(0.5, {"noise": [(0.1, True), (0.3, True), (0.9, True)]}, max_low=0.34)["threshold"]
    0.3
    """
    families: dict[str, dict[str, float | int | None]] = {}
    threshold, binding = float(clean_threshold), None
    for family, rows in outcomes.items():
        scores = np.sort([p for p, eligible in rows if eligible])
        allowed = int(np.floor(max_low * len(rows) + 1e-9))
        limit = float(scores[allowed]) if allowed < len(scores) else None
        at_clean = float(np.sum(scores < clean_threshold) / max(1, len(rows)))
        families[family] = {
            "melanomas": len(rows),
            "could_be_low": int(len(scores)),
            "low_at_clean": at_clean,
            "limit": limit,
        }
        if limit is not None and limit < threshold:
            threshold, binding = limit, family
    for family, rows in outcomes.items():
        families[family]["low_at_guarded"] = float(
            sum(1 for p, eligible in rows if eligible and p < threshold) / max(1, len(rows))
        )
    return {
        "clean_threshold": float(clean_threshold),
        "threshold": threshold,
        "binding_family": binding,
        "max_low": max_low,
        "families": families,
    }


def guard_photos(val: list) -> list:
    """The melanomas of the honest validation split ``val`` that the field bench does not screen."""
    on_bench = {s.path for s in pick_subset(val, PER_CLASS)}
    return [s for s in val if s.label == 1 and s.path not in on_bench]


def run(model_path: Path, root: Path, val: list, *, workers: int = 1, max_low: float = MAX_LOW) -> dict:
    from kiosk.manifest import manifest_path_for, read_manifest

    manifest = read_manifest(manifest_path_for(model_path))
    photos = guard_photos(val)
    jobs = [(str(root / s.path), i) for i, s in enumerate(photos)]
    results = in_workers(
        _guard_one, jobs, initializer=_init_worker, model_path=model_path, workers=workers, label="field guard"
    )
    outcomes = {family: [r[k] for r in results] for k, family in enumerate(FAMILIES)}
    return {
        "model_sha256": manifest.sha256,
        "photos": len(photos),
        "seed": SEED,
        **guarded_threshold(manifest.threshold, outcomes, max_low=max_low),
    }


def clean_operating_points(model_path: Path, root: Path, val: list, thresholds: list[float]) -> list[dict]:
    """Sensitivity and specificity on the clean honest split ``val`` at each threshold (gate ignored, as revalidate)."""
    from kiosk.model import Model
    from kiosk.screening import Screener

    from .revalidate import operating_point, score

    labels, probs, _, _ = score(Screener(Model.load(model_path)), root, val)
    return [operating_point(labels, probs, t) for t in thresholds]


def update_manifest(model_path: Path, report: dict) -> None:
    """Record the guard in the manifest; where it binds, the guarded threshold is the one served."""
    from dataclasses import replace

    from kiosk.manifest import manifest_path_for, read_manifest, write_manifest

    path = manifest_path_for(model_path)
    manifest = read_manifest(path)
    if manifest.sha256 != report["model_sha256"] or abs(manifest.threshold - report["clean_threshold"]) > 1e-9:
        raise ValueError("the manifest changed since the guard was measured: run training.field_guard again")
    extra = dict(manifest.extra)
    binding = report["binding_family"]
    extra["field_guard"] = {
        "rule": f"no family of training.augment tells more than {report['max_low']:.0%} of the "
        f"{report['photos']} honest validation melanomas outside the field bench low",
        "photos": report["photos"],
        "max_low": report["max_low"],
        "clean_threshold": report["clean_threshold"],
        "threshold": report["threshold"],
        "binding_family": binding,
        "families": {f: round(row["low_at_guarded"], 4) for f, row in report["families"].items()},
        "clean_split_at_threshold": report["clean_split"]["at_guarded_threshold"],
    }
    threshold = manifest.threshold
    if binding is not None:
        threshold = report["threshold"]
        rule = str(extra.get("threshold_rule", ""))
        extra["threshold_rule"] = f"{rule}; lowered to {threshold:.4f} by the field guard ({binding})"
    write_manifest(path, replace(manifest, threshold=threshold, extra=extra))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.field_guard", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=REPO_ROOT / "models" / "melanoma_int8.tflite")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--out", type=Path, default=None, help="default: the model's -report folder")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--update-manifest", action="store_true", help="record the guard; serve it where it is lower")
    args = p.parse_args(argv)
    if not (args.data / "benign").is_dir():
        print(f"error: no images at {args.data} (give --data)", file=sys.stderr)
        return 2
    if not args.model.is_file():
        print(f"error: no model at {args.model}", file=sys.stderr)
        return 2
    from .revalidate import honest_split

    _, val, _, _ = honest_split(args.data)
    report = run(args.model, args.data, val, workers=args.workers)
    thresholds = [report["clean_threshold"], report["threshold"]]
    clean, guarded = clean_operating_points(args.model, args.data, val, thresholds)
    report["clean_split"] = {"at_clean_threshold": clean, "at_guarded_threshold": guarded}
    out = args.out or args.model.with_name(args.model.stem + "-report")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "field_guard.json", json.dumps(report, indent=1).encode())
    print(f"{report['photos']} melanomas outside the field bench, one copy per family of training.augment")
    print("| family | could be told low | told low at the clean threshold | at the guarded one |")
    print("|---|---|---|---|")
    for family, row in report["families"].items():
        print(
            f"| {family} | {row['could_be_low']} of {row['melanomas']} | {row['low_at_clean']:.1%} "
            f"| {row['low_at_guarded']:.1%} |"
        )
    for name, point in (("clean", clean), ("guarded", guarded)):
        print(
            f"{name} threshold {point['threshold']:.4f}: clean honest split sensitivity {point['sensitivity']:.2%}, "
            f"specificity {point['specificity']:.2%}"
        )
    print(f"binding family: {report['binding_family'] or 'none (the clean threshold holds)'}")
    if args.update_manifest:
        try:
            update_manifest(args.model, report)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
