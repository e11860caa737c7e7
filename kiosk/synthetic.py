"""Synthetic dermoscopy-like photos: the demo camera and ground truth for tests.

Everything is drawn with numpy + OpenCV and is deterministic from ``seed``.
Each property (lesion geometry, skin, colour zones, hairs, pixel noise) has
its own random stream, so changing one parameter never moves another: adding
hairs keeps the lesion where it was, and ``lesion_mask`` with the same
parameters is the exact ground truth of ``draw_lesion``. Geometry is given in
fractions of the frame, so one seed draws the same scene at any resolution.

Images are HxWx3 uint8 in RGB order, like the rest of the pipeline.

>>> img = draw_lesion(seed=7, width=64, height=48)
>>> img.shape, img.dtype.name
((48, 64, 3), 'uint8')
>>> mask = lesion_mask(seed=7, width=64, height=48)
>>> bool(img[mask].mean() < img[~mask].mean())  # pigmented: darker than skin
True
"""

from __future__ import annotations

import functools
import math
from typing import Any

import cv2
import numpy as np

RGB = tuple[int, int, int]

#: Skin tones under a dermatoscope's white LEDs, Fitzpatrick I to V (RGB).
SKIN_TONES: tuple[RGB, ...] = (
    (240, 210, 194),  # I
    (228, 186, 160),  # II
    (206, 156, 122),  # III
    (172, 120, 88),  # IV
    (130, 86, 62),  # V
)

# Zone colours as multipliers of the skin tone, so every zone stays clearly
# darker than the skin it sits on, from Fitzpatrick I to V.
_BROWN = (0.52, 0.42, 0.36)
_DARK = (0.20, 0.15, 0.14)  # dark brown / black
_RED = (0.66, 0.34, 0.32)
_BLUE_GREY = (0.40, 0.43, 0.48)  # times skin luminance, not per channel
_HAIR = (38.0, 28.0, 22.0)

# One random stream per property (see the module docstring).
_GEOMETRY, _SKIN, _ZONES, _HAIRS, _NOISE, _PARAMS = range(6)

_VERTICES = 360  # outline samples; enough for the highest harmonic below
_HARMONICS = np.arange(2, 33)  # no k=1: it would only shift the lesion
_VIGNETTE_RADIUS = 0.575  # times min(width, height): corners and sides go black


def _rng(seed: int, stream: int) -> np.random.Generator:
    # SeedSequence wants non-negative entries; the mask keeps negative seeds distinct.
    return np.random.default_rng([seed & 0xFFFF_FFFF_FFFF_FFFF, stream])


def _check(
    width: int,
    height: int,
    radius: float,
    irregularity: float,
    colours: int,
    hairs: int,
    blur_sigma: float,
    brightness: float,
    noise: float,
) -> None:
    if width < 8 or height < 8:
        raise ValueError(f"image must be at least 8x8 pixels, got {width}x{height}")
    if radius <= 0:
        raise ValueError(f"radius must be > 0, got {radius}")
    if not 0.0 <= irregularity <= 1.0:
        raise ValueError(f"irregularity must be in [0, 1], got {irregularity}")
    if not 1 <= colours <= 4:
        raise ValueError(f"colours must be 1..4, got {colours}")
    if hairs < 0 or blur_sigma < 0 or brightness < 0 or noise < 0:
        raise ValueError("hairs, blur_sigma, brightness and noise must be >= 0")


