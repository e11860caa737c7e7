"""Near-duplicate groups in any folder of images: a perceptual hash plus an embedding check.

Two images are linked when either

* their DCT perceptual hashes (64 bits, taken over all eight flips / quarter turns, so a
  turned or mirrored copy still matches) differ in at most ``max_hash_distance`` bits, or
* the cosine similarity of their embeddings is at least ``min_cosine``. The embedding is
  the shipped int8 model's own mid-level features (``block_12``'s output, spatially averaged,
  48 values) on the kiosk's preprocessed input, averaged over the eight flips / quarter turns
  so it does not change when a photo is turned, then whitened over the folder (PCA, each
  component scaled to unit variance) so that no single "benign or malignant" direction
  dominates the cosine.

A folder of fewer than 4 x 48 images is linked by the hash alone: too few to whiten, the
cosine cut-off would mean nothing there. Links are closed transitively (union-find) into groups.
The same lesion re-cropped, re-coloured or with hair removed lands in one group;
``training.data`` then keeps a group
on one side of a split.

    python -m training.dedup ../shared/data/melanoma10k/train --out runs/dedup

>>> import numpy as np
>>> groups = union_find_groups(4, [(0, 1), (1, 2)])
>>> groups.tolist()
[0, 0, 0, 3]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from kiosk.progress import progress
from kiosk.vision.loader import IMAGE_SUFFIXES, load_image

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = REPO_ROOT / "models" / "melanoma_int8.tflite"
#: Chosen by looking at pairs around them (training/README.md, "Near-duplicate groups").
MAX_HASH_DISTANCE = 2
MIN_COSINE = 0.88
#: block_12's output (10x10x48 for the 160 px MobileNetV2): measured to tell lesions apart better than the
#: penultimate layer, whose features have collapsed towards "benign / malignant" (training/README.md).
FEATURE_LAYER = "block_12_add"
ROW_BLOCK = 1024  # rows of the similarity matrix held at once (memory, not speed)


# --- perceptual hash ---------------------------------------------------------------


def dihedral(image: np.ndarray) -> list[np.ndarray]:
    """The eight flips / quarter turns of an image (identity first)."""
    out = []
    for k in range(4):
        turned = np.rot90(image, k)
        out += [turned, turned[:, ::-1]]
    return [np.ascontiguousarray(a) for a in out]


def phash_bits(gray32: np.ndarray) -> np.uint64:
    """64-bit DCT hash of a 32x32 grey image: the 8x8 lowest frequencies (DC left out) against their median."""
    coeffs = cv2.dct(gray32.astype(np.float32))[:8, :8].reshape(-1)
    ac = coeffs[1:]
    bits = np.concatenate([[False], ac > np.median(ac)])  # DC carries brightness only
    return np.uint64(int("".join("1" if b else "0" for b in bits), 2))


def phashes(image: np.ndarray) -> np.ndarray:
    """The perceptual hash of each of the image's eight flips / quarter turns (uint64, shape 8)."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    small = cv2.resize(gray, (32, 32), interpolation=cv2.INTER_AREA)
    return np.array([phash_bits(v) for v in dihedral(small)], np.uint64)


# --- embedding ---------------------------------------------------------------------


