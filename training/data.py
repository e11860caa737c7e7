"""Dataset listing, the train/validation split, and the preprocessed-image cache.

Every image goes through :func:`kiosk.vision.preprocess.preprocess` -- the same
function the kiosk runs -- exactly once, into a cache keyed by recipe and size,
so what is trained is exactly what the kiosk will see.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kiosk.progress import progress
from kiosk.storage import atomic_write_bytes
from kiosk.vision.loader import IMAGE_SUFFIXES, load_image
from kiosk.vision.preprocess import preprocess

LABELS = ("benign", "malignant")
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "melanoma10k" / "train"
POOL_FROM = 48  # images; fewer are preprocessed in-process (starting workers costs more)


@dataclass(frozen=True)
class Sample:
    path: str  # relative to the data root, e.g. "benign/melanoma_1.jpg"
    label: int  # index into LABELS


def list_samples(root: Path) -> list[Sample]:
    """Every image under root/{benign,malignant}/, sorted; a missing or empty class is an error."""
    samples = []
    for index, name in enumerate(LABELS):
        folder = root / name
        if not folder.is_dir():
            raise SystemExit(f"error: class folder missing: {folder}")
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise SystemExit(f"error: class folder has no images: {folder}")
        samples += [Sample(f"{name}/{p.name}", index) for p in files]
    return samples


def split_samples(root: Path, samples: list[Sample], *, val_fraction: float = 0.15, seed: int = 1234):
    """Stratified split that keeps byte-identical files on the same side.

    Files are grouped by content hash, so the duplicate pairs in the dataset
    (listed in shared/data/duplicates.txt) can never straddle train and validation.
    """
    groups: dict[tuple[int, str], list[Sample]] = {}
    for s in samples:
        digest = hashlib.sha1((root / s.path).read_bytes()).hexdigest()
        groups.setdefault((s.label, digest), []).append(s)
    rng = random.Random(seed)
    train, val = [], []
    for label in range(len(LABELS)):
        keys = sorted(k for k in groups if k[0] == label)
        rng.shuffle(keys)
        n_label = sum(len(groups[k]) for k in keys)
        taken = 0
        for key in keys:
            if taken < val_fraction * n_label:
                val += groups[key]
                taken += len(groups[key])
            else:
                train += groups[key]
    return sorted(train, key=lambda s: s.path), sorted(val, key=lambda s: s.path)


#: The split rule the shipped model's honest numbers use: ``split_samples`` (seed 1234, 15%), then every
#: near-duplicate group (``training.dedup``) with a member on each side moved wholly to training.
GROUP_SPLIT_ID = "sha1-stratified-1234-15pc+dedup-groups-to-train-v1"


def group_aware_split(
    train: list[Sample], val: list[Sample], groups: list[list[str]]
) -> tuple[list[Sample], list[Sample], list[str]]:
    """(train, validation, moved): every group that spans both sides moved wholly to training.

    Validation is then the old validation minus every image with a near-duplicate on the training
    side, so a model trained on the old split is measured honestly on it, and runs trained on the
    new split stay comparable with it. Deterministic: the result depends only on the inputs.

    >>> a, b, c = Sample("benign/a.jpg", 0), Sample("benign/b.jpg", 0), Sample("benign/c.jpg", 0)
    >>> group_aware_split([a], [b, c], [["benign/a.jpg", "benign/b.jpg"]])[1]
    [Sample(path='benign/c.jpg', label=0)]
    """
    train_paths = {s.path for s in train}
    moved: set[str] = set()
    for group in groups:
        if any(p in train_paths for p in group):
            moved.update(p for p in group if p not in train_paths)
    new_val = [s for s in val if s.path not in moved]
    new_train = sorted(train + [s for s in val if s.path in moved], key=lambda s: s.path)
    return new_train, new_val, sorted(moved)


#: The near-duplicate groups of the dataset, pinned (``python -m training.dedup``; see training/README.md), so
#: the split does not change when the model that computes the embeddings does.
PINNED_GROUPS = Path(__file__).resolve().parent / "splits" / "melanoma10k-dedup-v1.json"


def make_split(
    root: Path,
    samples: list[Sample],
    *,
    val_fraction: float = 0.15,
    seed: int = 1234,
    groups_file: Path | None = PINNED_GROUPS,
) -> tuple[list[Sample], list[Sample], str]:
    """(train, validation, split id): :func:`split_samples`, then :func:`group_aware_split` with ``groups_file``.

    ``groups_file=None`` gives the old split (id ``sha1-stratified-...``) without the group step, and so does a
    folder that is not the one the groups were found in.
    """
    train, val = split_samples(root, samples, val_fraction=val_fraction, seed=seed)
    legacy = f"sha1-stratified-{seed}-{val_fraction:g}"
    if groups_file is None:
        return train, val, legacy
    pinned = json.loads(Path(groups_file).read_text())
    known = {s.path for s in samples}
    if not all(p in known for group in pinned["groups"] for p in group):
        return train, val, legacy  # another folder: the pinned groups are not its groups (run training.dedup on it)
    train, val, _ = group_aware_split(train, val, pinned["groups"])
    same_rule = (seed, val_fraction) == (1234, 0.15)
    return train, val, pinned["split_id"] if same_rule else f"{pinned['split_id']}-seed{seed}-{val_fraction:g}"


def split_sha256(val: list[Sample]) -> str:
    """The hash the manifests record for a validation split (the same recipe as the trainer's)."""
    return hashlib.sha256(json.dumps([s.path for s in val]).encode()).hexdigest()


def save_split(path: Path, train: list[Sample], val: list[Sample], *, split_id: str | None = None) -> None:
    data: dict = {"train": [s.path for s in train], "validation": [s.path for s in val]}
    if split_id:
        data["split_id"] = split_id
    atomic_write_bytes(path, json.dumps(data, indent=1).encode())


def load_split(path: Path) -> tuple[list[Sample], list[Sample]]:
    data = json.loads(path.read_text())

    def to_samples(paths):
        return [Sample(p, LABELS.index(p.split("/")[0])) for p in paths]

    return to_samples(data["train"]), to_samples(data["validation"])


def preprocessed_arrays(root: Path, samples: list[Sample], *, size: int, recipe: str, cache_dir: Path):
    """(images uint8 N x size x size x 3, labels int) through the kiosk's preprocess(), cached.

    The cache key holds each file's size as well as its path, so a re-encoded copy of the same folder (a
    ``training.device_pack``, whose file names are the originals') never reads the originals' cache.
    """
    sizes = [(root / s.path).stat().st_size for s in samples]
    key = hashlib.sha1(json.dumps([recipe, size, [s.path for s in samples], sizes]).encode()).hexdigest()[:16]
    cache = cache_dir / f"{recipe}-{size}-{key}.npz"
    if cache.exists():
        with np.load(cache) as data:
            return data["x"], data["y"]
    x = np.empty((len(samples), size, size, 3), np.uint8)
    y = np.array([s.label for s in samples], np.int64)
    jobs = [(root / s.path, size, recipe) for s in samples]
    workers = min(os.cpu_count() or 1, 16)
    if workers > 1 and len(jobs) >= POOL_FROM:
        # spawn, not fork: the trainer has TensorFlow's threads running by now.
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            done = pool.imap(_preprocess_file, jobs, chunksize=16)
            for i, image in enumerate(progress(done, label=f"preprocess {size}px", total=len(jobs))):
                x[i] = image
    else:
        for i, job in enumerate(progress(jobs, label=f"preprocess {size}px")):
            x[i] = _preprocess_file(job)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, x=x, y=y)
    os.replace(tmp, cache)
    return x, y


def _preprocess_file(job: tuple[Path, int, str]) -> np.ndarray:
    path, size, recipe = job
    return preprocess(load_image(path), size=size, recipe=recipe)


def materialise_split(
    root: Path, run_dir: Path, *, calibration_count: int = 400, seed: int = 1234
) -> tuple[Path, Path]:
    """Symlink folders for deploy/build-model: ``validation/{benign,malignant}`` and ``calibration/``.

    Calibration images are a seeded, class-balanced sample of the *training*
    side, so int8 calibration never sees a validation image.
    """
    train, val = load_split(run_dir / "split.json")
    val_dir, cal_dir = run_dir / "validation", run_dir / "calibration"
    for s in val:
        link = val_dir / s.path
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to((root / s.path).resolve())
    rng = random.Random(seed)
    picked = []
    for label in range(len(LABELS)):
        same = [s for s in train if s.label == label]
        picked += rng.sample(same, min(len(same), calibration_count // len(LABELS)))
    cal_dir.mkdir(parents=True, exist_ok=True)
    for s in picked:
        link = cal_dir / s.path.replace("/", "_")
        if not link.exists():
            link.symlink_to((root / s.path).resolve())
    return cal_dir, val_dir