def _outline(
    rng: np.random.Generator, cx: float, cy: float, r_px: float, irregularity: float, min_aspect: float = 0.75
) -> np.ndarray:
    """A closed outline (N x 2 pixel coordinates) of area pi*r_px**2 and centroid (cx, cy).

    An ellipse (random aspect and tilt) times a radial Fourier series whose
    amplitudes scale with ``irregularity``: low harmonics give lobes, a flat
    floor on the high ones a ragged edge. Random numbers are drawn the same
    way for every ``irregularity``, so the seed picks the same shape family.
    """
    theta = np.linspace(0.0, 2.0 * math.pi, _VERTICES, endpoint=False)
    aspect = rng.uniform(min_aspect, 0.97)
    tilt = rng.uniform(0.0, math.pi)
    lobes = 0.5 * rng.uniform(0.3, 1.0, _HARMONICS.size) / _HARMONICS**1.2
    ragged = 0.012 * rng.uniform(0.3, 1.0, _HARMONICS.size) * (_HARMONICS >= 8)
    amp = irregularity * (lobes + ragged)
    phase = rng.uniform(0.0, 2.0 * math.pi, _HARMONICS.size)

    # Polar radius of an ellipse with semi-axes 1 and aspect.
    t = theta - tilt
    r = aspect / np.sqrt((aspect * np.cos(t)) ** 2 + np.sin(t) ** 2)
    wobble = 1.0 + (amp[:, None] * np.cos(_HARMONICS[:, None] * theta + phase[:, None])).sum(axis=0)
    r = r * np.maximum(wobble, 0.35)  # clip so deep notches never cross the centre

    # Scale to the requested area, then move the centroid onto the centre:
    # "radius" means the equivalent-area radius and "centre" the centroid,
    # which is what a segmentation test can measure.
    area = 0.5 * float(np.sum(r**2)) * (2.0 * math.pi / _VERTICES)
    r *= r_px / math.sqrt(area / math.pi)
    x, y = r * np.cos(theta), r * np.sin(theta)
    x1, y1 = np.roll(x, -1), np.roll(y, -1)
    cross = x * y1 - x1 * y
    a6 = 3.0 * float(cross.sum())
    gx, gy = float(((x + x1) * cross).sum()) / a6, float(((y + y1) * cross).sum()) / a6
    return np.stack([x - gx + cx, y - gy + cy], axis=1)


