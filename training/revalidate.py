"""Re-measure a built model on the near-duplicate-free validation split and choose its threshold there.

    python -m training.revalidate --model models/melanoma_int8.tflite --out runs/revalidate
    python -m training.revalidate --model models/melanoma_int8.tflite --out runs/revalidate --update-manifest

1. Rebuild the trainer's split (``training.data.split_samples``: seed 1234, 15%) and move every
   near-duplicate group (``training.dedup``, pinned in ``training/splits/``) that spans both
   sides wholly to training (``training.data.make_split``). What is left of
   validation has no near-duplicate in training: the honest split.
2. Score every validation image through the kiosk's own :class:`kiosk.screening.Screener`
   (its decoding, gate and preprocessing); the exact, unrounded probability is read from the
   same functions, and must agree with the Screener's rounded one.
3. Report AUC (stratified bootstrap 95% interval), sensitivity and specificity (exact 95%
   intervals) at the manifest's threshold, at argmax and at the threshold of
   :func:`training.threshold.threshold_with_confident_sensitivity`.
4. ``--update-manifest`` writes that threshold and its record into the model's manifest
   (the ``.tflite`` and its sha256 are untouched).

``--recipe R`` measures the same weights under another preprocessing recipe (one that leaves the
training photos as they were, such as ``crop-band1-fill-sog6-v1``); with ``--update-manifest`` the
model is then served with it, and the manifest's ``preprocessing_change`` says what it was trained with.
The report also splits the AUC by whether the photo shows a dermatoscope's dark rim (the lesion
finder's field of view), because in this dataset the rim goes with melanoma: a shortcut, not a sign.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from kiosk.manifest import manifest_path_for, read_manifest, write_manifest
from kiosk.metrics import binary_metrics
from kiosk.progress import progress
from kiosk.storage import atomic_write_bytes

from .data import (
    GROUP_SPLIT_ID,
    PINNED_GROUPS,
    Sample,
    list_samples,
    make_split,
    save_split,
    split_samples,
    split_sha256,
)
from .threshold import (
    METHOD,
    clopper_pearson_interval,
    threshold_record,
    threshold_with_confident_sensitivity,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "melanoma10k" / "train"
BOOTSTRAP = 2000


def fast_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mann-Whitney AUC (ties one half), vectorised; equals kiosk.metrics.roc_auc."""
    y = np.asarray(labels, bool)
    pos, neg = np.asarray(scores, np.float64)[y], np.sort(np.asarray(scores, np.float64)[~y])
    below = np.searchsorted(neg, pos, "left")
    ties = np.searchsorted(neg, pos, "right") - below
    return float((below + 0.5 * ties).sum() / (len(pos) * len(neg)))


def bootstrap_auc_interval(
    labels: np.ndarray, scores: np.ndarray, *, reps: int = BOOTSTRAP, seed: int = 1234
) -> tuple[float, float]:
    """Percentile 95% interval of the AUC over resamples drawn within each class (seeded)."""
    rng = np.random.default_rng(seed)
    y = np.asarray(labels, bool)
    s = np.asarray(scores, np.float64)
    pos, neg = s[y], s[~y]
    aucs = []
    for _ in range(reps):
        p, n = rng.choice(pos, len(pos)), rng.choice(neg, len(neg))
        aucs.append(fast_auc(np.r_[np.ones(len(p), bool), np.zeros(len(n), bool)], np.r_[p, n]))
    low, high = np.percentile(aucs, [2.5, 97.5])
    return float(low), float(high)


def honest_split(
    root: Path, *, groups_file: Path = PINNED_GROUPS
) -> tuple[list[Sample], list[Sample], list[str], dict]:
    """(train, validation, moved, pinned groups) of the group-aware split (``training.data.make_split``)."""
    samples = list_samples(root)
    _, old_val = split_samples(root, samples)
    train, val, _ = make_split(root, samples, groups_file=groups_file)
    moved = sorted({s.path for s in old_val} - {s.path for s in val})
    return train, val, moved, json.loads(Path(groups_file).read_text())


def score(screener, root: Path, samples: list[Sample]) -> tuple[np.ndarray, np.ndarray, list[str | None], np.ndarray]:
    """(labels, exact malignant probabilities, gate reasons, dermatoscope rim shown) through the kiosk's Screener."""
    from kiosk.vision.loader import load_image

    probs, reasons, rims = [], [], []
    for s in progress(samples, label="revalidate"):
        evaluated = screener.evaluate_image(load_image(root / s.path))
        rims.append(not evaluated.lesion.fov.all())
        probs.append(evaluated.probability)
        reasons.append(evaluated.result.reason)
    return np.array([s.label for s in samples]), np.array(probs), reasons, np.array(rims, bool)


def rim_breakdown(labels: np.ndarray, probs: np.ndarray, rims: np.ndarray) -> dict:
    """AUC and class counts with and without a dermatoscope rim in the photo."""
    out = {}
    for name, keep in (("with_rim", rims), ("without_rim", ~rims)):
        y = labels[keep]
        both = 0 < y.sum() < len(y)
        out[name] = {
            "melanomas": int(y.sum()),
            "benign": int(len(y) - y.sum()),
            "auc": fast_auc(y, probs[keep]) if both else None,
        }
    return out


