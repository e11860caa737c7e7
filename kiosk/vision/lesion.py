"""Find the skin lesion in a photo: a mask, its box, and how clearly it stands out.

Works on a small *working copy* (longest side ``WORK_SIDE`` px) so the cost is
the same for a 300x300 dataset image and a 12 MP camera frame; the box is
reported in the coordinates of the full image.

Method: mask out the black circular border of a contact dermatoscope, then
Otsu-threshold a "pigment" channel (pigmented lesions absorb blue light most)
inside the field of view, clean up with morphology, and keep the connected
component that is large and close to the centre.

>>> from kiosk.synthetic import draw_lesion
>>> lesion = find_lesion(draw_lesion(seed=1, radius=0.2))
>>> lesion.found, round(lesion.centre[0], 1), round(lesion.centre[1], 1)
(True, 0.5, 0.5)
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

#: Longest side of the working copy used for segmentation and quality measures.
WORK_SIDE = 256


@dataclass(frozen=True, kw_only=True)
class Lesion:
    """Where the lesion is. ``mask`` is at working resolution; ``box`` in full-image pixels."""

    found: bool
    mask: np.ndarray  # bool, working resolution (all False when not found)
    fov: np.ndarray  # bool, the dermatoscope's field of view at working resolution
    box: tuple[int, int, int, int]  # x, y, w, h in full-image pixels
    centre: tuple[float, float]  # centroid as a fraction of width, height
    area_fraction: float  # lesion area / field-of-view area
    contrast: float  # skin minus lesion level in the pigment channel (0-255)
    edge_ratio: float  # gradient on the lesion border / gradient of the surrounding skin
    work_scale: float  # full-image pixels per working pixel
    work: np.ndarray  # the RGB working copy itself, so later stages need not shrink the photo again


def working_copy(image: np.ndarray) -> tuple[np.ndarray, float]:
    """Shrink ``image`` so its longest side is at most WORK_SIDE; return it and the scale."""
    h, w = image.shape[:2]
    scale = max(h, w) / WORK_SIDE
    if scale <= 1.0:
        return image, 1.0
    size = (max(1, round(w / scale)), max(1, round(h / scale)))
    if scale > 4:
        # INTER_AREA on a 12 MP frame is slow; a cheap nearest-neighbour pre-shrink
        # to ~2x the target keeps the result smooth enough for segmentation.
        pre = (size[0] * 2, size[1] * 2)
        image = cv2.resize(image, pre, interpolation=cv2.INTER_NEAREST)
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


def pigment_channel(work_rgb: np.ndarray) -> np.ndarray:
    """A channel where pigment is dark: mostly blue, a little green (uint8)."""
    rgb = work_rgb.astype(np.float32)
    channel = 0.7 * rgb[..., 2] + 0.3 * rgb[..., 1]
    return np.clip(channel, 0, 255).astype(np.uint8)


def field_of_view(work_rgb: np.ndarray) -> np.ndarray:
    """True inside the dermatoscope's circle: drops near-black regions touching the border."""
    grey = cv2.cvtColor(work_rgb, cv2.COLOR_RGB2GRAY)
    dark = (grey < 50).astype(np.uint8)
    count, labels = cv2.connectedComponents(dark, connectivity=4)
    if count <= 1:
        return np.ones(grey.shape, bool)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    outside = np.isin(labels, border[border != 0])
    if not outside.any():
        return np.ones(grey.shape, bool)
    # A dark field that is nearly everything is a dark photo, not a vignette.
    if outside.mean() > 0.8:
        return np.ones(grey.shape, bool)
    # Drop the soft dark rim of the lens circle too, or it reads as a dark "lesion" ring.
    rim = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (11, 11))
    inside: np.ndarray = cv2.dilate(outside.astype(np.uint8), rim) == 0
    return inside