class Embedder:
    """One of the int8 model's feature maps (dequantised, spatially averaged).

    Read with LiteRT's preserve-all-tensors.
    """

    def __init__(self, model_path: Path = DEFAULT_MODEL, *, layer: str = FEATURE_LAYER) -> None:
        from kiosk.manifest import manifest_path_for, read_manifest
        from kiosk.model import load_interpreter_class

        self.manifest = read_manifest(manifest_path_for(Path(model_path)))
        interpreter_class, _ = load_interpreter_class()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "intended for debugging": we want exactly one extra tensor
            self._it = interpreter_class(
                model_path=str(model_path), num_threads=1, experimental_preserve_all_tensors=True
            )
        self._it.allocate_tensors()
        self._input = self._it.get_input_details()[0]["index"]
        output = self._it.get_output_details()[0]["index"]
        named = [t for t in self._it.get_tensor_details() if layer in t["name"] and t["index"] < output]
        if not named:
            raise ValueError(f"the model has no tensor named like {layer!r}")
        self._feature = named[-1]
        self.size = self.manifest.input_height
        self.dim = int(self._feature["shape"][-1])

    def __call__(self, model_input: np.ndarray) -> np.ndarray:
        """Mean feature vector over the eight flips / quarter turns of one preprocessed uint8 image."""
        total = np.zeros(self.dim, np.float64)
        scale, zero = self._feature["quantization"]
        for view in dihedral(model_input):
            self._it.set_tensor(self._input, view[None])
            self._it.invoke()
            raw = self._it.get_tensor(self._feature["index"]).astype(np.float64)
            raw = raw.reshape(-1, self.dim).mean(axis=0)  # spatial mean of a feature map
            total += (raw - zero) * scale if scale else raw
        return (total / 8).astype(np.float32)


# --- the folder ----------------------------------------------------------------------


def list_images(root: Path) -> list[str]:
    """Every image below root (relative POSIX paths, sorted)."""
    return sorted(
        p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )


@dataclass(frozen=True)
class Signatures:
    paths: list[str]
    hashes: np.ndarray  # uint64, N x 8
    embeddings: np.ndarray  # float32, N x D, as the model gives them (see whiten())


def compute_signatures(
    root: Path, paths: Sequence[str], *, model_path: Path = DEFAULT_MODEL, cache_dir: Path | None = REPO_ROOT / "cache"
) -> Signatures:
    """Hashes and embeddings of every image, cached by (model, file names, sizes, mtimes)."""
    from kiosk.vision.preprocess import preprocess

    embedder = Embedder(model_path)
    stats = [(p, (root / p).stat().st_size, int((root / p).stat().st_mtime)) for p in paths]
    key = hashlib.sha1(json.dumps([embedder.manifest.sha256, FEATURE_LAYER, stats]).encode()).hexdigest()[:16]
    cache = cache_dir / f"dedup-{key}.npz" if cache_dir else None
    if cache and cache.exists():
        with np.load(cache) as data:
            return Signatures(list(paths), data["hashes"], data["embeddings"])
    hashes = np.empty((len(paths), 8), np.uint64)
    emb = np.empty((len(paths), embedder.dim), np.float32)
    for i, rel in enumerate(progress(paths, label="dedup signatures")):
        image = load_image(root / rel)
        hashes[i] = phashes(image)
        emb[i] = embedder(preprocess(image, size=embedder.size, recipe=embedder.manifest.preprocessing_recipe))
    if cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, hashes=hashes, embeddings=emb)
        os.replace(tmp, cache)
    return Signatures(list(paths), hashes, emb)


def can_whiten(embeddings: np.ndarray) -> bool:
    """Whitening needs a covariance estimate: at least four images per embedding dimension."""
    return len(embeddings) >= 4 * embeddings.shape[1]


