"""A copy of the training photos small enough to travel to a lent GPU machine, with the honest split.

    python -m training.device_pack                         # -> .devicepack/ (33.9 MiB, about 1 minute here)
    python -m training.device_pack --side 256 --quality 78 --out .devicepack
    python -m training.device_pack --measure models/melanoma_int8.tflite   # what the re-encoding costs a model

The device tool sends the working tree and at most 64 MiB in all; the 9,597 training JPEGs are
109 MB and the tracked files about 23 MB, so the photos travel re-encoded: each one scaled down
to ``side`` pixels on its longer side (never up) and written as WebP at ``quality``, under its
own file name (``benign/melanoma_1.jpg`` holds WebP bytes: the loader reads the format from the
bytes), so the honest split's paths apply unchanged. The split itself is made here from the
original files (``training.data.make_split``: it hashes their bytes) and written beside them as
``split.json``; a run on the GPU machine starts from a copy of it in its run folder, and is
judged here on the original photos (``training.candidate``). ``pack.json`` records the source, the
encoding and the total. The pack is built in a temporary folder and renamed into place, so an
interrupted pack leaves no half-written folder; one over the budget is refused in one line.

``--measure MODEL`` screens the honest validation photos of an existing pack and of the originals with
the kiosk's Screener (gate off) and prints both AUCs and how far the probabilities move: what training
on the pack changes about the photos, in the units that matter (training/README.md, "On a GPU machine").

>>> from kiosk.synthetic import draw_lesion
>>> data, width = encode_photo(draw_lesion(seed=0, width=400, height=300), side=256, quality=80)
>>> data[8:12], width
(b'WEBP', 256)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from kiosk.storage import atomic_write_bytes

from .data import DEFAULT_DATA, REPO_ROOT, list_samples, load_split, make_split, save_split

#: What the device tool carries in all: the working tree and the carried paths.
DEVICE_TREE_BYTES = 64 * 2**20
#: Room kept for the wheels a run carries (keras, namex, optree: 2.8 MiB), split.json and files added later.
HEADROOM_BYTES = 4 * 2**20
DEFAULT_OUT = REPO_ROOT / ".devicepack"


def encode_photo(image: np.ndarray, *, side: int, quality: int) -> tuple[bytes, int]:
    """(WebP bytes, width) of an RGB photo scaled down so its longer side is at most ``side``."""
    h, w = image.shape[:2]
    scale = min(1.0, side / max(h, w))
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    ok, buffer = cv2.imencode(".webp", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_WEBP_QUALITY, quality])
    if not ok:
        raise ValueError("the photo could not be encoded as WebP")
    return buffer.tobytes(), int(image.shape[1])


def tracked_bytes(repo: Path = REPO_ROOT) -> int:
    """Bytes of the files git tracks in ``repo`` (they always travel); 0 outside a git checkout."""
    try:
        listed = subprocess.run(
            ["git", "-C", str(repo), "ls-files", "-z"], check=True, capture_output=True, timeout=60
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    names = [n for n in listed.decode().split("\0") if n]
    return sum((repo / n).stat().st_size for n in names if (repo / n).is_file())


def build_pack(root: Path, out: Path, *, side: int = 256, quality: int = 78, budget: int | None = None) -> dict:
    """Write the pack of ``root`` to ``out`` (replacing an earlier pack there); returns ``pack.json``'s record.

    ``budget``: most bytes the photos may take (default: what the device tool leaves beside the tracked files,
    less :data:`HEADROOM_BYTES`). Over it, a ValueError and nothing written.
    """
    from kiosk.vision.loader import load_image

    if budget is None:
        budget = DEVICE_TREE_BYTES - tracked_bytes() - HEADROOM_BYTES
    samples = list_samples(root)
    train, val, split_id = make_split(root, samples)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".devicepack-", dir=out.parent))
    try:
        total = 0
        for sample in samples:
            data, _ = encode_photo(load_image(root / sample.path), side=side, quality=quality)
            total += len(data)
            if total > budget:
                raise ValueError(
                    f"the photos take over {budget / 2**20:.1f} MiB at side {side}, quality {quality}: "
                    "lower --quality or --side"
                )
            target = work / "train" / sample.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        save_split(work / "split.json", train, val, split_id=split_id)
        record = {
            "source": str(root),
            "images": len(samples),
            "encoding": {"format": "webp", "side": side, "quality": quality},
            "photo_bytes": total,
            "split_id": split_id,
            "train": len(train),
            "validation": len(val),
        }
        atomic_write_bytes(work / "pack.json", json.dumps(record, indent=1).encode())
        old = out.with_name(out.name + ".old")
        if out.exists():
            os.replace(out, old)
        os.replace(work, out)
        shutil.rmtree(old, ignore_errors=True)
        return record
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure(model_path: Path, root: Path, pack: Path) -> dict[str, float]:
    """The honest validation photos screened from the originals and from the pack by the kiosk's Screener."""
    from kiosk.model import Model
    from kiosk.screening import Screener

    from .revalidate import fast_auc, score

    _, val = load_split(pack / "split.json")
    screener = Screener(Model.load(model_path))
    labels, original, _, _ = score(screener, root, val)
    _, packed, _, _ = score(screener, pack / "train", val)
    moved = np.abs(packed - original)
    threshold = screener.model.manifest.threshold
    return {
        "photos": float(len(val)),
        "auc_original": fast_auc(labels, original),
        "auc_pack": fast_auc(labels, packed),
        "mean_moved": float(moved.mean()),
        "p95_moved": float(np.percentile(moved, 95)),
        "band_changed": float(np.mean((packed >= threshold) != (original >= threshold))),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.device_pack", description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with benign/ and malignant/")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--side", type=int, default=256, help="longest side in pixels (photos are never scaled up)")
    p.add_argument("--quality", type=int, default=78, help="WebP quality, 1-100")
    p.add_argument("--measure", type=Path, metavar="MODEL", help="screen the pack in --out against the originals")
    args = p.parse_args(argv)
    if not 1 <= args.quality <= 100:
        print(f"device_pack: error: --quality must be 1-100, got {args.quality}", file=sys.stderr)
        return 2
    if args.side < 32:
        print(f"device_pack: error: --side must be at least 32, got {args.side}", file=sys.stderr)
        return 2
    if not args.data.is_dir():
        print(f"device_pack: error: no dataset at {args.data}", file=sys.stderr)
        return 2
    if args.measure is not None:
        if not (args.out / "split.json").is_file() or not args.measure.is_file():
            print(
                f"device_pack: error: --measure needs a pack in {args.out} and a model at {args.measure}",
                file=sys.stderr,
            )
            return 2
        row = measure(args.measure, args.data, args.out)
        print(
            f"{int(row['photos'])} validation photos: AUC {row['auc_original']:.4f} from the originals, "
            f"{row['auc_pack']:.4f} from the pack; probability moved {row['mean_moved']:.4f} on average "
            f"(95th percentile {row['p95_moved']:.4f}); risk band changed for {row['band_changed']:.1%}"
        )
        return 0
    try:
        record = build_pack(args.data, args.out, side=args.side, quality=args.quality)
    except ValueError as exc:
        print(f"device_pack: error: {exc}", file=sys.stderr)
        return 2
    print(
        f"wrote {args.out}: {record['images']} photos, {record['photo_bytes'] / 2**20:.1f} MiB "
        f"(WebP q{args.quality}, {args.side} px); split {record['split_id']} "
        f"({record['train']} train / {record['validation']} validation)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
