"""training.augment: seeded, shape-keeping, each family changes the photo, no draw lands on a benchmark severity."""

from __future__ import annotations

import numpy as np
import pytest

from kiosk.synthetic import draw_lesion
from kiosk.vision.preprocess import preprocess
from training.augment import (
    COVERS,
    FAMILIES,
    CameraAugment,
    augmented_input,
    draw_outside,
    held_out_intervals,
)
from training.conditions import CONDITIONS

IMAGE = draw_lesion(seed=3, width=240, height=200, radius=0.18, skin=(226, 182, 160))
SMALL = draw_lesion(seed=4, width=64, height=56, radius=0.2, skin=(226, 182, 160))


@pytest.mark.parametrize("name", list(FAMILIES))
def test_each_family_keeps_shape_and_dtype_and_changes_the_photo(name):
    out, _parameter = FAMILIES[name](IMAGE, np.random.default_rng(5))
    assert out.shape == IMAGE.shape and out.dtype == np.uint8
    changed = np.abs(out.astype(np.int16) - IMAGE).mean()
    assert changed > 0.05, f"{name} changed the photo by only {changed:.3f} grey levels on average"


@pytest.mark.parametrize("name", list(FAMILIES))
def test_each_family_is_deterministic_on_its_generator(name):
    a, pa = FAMILIES[name](IMAGE, np.random.default_rng(11))
    b, pb = FAMILIES[name](IMAGE, np.random.default_rng(11))
    assert pa == pb and np.array_equal(a, b)


def test_a_draw_is_fixed_by_seed_epoch_and_index():
    aug = CameraAugment(seed=2, probability=1.0)
    first = aug.photo(IMAGE, rng=aug.rng(epoch=3, index=17))
    again = aug.photo(IMAGE, rng=aug.rng(epoch=3, index=17))
    assert np.array_equal(first, again)
    others = [aug.photo(IMAGE, rng=aug.rng(epoch=e, index=i)) for e, i in ((4, 17), (3, 18))]
    assert not any(np.array_equal(first, o) for o in others)
    other_seed = CameraAugment(seed=3, probability=1.0)
    assert not np.array_equal(first, other_seed.photo(IMAGE, rng=other_seed.rng(epoch=3, index=17)))


def test_probability_is_the_share_of_changed_photos():
    aug = CameraAugment(seed=0, probability=0.5)
    drawn = [aug.families_for(aug.rng(epoch=1, index=i)) for i in range(2000)]
    share = np.mean([bool(f) for f in drawn])
    assert 0.46 < share < 0.54
    assert all(1 <= len(f) <= aug.max_families for f in drawn if f)
    assert all(f == [n for n in FAMILIES if n in f] for f in drawn)  # photo order
    assert CameraAugment(seed=0, probability=0.0).families_for(np.random.default_rng(1)) == []


def test_benign_blur_blurs_that_share_of_benign_photos_only():
    plain = CameraAugment(seed=0, probability=0.3)
    balanced = CameraAugment(seed=0, probability=0.3, benign_blur=0.25)
    blurs = {"defocus", "motion"}

    def draws(aug, label):
        return [aug.families_for(aug.rng(epoch=1, index=i), label=label) for i in range(2000)]

    before, benign, melanoma = draws(plain, 0), draws(balanced, 0), draws(balanced, 1)
    assert melanoma == before  # a melanoma's draw is untouched
    assert draws(plain, 1) == before and plain.families_for(plain.rng(epoch=1, index=5)) == before[5]
    blurred_before = np.mean([bool(blurs & set(f)) for f in before])
    blurred = np.mean([bool(blurs & set(f)) for f in benign])
    # 25% of the photos without a blur get one: from about 7% blurred to about 30%.
    assert 0.20 < (blurred - blurred_before) / (1 - blurred_before) < 0.30
    for old, new in zip(before, benign, strict=True):
        assert set(old) <= set(new) and len(set(new) - set(old)) <= 1  # at most the one blur added
        assert new == [n for n in FAMILIES if n in new]  # still in photo order


