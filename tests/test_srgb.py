"""The one sRGB curve: exact round trips, and the look-up table agrees with the exact decode."""

from __future__ import annotations

import numpy as np

from kiosk.vision import srgb

EVERY_VALUE = np.arange(256, dtype=np.uint8)


def test_every_uint8_value_survives_the_round_trip() -> None:
    assert np.array_equal(srgb.to_srgb(srgb.to_linear(EVERY_VALUE)), EVERY_VALUE)
    assert np.array_equal(srgb.to_srgb(srgb.TO_LINEAR[EVERY_VALUE]), EVERY_VALUE)  # float32 too


def test_the_lookup_table_is_the_exact_curve_in_float32() -> None:
    assert srgb.TO_LINEAR.dtype == np.float32
    assert np.array_equal(srgb.TO_LINEAR, srgb.to_linear(EVERY_VALUE).astype(np.float32))


def test_the_curve_has_its_published_anchors() -> None:
    # IEC 61966-2-1: the linear toe below 0.04045 (slope 1/12.92), mid grey 0.5 -> 0.214, white stays white.
    assert srgb.decode(np.array(0.04)) == np.float64(0.04 / 12.92)
    assert abs(float(srgb.decode(np.array(0.5))) - 0.2140) < 1e-4
    assert float(srgb.decode(np.array(1.0))) == 1.0
    assert srgb.to_srgb(np.array([-0.5, 2.0])).tolist() == [0, 255]  # out-of-range light clips


def test_one_stop_more_light_doubles_linear_light_not_pixel_values() -> None:
    grey = np.array([100], np.uint8)
    brighter = srgb.to_srgb(srgb.to_linear(grey) * 2.0)
    assert abs(float(srgb.to_linear(brighter)[0]) / float(srgb.to_linear(grey)[0]) - 2.0) < 0.03
    assert 130 < int(brighter[0]) < 140  # about 1.37x in sRGB, not 2x