def whiten(embeddings: np.ndarray) -> np.ndarray:
    """Centre, PCA-whiten (components with almost no variance dropped) and scale each row to unit length."""
    x = embeddings.astype(np.float64) - embeddings.mean(axis=0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    keep = s > 1e-6 * s[0]
    x = x @ (vt[keep].T / s[keep])
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def candidate_pairs(sig: Signatures, *, max_hash_distance: int, min_cosine: float) -> list[tuple[int, int, int, float]]:
    """(i, j, hash distance, cosine) for every i < j with distance <= max_hash_distance or cosine >= min_cosine.

    The cosine is of the whitened embeddings (:func:`whiten`). In a folder too small to whiten
    (:func:`can_whiten`) the cut-off means nothing, so only the hash links (cosine reported as nan).
    """
    n = len(sig.paths)
    use_cosine = can_whiten(sig.embeddings)
    unit = whiten(sig.embeddings) if use_cosine else np.zeros((n, 1), np.float32)
    out: list[tuple[int, int, int, float]] = []
    ident = sig.hashes[:, 0]
    for start in range(0, n, ROW_BLOCK):
        stop = min(n, start + ROW_BLOCK)
        cos = unit[start:stop] @ unit.T if use_cosine else np.full((stop - start, n), np.nan, np.float32)
        # the smallest distance between row i's 8 views and column j's identity view
        dist = np.min(
            np.stack([np.bitwise_count(sig.hashes[start:stop, v, None] ^ ident[None, :]) for v in range(8)]), axis=0
        )
        with np.errstate(invalid="ignore"):
            rows, cols = np.nonzero((dist <= max_hash_distance) | (cos >= min_cosine))
        for i, j in zip(rows + start, cols, strict=True):
            if i < j:
                out.append((int(i), int(j), int(dist[i - start, j]), float(cos[i - start, j])))
    return out


def union_find_groups(n: int, pairs: Iterable[tuple[int, int]]) -> np.ndarray:
    """Group id of each item (the smallest index in its group), linking every pair transitively."""
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in pairs:
        a, b = root(i), root(j)
        if a != b:
            parent[max(a, b)] = min(a, b)
    return np.array([root(i) for i in range(n)], np.int64)


def find_groups(
    root: Path,
    *,
    paths: Sequence[str] | None = None,
    max_hash_distance: int = MAX_HASH_DISTANCE,
    min_cosine: float = MIN_COSINE,
    model_path: Path = DEFAULT_MODEL,
    cache_dir: Path | None = REPO_ROOT / "cache",
) -> dict:
    """Near-duplicate groups of the images below root: ``{"rule", "groups": [[path, ...], ...], "pairs": [...]}``.

    Only groups with two or more members are listed; a lone image is its own group.
    """
    paths = list(paths) if paths is not None else list_images(root)
    sig = compute_signatures(root, paths, model_path=model_path, cache_dir=cache_dir)
    pairs = candidate_pairs(sig, max_hash_distance=max_hash_distance, min_cosine=min_cosine)
    ids = union_find_groups(len(paths), [(i, j) for i, j, _, _ in pairs])
    members: dict[int, list[str]] = {}
    for path, gid in zip(paths, ids, strict=True):
        members.setdefault(int(gid), []).append(path)
    groups = sorted((m for m in members.values() if len(m) > 1), key=lambda m: m[0])
    return {
        "rule": {
            "max_hash_distance": max_hash_distance,
            "min_cosine": min_cosine,
            "hash": "dct-phash64-dihedral",
            "embedding": f"int8 model {FEATURE_LAYER} spatial mean, dihedral mean, whitened",
            "model_sha256": Embedder(model_path).manifest.sha256,
            "embedding_used": can_whiten(sig.embeddings),
        },
        "images": len(paths),
        "groups": groups,
        "pairs": [[paths[i], paths[j], d, None if np.isnan(c) else round(c, 4)] for i, j, d, c in pairs],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.dedup", description=__doc__.split("\n\n")[0])
    p.add_argument("folder", type=Path)
    p.add_argument("--out", type=Path, required=True, help="folder for groups.json")
    p.add_argument("--max-hash-distance", type=int, default=MAX_HASH_DISTANCE)
    p.add_argument("--min-cosine", type=float, default=MIN_COSINE)
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    args = p.parse_args(argv)
    if not args.folder.is_dir():
        raise SystemExit(f"error: folder not found: {args.folder}")
    result = find_groups(
        args.folder, max_hash_distance=args.max_hash_distance, min_cosine=args.min_cosine, model_path=args.model
    )
    args.out.mkdir(parents=True, exist_ok=True)
    from kiosk.storage import atomic_write_bytes

    atomic_write_bytes(args.out / "groups.json", json.dumps(result, indent=1).encode())
    grouped = sum(len(g) for g in result["groups"])
    print(
        f"{result['images']} images: {len(result['groups'])} groups of 2+ ({grouped} images), "
        f"{len(result['pairs'])} linked pairs -> {args.out / 'groups.json'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
