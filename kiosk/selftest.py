"""The built-in self-test: a model must give the same answers on the kiosk as when it was signed.

Six lesions are drawn by :mod:`kiosk.synthetic` from fixed seeds (no image
files to lose or corrupt), then prepared by THE preprocessing function with the
model's own recipe and input size, exactly as a photo would be. At signing time
``deploy/sign-model`` stores the model's malignant probabilities on them
(:func:`expected_outputs`); before a kiosk switches to a new model it runs the
same images through the loaded model and compares (:func:`check`). That catches
a model the kiosk's runtime executes differently (an unsupported op, a runtime
bug, a damaged file that still parses), which a hash check alone cannot.

>>> inputs = selftest_inputs(size=32, recipe="crop-sog6-v1")
>>> len(inputs), inputs[0].shape, inputs[0].dtype.name
(6, (32, 32, 3), 'uint8')
>>> check_outputs([0.25, 0.5], [0.25, 0.5 + 1 / 512]).passed  # within one int8 step
True
>>> check_outputs([0.25, 0.5], [0.25, 0.6]).passed
False
>>> check_outputs([0.25, float("nan")], [0.25, 0.5]).passed
False

With a loaded model (see :mod:`kiosk.model`)::

    expected = expected_outputs(model)          # at signing time
    check(model, expected).passed               # on the kiosk, before the swap
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .synthetic import draw_lesion
from .vision.preprocess import preprocess

if TYPE_CHECKING:
    from .model import Model

#: Names this set of images; stored in selftest.json so a kiosk whose drawing
#: code changed can say so instead of blaming the model.
SELFTEST_ID = "kiosk-selftest-v1"

#: One int8 output step (softmax outputs are quantised with scale 1/256) plus
#: float slack. On one runtime int8 inference is bit-exact, but XNNPACK's ARM
#: (Pi) and x86 (signing laptop) kernels may round an accumulator differently,
#: which moves an output by at most about one step. A wrong or damaged model
#: misses by far more than that.
DEFAULT_TOLERANCE = 1 / 256 + 1e-6

_WIDTH, _HEIGHT = 320, 240

#: Fixed scenes: light to dark skin, smooth to ragged borders, 1-4 colours,
#: hairs and a dermatoscope vignette, so the test exercises the whole input range.
CASES: tuple[dict[str, Any], ...] = (
    {"seed": 9001, "radius": 0.16, "irregularity": 0.05, "colours": 1, "skin": (240, 210, 194)},
    {"seed": 9002, "radius": 0.22, "irregularity": 0.45, "colours": 3, "hairs": 3, "skin": (206, 156, 122)},
    {"seed": 9003, "radius": 0.26, "irregularity": 0.75, "colours": 4, "skin": (130, 86, 62)},
    {"seed": 9004, "radius": 0.24, "irregularity": 0.2, "colours": 2, "vignette": True, "skin": (228, 186, 160)},
    {"seed": 9005, "radius": 0.14, "irregularity": 0.3, "colours": 2, "centre": (0.54, 0.47), "skin": (172, 120, 88)},
    {"seed": 9006, "radius": 0.2, "irregularity": 0.55, "colours": 4, "hairs": 6, "skin": (206, 156, 122)},
)


@dataclass(frozen=True, kw_only=True)
class SelfTestResult:
    """The outcome of one comparison; ``passed`` is what callers act on."""

    passed: bool
    outputs: tuple[float, ...]
    expected: tuple[float, ...]
    max_difference: float
    tolerance: float
    detail: str  # one line, for logs and refusal messages


@functools.cache
def _drawn(index: int) -> np.ndarray:
    image = draw_lesion(width=_WIDTH, height=_HEIGHT, **CASES[index])
    image.setflags(write=False)  # cached and shared between calls
    return image


def selftest_inputs(*, size: int, recipe: str) -> list[np.ndarray]:
    """The self-test images prepared for a model of input ``size`` and preprocessing ``recipe``."""
    return [preprocess(_drawn(i), size=size, recipe=recipe) for i in range(len(CASES))]


def inputs_sha256(*, size: int, recipe: str) -> list[str]:
    """sha256 of each prepared input: tells "the kiosk drew different images" from "the model differs"."""
    return [hashlib.sha256(x.tobytes()).hexdigest() for x in selftest_inputs(size=size, recipe=recipe)]


def _inputs_for(model: Model) -> list[np.ndarray]:
    manifest = model.manifest
    return selftest_inputs(size=manifest.input_height, recipe=manifest.preprocessing_recipe)


def expected_outputs(model: Model) -> list[float]:
    """The model's malignant probability on each self-test image, in :data:`CASES` order."""
    return [model.malignant_probability(x) for x in _inputs_for(model)]


def check_outputs(
    outputs: Sequence[float], expected: Sequence[float], *, tolerance: float = DEFAULT_TOLERANCE
) -> SelfTestResult:
    """Compare outputs with the expected ones; every one must be within ``tolerance``."""
    got, want = tuple(float(v) for v in outputs), tuple(float(v) for v in expected)
    if len(got) != len(want):
        return SelfTestResult(
            passed=False,
            outputs=got,
            expected=want,
            max_difference=float("inf"),
            tolerance=tolerance,
            detail=f"{len(want)} expected results for {len(got)} images",
        )
    diffs = [abs(a - b) for a, b in zip(got, want, strict=True)]
    worst = int(np.argmax(diffs)) if diffs else 0
    largest = max(diffs, default=0.0)
    if not (np.all(np.isfinite(got)) and np.all(np.isfinite(want))):  # NaN never compares as "too far"
        largest = float("inf")
    passed = largest <= tolerance
    detail = (
        f"all {len(got)} images within {tolerance:.4f}"
        if passed
        else f"image {worst + 1} gave {got[worst]:.4f}, expected {want[worst]:.4f}"
    )
    return SelfTestResult(
        passed=passed, outputs=got, expected=want, max_difference=largest, tolerance=tolerance, detail=detail
    )


def check(model: Model, expected: Sequence[float], *, tolerance: float = DEFAULT_TOLERANCE) -> SelfTestResult:
    """Run the self-test images through ``model`` and compare with ``expected`` (from signing time)."""
    return check_outputs(expected_outputs(model), expected, tolerance=tolerance)
