"""Camera-domain augmentation: the photo a Pi camera in a health centre gives, drawn fresh for every training image.

It covers the families of the field-conditions benchmark (:mod:`training.conditions`) -- blur
(defocus, motion), Poisson-Gaussian sensor noise, JPEG, down-sampling, white-balance casts, exposure
and vignetting in linear light, a clip-on lens circle, the lesion smaller in the frame, darker skin
(around the lesion, or the whole photo) and rotation -- but never at the benchmark's severities,
or the benchmark would measure nothing:

* every continuous parameter is drawn from a range with a **band cut out around each of the
  benchmark's three values** (:data:`HELD_OUT_BAND`: +-12% of the value, +-0.12 EV for exposure,
  +-3 L* for the skin targets, +-2 for JPEG quality); :func:`held_out_intervals` lists them and
  the tests assert no draw falls inside;
* several families are *implemented differently* from the benchmark: a Gaussian-edged defocus
  disc, motion along a curved path, a white balance with an independent green tint, an off-centre
  vignette and lens circle, skin padding continued by Navier-Stokes inpainting instead of Telea,
  skin re-toned toward a drawn L* with drawn a*/b* instead of the three fixed Fitzpatrick targets;
* rotations are any angle except within 4 degrees of a quarter turn (the benchmark's "turned" is
  exactly 90 / 180 degrees and a mirror; the trainer's later Keras flips are still exact mirrors,
  as before this module -- say so when reading the benchmark's "turned" row).

The augmented photo then goes through the kiosk's own ``preprocess`` (lesion crop, Shades of Gray),
exactly as a kiosk photo would; see :func:`augmented_input`.

>>> import numpy as np
>>> from kiosk.synthetic import draw_lesion
>>> photo = draw_lesion(seed=1, width=200, height=200)
>>> out = CameraAugment(seed=7).photo(photo, rng=np.random.default_rng(0))
>>> out.shape == photo.shape, out.dtype.name
(True, 'uint8')
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import cv2
import numpy as np

from kiosk.vision import srgb
from kiosk.vision.preprocess import DEFAULT_RECIPE, preprocess

from .conditions import CONDITIONS, FITZPATRICK_LAB

# sRGB <-> linear light by look-up tables (float32): the same curve as training.conditions, ~10x cheaper.
_TO_LINEAR = srgb.TO_LINEAR
_LUT_STEPS = 16383
_TO_SRGB = np.clip(np.round(255.0 * srgb.encode(np.arange(_LUT_STEPS + 1) / _LUT_STEPS)), 0, 255).astype(np.uint8)


def to_linear(image: np.ndarray) -> np.ndarray:
    """sRGB uint8 -> linear light float32 in 0..1."""
    linear: np.ndarray = _TO_LINEAR[image]
    return linear


def to_srgb(linear: np.ndarray) -> np.ndarray:
    """Linear light (clipped to 0..1) -> sRGB uint8."""
    index = np.clip(linear * _LUT_STEPS + 0.5, 0, _LUT_STEPS).astype(np.int32)
    out: np.ndarray = _TO_SRGB[index]
    return out


#: Relative half-width of the band cut out around each benchmark value (continuous parameters).
HELD_OUT_BAND = 0.12
#: Absolute half-widths where a relative band makes no sense.
HELD_OUT_EV = 0.12
HELD_OUT_L = 3.0
HELD_OUT_JPEG = 2
HELD_OUT_QUARTER_TURN_DEGREES = 4.0


def held_out_intervals(family: str) -> list[tuple[float, float]]:
    """The closed intervals of ``family``'s parameter that training never draws (around the benchmark's values)."""

    def relative(values: tuple[float, ...] | list[float]) -> list[tuple[float, float]]:
        return [(v * (1 - HELD_OUT_BAND), v * (1 + HELD_OUT_BAND)) for v in values]

    if family in ("defocus", "motion", "noise", "downsample", "vignette", "lens_circle", "smaller"):
        return relative(CONDITIONS[family].severities)
    if family == "white_balance":
        return relative([*CONDITIONS["wb_warm"].severities, *CONDITIONS["wb_cool"].severities])
    if family == "exposure":
        values = [*CONDITIONS["exposure_under"].severities, *CONDITIONS["exposure_over"].severities]
        return [(v - HELD_OUT_EV, v + HELD_OUT_EV) for v in values]
    if family == "jpeg":
        return [(q - HELD_OUT_JPEG, q + HELD_OUT_JPEG) for q in CONDITIONS["jpeg"].severities]
    if family in ("darker_skin", "darker_whole"):
        return [(lab[0] - HELD_OUT_L, lab[0] + HELD_OUT_L) for lab in FITZPATRICK_LAB.values()]
    if family == "rotate":
        q = HELD_OUT_QUARTER_TURN_DEGREES
        return [(a - q, a + q) for a in (0.0, 90.0, 180.0, 270.0, 360.0)]
    raise KeyError(family)


def draw_outside(
    rng: np.random.Generator, low: float, high: float, excluded: list[tuple[float, float]], *, log: bool = False
) -> float:
    """A uniform draw from [low, high] minus the excluded intervals (uniform in log space when ``log``)."""
    f, inv = (np.log, np.exp) if log else ((lambda v: v), (lambda v: v))
    pieces: list[tuple[float, float]] = [(f(low), f(high))]
    for a, b in excluded:
        fa, fb = f(max(a, 1e-12) if log else a), f(max(b, 1e-12) if log else b)
        pieces = [p for lo, hi in pieces for p in ((lo, min(hi, fa)), (max(lo, fb), hi)) if p[1] > p[0]]
    widths = np.array([hi - lo for lo, hi in pieces])
    lo, hi = pieces[int(rng.choice(len(pieces), p=widths / widths.sum()))]
    return float(inv(rng.uniform(lo, hi)))


# --- the families: (photo, rng) -> (photo, parameter) ------------------------------------------


def _short(image: np.ndarray) -> int:
    return min(image.shape[:2])


def defocus(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """A disc with a soft (Gaussian) rim; the benchmark's disc is hard-edged."""
    fraction = draw_outside(rng, 0.003, 0.025, held_out_intervals("defocus"), log=True)
    r = max(1.0, fraction * _short(image))
    size = int(2 * np.ceil(r + 1) + 1)
    yy, xx = np.mgrid[:size, :size] - size // 2
    kernel = np.clip(r + 0.5 - np.hypot(xx, yy), 0.0, 1.0).astype(np.float32)
    return cv2.filter2D(image, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT), fraction


