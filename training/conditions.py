"""Field conditions: seeded, deterministic corruptions of a photo like a Pi camera in a health centre gives.

Each condition is a function ``(image, severity, rng) -> image`` on RGB uint8 arrays, with three
severities (0 mild, 1 middle, 2 strong); :data:`CONDITIONS` lists them with their parameters.
Light is changed in *linear* light (sRGB decoded first), the way a sensor and an exposure see it.
The benchmark (``training.field_bench``) feeds the results through the kiosk's own Screener.

>>> from kiosk.synthetic import draw_lesion
>>> image = draw_lesion(seed=1, width=200, height=200)
>>> out = apply("exposure_under", image, severity=1, seed=3)
>>> out.shape == image.shape, out.dtype.name
(True, 'uint8')
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from kiosk.vision.srgb import to_linear, to_srgb

#: Read noise of a small phone-class sensor (electrons); relatively larger as the full well shrinks (high gain).
READ_NOISE_ELECTRONS = 3.0
Corruption = Callable[[np.ndarray, float, np.random.Generator], np.ndarray]


# --- linear light ----------------------------------------------------------------


def luminance(linear: np.ndarray) -> np.ndarray:
    """Relative luminance (Rec. 709 weights) of linear RGB."""
    return linear @ np.array([0.2126, 0.7152, 0.0722])


def _short(image: np.ndarray) -> int:
    return min(image.shape[:2])


# --- optics and sensor -------------------------------------------------------------


def defocus(image: np.ndarray, radius_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Out of focus: a disc kernel of ``radius_fraction`` x the short side."""
    r = max(1.0, radius_fraction * _short(image))
    size = int(2 * np.ceil(r) + 1)
    yy, xx = np.mgrid[:size, :size] - size // 2
    kernel = (xx**2 + yy**2 <= r * r).astype(np.float32)
    return cv2.filter2D(image, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT)


