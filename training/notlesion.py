"""A deterministic set of photos that are NOT a skin lesion, to prove the gate never scores one "low".

Drawn with OpenCV (pen lines, creases and scars on skin, text, printed forms, walls, blank,
gradient and noise frames, skin with no lesion) plus scikit-image's bundled sample pictures
(faces, animals, scenes, objects, microscopy), with crops and rescales of them. Only pictures
inside the scikit-image wheel are used (``skimage.data``'s files that need no download).
Nothing is written to disk: the set is re-made in memory, identically, from ``seed``.

>>> images = not_a_lesion_set(seed=0)             # doctest: +SKIP
>>> len(images) >= 100, images[0].name              # doctest: +SKIP
(True, 'blank/white')
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from kiosk.synthetic import SKIN_TONES, draw_skin

W, H = 640, 480  # a camera frame; the skimage pictures keep their own sizes

#: The skimage pictures that ship inside the wheel (no pooch download).
SKIMAGE_BUNDLED = (
    "astronaut",
    "brick",
    "camera",
    "cat",
    "cell",
    "checkerboard",
    "clock",
    "coffee",
    "coins",
    "colorwheel",
    "grass",
    "gravel",
    "horse",
    "hubble_deep_field",
    "immunohistochemistry",
    "logo",
    "microaneurysms",
    "moon",
    "page",
    "retina",
    "rocket",
    "text",
)
#: Crops (x0, y0, x1, y1 as fractions) of close-ups that are not a lesion: faces, an eye, a cup, coins.
SKIMAGE_CROPS = (
    ("astronaut", (0.35, 0.05, 0.7, 0.45)),
    ("astronaut", (0.45, 0.15, 0.6, 0.28)),
    ("cat", (0.35, 0.05, 0.75, 0.7)),
    ("cat", (0.45, 0.2, 0.65, 0.45)),
    ("coffee", (0.2, 0.1, 0.8, 0.9)),
    ("coins", (0.0, 0.0, 0.4, 0.5)),
    ("coins", (0.55, 0.45, 0.85, 0.85)),
    ("rocket", (0.3, 0.0, 0.7, 0.6)),
    ("retina", (0.3, 0.3, 0.7, 0.7)),
    ("camera", (0.3, 0.1, 0.6, 0.45)),
    ("horse", (0.2, 0.1, 0.8, 0.9)),
    ("immunohistochemistry", (0.3, 0.3, 0.6, 0.6)),
    ("hubble_deep_field", (0.3, 0.3, 0.55, 0.55)),
    ("moon", (0.2, 0.2, 0.6, 0.6)),
    ("cell", (0.25, 0.25, 0.75, 0.75)),
    ("page", (0.0, 0.0, 0.5, 0.6)),
)
SKIMAGE_SCALES = (0.35, 2.0)  # every bundled picture again, shrunk (still >= 128 px or too_small) and enlarged


@dataclass(frozen=True)
class NotALesion:
    name: str  # "<family>/<detail>"
    image: np.ndarray  # RGB uint8

    @property
    def family(self) -> str:
        return self.name.split("/", 1)[0]


def _rgb(image: np.ndarray) -> np.ndarray:
    """Any skimage picture (grey, RGBA, bool, float) as RGB uint8."""
    a = np.asarray(image)
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    elif a.dtype != np.uint8:
        a = np.clip(a * (255.0 if a.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    if a.ndim == 2:
        a = cv2.cvtColor(a, cv2.COLOR_GRAY2RGB)
    elif a.shape[2] == 4:
        a = a[..., :3]
    return np.ascontiguousarray(a)


def _noise(rng: np.random.Generator, image: np.ndarray, sigma: float) -> np.ndarray:
    return np.clip(image.astype(np.float32) + rng.normal(0, sigma, image.shape), 0, 255).astype(np.uint8)


def _skin(seed: int, tone: int) -> np.ndarray:
    return draw_skin(seed=seed, width=W, height=H, skin=SKIN_TONES[tone % len(SKIN_TONES)])


def _curve(rng: np.random.Generator, *, straight: bool) -> np.ndarray:
    """Points of a line or gentle curve crossing (most of) the frame, through the middle region."""
    t = np.linspace(0, 1, 60)
    angle = rng.uniform(0, np.pi)
    cx, cy = W / 2 + rng.uniform(-60, 60), H / 2 + rng.uniform(-40, 40)
    length = rng.uniform(0.5, 1.1) * W
    dx, dy = np.cos(angle), np.sin(angle)
    bend = 0.0 if straight else rng.uniform(-0.25, 0.25) * length
    s = (t - 0.5) * length
    offset = bend * (4 * t * (1 - t))
    xs, ys = cx + s * dx - offset * dy, cy + s * dy + offset * dx
    return np.stack([xs, ys], axis=1).astype(np.int32)


def _lines_on_skin(seed: int) -> list[NotALesion]:
    rng = np.random.default_rng(seed)
    pens = {"blue": (30, 50, 160), "black": (25, 25, 30), "red": (170, 30, 40), "purple": (90, 40, 120)}
    out = []
    for i in range(12):
        image = _skin(seed + i, i)
        colour = list(pens.values())[i % len(pens)]
        for _ in range(1 + i % 3):
            cv2.polylines(
                image, [_curve(rng, straight=i % 2 == 0)], False, colour, int(rng.integers(2, 7)), cv2.LINE_AA
            )
        out.append(NotALesion(f"pen_line/{list(pens)[i % len(pens)]}-{i}", image))
    return out


def _creases_and_scars(seed: int) -> list[NotALesion]:
    rng = np.random.default_rng(seed + 100)
    out = []
    for i in range(10):  # creases: soft darker folds, a few in parallel (knuckle, palm, neck)
        image = _skin(seed + 200 + i, i).astype(np.float32)
        shade = np.ones((H, W), np.float32)
        base = _curve(rng, straight=False)
        for k in range(1 + i % 4):
            layer = np.zeros((H, W), np.float32)
            cv2.polylines(layer, [base + np.int32([0, 18 * k])], False, 1.0, int(rng.integers(3, 10)), cv2.LINE_AA)
            shade -= rng.uniform(0.2, 0.45) * cv2.GaussianBlur(layer, (0, 0), 2.5)
        out.append(NotALesion(f"crease/{i}", np.clip(image * shade[..., None], 0, 255).astype(np.uint8)))
    for i in range(8):  # scars: a pale or pink band, sometimes with suture dots
        image = _skin(seed + 300 + i, i).astype(np.float32)
        layer = np.zeros((H, W), np.float32)
        pts = _curve(rng, straight=i % 2 == 0)
        cv2.polylines(layer, [pts], False, 1.0, int(rng.integers(8, 22)), cv2.LINE_AA)
        layer = cv2.GaussianBlur(layer, (0, 0), 3)[..., None]
        colour = np.array((235, 170, 170) if i % 2 else (245, 225, 215), np.float32)
        image = image * (1 - 0.6 * layer) + colour * 0.6 * layer
        if i % 3 == 0:
            for p in pts[5:-5:8]:
                cv2.circle(image, tuple(int(v) for v in p), 3, (150, 90, 90), -1, cv2.LINE_AA)
        out.append(NotALesion(f"scar/{i}", np.clip(image, 0, 255).astype(np.uint8)))
    return out


def _text_and_forms(seed: int) -> list[NotALesion]:
    rng = np.random.default_rng(seed + 400)
    words = [
        "PATIENT",
        "Barangay",
        "Date",
        "Name",
        "Age",
        "Sex",
        "REFERRAL",
        "Rural Health Unit",
        "Tacloban",
        "1234",
        "Signature",
        "Remarks",
        "BP 120/80",
        "Paracetamol",
        "Notes",
    ]
    fonts = [
        cv2.FONT_HERSHEY_SIMPLEX,
        cv2.FONT_HERSHEY_DUPLEX,
        cv2.FONT_HERSHEY_COMPLEX,
        cv2.FONT_HERSHEY_SCRIPT_SIMPLEX,
    ]
    out = []
    for i in range(10):  # text on paper, on a whiteboard, on skin (a note written on the hand)
        if i < 6:
            paper = np.full((H, W, 3), (rng.integers(225, 250),) * 3, np.uint8)
            paper[..., 2] = np.clip(paper[..., 2].astype(int) - 10 * (i % 2), 0, 255)
        else:
            paper = _skin(seed + 500 + i, i)
        y = int(rng.integers(60, 120))
        while y < H - 30:
            text = " ".join(rng.choice(words, size=3))
            scale = float(rng.uniform(0.8, 2.0 if i < 6 else 2.6))
            cv2.putText(
                paper,
                text,
                (int(rng.integers(10, 80)), y),
                fonts[i % len(fonts)],
                scale,
                (20, 20, 90) if i % 2 else (20, 20, 20),
                int(rng.integers(1, 4)),
                cv2.LINE_AA,
            )
            y += int(45 * scale)
        out.append(NotALesion(f"text/{i}", _noise(rng, paper, 2.0)))
    for i in range(8):  # printed forms: boxes, rules, a table, a checkbox column, a logo disc
        form = np.full((H, W, 3), 245, np.uint8)
        rows = int(rng.integers(5, 12))
        for r in range(rows):
            y = 40 + r * (H - 80) // rows
            cv2.line(form, (30, y), (W - 30, y), (60, 60, 60), 1 + i % 2)
            cv2.putText(form, str(rng.choice(words)), (40, y - 8), fonts[i % 3], 0.7, (30, 30, 30), 1, cv2.LINE_AA)
            cv2.rectangle(form, (W - 90, y - 25), (W - 65, y - 5), (40, 40, 40), 2)
            if rng.random() < 0.4:
                cv2.line(form, (W - 88, y - 15), (W - 67, y - 7), (20, 20, 120), 3)
        for c in range(int(rng.integers(0, 4))):
            x = 200 + c * 120
            cv2.line(form, (x, 40), (x, H - 40), (80, 80, 80), 1)
        if i % 3 == 0:
            cv2.circle(form, (W // 2, 70), 28, (40, 40, 110), -1, cv2.LINE_AA)  # a seal printed on the form
        angle = float(rng.uniform(-12, 12))  # photographed at a slant, with a shadow
        m = cv2.getRotationMatrix2D((W / 2, H / 2), angle, 1.0)
        form = cv2.warpAffine(form, m, (W, H), borderValue=(170, 160, 150))
        shade = np.linspace(1.0, rng.uniform(0.7, 0.95), W, dtype=np.float32)[None, :, None]
        out.append(NotALesion(f"form/{i}", _noise(rng, form.astype(np.float32) * shade, 2.0)))
    return out


def _walls(seed: int) -> list[NotALesion]:
    rng = np.random.default_rng(seed + 600)
    paints = [(200, 195, 180), (225, 215, 190), (170, 180, 175), (190, 160, 130), (215, 200, 200), (150, 150, 150)]
    out = []
    for i in range(10):
        small = rng.normal(0, 1, (H // 8, W // 8)).astype(np.float32)
        grain = cv2.resize(small, (W, H), interpolation=cv2.INTER_CUBIC) * 6 + rng.normal(0, 4, (H, W))
        wall = np.asarray(paints[i % len(paints)], np.float32)[None, None] + grain[..., None].astype(np.float32)
        if i % 2 == 0:  # a crack: a jagged dark polyline with branches
            pts = np.cumsum(rng.normal(0, 1, (40, 2)) * [12, 12] + [14, 4], axis=0) + [40, rng.integers(100, 380)]
            cv2.polylines(
                wall, [np.ascontiguousarray(pts, np.int32)], False, (60, 55, 50), int(rng.integers(1, 4)), cv2.LINE_AA
            )
            for _ in range(3):
                start = pts[int(rng.integers(5, 35))]
                branch = start + np.cumsum(rng.normal(0, 1, (10, 2)) * 8 + [3, 8], axis=0)
                cv2.polylines(wall, [np.ascontiguousarray(branch, np.int32)], False, (70, 65, 60), 1, cv2.LINE_AA)
        if i % 3 == 1:  # a stain or a nail hole: a compact dark spot on a wall
            cv2.circle(
                wall,
                (int(rng.integers(250, 390)), int(rng.integers(190, 290))),
                int(rng.integers(4, 30)),
                (110, 100, 80),
                -1,
                cv2.LINE_AA,
            )
            wall = cv2.GaussianBlur(wall, (0, 0), 1.5)
        if i % 5 == 4:  # tiles or bricks: a regular grid of mortar lines
            for y in range(0, H, 60):
                cv2.line(wall, (0, y), (W, y), (120, 115, 110), 4)
                for x in range((y // 60 % 2) * 60, W, 120):
                    cv2.line(wall, (x, y), (x, y + 60), (120, 115, 110), 4)
        out.append(NotALesion(f"wall/{i}", np.clip(wall, 0, 255).astype(np.uint8)))
    return out


def _frames(seed: int) -> list[NotALesion]:
    """Blank, gradient and noise frames, and bare skin of every tone."""
    rng = np.random.default_rng(seed + 700)
    out = []
    for name, colour in (
        ("white", (250, 250, 250)),
        ("grey", (128, 128, 128)),
        ("beige", (230, 200, 170)),
        ("skin3", SKIN_TONES[2]),
        ("skin5", SKIN_TONES[4]),
        ("pink", (240, 180, 190)),
    ):
        out.append(NotALesion(f"blank/{name}", np.full((H, W, 3), colour, np.uint8)))
    yy, xx = np.mgrid[:H, :W].astype(np.float32)
    for i, field in enumerate(
        (
            xx / W,
            yy / H,
            np.hypot(xx - W / 2, yy - H / 2) / 400,
            1 - np.hypot(xx - W / 3, yy - H / 3) / 500,
            (xx + yy) / (W + H),
        )
    ):
        low, high = np.asarray(SKIN_TONES[i], np.float32) * 0.6, np.asarray(SKIN_TONES[i], np.float32)
        image = low + (high - low) * np.clip(field, 0, 1)[..., None]
        out.append(NotALesion(f"gradient/{i}", np.clip(image, 0, 255).astype(np.uint8)))
    out.append(NotALesion("noise/gaussian", np.clip(rng.normal(128, 50, (H, W, 3)), 0, 255).astype(np.uint8)))
    out.append(NotALesion("noise/uniform", rng.integers(0, 256, (H, W, 3), dtype=np.uint8)))
    out.append(NotALesion("noise/grey", cv2.cvtColor(rng.integers(0, 256, (H, W), dtype=np.uint8), cv2.COLOR_GRAY2RGB)))
    pepper = np.full((H, W, 3), 200, np.uint8)
    pepper[rng.random((H, W)) < 0.05] = 0
    out.append(NotALesion("noise/salt_pepper", pepper))
    out.append(
        NotALesion(
            "noise/blobs",
            cv2.resize(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8), (W, H), interpolation=cv2.INTER_CUBIC),
        )
    )
    out.append(NotALesion("noise/on_skin", _noise(rng, _skin(seed + 800, 1), 40.0)))
    for i in range(10):  # bare skin, no lesion, every tone, some with hairs or pores drawn in
        image = _skin(seed + 900 + i, i)
        if i >= 5:
            for _ in range(8 * (i - 4)):
                p = np.ascontiguousarray(_curve(rng, straight=False)[::6])
                cv2.polylines(image, [p[: int(rng.integers(3, 8))]], False, (45, 32, 25), 1, cv2.LINE_AA)
        out.append(NotALesion(f"skin/{i}", _noise(rng, image, 3.0)))
    return out


def _skimage(seed: int) -> list[NotALesion]:
    try:
        from skimage import data
    except ImportError as exc:  # a test extra: pip install scikit-image
        raise RuntimeError("the not-a-lesion set needs scikit-image (pip install scikit-image)") from exc
    pictures = {name: _rgb(getattr(data, name)()) for name in SKIMAGE_BUNDLED}
    out = [NotALesion(f"skimage/{name}", image) for name, image in pictures.items()]
    for name, (x0, y0, x1, y1) in SKIMAGE_CROPS:
        image = pictures[name]
        h, w = image.shape[:2]
        crop = image[int(y0 * h) : int(y1 * h), int(x0 * w) : int(x1 * w)]
        if min(crop.shape[:2]) < 200:  # a close-up fills the camera frame
            f = 300 / min(crop.shape[:2])
            crop = cv2.resize(crop, None, fx=f, fy=f, interpolation=cv2.INTER_CUBIC)
        out.append(NotALesion(f"skimage_crop/{name}-{x0}-{y0}", np.ascontiguousarray(crop)))
    for scale in SKIMAGE_SCALES:
        for name, image in pictures.items():
            f = max(scale, 130 / min(image.shape[:2])) if scale < 1 else scale
            interpolation = cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC
            out.append(
                NotALesion(
                    f"skimage_scaled/{name}-x{scale}", cv2.resize(image, None, fx=f, fy=f, interpolation=interpolation)
                )
            )
    faces = data.lfw_subset()  # 200 25x25 grey faces: tile a few into camera-sized close-ups
    for i in range(0, 10):
        face = _rgb(faces[(seed * 7 + i * 9) % 100])  # the first 100 are faces
        out.append(NotALesion(f"face/lfw-{i}", cv2.resize(face, (300, 300), interpolation=cv2.INTER_CUBIC)))
    return out


FAMILIES: tuple[Callable[[int], list[NotALesion]], ...] = (
    _lines_on_skin,
    _creases_and_scars,
    _text_and_forms,
    _walls,
    _frames,
    _skimage,
)


def not_a_lesion_set(*, seed: int = 0, skimage: bool = True) -> list[NotALesion]:
    """Every not-a-lesion photo, in a fixed order; the same ``seed`` gives the same pixels."""
    out: list[NotALesion] = []
    for family in FAMILIES:
        if family is _skimage and not skimage:
            continue
        out.extend(family(seed))
    return out


def screen_set(model: Path, *, seed: int = 0, lines: Callable[[str], None] | None = None) -> tuple[Counter, list[str]]:
    """Screen every not-a-lesion photo with the kiosk's Screener: outcomes by (family, outcome), names told low.

    ``lines`` gets one JSON line per photo (name, outcome, probability) when given.
    """
    from kiosk.model import Model
    from kiosk.screening import Screener

    screener = Screener(Model.load(model))
    outcomes: Counter[tuple[str, str]] = Counter()
    low = []
    for item in not_a_lesion_set(seed=seed):
        result = screener.screen_image(item.image)
        outcome = result.risk or f"retake:{result.reason}"
        if result.risk and result.reason:
            outcome += f":{result.reason}"
        outcomes[(item.family, outcome)] += 1
        if result.risk == "low":
            low.append(item.name)
        if lines is not None:
            lines(json.dumps({"name": item.name, "outcome": outcome, "p": result.malignant_probability}))
    return outcomes, low


def main(argv: list[str] | None = None) -> int:
    """``python -m training.notlesion [--model M] [--seed S]``: how many come out low, by family."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="models/melanoma_int8.tflite")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="one line per image")
    args = parser.parse_args(argv)
    outcomes, low = screen_set(Path(args.model), seed=args.seed, lines=print if args.json else None)
    total = sum(outcomes.values())
    for (family, outcome), n in sorted(outcomes.items()):
        print(f"{family:16s} {outcome:28s} {n}")
    print(f"{total} not-a-lesion photos, {len(low)} told low: {low}")
    return 1 if low else 0


if __name__ == "__main__":
    raise SystemExit(main())