def operating_point(labels: np.ndarray, probs: np.ndarray, threshold: float) -> dict:
    m = binary_metrics(labels, probs, threshold=threshold)
    c = m["confusion"]
    return {
        "threshold": float(threshold),
        "sensitivity": m["sensitivity"],
        "specificity": m["specificity"],
        "sensitivity_ci95": list(clopper_pearson_interval(c["tp"], c["tp"] + c["fn"])),
        "specificity_ci95": list(clopper_pearson_interval(c["tn"], c["tn"] + c["fp"])),
        "confusion": c,
    }


def revalidate(model_path: Path, root: Path, *, out: Path, recipe: str | None = None) -> dict:
    from dataclasses import replace

    from kiosk.model import Model
    from kiosk.screening import Screener
    from kiosk.vision.preprocess import get_recipe

    train, val, moved, groups = honest_split(root)
    model = Model.load(model_path)
    if recipe is not None:
        model.manifest = replace(model.manifest, preprocessing_recipe=get_recipe(recipe).id)
    screener = Screener(model)
    labels, probs, reasons, rims = score(screener, root, val)
    manifest = screener.model.manifest
    threshold = threshold_with_confident_sensitivity(labels, probs)
    # The threshold the model shipped with before it was re-chosen here (kept in the manifest once re-chosen).
    previous = manifest.extra.get("threshold_previous", {}).get("threshold", manifest.threshold)
    report = {
        "model_sha256": manifest.sha256,
        "preprocessing_recipe": manifest.preprocessing_recipe,
        "split": {
            "id": GROUP_SPLIT_ID,
            "validation_images": len(val),
            "train_images": len(train),
            "validation_split_sha256": split_sha256(val),
            "moved_to_train": len(moved),
            "melanomas": int(labels.sum()),
            "benign": int((1 - labels).sum()),
        },
        "dedup": {
            "rule": groups["rule"],
            "groups": len(groups["groups"]),
            "images_in_groups": sum(len(g) for g in groups["groups"]),
            "pairs": groups["pairs"],
        },
        "auc": fast_auc(labels, probs),
        "auc_ci95_bootstrap": list(bootstrap_auc_interval(labels, probs)),
        "auc_by_rim": rim_breakdown(labels, probs, rims),
        "at_previous_threshold": operating_point(labels, probs, previous),
        "at_argmax": operating_point(labels, probs, 0.5),
        "threshold_choice": threshold_record(labels, probs, threshold=threshold, split=GROUP_SPLIT_ID),
        "gate_retakes": sum(r is not None for r in reasons),
    }
    out.mkdir(parents=True, exist_ok=True)
    save_split(out / "split.json", train, val, split_id=GROUP_SPLIT_ID)
    atomic_write_bytes(out / "report.json", json.dumps(report, indent=1).encode())
    rows = "\n".join(f"{s.path},{s.label},{float(p)!r},{r or ''}" for s, p, r in zip(val, probs, reasons, strict=True))
    atomic_write_bytes(
        out / "predictions.csv", ("path,label,malignant_probability,gate_reason\n" + rows + "\n").encode()
    )
    return report


def update_manifest(model_path: Path, report: dict) -> None:
    """Write the honest threshold and its record into the manifest; the previous threshold is kept for the record."""
    path = manifest_path_for(model_path)
    manifest = read_manifest(path)
    choice = report["threshold_choice"]
    extra = dict(manifest.extra)
    if "threshold_previous" not in extra:
        extra["threshold_previous"] = {"threshold": manifest.threshold, "rule": extra.get("threshold_rule")}
    extra["threshold_rule"] = choice["rule"]
    extra["threshold_method"] = METHOD
    extra["honest_validation"] = {
        k: report[k]
        for k in ("split", "dedup", "auc", "auc_ci95_bootstrap", "auc_by_rim", "at_previous_threshold", "at_argmax")
    }
    extra["threshold_choice"] = choice
    recipe = report.get("preprocessing_recipe", manifest.preprocessing_recipe)
    if recipe != manifest.preprocessing_recipe:
        trained = extra.get("preprocessing_change", {}).get("trained_with", manifest.preprocessing_recipe)
        extra["preprocessing_change"] = {"trained_with": trained, "served_with": recipe}
    from dataclasses import replace

    write_manifest(path, replace(manifest, threshold=choice["threshold"], preprocessing_recipe=recipe, extra=extra))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.revalidate", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=REPO_ROOT / "models" / "melanoma_int8.tflite")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--out", type=Path, default=REPO_ROOT / "runs" / "revalidate")
    p.add_argument("--update-manifest", action="store_true", help="write the chosen threshold into the manifest")
    p.add_argument(
        "--recipe", help="measure (and with --update-manifest, serve) the model under this preprocessing recipe"
    )
    args = p.parse_args(argv)
    if args.recipe is not None:
        from kiosk.vision.preprocess import get_recipe

        try:
            get_recipe(args.recipe)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if not (args.data / "benign").is_dir():
        print(f"error: no images at {args.data} (give --data)", file=sys.stderr)
        return 2
    report = revalidate(args.model, args.data, out=args.out, recipe=args.recipe)
    if args.update_manifest:
        update_manifest(args.model, report)
    print(
        json.dumps(
            {
                k: report[k]
                for k in (
                    "split",
                    "auc",
                    "auc_ci95_bootstrap",
                    "auc_by_rim",
                    "at_previous_threshold",
                    "at_argmax",
                    "threshold_choice",
                )
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