def _fill(points: np.ndarray, shape: tuple[int, int], offset: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Rasterise an outline to a uint8 0/255 mask: a pixel is in when its centre is.

    Exact even-odd scanline fill, because cv2.fillPoly also takes every pixel
    the edge touches, inflating small lesions by about half a pixel all round,
    and the mask must be ground truth.
    """
    height, width = shape
    x = points[:, 0] - offset[0]
    y = points[:, 1] - offset[1]
    x1, y1 = np.roll(x, -1), np.roll(y, -1)
    # Edge i crosses pixel row r when min(y) <= r < max(y) (half-open: a vertex counts once).
    first = np.maximum(np.ceil(np.minimum(y, y1)), 0).astype(np.int64)
    last = np.minimum(np.ceil(np.maximum(y, y1)) - 1, height - 1).astype(np.int64)
    count = np.maximum(last - first + 1, 0)
    mask = np.zeros(shape, np.uint8)
    total = int(count.sum())
    if total == 0:
        return mask
    edge = np.repeat(np.arange(x.size), count)
    row = first[edge] + np.arange(total) - np.repeat(np.cumsum(count) - count, count)
    xc = x[edge] + (row - y[edge]) * (x1[edge] - x[edge]) / (y1[edge] - y[edge])
    # Toggle inside/outside at the first pixel centre right of each crossing.
    col = np.clip(np.floor(xc).astype(np.int64) + 1, 0, width)
    # Only the bounding box needs the running parity.
    r0, c0 = int(row.min()), int(col.min())
    rows, cols = int(row.max()) - r0 + 1, int(col.max()) - c0 + 1
    toggles = np.bincount((row - r0) * cols + (col - c0), minlength=rows * cols).reshape(rows, cols)
    inside = (np.cumsum(toggles, axis=1) & 1).astype(bool)
    right = min(c0 + cols, width)
    mask[r0 : r0 + rows, c0:right][inside[:, : right - c0]] = 255
    return mask


def _lesion_outline(
    seed: int, width: int, height: int, centre: tuple[float, float], radius: float, irregularity: float
) -> np.ndarray:
    # Pixel centres sit at integer coordinates, so fraction 0.5 of 640 is x=319.5.
    cx, cy = centre[0] * width - 0.5, centre[1] * height - 0.5
    return _outline(_rng(seed, _GEOMETRY), cx, cy, radius * min(width, height), irregularity)


@functools.lru_cache(maxsize=4)
def _vignette(width: int, height: int) -> np.ndarray:
    """Transmission (read-only float32 HxWx3, 0..1) of a contact dermatoscope's round window."""
    radius = _VIGNETTE_RADIUS * min(width, height)
    edge = max(1.0, 0.015 * min(width, height))  # soft rim, a few pixels wide
    yy, xx = np.ogrid[:height, :width]
    d = np.sqrt((xx - (width - 1) / 2.0) ** 2 + (yy - (height - 1) / 2.0) ** 2, dtype=np.float32)
    plane = np.clip((radius - d) / edge + 0.5, 0.0, 1.0).astype(np.float32)
    out = cv2.merge([plane, plane, plane])
    out.setflags(write=False)  # cached and shared between calls
    return out


def _smooth_noise(
    rng: np.random.Generator, grid: tuple[int, int], size: tuple[int, int], channels: int = 1
) -> np.ndarray:
    """Low-frequency noise: a small random grid upsampled smoothly (float32, ~unit std)."""
    rows, cols = grid
    shape = (rows, cols) if channels == 1 else (rows, cols, channels)
    small = rng.standard_normal(shape, dtype=np.float32)
    return cv2.resize(small, size, interpolation=cv2.INTER_CUBIC)


def _skin(seed: int, width: int, height: int, skin: RGB | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (skin image float32 HxWx3, luminance texture HxW, tone as float array)."""
    rng = _rng(seed, _SKIN)
    pick = SKIN_TONES[int(rng.integers(len(SKIN_TONES)))]
    tone = np.asarray(pick, np.float32) * rng.uniform(0.95, 1.05, 3).astype(np.float32)
    if skin is not None:
        tone = np.asarray(skin, np.float32)
    # Skin is smooth, so draw it at quarter resolution and upsample once (fast).
    # Grids are fixed in cells, not pixels: the texture looks the same at any resolution.
    small = (max(width // 4, 8), max(height // 4, 8))
    fine = _smooth_noise(rng, (30, 40), small)
    fine = cv2.GaussianBlur(fine, (0, 0), small[0] / 200.0 + 0.3)  # hide the grid's cubic seams
    texture = 1.0 + 0.05 * _smooth_noise(rng, (3, 4), small) + 0.025 * fine
    blotches = 1.0 + 0.025 * _smooth_noise(rng, (4, 5), small, channels=3)  # faint redness / tan
    image = cv2.resize(texture[..., None] * blotches * tone, (width, height), interpolation=cv2.INTER_LINEAR)
    texture = cv2.resize(texture, (width, height), interpolation=cv2.INTER_LINEAR)
    return image, texture, tone


def _lesion_palette(rng: np.random.Generator, tone: np.ndarray, lesion_colour: RGB | None) -> list[np.ndarray]:
    lum = float(tone @ np.array([0.299, 0.587, 0.114], np.float32))
    palette = [
        tone * np.asarray(_BROWN, np.float32),
        tone * np.asarray(_DARK, np.float32),
        lum * np.asarray(_BLUE_GREY, np.float32),
        tone * np.asarray(_RED, np.float32),
    ]
    jitter = rng.uniform(0.9, 1.1, (4, 1)).astype(np.float32)
    palette = [c * j for c, j in zip(palette, jitter, strict=True)]
    if lesion_colour is not None:
        palette[0] = np.asarray(lesion_colour, np.float32)
    return palette


def _paint_lesion(
    image: np.ndarray,
    texture: np.ndarray,
    tone: np.ndarray,
    outline: np.ndarray,
    r_px: float,
    *,
    seed: int,
    colours: int,
    lesion_colour: RGB | None,
) -> None:
    """Blend the lesion into ``image`` in place, working only on its bounding box."""
    height, width = image.shape[:2]
    rng = _rng(seed, _ZONES)
    feather = max(0.7, 0.015 * r_px)  # lesion borders are soft, not cut out
    margin = int(math.ceil(3 * feather)) + 2
    x0 = max(int(math.floor(outline[:, 0].min())) - margin, 0)
    y0 = max(int(math.floor(outline[:, 1].min())) - margin, 0)
    x1 = min(int(math.ceil(outline[:, 0].max())) + margin + 1, width)
    y1 = min(int(math.ceil(outline[:, 1].max())) + margin + 1, height)
    if x1 <= x0 or y1 <= y0:
        return  # entirely outside the frame
    box = (y1 - y0, x1 - x0)

    palette = _lesion_palette(rng, tone, lesion_colour)
    colour: np.ndarray = np.empty((*box, 3), np.float32)
    colour[:] = palette[0]
    # Zones 1..3 are always drawn from the stream, painted only if asked for,
    # so "colours" adds zones without moving the others.
    cx, cy = outline.mean(axis=0)
    start = rng.uniform(0.0, 2.0 * math.pi)
    for k in range(1, 4):
        angle = start + 2.0 * math.pi * k / 3.0 + rng.uniform(-0.4, 0.4)
        dist = rng.uniform(0.25, 0.45) * r_px
        zone_r = rng.uniform(0.25, 0.38) * r_px
        zone = _outline(rng, cx + dist * math.cos(angle), cy + dist * math.sin(angle), zone_r, 0.6, 0.6)
        if k < colours:
            pts = np.round((zone - (x0, y0)) * 16.0).astype(np.int32)
            cv2.fillPoly(colour, [pts], palette[k].tolist(), lineType=cv2.LINE_8, shift=4)
    if colours > 1:  # soft transitions between zones, as pigment diffuses
        colour = cv2.GaussianBlur(colour, (0, 0), 0.04 * r_px + 0.5)
    # Mottled pigment plus the skin's own texture showing through.
    mottle = 1.0 + 0.08 * _smooth_noise(rng, (10, 10), (box[1], box[0]))
    colour *= (mottle * texture[y0:y1, x0:x1])[..., None]

    alpha: np.ndarray = _fill(outline, box, (x0, y0)).astype(np.float32) * (1.0 / 255.0)
    alpha = cv2.GaussianBlur(alpha, (0, 0), feather)[..., None]
    region = image[y0:y1, x0:x1]
    region += alpha * (colour - region)


def _hair_alpha(seed: int, width: int, height: int, hairs: int) -> np.ndarray:
    """Coverage (float32 HxW, 0..1) of ``hairs`` thin curved hairs crossing the frame."""
    rng = _rng(seed, _HAIRS)
    side = min(width, height)
    canvas = np.zeros((height, width), np.uint8)
    t = np.linspace(0.0, 1.0, 32)[:, None]
    for _ in range(hairs):
        start = rng.uniform((-0.1 * width, -0.1 * height), (1.1 * width, 1.1 * height))
        angle = rng.uniform(0.0, 2.0 * math.pi)
        length = rng.uniform(0.4, 1.0) * side
        end = start + length * np.array([math.cos(angle), math.sin(angle)])
        bend = rng.uniform(-0.25, 0.25) * length
        normal = np.array([-math.sin(angle), math.cos(angle)])
        control = (start + end) / 2.0 + bend * normal
        curve = (1 - t) ** 2 * start + 2 * (1 - t) * t * control + t**2 * end  # quadratic Bezier
        thickness = max(1, round(side / 300 * rng.uniform(0.7, 1.3)))
        pts = np.round(curve * 16.0).astype(np.int32)
        cv2.polylines(canvas, [pts], False, 255, thickness=thickness, lineType=cv2.LINE_AA, shift=4)
    return canvas.astype(np.float32) * (1.0 / 255.0)


def _finish(
    image: np.ndarray, *, seed: int, hairs: int, vignette: bool, blur_sigma: float, brightness: float, noise: float
) -> np.ndarray:
    # Full-frame steps use OpenCV calls: several times faster than numpy broadcasting here.
    height, width = image.shape[:2]
    if hairs:
        alpha = _hair_alpha(seed, width, height, hairs)
        hair = np.empty_like(image)
        hair[:] = _HAIR
        image = cv2.blendLinear(hair, image, alpha, 1.0 - alpha)
    if vignette:
        image = cv2.multiply(image, _vignette(width, height))
    if noise:
        # Sensor noise: the sum of two uniform bytes is a near-Gaussian (triangular)
        # variate, ~10x cheaper than standard_normal at this size. Std of u1+u2 is ~104.5.
        raw = np.frombuffer(_rng(seed, _NOISE).bytes(2 * image.size), np.uint8).reshape(2, *image.shape)
        scale = noise / 104.5
        image = cv2.add(image, cv2.addWeighted(raw[0], scale, raw[1], scale, -255.0 * scale, dtype=cv2.CV_32F))
    if blur_sigma > 0:
        image = cv2.GaussianBlur(image, (0, 0), blur_sigma)
    np.maximum(image, 0.0, out=image)  # convertScaleAbs would fold negatives up
    return cv2.convertScaleAbs(image, alpha=brightness)  # scales, rounds and saturates to uint8


def draw_skin(
    *, seed: int, width: int = 640, height: int = 480, skin: RGB | None = None, noise: float = 3.0
) -> np.ndarray:
    """Blank textured skin, no lesion (RGB uint8); the same background ``draw_lesion`` uses."""
    _check(width, height, 0.1, 0.0, 1, 0, 0.0, 1.0, noise)
    image, _, _ = _skin(seed, width, height, skin)
    return _finish(image, seed=seed, hairs=0, vignette=False, blur_sigma=0.0, brightness=1.0, noise=noise)


def draw_lesion(
    *,
    seed: int,
    width: int = 640,
    height: int = 480,
    centre: tuple[float, float] = (0.5, 0.5),
    radius: float = 0.2,
    irregularity: float = 0.3,
    colours: int = 2,
    hairs: int = 0,
    skin: RGB | None = None,
    lesion_colour: RGB | None = None,
    vignette: bool = False,
    blur_sigma: float = 0.0,
    brightness: float = 1.0,
    noise: float = 3.0,
) -> np.ndarray:
    """Draw a pigmented lesion on skin (RGB uint8, HxWx3).

    ``centre`` is the lesion centroid as fractions of (width, height);
    ``radius`` its equivalent-area radius as a fraction of min(width, height);
    ``irregularity`` 0 draws an ellipse, 1 a lobed, ragged border; ``colours``
    1..4 paints brown, dark brown/black, blue-grey and red zones; ``skin`` and
    ``lesion_colour`` (RGB) override the seed's choice (``lesion_colour`` is
    the main brown). ``hairs`` thin dark hairs are drawn on top; ``vignette``
    adds a contact dermatoscope's black round border; ``noise`` is the pixel
    noise std in grey levels. ``blur_sigma`` then blurs the whole image and
    ``brightness`` multiplies it (clipped), to fake bad photos.
    """
    _check(width, height, radius, irregularity, colours, hairs, blur_sigma, brightness, noise)
    image, texture, tone = _skin(seed, width, height, skin)
    outline = _lesion_outline(seed, width, height, centre, radius, irregularity)
    _paint_lesion(
        image,
        texture,
        tone,
        outline,
        radius * min(width, height),
        seed=seed,
        colours=colours,
        lesion_colour=lesion_colour,
    )
    return _finish(
        image, seed=seed, hairs=hairs, vignette=vignette, blur_sigma=blur_sigma, brightness=brightness, noise=noise
    )


def lesion_mask(
    *,
    seed: int,
    width: int = 640,
    height: int = 480,
    centre: tuple[float, float] = (0.5, 0.5),
    radius: float = 0.2,
    irregularity: float = 0.3,
    colours: int = 2,
    hairs: int = 0,
    skin: RGB | None = None,
    lesion_colour: RGB | None = None,
    vignette: bool = False,
    blur_sigma: float = 0.0,
    brightness: float = 1.0,
    noise: float = 3.0,
) -> np.ndarray:
    """The ground-truth lesion of ``draw_lesion`` with the same arguments (bool HxW).

    Only geometry matters; colour, hair, blur, brightness and noise arguments
    are accepted so one parameter dict serves both functions. With
    ``vignette`` the part hidden under the black border is excluded.

    >>> m = lesion_mask(seed=1, width=200, height=100, radius=0.3, irregularity=0.0)
    >>> round(float(np.sqrt(m.sum() / np.pi)), 0)  # 0.3 * min(200, 100) pixels
    30.0
    """
    del colours, hairs, skin, lesion_colour, blur_sigma, brightness, noise  # no effect on geometry
    _check(width, height, radius, irregularity, 1, 0, 0.0, 1.0, 0.0)
    outline = _lesion_outline(seed, width, height, centre, radius, irregularity)
    mask = _fill(outline, (height, width)) > 0
    if vignette:
        mask &= _vignette(width, height)[..., 0] >= 0.5
    return mask


def random_lesion_params(seed: int, *, width: int = 640, height: int = 480) -> dict[str, Any]:
    """Varied but always screenable parameters for ``draw_lesion`` / ``lesion_mask``.

    Roughly centred, sharp, well exposed, radius 0.12-0.3, 1-4 colours, 0-6 hairs.

    >>> p = random_lesion_params(3)
    >>> 0.12 <= p["radius"] <= 0.3 and 1 <= p["colours"] <= 4 and 0 <= p["hairs"] <= 6
    True
    """
    rng = _rng(seed, _PARAMS)
    return {
        "seed": seed,
        "width": width,
        "height": height,
        "centre": (0.5 + float(rng.uniform(-0.06, 0.06)), 0.5 + float(rng.uniform(-0.06, 0.06))),
        "radius": float(rng.uniform(0.12, 0.3)),
        "irregularity": float(rng.uniform(0.0, 0.8)),
        "colours": int(rng.integers(1, 5)),
        "hairs": int(rng.integers(0, 7)),
        "vignette": bool(rng.random() < 0.4),
        "brightness": float(rng.uniform(0.92, 1.08)),
        "noise": float(rng.uniform(1.5, 3.5)),
    }


def random_lesion(seed: int, *, width: int = 640, height: int = 480) -> np.ndarray:
    """A varied, always screenable lesion photo for the demo camera (RGB uint8)."""
    return draw_lesion(**random_lesion_params(seed, width=width, height=height))


# --- the demo camera's mix ---------------------------------------------------------------

#: The capture page's framing circle: 70% of the preview's height across (``.guide`` in kiosk.css).
FRAMING_RADIUS = 0.35
#: What each demo photo is drawn to look like, by ``seed % 10``: a trainer sees every screen within ten captures.
DEMO_CYCLE: tuple[str, ...] = (
    "suspicious",
    "plain",
    "suspicious",
    "plain",
    "suspicious",
    "suspicious",
    "plain",
    "suspicious",
    "plain",
    "shaky",
)
#: Light skin and a small, even, light-brown spot: what the model (trained mostly on Fitzpatrick I-III
#: dermoscopy) tends to score below its threshold. The demo shows the "low" screen with these.
_PLAIN_SKINS: tuple[RGB, ...] = ((236, 204, 196), (240, 214, 190), (232, 198, 178))
_PLAIN_SPOTS: tuple[RGB, ...] = ((196, 136, 92), (204, 146, 104))  # orange-brown: darker or pinker ones score higher


def _fit_radius(params: dict[str, Any], *, limit: float = FRAMING_RADIUS - 0.03) -> float:
    """The largest radius, up to the asked one, whose outline stays ``limit`` x min side from the frame centre."""
    width, height = params["width"], params["height"]
    outline = _lesion_outline(params["seed"], width, height, params["centre"], params["radius"], params["irregularity"])
    reach = float(np.hypot(outline[:, 0] - (width - 1) / 2, outline[:, 1] - (height - 1) / 2).max())
    allowed = limit * min(width, height)
    # The outline scales about its centroid, so shrink the radius by the overshoot of the part beyond the centroid.
    offset = math.hypot(params["centre"][0] * width - width / 2, params["centre"][1] * height - height / 2)
    if reach <= allowed:
        return float(params["radius"])
    return float(params["radius"] * max(0.2, (allowed - offset) / max(reach - offset, 1e-6)))


def demo_lesion_params(seed: int, *, width: int = 640, height: int = 480) -> dict[str, Any]:
    """Parameters of the demo camera's ``seed``-th photo: a mix a trainer can rely on.

    ``DEMO_CYCLE[seed % 10]`` picks the kind: ``"suspicious"`` (large, irregular, several dark colours:
    :func:`random_lesion_params`), ``"plain"`` (a small even light-brown spot on light skin) or
    ``"shaky"`` (a photo too blurred to screen: the retake screen). Every spot stays inside the
    capture page's framing circle.

    >>> [demo_lesion_params(s)["kind"] for s in (0, 1, 9)]
    ['suspicious', 'plain', 'shaky']
    """
    kind = DEMO_CYCLE[seed % len(DEMO_CYCLE)]
    params = random_lesion_params(seed, width=width, height=height)
    rng = _rng(seed, _PARAMS + 1)  # its own stream: random_lesion_params' draws stay as they were
    if kind == "plain":
        params.update(
            radius=float(rng.uniform(0.085, 0.11)),
            irregularity=float(rng.uniform(0.0, 0.15)),
            colours=1,
            hairs=int(rng.integers(0, 4)),
            skin=_PLAIN_SKINS[int(rng.integers(len(_PLAIN_SKINS)))],
            lesion_colour=_PLAIN_SPOTS[int(rng.integers(len(_PLAIN_SPOTS)))],
            vignette=False,
            brightness=float(rng.uniform(0.92, 1.0)),  # light skin: brighter would blow out to glare
        )
    elif kind == "shaky":
        params["blur_sigma"] = float(rng.uniform(6.0, 8.0)) * min(width, height) / 480
    params["radius"] = _fit_radius(params)
    return {"kind": kind, **params}


def demo_lesion(seed: int, *, width: int = 640, height: int = 480) -> np.ndarray:
    """The demo camera's ``seed``-th photo (RGB uint8): see :func:`demo_lesion_params`."""
    params = demo_lesion_params(seed, width=width, height=height)
    del params["kind"]
    return draw_lesion(**params)