def motion(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Shake along a slightly curved path (a bent line kernel); the benchmark's is straight."""
    fraction = draw_outside(rng, 0.008, 0.07, held_out_intervals("motion"), log=True)
    length = max(3, round(fraction * _short(image)) | 1)
    kernel = np.zeros((length + 4, length + 4), np.float32)
    angle, bend = rng.uniform(0, np.pi), rng.uniform(-0.25, 0.25) * length
    t = np.linspace(-0.5, 0.5, 4 * length)
    cx = (length + 3) / 2 + t * length * np.cos(angle) - bend * (t**2 - 0.25) * np.sin(angle)
    cy = (length + 3) / 2 + t * length * np.sin(angle) + bend * (t**2 - 0.25) * np.cos(angle)
    np.add.at(
        kernel,
        (np.clip(np.round(cy), 0, length + 3).astype(int), np.clip(np.round(cx), 0, length + 3).astype(int)),
        1.0,
    )
    return cv2.filter2D(image, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT), fraction


def noise(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Poisson shot noise at a drawn full well plus Gaussian read noise of a drawn size (benchmark: 3 e-)."""
    full_well = draw_outside(rng, 70.0, 3000.0, held_out_intervals("noise"), log=True)
    electrons = to_linear(image) * np.float32(full_well)
    read = rng.uniform(1.0, 6.0)  # the benchmark's read noise is a fixed 3 e-
    # Shot noise by its Gaussian limit (sd = sqrt(mean)): far cheaper than Poisson draws, and not the benchmark's.
    sigma = np.sqrt(electrons + np.float32(read * read))
    noisy = electrons + sigma * rng.standard_normal(electrons.shape, dtype=np.float32)
    return to_srgb(noisy / np.float32(full_well)), full_well


def jpeg(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """JPEG at a quality outside the benchmark's bands, sometimes without chroma subsampling."""
    allowed = [q for q in range(20, 96) if not any(a <= q <= b for a, b in held_out_intervals("jpeg"))]
    quality = int(rng.choice(allowed))
    params = [cv2.IMWRITE_JPEG_QUALITY, quality]
    if rng.random() < 0.3:
        params += [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
    _ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params)
    decoded = cv2.imdecode(data, cv2.IMREAD_COLOR)
    assert decoded is not None  # OpenCV just encoded it
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB), float(quality)


def downsample(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Shrink and scale back up, with a drawn pair of interpolations (the benchmark: area down, bilinear up)."""
    factor = draw_outside(rng, 0.2, 0.85, held_out_intervals("downsample"), log=True)
    h, w = image.shape[:2]
    down = (cv2.INTER_AREA, cv2.INTER_LINEAR)[int(rng.random() < 0.3)]
    up = (cv2.INTER_LINEAR, cv2.INTER_CUBIC)[int(rng.random() < 0.5)]
    small = cv2.resize(image, (max(1, round(w * factor)), max(1, round(h * factor))), interpolation=down)
    return cv2.resize(small, (w, h), interpolation=up), factor


def white_balance(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """A cast in linear light: red x g, blue / g, and a small independent green tint the benchmark lacks."""
    gain = draw_outside(rng, 1 / 1.7, 1.7, held_out_intervals("white_balance"), log=True)
    tint = float(np.exp(rng.uniform(-0.08, 0.08)))
    return to_srgb(to_linear(image) * np.array([gain, tint, 1.0 / gain], np.float32)), gain


def exposure(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Exposure in linear light by a drawn EV, with a slight drawn gamma change (a camera's tone curve)."""
    stops = draw_outside(rng, -1.8, 1.6, held_out_intervals("exposure"))
    curve = float(rng.uniform(0.9, 1.1))
    return to_srgb(np.power(to_linear(image) * np.float32(2.0**stops), np.float32(curve))), stops


def vignette(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Corners darker around a drawn, off-centre optical centre (the benchmark's is centred)."""
    strength = draw_outside(rng, 0.15, 0.8, held_out_intervals("vignette"))
    h, w = image.shape[:2]
    cx, cy = (w - 1) / 2 + rng.uniform(-0.1, 0.1) * w, (h - 1) / 2 + rng.uniform(-0.1, 0.1) * h
    yy, xx = np.ogrid[:h, :w]
    r2 = ((xx - cx) ** 2 + (yy - cy) ** 2) / (((w - 1) / 2) ** 2 + ((h - 1) / 2) ** 2)
    gain = np.clip(1.0 - strength * r2, 0.0, 1.0).astype(np.float32)[..., None]
    return to_srgb(to_linear(image) * gain), strength


def lens_circle(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Dark outside an off-centre circle with a drawn rim softness and a not-quite-black outside."""
    fraction = draw_outside(rng, 0.36, 0.75, held_out_intervals("lens_circle"))
    h, w = image.shape[:2]
    cx, cy = (w - 1) / 2 + rng.uniform(-0.06, 0.06) * w, (h - 1) / 2 + rng.uniform(-0.06, 0.06) * h
    yy, xx = np.ogrid[:h, :w]
    rim = rng.uniform(1.0, 6.0)
    inside = np.clip((fraction * _short(image) - np.hypot(xx - cx, yy - cy)) / rim + 0.5, 0.0, 1.0)
    inside = inside.astype(np.float32)[..., None]
    floor = np.float32(rng.uniform(0.0, 12.0))
    return np.round(image * inside + floor * (1 - inside)).astype(np.uint8), fraction


def smaller(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """The photo shrunk by a drawn scale, off-centre, on skin continued by Navier-Stokes inpainting."""
    scale = draw_outside(rng, 0.3, 0.9, held_out_intervals("smaller"))
    h, w = image.shape[:2]
    sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
    x0, y0 = int(rng.integers(0, w - sw + 1)), int(rng.integers(0, h - sh + 1))
    small = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA)
    lw, lh = 48, max(8, round(48 * h / w))
    canvas = np.zeros_like(image)
    canvas[y0 : y0 + sh, x0 : x0 + sw] = small
    hole = np.full((h, w), 255, np.uint8)
    hole[y0 : y0 + sh, x0 : x0 + sw] = 0
    low = cv2.inpaint(
        cv2.resize(canvas, (lw, lh), interpolation=cv2.INTER_AREA),
        (cv2.resize(hole, (lw, lh), interpolation=cv2.INTER_AREA) > 0).astype(np.uint8),
        6,
        cv2.INPAINT_NS,
    )
    skin = cv2.GaussianBlur(cv2.resize(low, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32), (0, 0), 3)
    skin += rng.normal(0.0, rng.uniform(1.0, 5.0), (h, w, 1)).astype(np.float32)
    feather = max(1.0, rng.uniform(0.1, 0.3) * min(sw, sh))
    yy, xx = np.mgrid[:sh, :sw]
    edge = np.minimum.reduce([xx + 0.5, yy + 0.5, sw - xx - 0.5, sh - yy - 0.5])
    alpha = np.clip(edge / feather, 0.0, 1.0)[..., None]
    skin[y0 : y0 + sh, x0 : x0 + sw] = alpha * small + (1 - alpha) * skin[y0 : y0 + sh, x0 : x0 + sw]
    return np.clip(np.round(skin), 0, 255).astype(np.uint8), scale


def _retone(image: np.ndarray, rng: np.random.Generator, *, whole: bool) -> tuple[np.ndarray, float]:
    """Skin (pixels about as light as the photo's typical skin) or the whole photo moved to a drawn L*, a*, b*."""
    family = "darker_whole" if whole else "darker_skin"
    target_l = draw_outside(rng, 25.0, 65.0, held_out_intervals(family))
    lab = cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    lightness = lab[..., 0]
    inside = lightness > 12.0  # not the dermatoscope's black rim
    sparse = (slice(None, None, 3), slice(None, None, 3))  # statistics on every 9th pixel: plenty, and cheap
    seen = lightness[sparse][inside[sparse]]
    skin_l = float(np.percentile(seen if seen.size else lightness[sparse], 75))
    weight = np.clip((lightness - (skin_l - rng.uniform(15.0, 25.0))) / 15.0, 0.0, 1.0) * inside
    weight = cv2.GaussianBlur(weight.astype(np.float32), (0, 0), 2.0)
    skin = lab[sparse][weight[sparse] > 0.9]
    reference = np.median(skin if len(skin) else lab[sparse].reshape(-1, 3), axis=0)
    target_a, target_b = rng.uniform(7.0, 17.0), rng.uniform(10.0, 26.0)
    out = lab.copy()
    out[..., 0] = lab[..., 0] * (target_l / max(float(reference[0]), 1.0))
    out[..., 1] = lab[..., 1] + (target_a - reference[1])
    out[..., 2] = lab[..., 2] + (target_b - reference[2])
    if not whole:
        out = weight[..., None] * out + (1 - weight[..., None]) * lab
    rgb = cv2.cvtColor(out.astype(np.float32), cv2.COLOR_LAB2RGB)
    return np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8), target_l


def darker_skin(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """The skin around the lesion re-toned darker (the lesion's darker pixels kept)."""
    return _retone(image, rng, whole=False)


def darker_whole(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """The whole photo re-toned by the move that takes its skin to a darker drawn colour."""
    return _retone(image, rng, whole=True)


def rotate(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Turned by any angle but a quarter turn (+-4 degrees), the corners filled by reflection."""
    angle = draw_outside(rng, 0.0, 360.0, held_out_intervals("rotate"))
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, 1.0)
    return cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101), angle


Family = Callable[[np.ndarray, np.random.Generator], tuple[np.ndarray, float]]

#: In the order a photo is made: framing, optics, light, then the sensor and the encoder.
FAMILIES: dict[str, Family] = {
    "rotate": rotate,
    "smaller": smaller,
    "darker_skin": darker_skin,
    "darker_whole": darker_whole,
    "lens_circle": lens_circle,
    "defocus": defocus,
    "motion": motion,
    "white_balance": white_balance,
    "exposure": exposure,
    "vignette": vignette,
    "downsample": downsample,
    "noise": noise,
    "jpeg": jpeg,
}

#: The blur families that ``CameraAugment.benign_blur`` draws from.
BLURS = ("defocus", "motion")

#: The skin re-toning families that ``CameraAugment.retone`` draws from.
RETONES = ("darker_skin", "darker_whole")

#: Which family trains for each of the benchmark's conditions ("clip_on_lens" is a chain of them,
#: which :class:`CameraAugment` draws too: up to ``max_families`` in photo order).
COVERS: dict[str, tuple[str, ...]] = {
    "defocus": ("defocus",),
    "motion": ("motion",),
    "noise": ("noise",),
    "jpeg": ("jpeg",),
    "downsample": ("downsample",),
    "wb_warm": ("white_balance",),
    "wb_cool": ("white_balance",),
    "exposure_under": ("exposure",),
    "exposure_over": ("exposure",),
    "vignette": ("vignette",),
    "lens_circle": ("lens_circle",),
    "smaller": ("smaller",),
    "darker_skin": ("darker_skin",),
    "darker_whole": ("darker_whole",),
    "turned": ("rotate",),
    "clip_on_lens": ("defocus", "motion", "white_balance", "exposure", "vignette", "noise", "jpeg"),
}


@dataclass(frozen=True, kw_only=True)
class CameraAugment:
    """Draws, for one photo, 1 to ``max_families`` families and applies them in :data:`FAMILIES` order.

    ``probability``: the share of training photos that get a camera-domain change at all (the rest
    stay clean dermoscopy, so the clean-image operating point is still learned).

    >>> aug = CameraAugment(seed=1, probability=1.0)
    >>> aug.families_for(np.random.default_rng(0))[0] in FAMILIES
    True
    """

    seed: int = 0
    probability: float = 0.6
    max_families: int = 3
    families: tuple[str, ...] = tuple(FAMILIES)
    #: Share of *benign* photos that also get a blur (one of :data:`BLURS`) when their draw has none. In the
    #: training photos blur goes with melanoma (``training.shortcuts``: the blur effect alone has AUC 0.725),
    #: so the model reads a blurred photo as suspicious; blurred benign photos take that cue away.
    benign_blur: float = 0.0
    #: Share of photos of *either* label that also get a skin re-tone (one of :data:`RETONES`) when their draw
    #: has none: about 9% of photos draw one at ``probability`` 0.3, too few to stop a darker surround
    #: reading as suspicious (the field bench's darker-skin rows).
    retone: float = 0.0

    def rng(self, *, epoch: int, index: int) -> np.random.Generator:
        """The generator for one image of one epoch: the same (seed, epoch, index) gives the same photo."""
        return np.random.default_rng([self.seed, epoch, index])

    def partner_rng(self, *, epoch: int, index: int) -> np.random.Generator:
        """The generator for the second, paired copy of one image of one epoch (``--consistency``)."""
        return np.random.default_rng([self.seed, epoch, index, 1])

    def partner_families(self, rng: np.random.Generator, *, label: int | None = None) -> list[str]:
        """The families of a paired copy: as :meth:`families_for`, but never none (the copy is there to differ).

        >>> CameraAugment(seed=1, probability=0.0).partner_families(np.random.default_rng(0)) != []
        True
        """
        return replace(self, probability=1.0).families_for(rng, label=label)

    def families_for(self, rng: np.random.Generator, *, label: int | None = None) -> list[str]:
        """Which families (in photo order) this photo gets; empty for a clean one.

        ``label`` 0 (benign) may add a blur (:attr:`benign_blur`), any photo a re-tone (:attr:`retone`); with
        both 0 the draws are as before.
        """
        names = self._drawn(rng)
        if label == 0 and self.benign_blur > 0 and rng.random() < self.benign_blur and not set(BLURS) & set(names):
            names = _with(names, BLURS[int(rng.integers(len(BLURS)))])
        if self.retone > 0 and rng.random() < self.retone and not set(RETONES) & set(names):
            names = _with(names, RETONES[int(rng.integers(len(RETONES)))])
        return names

    def _drawn(self, rng: np.random.Generator) -> list[str]:
        if rng.random() >= self.probability:
            return []
        count = int(rng.integers(1, self.max_families + 1))
        picked = set(rng.choice(len(self.families), size=min(count, len(self.families)), replace=False).tolist())
        return [name for i, name in enumerate(self.families) if i in picked]

    def photo(self, image: np.ndarray, *, rng: np.random.Generator) -> np.ndarray:
        """The photo with this draw's families applied (RGB uint8 in, same shape RGB uint8 out)."""
        return self.apply(image, self.families_for(rng), rng=rng)

    @staticmethod
    def apply(image: np.ndarray, families: list[str], *, rng: np.random.Generator) -> np.ndarray:
        """``families`` (names in :data:`FAMILIES`) applied to the photo in the order given."""
        out = image
        for name in families:
            out, _parameter = FAMILIES[name](out, rng)
        return out


def _with(names: list[str], extra: str) -> list[str]:
    """``names`` with ``extra`` added, still in :data:`FAMILIES` (photo) order."""
    return [name for name in FAMILIES if name in names or name == extra]


def augmented_input(
    image: np.ndarray,
    augment: CameraAugment,
    *,
    epoch: int,
    index: int,
    size: int,
    recipe: str = DEFAULT_RECIPE,
) -> np.ndarray:
    """One training input: the photo camera-augmented, then the kiosk's own ``preprocess`` (crop, colour constancy)."""
    return preprocess(augment.photo(image, rng=augment.rng(epoch=epoch, index=index)), size=size, recipe=recipe)