def motion(image: np.ndarray, length_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Camera shake: a line kernel ``length_fraction`` x the short side long, at a seeded angle."""
    length = max(3, round(length_fraction * _short(image)) | 1)
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0
    angle = float(rng.uniform(0, 180))
    rot = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), angle, 1.0)
    kernel = cv2.warpAffine(kernel, rot, (length, length))
    return cv2.filter2D(image, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT)


def sensor_noise(image: np.ndarray, full_well: float, rng: np.random.Generator) -> np.ndarray:
    """Poisson (shot) noise for a sensor that collects ``full_well`` electrons at white, plus Gaussian read noise."""
    electrons = to_linear(image) * full_well
    read_sigma = READ_NOISE_ELECTRONS
    noisy = rng.poisson(electrons) + rng.normal(0.0, read_sigma, electrons.shape)
    return to_srgb(noisy / full_well)


def jpeg(image: np.ndarray, quality: float, rng: np.random.Generator) -> np.ndarray:
    """JPEG compression at ``quality`` (OpenCV's encoder, 4:2:0)."""
    _ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def downsample(image: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    """Fewer pixels on the lesion: shrink by ``factor`` (area) and scale back up (bilinear) to the same size."""
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(1, round(w * factor)), max(1, round(h * factor))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


# --- light -------------------------------------------------------------------------


def white_balance(image: np.ndarray, gain: float, rng: np.random.Generator) -> np.ndarray:
    """A colour cast in linear light: red times ``gain``, blue divided by it (gain > 1 warm, < 1 cool)."""
    return to_srgb(to_linear(image) * np.array([gain, 1.0, 1.0 / gain]))


def exposure(image: np.ndarray, stops: float, rng: np.random.Generator) -> np.ndarray:
    """Exposure changed by ``stops`` EV in linear light (x 2**stops; over-exposure clips)."""
    return to_srgb(to_linear(image) * 2.0**stops)


def vignette(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Corners darker: linear light x (1 - strength * r**2), r = 1 at the corners."""
    h, w = image.shape[:2]
    yy, xx = np.mgrid[:h, :w]
    r2 = ((xx - (w - 1) / 2) ** 2 + (yy - (h - 1) / 2) ** 2) / (((w - 1) / 2) ** 2 + ((h - 1) / 2) ** 2)
    return to_srgb(to_linear(image) * (1.0 - strength * r2)[..., None])


def lens_circle(image: np.ndarray, radius_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """A clip-on lens: black outside a centred circle of ``radius_fraction`` x the short side (soft 2 px edge)."""
    h, w = image.shape[:2]
    yy, xx = np.mgrid[:h, :w]
    r = np.hypot(xx - (w - 1) / 2, yy - (h - 1) / 2)
    inside = np.clip((radius_fraction * _short(image) - r) / 2.0 + 0.5, 0.0, 1.0)
    return np.round(image * inside[..., None]).astype(np.uint8)


# --- framing and orientation -----------------------------------------------------------


def smaller_in_frame(image: np.ndarray, scale: float, rng: np.random.Generator) -> np.ndarray:
    """The lesion ``scale`` times as wide in the frame: the photo shrunk and surrounded by more skin.

    The new skin continues the photo's border colours smoothly (OpenCV inpainting on a 64 px
    copy, so shading and colour gradients carry on), with seeded grain of the border's own
    spread, and the shrunk photo is blended in with a wide feathered edge. Crude: the new
    skin has no hair, pores or ruler marks, and real skin farther out would be shaded differently.
    """
    h, w = image.shape[:2]
    sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
    x0, y0 = (w - sw) // 2, (h - sh) // 2
    small = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA)
    canvas = np.zeros_like(image)
    canvas[y0 : y0 + sh, x0 : x0 + sw] = small
    hole = np.full((h, w), 255, np.uint8)
    hole[y0 : y0 + sh, x0 : x0 + sw] = 0
    lw, lh = 64, max(8, round(64 * h / w))
    low = cv2.inpaint(
        cv2.resize(canvas, (lw, lh), interpolation=cv2.INTER_AREA),
        (cv2.resize(hole, (lw, lh), interpolation=cv2.INTER_AREA) > 0).astype(np.uint8),
        8,
        cv2.INPAINT_TELEA,
    )
    skin = cv2.GaussianBlur(cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.float64), (0, 0), 4)
    band = max(1, int(0.06 * min(sw, sh)))
    border = np.concatenate(
        [
            small[:band].reshape(-1, 3),
            small[-band:].reshape(-1, 3),
            small[:, :band].reshape(-1, 3),
            small[:, -band:].reshape(-1, 3),
        ]
    ).astype(np.float64)
    grain = cv2.GaussianBlur(rng.normal(0.0, 1.0, (h, w, 3)), (0, 0), 0.8) * np.clip(border.std(axis=0) * 0.5, 1, 8)
    skin += grain
    feather = max(1.0, 0.2 * min(sw, sh))
    yy, xx = np.mgrid[:sh, :sw]
    edge = np.minimum.reduce([xx + 0.5, yy + 0.5, sw - xx - 0.5, sh - yy - 0.5])
    alpha = np.clip(edge / feather, 0.0, 1.0)[..., None] ** 0.5
    skin[y0 : y0 + sh, x0 : x0 + sw] = alpha * small + (1 - alpha) * skin[y0 : y0 + sh, x0 : x0 + sw]
    return np.clip(np.round(skin), 0, 255).astype(np.uint8)


def turned(image: np.ndarray, variant: float, rng: np.random.Generator) -> np.ndarray:
    """0: mirrored left-right, 1: turned 90 degrees, 2: turned 180 degrees."""
    if variant == 0:
        return np.ascontiguousarray(image[:, ::-1])
    return np.ascontiguousarray(np.rot90(image, 1 if variant == 1 else 2))


# --- skin tone -------------------------------------------------------------------------

#: CIELAB (L*, a*, b*) targets, roughly the middle of the ITA bands of Fitzpatrick IV, V and VI
#: (ITA 10-28, -30-10, < -30 degrees). A proxy: real skin of those types also differs in
#: texture, erythema and in how its lesions look, which a re-toning cannot give.
FITZPATRICK_LAB = {4: (55.0, 12.0, 22.0), 5: (42.0, 12.0, 20.0), 6: (30.0, 9.0, 12.0)}


def _to_lab(image: np.ndarray) -> np.ndarray:
    lab = cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)  # L 0..100, a/b signed
    return lab.astype(np.float64)


def _from_lab(lab: np.ndarray) -> np.ndarray:
    rgb = cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_LAB2RGB)
    return np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)


def skin_mask(image: np.ndarray) -> np.ndarray:
    """Soft 0..1 weight of "skin" per pixel: 1 where a pixel is about as light as the photo's typical
    skin (the 75th percentile of L* inside the dermatoscope's view), falling to 0 at 20 L* darker, so
    pigment is left alone without a hard outline; 0 on the dermatoscope's black border.
    Crude: a pink (amelanotic) lesion as light as the skin is re-toned with it."""
    from kiosk.vision.lesion import find_lesion

    h, w = image.shape[:2]
    lesion = find_lesion(image)
    fov = cv2.resize(lesion.fov.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    lightness = _to_lab(image)[..., 0]
    skin_l = np.percentile(lightness[fov], 75) if fov.any() else np.percentile(lightness, 75)
    weight = np.clip((lightness - (skin_l - 20.0)) / 15.0, 0.0, 1.0) * fov
    return cv2.GaussianBlur(weight, (0, 0), 1.5)


def _retone(lab: np.ndarray, reference: np.ndarray, target: tuple[float, float, float]) -> np.ndarray:
    """Move the reference colour to target: L* scaled (keeps relative texture), a*/b* shifted."""
    out = lab.copy()
    out[..., 0] = lab[..., 0] * (target[0] / max(reference[0], 1.0))
    out[..., 1] = lab[..., 1] + (target[1] - reference[1])
    out[..., 2] = lab[..., 2] + (target[2] - reference[2])
    return out


def darker_skin(image: np.ndarray, fitzpatrick: float, rng: np.random.Generator) -> np.ndarray:
    """The skin around the lesion re-toned toward Fitzpatrick IV / V / VI; the lesion is left as it was."""
    lab = _to_lab(image)
    mask = skin_mask(image)
    reference = np.median(lab[mask > 0.9], axis=0) if (mask > 0.9).any() else np.median(lab.reshape(-1, 3), axis=0)
    retoned = _retone(lab, reference, FITZPATRICK_LAB[int(fitzpatrick)])
    blended = mask[..., None] * retoned + (1 - mask[..., None]) * lab
    return _from_lab(blended)


def darker_whole(image: np.ndarray, fitzpatrick: float, rng: np.random.Generator) -> np.ndarray:
    """The whole photo, lesion included, re-toned by the same move that takes its skin toward Fitzpatrick IV-VI."""
    lab = _to_lab(image)
    mask = skin_mask(image)
    reference = np.median(lab[mask > 0.9], axis=0) if (mask > 0.9).any() else np.median(lab.reshape(-1, 3), axis=0)
    return _from_lab(_retone(lab, reference, FITZPATRICK_LAB[int(fitzpatrick)]))


# --- a realistic combination --------------------------------------------------------------


def clip_on_lens(image: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    """A cheap clip-on lens on a Pi camera: defocus, motion, noise, warm light, under-exposure, vignette, JPEG.

    Middle severity (level 1): defocus 1% of the short side, motion 2%, 300 e- full well,
    warm cast 1.2, -0.7 EV, vignette 0.4, JPEG 40.
    """
    k = (0.6, 1.0, 1.4)[int(level)]
    out = defocus(image, 0.01 * k, rng)
    out = motion(out, 0.02 * k, rng)
    linear = to_linear(out) * np.array([1 + 0.2 * k, 1.0, 1 / (1 + 0.2 * k)]) * 2.0 ** (-0.7 * k)
    out = vignette(to_srgb(linear), 0.4 * k, rng)
    out = sensor_noise(out, 300 / k, rng)
    return jpeg(out, (50, 40, 30)[int(level)], rng)


@dataclass(frozen=True)
class Condition:
    name: str
    function: Corruption
    severities: tuple[float, float, float]
    unit: str


CONDITIONS: dict[str, Condition] = {
    c.name: c
    for c in (
        Condition("defocus", defocus, (0.005, 0.01, 0.02), "disc radius / short side"),
        Condition("motion", motion, (0.015, 0.03, 0.06), "blur length / short side"),
        Condition("noise", sensor_noise, (1000.0, 300.0, 100.0), "full-well electrons"),
        Condition("jpeg", jpeg, (50.0, 40.0, 30.0), "JPEG quality"),
        Condition("downsample", downsample, (0.5, 0.33, 0.25), "scale"),
        Condition("wb_warm", white_balance, (1.15, 1.3, 1.5), "red gain (blue / gain)"),
        Condition("wb_cool", white_balance, (1 / 1.15, 1 / 1.3, 1 / 1.5), "red gain (blue / gain)"),
        Condition("exposure_under", exposure, (-0.5, -1.0, -1.5), "EV"),
        Condition("exposure_over", exposure, (0.5, 1.0, 1.5), "EV"),
        Condition("vignette", vignette, (0.3, 0.5, 0.7), "corner darkening"),
        Condition("lens_circle", lens_circle, (0.6, 0.5, 0.42), "circle radius / short side"),
        Condition("smaller", smaller_in_frame, (0.75, 0.5, 0.35), "lesion width scale"),
        Condition("darker_skin", darker_skin, (4, 5, 6), "Fitzpatrick type (skin only)"),
        Condition("darker_whole", darker_whole, (4, 5, 6), "Fitzpatrick type (whole photo)"),
        Condition("turned", turned, (0, 1, 2), "mirror / 90 / 180 degrees"),
        Condition("clip_on_lens", clip_on_lens, (0, 1, 2), "combination level"),
    )
}


def apply(name: str, image: np.ndarray, *, severity: int, seed: int) -> np.ndarray:
    """One condition at one severity (0, 1, 2), seeded: the same inputs always give the same photo."""
    condition = CONDITIONS[name]
    rng = np.random.default_rng([seed, list(CONDITIONS).index(name), severity])
    return condition.function(image, condition.severities[severity], rng)