def find_lesion(image: np.ndarray) -> Lesion:
    """Segment the most prominent, central dark lesion in an RGB uint8 image."""
    h, w = image.shape[:2]
    work, scale = working_copy(image)
    wh, ww = work.shape[:2]
    fov = field_of_view(work)
    channel = cv2.GaussianBlur(pigment_channel(work), (5, 5), 0)
    values = channel[fov]
    not_found = Lesion(
        found=False,
        mask=np.zeros((wh, ww), bool),
        fov=fov,
        box=(0, 0, w, h),
        centre=(0.5, 0.5),
        area_fraction=0.0,
        contrast=0.0,
        edge_ratio=0.0,
        work_scale=scale,
        work=work,
    )
    if values.size < 64:
        return not_found
    threshold, _ = cv2.threshold(values.reshape(-1, 1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    dark = ((channel <= threshold) & fov).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    dark = cv2.morphologyEx(dark, cv2.MORPH_OPEN, kernel)
    dark = cv2.morphologyEx(dark, cv2.MORPH_CLOSE, kernel, iterations=2)
    count, labels, stats, centroids = cv2.connectedComponentsWithStats(dark, connectivity=8)
    if count <= 1:
        return not_found
    fov_area = float(fov.sum())
    min_area = max(16.0, 0.002 * fov_area)
    diag = float(np.hypot(ww, wh))
    best, best_score = 0, 0.0
    for label in range(1, count):
        area = float(stats[label, cv2.CC_STAT_AREA])
        if area < min_area:
            continue
        cx, cy = centroids[label]
        distance = np.hypot(cx - ww / 2, cy - wh / 2) / diag
        score = area * (1.0 - distance) ** 4  # favour big and central
        x, y, bw, bh = stats[label, :4]
        touches_frame = x == 0 or y == 0 or x + bw == ww or y + bh == wh
        if touches_frame and distance > 0.12:
            # An off-centre dark region running off the frame is nearly always
            # uneven lighting or a lens edge, not the lesion the worker framed.
            score *= 0.05
        if score > best_score:
            best, best_score = label, score
    if best == 0:
        return not_found
    mask = labels == best
    mask = _fill_holes(mask)
    lesion_level = float(np.median(channel[mask]))
    ring = cv2.dilate(mask.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (15, 15))) > 0
    ring &= ~mask & fov
    skin_values = channel[ring] if ring.sum() >= 16 else channel[fov & ~mask]
    skin_level = float(np.median(skin_values)) if skin_values.size else lesion_level
    x, y, bw, bh = cv2.boundingRect(mask.astype(np.uint8))
    ys, xs = np.nonzero(mask)
    return Lesion(
        found=True,
        mask=mask,
        fov=fov,
        box=(int(x * scale), int(y * scale), max(1, int(round(bw * scale))), max(1, int(round(bh * scale)))),
        centre=(float(xs.mean() + 0.5) / ww, float(ys.mean() + 0.5) / wh),
        area_fraction=float((mask & fov).sum()) / fov_area,
        contrast=skin_level - lesion_level,
        edge_ratio=_edge_ratio(channel, mask, fov),
        work_scale=scale,
        work=work,
    )


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = np.zeros(mask.shape, np.uint8)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    return filled.astype(bool)


def _edge_ratio(channel: np.ndarray, mask: np.ndarray, fov: np.ndarray) -> float:
    """How much sharper the lesion's border is than the skin around it.

    A real lesion has a border; a patch of uneven skin or a lighting gradient
    that Otsu happened to split in two does not (ratio near 1).
    """
    ch = channel.astype(np.float32)
    gradient = np.hypot(cv2.Sobel(ch, cv2.CV_32F, 1, 0), cv2.Sobel(ch, cv2.CV_32F, 0, 1))
    m = mask.astype(np.uint8)
    ring = np.ones((3, 3), np.uint8)
    inner = cv2.erode(fov.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    border = ((cv2.dilate(m, ring) - cv2.erode(m, ring)) > 0) & inner
    skin = inner & (cv2.dilate(m, np.ones((15, 15), np.uint8)) == 0)
    if border.sum() < 10 or skin.sum() < 50:
        return 1.0  # the lesion fills the view: no skin to compare with, so no evidence either way
    return float(np.median(gradient[border]) / (np.median(gradient[skin]) + 1.0))