def test_retone_re_tones_that_share_of_photos_of_either_label():
    plain = CameraAugment(seed=0, probability=0.3, benign_blur=0.25)
    toned = CameraAugment(seed=0, probability=0.3, benign_blur=0.25, retone=0.3)
    retones = {"darker_skin", "darker_whole"}

    def draws(aug, label):
        return [aug.families_for(aug.rng(epoch=2, index=i), label=label) for i in range(2000)]

    for label in (0, 1):
        before, after = draws(plain, label), draws(toned, label)
        had = np.mean([bool(retones & set(f)) for f in before])
        has = np.mean([bool(retones & set(f)) for f in after])
        # 30% of the photos without a re-tone get one: from about 9% re-toned to about 36%.
        assert had < 0.12 and 0.25 < (has - had) / (1 - had) < 0.35
        for old, new in zip(before, after, strict=True):
            assert set(old) <= set(new) and len(set(new) - set(old)) <= 1  # at most the one re-tone added
            assert set(new) - set(old) <= retones and new == [n for n in FAMILIES if n in new]
    # Both kinds are drawn, and the same (seed, epoch, index) gives the same photo.
    assert {n for f in draws(toned, 1) for n in f} >= retones
    assert draws(toned, 0) == draws(toned, 0)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_no_draw_falls_on_a_held_out_benchmark_severity(name):
    """The benchmark's values lie inside the cut-out bands, and 400 draws of the family never land in one."""
    bands = held_out_intervals(name)
    benchmark = [
        v
        for condition, families in COVERS.items()
        if families == (name,) and condition not in ("darker_skin", "darker_whole", "turned")
        for v in CONDITIONS[condition].severities
    ]
    for value in benchmark:
        assert any(a < value < b for a, b in bands), f"{name}: benchmark value {value} is not held out"
    rng = np.random.default_rng(0)
    for _ in range(400):
        _out, parameter = FAMILIES[name](SMALL, rng)
        assert not any(a <= parameter <= b for a, b in bands), f"{name} drew {parameter}, inside a held-out band"


def test_skin_and_rotation_bands_hold_out_the_benchmark_targets():
    from training.conditions import FITZPATRICK_LAB

    for family in ("darker_skin", "darker_whole"):
        assert all(any(a < lab[0] < b for a, b in held_out_intervals(family)) for lab in FITZPATRICK_LAB.values())
    assert all(any(a < angle < b for a, b in held_out_intervals("rotate")) for angle in (0, 90, 180, 270, 360))


def test_draw_outside_is_uniform_over_what_is_left():
    rng = np.random.default_rng(1)
    draws = np.array([draw_outside(rng, 0.0, 10.0, [(2.0, 4.0), (6.0, 9.0)]) for _ in range(6000)])
    assert not np.any((draws >= 2) & (draws <= 4)) and not np.any((draws >= 6) & (draws <= 9))
    # 2 + 2 + 1 units left: the shares follow the widths
    shares = [np.mean(draws < 2), np.mean((draws > 4) & (draws < 6)), np.mean(draws > 9)]
    assert np.allclose(shares, [0.4, 0.4, 0.2], atol=0.03)
    logged = np.array([draw_outside(rng, 1.0, 100.0, [(9.0, 11.0)], log=True) for _ in range(4000)])
    assert np.all((logged >= 1) & (logged <= 100)) and not np.any((logged >= 9) & (logged <= 11))


def test_every_benchmark_condition_is_covered_by_a_family():
    assert set(COVERS) == set(CONDITIONS)
    assert all(f in FAMILIES for families in COVERS.values() for f in families)


def test_augmented_input_is_the_kiosk_preprocessing_of_the_augmented_photo():
    aug = CameraAugment(seed=9, probability=1.0)
    x = augmented_input(IMAGE, aug, epoch=2, index=5, size=96)
    assert x.shape == (96, 96, 3) and x.dtype == np.uint8
    photo = aug.photo(IMAGE, rng=aug.rng(epoch=2, index=5))
    assert np.array_equal(x, preprocess(photo, size=96))
    assert not np.array_equal(x, preprocess(IMAGE, size=96))


@pytest.fixture()
def lesion_files(tmp_path):
    """Six drawn lesion files, their preprocessed cache at 48 px and alternating labels."""
    import cv2

    from kiosk.vision.loader import load_image

    paths = []
    for i in range(6):
        path = tmp_path / f"lesion_{i}.png"
        cv2.imwrite(str(path), cv2.cvtColor(draw_lesion(seed=i, width=120, height=100), cv2.COLOR_RGB2BGR))
        paths.append(path)
    cache = np.stack([preprocess(load_image(p), size=48) for p in paths])
    return paths, cache, np.array([0, 1, 0, 1, 0, 1])


