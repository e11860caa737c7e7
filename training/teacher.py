"""Soft targets from a model averaged over the eight turns and mirrors of each photo, for distillation.

    python -m training.teacher --model models/melanoma_int8.tflite --out runs/teacher.npz
    python -m training.teacher --model runs/lf128/export --out runs/teacher-lf128.npz   # a trained run's export

The shipped int8 model answers differently when the same photo is turned (honest split, single view
AUC 0.9647-0.9704 by orientation); the mean over the eight dihedral views is a better model (AUC 0.9722,
specificity 82.6% at its own threshold, measured 2026-12-03) but costs eight inferences a photo, which
the speed budget does not allow on the kiosk. ``training.train --teacher FILE`` instead trains one
network towards that mean. The targets are computed for the *training* side of the honest split only
(the validation side is what judges the student), on the kiosk's own preprocessing of each photo.

>>> x = np.arange(2 * 2 * 3, dtype=np.uint8).reshape(2, 2, 3)
>>> len({v.tobytes() for v in dihedral_views(x)})  # all eight distinct for a generic image
8
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from kiosk.progress import progress

from .convert import BuildError
from .data import DEFAULT_DATA, list_samples, make_split, preprocessed_arrays

REPO_ROOT = Path(__file__).resolve().parent.parent
VIEWS = 8


def dihedral_views(image: np.ndarray) -> list[np.ndarray]:
    """The eight turns (0/90/180/270 degrees) of ``image`` and of its mirror, as contiguous arrays."""
    mirrored = image[:, ::-1]
    return [np.ascontiguousarray(np.rot90(base, k)) for base in (image, mirrored) for k in range(4)]


def dihedral_probability(model, image: np.ndarray) -> float:
    """The mean malignant probability of ``model`` (a :class:`kiosk.model.Model`) over the eight views."""
    return float(np.mean([model.malignant_probability(view) for view in dihedral_views(image)]))


def _export_scorer(export_dir: Path, *, chunk: int = 256):
    """(size, recipe, sha256, scorer) of a trainer export (``RUN/export``): its float Keras model, in batches.

    For a teacher too large for the kiosk (an int8 build of it need never exist), e.g. full EfficientNet-Lite0.
    """
    import keras

    from .convert import read_export

    info = read_export(export_dir)
    model_file = export_dir / "model.keras"
    model = keras.models.load_model(model_file)

    def score(x: np.ndarray) -> np.ndarray:
        malignant = np.zeros(len(x), np.float64)
        for start in progress(range(0, len(x), chunk), label="teacher", total=int(np.ceil(len(x) / chunk))):
            views = [dihedral_views(image) for image in x[start : start + chunk]]
            for k in range(VIEWS):
                batch = np.stack([v[k] for v in views]).astype(np.float32)
                malignant[start : start + len(views)] += model.predict(batch, batch_size=64, verbose=0)[:, 1] / VIEWS
        return malignant

    sha256 = hashlib.sha256(model_file.read_bytes()).hexdigest()
    return int(info["input"]["height"]), str(info["preprocessing_recipe"]), sha256, score


def _int8_scorer(model_path: Path):
    """(size, recipe, sha256, scorer) of an int8 model with its manifest, one photo at a time."""
    from kiosk.model import Model

    model = Model.load(model_path)

    def score(x: np.ndarray) -> np.ndarray:
        return np.array([dihedral_probability(model, image) for image in progress(x, label="teacher", total=len(x))])

    return model.input_size, model.manifest.preprocessing_recipe, model.sha256, score


def teacher_targets(model_path: Path, root: Path, *, cache_dir: Path) -> dict:
    """{paths, malignant, labels, ...}: the dihedral-mean probability of every training-side photo.

    ``model_path``: an int8 model with its manifest, or a trainer export folder.
    """
    size, recipe, sha256, score = _export_scorer(model_path) if model_path.is_dir() else _int8_scorer(model_path)
    train, _val, split_id = make_split(root, list_samples(root))
    x, y = preprocessed_arrays(root, train, size=size, recipe=recipe, cache_dir=cache_dir)
    return {
        "paths": np.array([s.path for s in train]),
        "malignant": score(x).astype(np.float32),
        "labels": y,
        "model_sha256": np.array(sha256),
        "recipe": np.array(recipe),
        "split_id": np.array(split_id),
        "views": np.array(VIEWS),
    }


def load_targets(path: Path, paths: list[str]) -> tuple[np.ndarray, dict]:
    """(malignant probability per entry of ``paths``, a record of the file) from a ``teacher_targets`` file.

    A ValueError naming the first photo the file has no target for.
    """
    with np.load(path) as data:
        known = dict(zip(data["paths"].tolist(), data["malignant"].tolist(), strict=True))
        record = {
            "file": str(path),
            "sha256": hashlib.sha256(Path(path).read_bytes()).hexdigest(),
            "model_sha256": str(data["model_sha256"]),
            "recipe": str(data["recipe"]),
            "views": int(data["views"]),
        }
    missing = next((p for p in paths if p not in known), None)
    if missing is not None:
        raise ValueError(f"{path} has no teacher target for {missing} (made for another split or folder?)")
    return np.array([known[p] for p in paths], np.float32), record


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.teacher", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--model",
        type=Path,
        default=REPO_ROOT / "models" / "melanoma_int8.tflite",
        help="an int8 model with its manifest, or a trainer export folder (RUN/export)",
    )
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--cache", type=Path, default=REPO_ROOT / "cache")
    p.add_argument("--out", type=Path, required=True, help="the .npz to write")
    args = p.parse_args(argv)
    if not (args.data / "benign").is_dir():
        print(f"error: no images at {args.data} (give --data)", file=sys.stderr)
        return 2
    try:
        targets = teacher_targets(args.model, args.data, cache_dir=args.cache)
    except BuildError as exc:
        print(f"error: --model {args.model}: {exc}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp.npz")
    np.savez(tmp, **targets)
    tmp.replace(args.out)
    y, t = targets["labels"], targets["malignant"]
    summary = {
        "images": int(len(y)),
        "mean_target_melanoma": float(t[y == 1].mean()),
        "mean_target_benign": float(t[y == 0].mean()),
        "disagree_at_0.5": int(((t >= 0.5) != (y == 1)).sum()),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
