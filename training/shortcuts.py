"""Shortcut audit: how much each acquisition measure of a photo alone tells melanoma from benign.

    python -m training.shortcuts                      # 1,000 training-side photos, about a minute
    python -m training.shortcuts --photos 0           # every training-side photo

A model learns whatever separates the classes in its training photos. When a property of
the *camera* (blur, exposure, a dermatoscope's rim, how much of the frame the lesion fills,
sensor noise, the lamp's colour) differs between the benign and the melanoma photos of a
dataset, the model uses it, and a Pi camera that changes that property moves the answer:
the field bench's failures. Some measures also carry the lesion itself (a large lesion
fills the frame; a smooth one reads blurrier), so a far-from-0.5 AUC says where to look,
not that the whole of it is the camera. This measures each property on the training-side photos of the
honest split (never the validation side) and reports its AUC as a melanoma score on its own:
0.5 tells nothing, far from 0.5 is a shortcut the model may have learnt.

>>> from kiosk.synthetic import draw_lesion
>>> sorted(acquisition_measures(draw_lesion(seed=1)))[:3]
['blur_effect', 'cast_blue', 'cast_red']
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import sys
from pathlib import Path

import cv2
import numpy as np

from kiosk.vision import srgb
from kiosk.vision.lesion import find_lesion
from kiosk.vision.preprocess import Recipe, crop_box, illuminant_gains, preprocess
from kiosk.vision.sharpen import blur_effect

from .revalidate import DEFAULT_DATA, fast_auc

#: The shipped recipe's crop without colour constancy or sharpening: the model input as the camera gave it.
AS_TAKEN = Recipe(id="shortcut-probe", shades_of_gray_p=None)
#: The lesion box with the usual margin and no minimum: how much of the frame the lesion fills.
LESION_BOX = Recipe(id="lesion-box", min_crop=0.0)

MEANING = {
    "blur_effect": "blur of the model input (Crete et al.; higher is blurrier)",
    "skin_luminance": "median linear luminance of the skin (outside the lesion, inside the view): exposure",
    "outside_view": "share of the photo outside the dermatoscope's circle (a rim)",
    "lesion_size": "lesion box side with margin / short side of the photo",
    "noise": "robust sensor-noise estimate (MAD of the difference from a 3x3 median)",
    "cast_red": "lamp colour: the Shades of Gray gain the red channel needs",
    "cast_blue": "lamp colour: the Shades of Gray gain the blue channel needs",
}


def acquisition_measures(image: np.ndarray) -> dict[str, float]:
    """The camera-side measures of one RGB uint8 photo (see :data:`MEANING`)."""
    lesion = find_lesion(image)
    x = preprocess(image, size=160, recipe=AS_TAKEN, lesion=lesion)
    grey = cv2.cvtColor(x, cv2.COLOR_RGB2GRAY)
    residual = grey.astype(np.float32) - cv2.medianBlur(grey, 3).astype(np.float32)
    skin = lesion.fov & ~lesion.mask
    work = lesion.work[skin] if skin.sum() >= 64 else lesion.work.reshape(-1, 3)
    linear = srgb.TO_LINEAR[work] @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    gains = illuminant_gains(x)
    short = min(image.shape[:2])
    return {
        "blur_effect": blur_effect(x),
        "skin_luminance": float(np.median(linear)),
        "outside_view": float(1.0 - lesion.fov.mean()),
        "lesion_size": float(crop_box(image.shape, lesion, LESION_BOX)[2] / short),
        "noise": float(1.4826 * np.median(np.abs(residual - np.median(residual)))),
        "cast_red": float(gains[0]),
        "cast_blue": float(gains[2]),
    }


def _measure(path: str) -> dict[str, float]:
    from kiosk.vision.loader import load_image

    return acquisition_measures(load_image(Path(path)))


def audit(root: Path, *, photos: int | None = 1000, workers: int = 2, seed: int = 5) -> dict[str, dict[str, float]]:
    """Per measure: its AUC as a melanoma score and its median in each class, on training-side photos."""
    from kiosk.progress import progress

    from .revalidate import honest_split

    train, _, _, _ = honest_split(root)
    samples = random.Random(seed).sample(train, photos) if photos and photos < len(train) else list(train)
    paths = [str(root / s.path) for s in samples]
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        rows = list(progress(pool.imap(_measure, paths, chunksize=8), label="shortcuts", total=len(paths)))
    labels = np.array([s.label for s in samples])
    report = {}
    for name in MEANING:
        values = np.array([r[name] for r in rows])
        report[name] = {
            "auc": fast_auc(labels, values),
            "median_benign": float(np.median(values[labels == 0])),
            "median_melanoma": float(np.median(values[labels == 1])),
        }
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.shortcuts", description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--photos", type=int, default=1000, help="training-side photos to sample (0: all)")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    if args.photos < 0 or args.workers < 1:
        print("shortcuts: error: --photos must be 0 or more and --workers at least 1", file=sys.stderr)
        return 2
    if not args.data.is_dir():
        print(f"shortcuts: error: no dataset at {args.data}", file=sys.stderr)
        return 2
    report = audit(args.data, photos=args.photos or None, workers=args.workers)
    print("| measure | AUC as a melanoma score | median benign | median melanoma | what it is |")
    print("|---|---|---|---|---|")
    for name, row in sorted(report.items(), key=lambda kv: -abs(kv[1]["auc"] - 0.5)):
        medians = f"{row['median_benign']:.3g} | {row['median_melanoma']:.3g}"
        print(f"| {name} | {row['auc']:.3f} | {medians} | {MEANING[name]} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
