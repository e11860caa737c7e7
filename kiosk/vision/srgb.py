"""The sRGB transfer curve (IEC 61966-2-1), for arithmetic in linear light.

Exposure, white balance and sensor noise act on light, not on the gamma-encoded
pixel values a JPEG holds, so the kiosk's exposure normalisation and the
trainer's camera-condition simulations decode to linear light, work there and
encode again, all through this one curve.

>>> int(to_srgb(to_linear(np.array([0, 60, 128, 255], np.uint8)))[2])
128
>>> round(float(TO_LINEAR[60]), 4)
0.0452
"""

from __future__ import annotations

import numpy as np


def decode(encoded: np.ndarray) -> np.ndarray:
    """sRGB values in 0..1 -> linear light in 0..1 (the input's float type kept)."""
    decoded: np.ndarray = np.where(encoded <= 0.04045, encoded / 12.92, ((encoded + 0.055) / 1.055) ** 2.4)
    return decoded


def encode(linear: np.ndarray) -> np.ndarray:
    """Linear light in 0..1 -> sRGB values in 0..1 (the input's float type kept)."""
    encoded: np.ndarray = np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055)
    return encoded


#: Linear light of every uint8 sRGB value (float32): ``TO_LINEAR[image]`` decodes a photo by look-up.
TO_LINEAR: np.ndarray = decode(np.arange(256) / 255.0).astype(np.float32)


def to_linear(image: np.ndarray) -> np.ndarray:
    """sRGB uint8 -> linear light float64 in 0..1, computed exactly (no look-up)."""
    return decode(image.astype(np.float64) / 255.0)


def to_srgb(linear: np.ndarray) -> np.ndarray:
    """Linear light (clipped to 0..1) -> sRGB uint8, rounded to the nearest value."""
    encoded = encode(np.clip(linear, 0.0, 1.0))
    out: np.ndarray = np.clip(np.round(encoded * 255.0), 0, 255).astype(np.uint8)
    return out