@pytest.mark.training
def test_camera_batches_feed_preprocessed_augmented_photos(lesion_files):
    """The trainer's batches: changed photos are the kiosk preprocessing of the augmented file, the rest the cache."""
    pytest.importorskip("keras")
    from kiosk.vision.loader import load_image
    from training.train import camera_batches

    paths, cache, labels = lesion_files
    camera = CameraAugment(seed=5, probability=0.5)

    def batches():
        return camera_batches(
            cache, labels, paths, batch=4, class_weight={0: 1.0, 1: 2.0}, augment=None,
            camera=camera, epoch=2, seed=7, size=48, recipe="crop-sog6-v1",
        )  # fmt: skip

    first, again = batches(), batches()
    assert len(first) == 2
    images, onehot, weights = first[0]
    assert images.shape == (4, 48, 48, 3) and images.dtype == np.float32 and onehot.shape == (4, 2)
    assert np.array_equal(images, again[0][0])
    assert np.array_equal(weights, np.where(labels[first.order[:4]] == 1, 2.0, 1.0))
    changed = 0
    for b in range(len(first)):
        images = first[b][0]
        for j, i in enumerate(first.order[4 * b : 4 * b + 4]):
            rng = camera.rng(epoch=2, index=int(i))
            families = camera.families_for(rng)
            photo = camera.apply(load_image(paths[i]), families, rng=rng)
            expected = preprocess(photo, size=48) if families else cache[i]
            assert np.array_equal(images[j], expected.astype(np.float32))
            changed += bool(families) and not np.array_equal(expected, cache[i])
    assert 0 < changed < 6  # some photos changed, some straight from the cache


@pytest.mark.training
def test_paired_camera_batches_hold_each_photo_then_a_camera_changed_copy(lesion_files):
    """--consistency: the second half of a batch is the first half's photos again, each with a fresh camera draw."""
    pytest.importorskip("keras")
    from kiosk.vision.loader import load_image
    from training.train import camera_batches

    paths, cache, labels = lesion_files
    camera = CameraAugment(seed=5, probability=0.5, benign_blur=0.25)
    batches = camera_batches(
        cache, labels, paths, batch=4, class_weight={0: 1.0, 1: 2.0}, augment=None,
        camera=camera, epoch=2, seed=7, size=48, recipe="crop-sog6-v1", paired=True,
    )  # fmt: skip
    assert len(batches) == 3  # two photos a batch, each twice
    for b in range(len(batches)):
        images, onehot, weights = batches[b]
        picked = batches.order[2 * b : 2 * b + 2]
        assert images.shape == (4, 48, 48, 3)
        assert np.array_equal(np.argmax(onehot, 1), np.concatenate([labels[picked], labels[picked]]))
        assert np.array_equal(weights, np.where(np.concatenate([labels[picked]] * 2) == 1, 2.0, 1.0))
        for j, i in enumerate(picked):
            rng = camera.rng(epoch=2, index=int(i))
            families = camera.families_for(rng, label=int(labels[i]))
            first = preprocess(camera.apply(load_image(paths[i]), families, rng=rng), size=48) if families else cache[i]
            assert np.array_equal(images[j], first.astype(np.float32))
            rng = camera.partner_rng(epoch=2, index=int(i))
            drawn = camera.partner_families(rng, label=int(labels[i]))
            assert drawn  # the copy always differs by at least one family
            partner = preprocess(camera.apply(load_image(paths[i]), drawn, rng=rng), size=48)
            assert np.array_equal(images[2 + j], partner.astype(np.float32))
            assert not np.array_equal(images[2 + j], images[j])


@pytest.mark.training
def test_view_partners_are_the_clean_input_a_quarter_turn_away(lesion_files):
    """--partner view: the copy is the photo's clean model input turned 90, 180 or 270 degrees, never a camera draw."""
    pytest.importorskip("keras")
    from training.train import camera_batches

    paths, cache, labels = lesion_files
    camera = CameraAugment(seed=5, probability=1.0)  # every first copy camera-changed: the partner must stay clean
    batches = camera_batches(
        cache, labels, paths, batch=4, class_weight={0: 1.0, 1: 2.0}, augment=None, camera=camera,
        epoch=1, seed=3, size=48, recipe="crop-sog6-v1", paired=True, partner="view",
    )  # fmt: skip
    turns_seen = set()
    for b in range(len(batches)):
        images, _, _ = batches[b]
        picked = batches.order[2 * b : 2 * b + 2]
        for j, i in enumerate(picked):
            turns = 1 + int(camera.partner_rng(epoch=1, index=int(i)).integers(3))
            turns_seen.add(turns)
            assert np.array_equal(images[2 + j], np.rot90(cache[i], turns).astype(np.float32))
            assert not np.array_equal(images[2 + j], cache[i].astype(np.float32))  # a turn, not the same view
            assert not np.array_equal(images[j], cache[i].astype(np.float32))  # the first copy camera-changed
    assert turns_seen <= {1, 2, 3}
