"""Sharpen a blurred model input back toward the training photos' sharpness.

A defocused, shaken or down-sampled photo reads as more suspicious to the model than the
same lesion photographed sharp (training/README, "Sharpening a blurred input"), so a benign lesion
behind a cheap clip-on lens is referred. Most training photos are sharp dermoscopy. This
step measures the model input's blur with the no-reference *blur effect* of Crete et al.
(2007): 0 for a sharp image, towards 1 for a blurred one, judged by how much of its
local variation survives a further blur. Only an input blurrier than ``above`` is changed:
an unsharp mask whose amount grows with the excess. The recipe's 0.40 leaves 87% of the
training photos exactly as they were. (The other 13% are 7% of the benign photos and 20% of
the melanomas: in this dataset blur goes with melanoma, which is why the model learnt it.)
Measured, not served by the shipped model: that one learnt to ignore blur in training instead
(``training.train --benign-blur``), which helped more.

>>> from kiosk.synthetic import draw_lesion
>>> import cv2
>>> sharp = draw_lesion(seed=0)[::2, ::2]
>>> blurred = cv2.GaussianBlur(sharp, (0, 0), 2)
>>> blur_effect(blurred) > blur_effect(sharp)
True
>>> bool((restore_sharpness(sharp, above=0.99, gain=20.0, most=2.0) == sharp).all())
True
"""

from __future__ import annotations

import cv2
import numpy as np

#: Width of the box blur that the measure compares against (Crete et al. use 9-11 px).
BLUR_WIDTH = 11


def blur_effect(image: np.ndarray, *, width: int = BLUR_WIDTH) -> float:
    """Crete et al.'s blur effect of an RGB uint8 image: 0 sharp, towards 1 blurred.

    The larger of the vertical and horizontal measures; the border (``width`` px) is left out.
    """
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    if min(grey.shape) <= 2 * width + 1:
        return 0.0
    kernel = np.full(width, 1.0 / width, np.float32)
    effects = []
    for axis, shaped in ((0, kernel.reshape(-1, 1)), (1, kernel.reshape(1, -1))):
        reblurred = cv2.filter2D(grey, -1, shaped, borderType=cv2.BORDER_REFLECT)
        inner = (slice(width, -width), slice(width, -width))
        variation = np.abs(np.diff(grey, axis=axis))[inner]
        kept = np.abs(np.diff(reblurred, axis=axis))[inner]
        total = float(variation.sum())
        lost = float(np.maximum(variation - kept, 0.0).sum())
        effects.append((total - lost) / total if total > 0 else 1.0)
    return max(effects)


def unsharp_mask(image: np.ndarray, *, amount: float, sigma: float) -> np.ndarray:
    """``image + amount x (image - Gaussian blur of image)``, clipped to uint8."""
    if amount <= 0:
        return image
    pixels = image.astype(np.float32)
    detail = pixels - cv2.GaussianBlur(pixels, (0, 0), sigma)
    return np.clip(np.round(pixels + np.float32(amount) * detail), 0, 255).astype(np.uint8)


def restore_sharpness(image: np.ndarray, *, above: float, gain: float, most: float, sigma: float = 0.7) -> np.ndarray:
    """Unsharp-mask ``image`` by ``gain x (blur effect - above)``, at most ``most``; unchanged when not blurrier."""
    amount = min(most, gain * (blur_effect(image) - above))
    return unsharp_mask(image, amount=amount, sigma=sigma)
