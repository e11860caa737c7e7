"""How crude the field bench's darker-skin proxy is: lesions that the re-toning leaves lighter than their skin.

    python -m training.skin_proxy            # the field bench's 300 photos, about 20 s
    python -m training.skin_proxy --model models/melanoma_int8.tflite   # and what the kiosk says, split by it

A pigmented lesion is darker than the skin around it on every skin type: melanin adds to
melanin. ``training.conditions.darker_skin`` re-tones only the pixels about as light as
the skin, so at Fitzpatrick V and VI the skin can end up darker than the lesion it
surrounds, a picture no patient gives. This counts, per type, the photos whose lesion
(found on the clean photo) has a higher median L* than a ring of skin around it, after
the re-toning: the share of the bench's "darker skin" photos that are not a plausible
darker-skin photo at all. With ``--model`` it also screens every re-toned photo as the field
bench does (the kiosk's Screener, gate applied) and reports the bench's two shares separately
for the plausible photos (lesion still darker than its skin) and the implausible ones.

>>> from kiosk.synthetic import draw_lesion
>>> from kiosk.vision.lesion import find_lesion
>>> image = draw_lesion(seed=2)
>>> lesion_minus_surround(image, find_lesion(image)) < 0  # a drawn lesion: darker than its skin
True
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from kiosk.vision.lesion import Lesion, find_lesion, working_copy

from .conditions import CONDITIONS, apply
from .field_bench import kiosk_outcome, photo_seed, pick_subset
from .revalidate import DEFAULT_DATA

#: Width in working-copy pixels of the ring of skin the lesion is compared with.
RING_PX = 12


def lesion_minus_surround(image: np.ndarray, lesion: Lesion) -> float:
    """Median CIELAB L* inside ``lesion``'s mask minus that of a ring of skin around it (negative: darker)."""
    work, _ = working_copy(image)
    if work.shape[:2] != lesion.mask.shape or not lesion.found:
        raise ValueError("the lesion must be found on a photo of the same size")
    mask = lesion.mask.astype(np.uint8)
    ring = cv2.dilate(mask, np.ones((2 * RING_PX + 1, 2 * RING_PX + 1), np.uint8)) > 0
    ring &= ~lesion.mask & lesion.fov
    if ring.sum() < 16:
        raise ValueError("no skin around the lesion to compare with")
    lightness = cv2.cvtColor(work, cv2.COLOR_RGB2LAB)[..., 0].astype(np.float32) * (100 / 255)
    return float(np.median(lightness[lesion.mask]) - np.median(lightness[ring]))


def measure(root: Path, *, per_class: int = 150, model: Path | None = None) -> dict[int, dict[str, float]]:
    """Per Fitzpatrick type of ``darker_skin``: the share of lesions lighter than their skin, by class.

    With ``model``, also the bench's melanomas told "low" and passing benign told "low", for the photos whose
    lesion stays darker than its skin (``plausible_``) and the others (``implausible_``).
    """
    from kiosk.vision.loader import load_image

    from .revalidate import honest_split

    screener = None
    if model is not None:
        from kiosk.model import Model
        from kiosk.screening import Screener

        screener = Screener(Model.load(model))  # the kiosk's gate and the manifest's threshold

    _, val, _, _ = honest_split(root)
    samples = pick_subset(val, per_class)
    types = CONDITIONS["darker_skin"].severities
    found: dict[int, list[tuple[int, float, str]]] = {int(t): [] for t in types}
    for index, sample in enumerate(samples):
        image = load_image(root / sample.path)
        lesion = find_lesion(image)
        if not lesion.found:
            continue
        for severity, fitzpatrick in enumerate(types):
            photo = apply("darker_skin", image, severity=severity, seed=photo_seed(index))
            try:
                difference = lesion_minus_surround(photo, lesion)
            except ValueError:
                continue
            risk = ""
            if screener is not None:
                _, _, risk = kiosk_outcome(screener.screen_image(photo, apply_quality_gate=False))
            found[int(fitzpatrick)].append((sample.label, difference, risk))
    report = {}
    for fitzpatrick, rows in found.items():
        labels = np.array([r[0] for r in rows])
        lighter = np.array([r[1] > 0 for r in rows])
        report[fitzpatrick] = {
            "photos": len(rows),
            "lighter": float(lighter.mean()),
            "lighter_benign": float(lighter[labels == 0].mean()),
            "lighter_melanoma": float(lighter[labels == 1].mean()),
            "median_difference": float(np.median([r[1] for r in rows])),
        }
        if screener is not None:
            risks = np.array([r[2] for r in rows])
            for part, chosen in (("plausible", ~lighter), ("implausible", lighter)):
                melanoma, benign = chosen & (labels == 1), chosen & (labels == 0) & (risks != "retake")
                report[fitzpatrick][f"{part}_melanomas"] = int(melanoma.sum())
                report[fitzpatrick][f"{part}_melanoma_low"] = (
                    float((risks[melanoma] == "low").mean()) if melanoma.any() else float("nan")
                )
                report[fitzpatrick][f"{part}_passing_benign"] = int(benign.sum())
                report[fitzpatrick][f"{part}_benign_pass_low"] = (
                    float((risks[benign] == "low").mean()) if benign.any() else float("nan")
                )
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.skin_proxy", description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--per-class", type=int, default=150)
    p.add_argument("--model", type=Path, default=None, help="also screen the photos with this int8 model")
    args = p.parse_args(argv)
    if args.per_class < 1:
        print(f"skin_proxy: error: --per-class must be at least 1, got {args.per_class}", file=sys.stderr)
        return 2
    if not args.data.is_dir():
        print(f"skin_proxy: error: no dataset at {args.data}", file=sys.stderr)
        return 2
    if args.model is not None and not args.model.is_file():
        print(f"skin_proxy: error: no model at {args.model}", file=sys.stderr)
        return 2
    for fitzpatrick, row in measure(args.data, per_class=args.per_class, model=args.model).items():
        print(
            f"type {fitzpatrick}: lesion lighter than its skin in {row['lighter']:.0%} of {row['photos']} photos "
            f"(benign {row['lighter_benign']:.0%}, melanoma {row['lighter_melanoma']:.0%}); "
            f"median lesion minus skin {row['median_difference']:+.1f} L*"
        )
        for part in ("plausible", "implausible") if args.model is not None else ():
            print(
                f"  {part}: melanomas told low {row[part + '_melanoma_low']:.1%} of {row[part + '_melanomas']}, "
                f"passing benign told low {row[part + '_benign_pass_low']:.1%} of {row[part + '_passing_benign']}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
