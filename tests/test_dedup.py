"""training.dedup and the group-aware split: hashes, union-find, groups of drawn images, the pinned split."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from kiosk.synthetic import random_lesion
from tests.conftest import SHARED_TRAIN
from training.data import (
    PINNED_GROUPS,
    Sample,
    group_aware_split,
    list_samples,
    make_split,
    split_sha256,
)
from training.dedup import find_groups, phashes, union_find_groups

DATA = Path(os.environ.get("MELANOMA10K_TRAIN", SHARED_TRAIN))


def test_phash_sees_turned_and_mirrored_copies():
    image = random_lesion(5, width=240, height=240)
    base = phashes(image)
    for copy in (np.rot90(image), image[:, ::-1], np.rot90(image, 2)):
        distance = min(int(np.bitwise_count(h ^ phashes(np.ascontiguousarray(copy))[0])) for h in base)
        assert distance <= 2
    other = phashes(random_lesion(6, width=240, height=240))
    assert min(int(np.bitwise_count(h ^ other[0])) for h in base) > 6


def test_union_find_links_transitively():
    assert union_find_groups(6, [(4, 5), (1, 3), (3, 0)]).tolist() == [0, 0, 2, 0, 4, 4]


def test_group_aware_split_moves_spanning_groups_to_training():
    s = {n: Sample(f"benign/{n}.jpg", 0) for n in "abcdef"}
    train, val = [s["a"], s["b"]], [s["c"], s["d"], s["e"], s["f"]]
    groups = [["benign/a.jpg", "benign/c.jpg"], ["benign/d.jpg", "benign/e.jpg"]]  # spans / validation only
    new_train, new_val, moved = group_aware_split(train, val, groups)
    assert [x.path for x in new_train] == ["benign/a.jpg", "benign/b.jpg", "benign/c.jpg"]
    assert [x.path for x in new_val] == ["benign/d.jpg", "benign/e.jpg", "benign/f.jpg"]
    assert moved == ["benign/c.jpg"]


def test_find_groups_on_a_folder_of_drawn_images(tmp_path):
    names = []
    for seed in range(12):
        image = random_lesion(100 + seed, width=300, height=300)
        cv2.imwrite(str(tmp_path / f"lesion_{seed:02d}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        names.append(f"lesion_{seed:02d}.png")
    original = random_lesion(100, width=300, height=300)
    cv2.imwrite(str(tmp_path / "copy_turned.png"), cv2.cvtColor(np.rot90(original), cv2.COLOR_RGB2BGR))
    cv2.imwrite(
        str(tmp_path / "copy_jpeg.jpg"), cv2.cvtColor(original, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 60]
    )
    result = find_groups(tmp_path, cache_dir=None)
    assert result["images"] == 14
    assert result["groups"] == [["copy_jpeg.jpg", "copy_turned.png", "lesion_00.png"]]


@pytest.mark.skipif(not (DATA / "benign").is_dir(), reason=f"real data not present: {DATA}")
def test_pinned_split_is_the_recorded_one():
    pinned = json.loads(PINNED_GROUPS.read_text())
    train, val, split_id = make_split(DATA, list_samples(DATA))
    assert split_id == pinned["split_id"]
    assert split_sha256(val) == pinned["validation_split_sha256"]
    assert (len(train), len(val)) == (8267, 1330)
    side = {s.path: "train" for s in train} | {s.path: "val" for s in val}
    assert all(len({side[p] for p in group}) == 1 for group in pinned["groups"])


def test_make_split_on_another_folder_is_the_old_split(tmp_path):
    for label in ("benign", "malignant"):
        (tmp_path / label).mkdir()
        for i in range(10):
            cv2.imwrite(
                str(tmp_path / label / f"{label}_{i}.png"),
                cv2.cvtColor(
                    random_lesion(i + (50 if label == "malignant" else 0), width=64, height=64), cv2.COLOR_RGB2BGR
                ),
            )
    samples = list_samples(tmp_path)
    train, val, split_id = make_split(tmp_path, samples)
    assert split_id == "sha1-stratified-1234-0.15" and len(train) + len(val) == 20
