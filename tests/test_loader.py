"""Tests for kiosk.vision.loader: header probing, safe decoding, normalisation to RGB."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiosk.reasons import ImageError
from kiosk.vision import loader
from kiosk.vision.loader import ImageInfo, encode_jpeg, load_image, probe_image

pytest.importorskip("PIL", reason="Pillow builds the CMYK/EXIF fixtures (tests only)")
from PIL import Image, ImageFile, ImageOps, JpegImagePlugin  # noqa: E402

# --------------------------------------------------------------------------- fixtures

# Six distinct colours in a 3x2 grid of 16-pixel blocks: every one of the 8
# EXIF orientations gives a different arrangement, and the blocks line up with
# JPEG's 16x16 MCUs so lossy round trips stay close.
COLOURS = [
    [(220, 30, 30), (30, 200, 40), (40, 50, 210)],
    [(230, 220, 40), (200, 40, 200), (40, 210, 220)],
]
W, H = 48, 32


def upright() -> np.ndarray:
    img = np.zeros((H, W, 3), np.uint8)
    for r, row in enumerate(COLOURS):
        for c, colour in enumerate(row):
            img[r * 16 : (r + 1) * 16, c * 16 : (c + 1) * 16] = colour
    return img


def cv2_encode(rgb: np.ndarray, ext: str, *params: int) -> bytes:
    bgr = rgb[..., ::-1] if rgb.ndim == 3 and rgb.shape[2] == 3 else rgb
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(bgr), list(params))
    assert ok
    return buf.tobytes()


def pil_encode(img: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_header_only(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)


def png_claiming(width: int, height: int) -> bytes:
    """A PNG header claiming any size, with an empty image-data chunk: Pillow wants an IDAT to open it."""
    return png_header_only(width, height) + png_chunk(b"IDAT", zlib.compress(b"")) + png_chunk(b"IEND", b"")


def jpeg_header_only(width: int, height: int) -> bytes:
    sof = struct.pack(">BHHB", 8, height, width, 3) + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    return b"\xff\xd8" + b"\xff\xc0" + struct.pack(">H", len(sof) + 2) + sof


def bmp_bytes(rgb: np.ndarray, *, header: int = 40, top_down: bool = False, alpha: np.ndarray | None = None) -> bytes:
    """A BMP built by hand: 24-bit (core or info header), or 32-bit BI_RGB when alpha is given."""
    h, w, _ = rgb.shape
    pixels = rgb[..., ::-1]
    bits = 24
    if alpha is not None:
        pixels = np.dstack([pixels, alpha])
        bits = 32
    rows = pixels if top_down else pixels[::-1]
    stride = (w * bits // 8 + 3) // 4 * 4
    data = b"".join(row.tobytes().ljust(stride, b"\0") for row in rows)
    if header == 12:
        dib = struct.pack("<IHHHH", 12, w, h, 1, bits)
    else:
        dib = struct.pack("<IiiHHIIiiII", 40, w, -h if top_down else h, 1, bits, 0, len(data), 2835, 2835, 0, 0)
    offset = 14 + len(dib)
    return b"BM" + struct.pack("<IHHI", offset + len(data), 0, 0, offset) + dib + data


def exif_app1(orientation: int, *, order: str = ">", kind: int = 3) -> bytes:
    """A minimal APP1 segment: "Exif\\0\\0" + TIFF header + IFD0 holding only Orientation."""
    magic = b"MM\x00\x2a" if order == ">" else b"II\x2a\x00"
    value = struct.pack(order + "HH", orientation, 0) if kind == 3 else struct.pack(order + "I", orientation)
    tiff = magic + struct.pack(order + "I", 8) + struct.pack(order + "H", 1)
    tiff += struct.pack(order + "HHI", 0x0112, kind, 1) + value + struct.pack(order + "I", 0)
    payload = b"Exif\x00\x00" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def assert_rgb8(img: np.ndarray, shape: tuple[int, int]) -> None:
    assert isinstance(img, np.ndarray)
    assert img.dtype == np.uint8
    assert img.shape == (*shape, 3)
    assert img.flags.c_contiguous


def max_diff(a: np.ndarray, b: np.ndarray) -> int:
    assert a.shape == b.shape
    return int(np.abs(a.astype(int) - b.astype(int)).max())


def block_diff(a: np.ndarray, b: np.ndarray, margin: int = 3) -> int:
    """Largest difference away from the 16-pixel block edges, where lossy
    codecs smear chroma (4:2:0 and fancy upsampling) by design."""
    assert a.shape == b.shape
    ys = np.arange(a.shape[0]) % 16
    xs = np.arange(a.shape[1]) % 16
    inner_y = (ys >= margin) & (ys < 16 - margin)
    inner_x = (xs >= margin) & (xs < 16 - margin)
    return max_diff(a[inner_y][:, inner_x], b[inner_y][:, inner_x])


@contextmanager
def raises_code(code: str) -> Iterator[pytest.ExceptionInfo[ImageError]]:
    with pytest.raises(ImageError) as info:
        yield info
    assert info.value.code == code, f"expected {code}, got {info.value.code}"


# --------------------------------------------------------------------------- colour formats


@pytest.mark.parametrize(
    ("name", "make", "tolerance"),
    [
        ("photo.png", lambda img: cv2_encode(img, ".png"), 0),
        ("photo.bmp", lambda img: cv2_encode(img, ".bmp"), 0),
        ("lossless.webp", lambda img: cv2_encode(img, ".webp", cv2.IMWRITE_WEBP_QUALITY, 101), 0),
        ("lossy.webp", lambda img: cv2_encode(img, ".webp", cv2.IMWRITE_WEBP_QUALITY, 95), 24),
        ("photo.jpg", lambda img: cv2_encode(img, ".jpg", cv2.IMWRITE_JPEG_QUALITY, 95), 12),
        ("progressive.jpg", lambda img: pil_encode(Image.fromarray(img), "JPEG", quality=95, progressive=True), 12),
    ],
)
def test_colour_images_load_as_rgb(tmp_path: Path, name: str, make, tolerance: int) -> None:
    original = upright()
    data = make(original)
    from_path = load_image(write(tmp_path, name, data))
    from_bytes = load_image(data)
    assert_rgb8(from_path, (H, W))
    np.testing.assert_array_equal(from_path, from_bytes)
    assert block_diff(from_path, original) <= tolerance
    if tolerance == 0:
        np.testing.assert_array_equal(from_path, original)
    # RGB order, not BGR: the top-left block is red.
    r, g, b = from_path[8, 8]
    assert r > 180 and g < 80 and b < 80


def test_path_like_and_str_paths_and_bytearray(tmp_path: Path) -> None:
    data = cv2_encode(upright(), ".png")
    path = write(tmp_path, "a.png", data)
    for source in (path, str(path), bytearray(data), memoryview(data)):
        np.testing.assert_array_equal(load_image(source), upright())


def test_unsupported_source_type_is_a_programming_error() -> None:
    with pytest.raises(TypeError):
        load_image(12345)  # type: ignore[arg-type]


def test_grayscale_png_and_jpeg_become_three_equal_channels(tmp_path: Path) -> None:
    grey = np.tile(np.arange(0, 256, 8, dtype=np.uint8), (16, 1))  # 16 x 32 ramp
    png = load_image(write(tmp_path, "g.png", cv2_encode(grey, ".png")))
    assert_rgb8(png, grey.shape)
    for c in range(3):
        np.testing.assert_array_equal(png[..., c], grey)
    jpg = load_image(write(tmp_path, "g.jpg", cv2_encode(grey, ".jpg", cv2.IMWRITE_JPEG_QUALITY, 95)))
    assert_rgb8(jpg, grey.shape)
    np.testing.assert_array_equal(jpg[..., 0], jpg[..., 1])
    np.testing.assert_array_equal(jpg[..., 0], jpg[..., 2])
    assert max_diff(jpg[..., 0], grey) <= 6


# --------------------------------------------------------------------------- alpha


def test_transparent_png_is_composited_over_white_not_black(tmp_path: Path) -> None:
    bgra = np.zeros((10, 12, 4), np.uint8)  # fully transparent black
    bgra[:, 6:] = (0, 0, 255, 255)  # opaque red on the right (BGRA)
    bgra[:5, :6] = (0, 0, 255, 128)  # half-transparent red, top left
    img = load_image(write(tmp_path, "t.png", cv2_encode(bgra, ".png")))
    assert_rgb8(img, (10, 12))
    assert (img[5:, :6] == 255).all()  # transparent -> white
    assert (img[:, 6:] == (255, 0, 0)).all()  # opaque stays red
    # 50% red over white: red stays 255, green/blue are halfway.
    assert tuple(img[0, 0]) in {(255, 127, 127), (255, 128, 128)}


def test_grey_alpha_and_palette_transparency_become_white(tmp_path: Path) -> None:
    la = pil_encode(Image.new("LA", (6, 4), (40, 0)), "PNG")
    np.testing.assert_array_equal(load_image(la), np.full((4, 6, 3), 255, np.uint8))

    pal = Image.new("P", (6, 4), 0)
    pal.putpalette([10, 20, 30, 200, 100, 50])
    pal.paste(1, (3, 0, 6, 4))
    img = load_image(pil_encode(pal, "PNG", transparency=0))
    assert (img[:, :3] == 255).all()
    assert (img[:, 3:] == (200, 100, 50)).all()


def test_webp_with_alpha_is_composited_over_white() -> None:
    rgba = Image.new("RGBA", (8, 8), (10, 120, 30, 0))
    rgba.paste((10, 120, 30, 255), (4, 0, 8, 8))
    data = pil_encode(rgba, "WEBP", lossless=True)
    assert probe_image(data) == ImageInfo("webp", 8, 8)
    img = load_image(data)
    assert (img[:, :4] == 255).all()
    assert (img[:, 4:] == (10, 120, 30)).all()


# --------------------------------------------------------------------------- 16 bit


def test_sixteen_bit_grey_png_is_scaled_not_truncated(tmp_path: Path) -> None:
    grey16 = np.array([[0, 257, 32896, 65535], [128, 32767, 65280, 65534]], np.uint16)
    data = cv2_encode(grey16, ".png")
    assert data[24] == 16  # IHDR bit depth: really a 16-bit file
    img = load_image(write(tmp_path, "g16.png", data))
    assert_rgb8(img, (2, 4))
    np.testing.assert_array_equal(img[0, :, 0], [0, 1, 128, 255])
    np.testing.assert_array_equal(img[1, :, 1], [0, 127, 254, 255])  # rounding: 128/257 -> 0, 65534/257 -> 255


def test_sixteen_bit_colour_and_alpha_png() -> None:
    rgb16 = np.zeros((3, 3, 3), np.uint16)
    rgb16[...] = (0, 32896, 65535)
    np.testing.assert_array_equal(load_image(cv2_encode(rgb16, ".png"))[1, 1], (0, 128, 255))

    bgra16 = np.zeros((2, 2, 4), np.uint16)  # 4 channels: written as BGRA, unflipped
    bgra16[0] = (0, 0, 65535, 65535)  # opaque red
    bgra16[1] = (0, 0, 0, 0)  # transparent
    img = load_image(cv2_encode(bgra16, ".png"))
    np.testing.assert_array_equal(img[0], [(255, 0, 0)] * 2)
    np.testing.assert_array_equal(img[1], [(255, 255, 255)] * 2)


# --------------------------------------------------------------------------- CMYK


def test_cmyk_jpeg_colours_match_the_rgb_original(tmp_path: Path) -> None:
    original = upright()
    data = pil_encode(Image.fromarray(original).convert("CMYK"), "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    assert b"Adobe" in data  # Photoshop-style inverted CMYK, as real CMYK JPEGs are
    assert probe_image(data) == ImageInfo("jpeg", W, H)
    img = load_image(write(tmp_path, "cmyk.jpg", data))
    assert_rgb8(img, (H, W))
    assert block_diff(img, original) <= 12
    assert max_diff(img, np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))) <= 4


# --------------------------------------------------------------------------- EXIF orientation

# How the camera stored the pixels for each tag, given the upright scene.
STORED_FOR = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,  # stored turned left; display turns it right
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def oriented_file(orientation: int, fmt: str) -> bytes:
    scene = Image.fromarray(upright())
    transpose = STORED_FOR[orientation]
    stored = scene.transpose(transpose) if transpose is not None else scene
    exif = Image.Exif()
    exif[0x0112] = orientation
    options: dict[str, object] = {"exif": exif.tobytes()}
    options |= {"quality": 95, "subsampling": 0} if fmt == "JPEG" else {"lossless": True} if fmt == "WEBP" else {}
    data = pil_encode(stored, fmt, **options)
    # The fixture itself must be right: Pillow's own EXIF handling turns it upright.
    check = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    assert check.shape == (H, W, 3) and block_diff(check, upright()) <= 12
    return data


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_exif_orientation_comes_out_upright(tmp_path: Path, orientation: int, fmt: str) -> None:
    data = oriented_file(orientation, fmt)
    stored_w, stored_h = (H, W) if orientation >= 5 else (W, H)
    assert probe_image(data) == ImageInfo(fmt.lower(), stored_w, stored_h)  # the probe reports stored size
    img = load_image(write(tmp_path, f"o{orientation}.{fmt.lower()}", data))
    assert_rgb8(img, (H, W))
    if fmt == "JPEG":
        assert block_diff(img, upright()) <= 12
    else:
        np.testing.assert_array_equal(img, upright())


def test_imread_unchanged_ignores_exif_so_the_loader_must_apply_it() -> None:
    # Documents the OpenCV behaviour the loader works around.
    data = oriented_file(6, "JPEG")
    raw = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert raw.shape[:2] == (W, H)  # still stored sideways


@pytest.mark.parametrize(("order", "kind"), [("<", 3), (">", 3), ("<", 4)])
def test_hand_written_exif_byte_orders_and_long_type(order: str, kind: int) -> None:
    jpeg = cv2_encode(upright(), ".jpg", cv2.IMWRITE_JPEG_QUALITY, 95)
    rotated = jpeg[:2] + exif_app1(8, order=order, kind=kind) + jpeg[2:]
    img = load_image(rotated)
    assert_rgb8(img, (W, H))  # turned 90 degrees counter-clockwise
    assert block_diff(img, np.rot90(upright(), 1)) <= 12


def test_png_exif_after_idat_is_honoured() -> None:
    png = cv2_encode(upright(), ".png")
    tiff = exif_app1(3)[10:]  # drop marker, length and "Exif\0\0"
    iend = png.rfind(b"IEND") - 4
    data = png[:iend] + png_chunk(b"eXIf", tiff) + png[iend:]
    np.testing.assert_array_equal(load_image(data), upright()[::-1, ::-1])


@pytest.mark.parametrize(
    "app1",
    [
        b"\xff\xe1\x00\x10Exif\x00\x00garbage!",  # not a TIFF header
        b"\xff\xe1\x00\x10Exif\x00\x00MM\x00\x2a\xff\xff\xff\xff",  # IFD offset past the end
        exif_app1(9),  # out-of-range value
        exif_app1(6, kind=5),  # wrong type
    ],
)
def test_damaged_exif_leaves_the_photo_as_stored(app1: bytes) -> None:
    jpeg = cv2_encode(upright(), ".jpg", cv2.IMWRITE_JPEG_QUALITY, 95)
    img = load_image(jpeg[:2] + app1 + jpeg[2:])
    assert block_diff(img, upright()) <= 12


# --------------------------------------------------------------------------- BMP variants


@pytest.mark.parametrize(("header", "top_down"), [(40, False), (40, True), (12, False)])
def test_bmp_variants(header: int, top_down: bool) -> None:
    data = bmp_bytes(upright(), header=header, top_down=top_down)
    assert probe_image(data) == ImageInfo("bmp", W, H)
    np.testing.assert_array_equal(load_image(data), upright())


def test_32bit_bmp_with_zero_alpha_byte_is_opaque() -> None:
    data = bmp_bytes(upright(), alpha=np.zeros((H, W), np.uint8))
    np.testing.assert_array_equal(load_image(data), upright())


def test_32bit_bmp_with_real_alpha_is_composited() -> None:
    bgra = np.zeros((4, 4, 4), np.uint8)
    bgra[:, :2] = (255, 0, 0, 255)  # opaque blue
    bgra[:, 2:] = (255, 0, 0, 0)  # transparent
    img = load_image(cv2_encode(bgra, ".bmp"))
    assert (img[:, :2] == (0, 0, 255)).all()
    assert (img[:, 2:] == 255).all()


# --------------------------------------------------------------------------- probe


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: cv2_encode(upright(), ".png"), ImageInfo("png", W, H)),
        (lambda: cv2_encode(upright(), ".jpg"), ImageInfo("jpeg", W, H)),
        (lambda: pil_encode(Image.fromarray(upright()), "JPEG", progressive=True), ImageInfo("jpeg", W, H)),
        (lambda: cv2_encode(upright(), ".bmp"), ImageInfo("bmp", W, H)),
        (lambda: cv2_encode(upright(), ".webp", cv2.IMWRITE_WEBP_QUALITY, 80), ImageInfo("webp", W, H)),
        (lambda: cv2_encode(upright(), ".webp", cv2.IMWRITE_WEBP_QUALITY, 101), ImageInfo("webp", W, H)),
        (lambda: pil_encode(Image.new("RGBA", (300, 200)), "WEBP"), ImageInfo("webp", 300, 200)),
        (lambda: png_claiming(20000, 20000), ImageInfo("png", 20000, 20000)),
        (lambda: jpeg_header_only(20000, 20000), ImageInfo("jpeg", 20000, 20000)),
    ],
)
def test_probe_reads_format_and_size(make, expected: ImageInfo) -> None:
    assert probe_image(make()) == expected


def test_probe_webp_chunk_kinds() -> None:
    lossy = cv2_encode(upright(), ".webp", cv2.IMWRITE_WEBP_QUALITY, 80)
    lossless = cv2_encode(upright(), ".webp", cv2.IMWRITE_WEBP_QUALITY, 101)
    extended = pil_encode(Image.new("RGBA", (300, 200)), "WEBP")
    assert (lossy[12:16], lossless[12:16], extended[12:16]) == (b"VP8 ", b"VP8L", b"VP8X")


def test_probe_skips_fill_bytes_and_app_segments() -> None:
    jpeg = cv2_encode(upright(), ".jpg")
    padded = jpeg[:2] + b"\xff\xe2\x00\x06ICC!" + b"\xff\xff\xff" + jpeg[2:]  # APP2 + fill bytes
    assert probe_image(padded) == ImageInfo("jpeg", W, H)
    assert_rgb8(load_image(padded), (H, W))


def test_image_info_is_frozen() -> None:
    info = ImageInfo("png", 4, 3)
    with pytest.raises(AttributeError):
        info.width = 5  # type: ignore[misc]
    assert info.megapixels == pytest.approx(12e-6)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "empty_file"),
        (b"hello, this is a text file\n", "not_an_image"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "not_an_image"),
        (b"GIF89a\x01\x00\x01\x00", "not_an_image"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "not_an_image"),
        (b"BMW is a car, not a bitmap header", "not_an_image"),
        (b"\x89PNG", "corrupt_image"),  # cut inside the signature
        (png_header_only(10, 10)[:20], "corrupt_image"),  # cut inside IHDR
        (png_header_only(10, 10)[:-1] + b"\x00", "corrupt_image"),  # IHDR CRC wrong
        (png_header_only(0, 10), "corrupt_image"),
        (b"\xff\xd8", "corrupt_image"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "corrupt_image"),  # segment runs past the end
        (b"\xff\xd8\xff\xd9", "corrupt_image"),  # EOI before any frame header
        (jpeg_header_only(0, 10), "corrupt_image"),
        (b"BM\x00\x00", "corrupt_image"),
        (b"RIFF\x00\x00", "corrupt_image"),
        (b"RIFF\x20\x00\x00\x00WEBPVP8 \x10\x00\x00\x00", "corrupt_image"),
    ],
)
def test_probe_errors(data: bytes, code: str) -> None:
    with raises_code(code):
        probe_image(data)


# --------------------------------------------------------------------------- bad input files


@pytest.mark.parametrize(
    ("name", "data", "code"),
    [
        ("empty.jpg", b"", "empty_file"),
        ("notes.txt", b"Patient notes: lesion on left forearm.\n", "not_an_image"),
        ("scan.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n", "not_an_image"),
    ],
)
def test_bad_files(tmp_path: Path, name: str, data: bytes, code: str) -> None:
    with raises_code(code):
        load_image(write(tmp_path, name, data))


@pytest.mark.parametrize("ext", [".jpg", ".png", ".webp", ".bmp"])
@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_images_are_corrupt(tmp_path: Path, ext: str, keep: float) -> None:
    rng = np.random.default_rng(7)
    data = cv2_encode(rng.integers(0, 256, (64, 80, 3), dtype=np.uint8), ext)
    with raises_code("corrupt_image"):
        load_image(write(tmp_path, "cut" + ext, data[: int(len(data) * keep)]))


def test_jpeg_missing_only_its_end_marker_is_corrupt(imdecode_calls: list[object]) -> None:
    data = cv2_encode(upright(), ".jpg")
    assert data.endswith(b"\xff\xd9")
    with raises_code("corrupt_image"):
        load_image(data[:-2])
    # Refused by the loader itself: OpenCV 4.x would return the photo with a grey lower part.
    assert imdecode_calls == []


def test_jpeg_with_trailing_bytes_still_loads() -> None:
    data = cv2_encode(upright(), ".jpg", cv2.IMWRITE_JPEG_QUALITY, 95)
    assert block_diff(load_image(data + b"\x00" * 100 + b"vendor trailer"), upright()) <= 12


def test_directory_is_unreadable(tmp_path: Path) -> None:
    with raises_code("file_unreadable") as info:
        load_image(tmp_path)
    assert info.value.params["path"] == str(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_missing_path_is_not_found(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jpg"
    with raises_code("file_not_found") as info:
        load_image(missing)
    assert info.value.params["path"] == str(missing)
    with raises_code("file_not_found"):
        load_image(str(tmp_path / "not-a-dir.jpg" / "x.jpg"))


def test_permission_denied_is_unreadable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "locked.png", cv2_encode(upright(), ".png"))

    def denied(*args: object, **kwargs: object):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(loader, "open", denied, raising=False)
    with raises_code("file_unreadable") as info:
        load_image(path)
    assert info.value.params["path"] == str(path)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores file modes")
def test_chmod_000_is_unreadable(tmp_path: Path) -> None:
    path = write(tmp_path, "locked.png", cv2_encode(upright(), ".png"))
    path.chmod(0)
    try:
        with raises_code("file_unreadable"):
            load_image(path)
    finally:
        path.chmod(0o600)


# --------------------------------------------------------------------------- decompression bombs


@pytest.fixture
def imdecode_calls(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every pixel decode: Pillow's ImageFile.load (and OpenCV's imdecode, which the loader must not use)."""
    calls: list[object] = []
    real_load = ImageFile.ImageFile.load
    real_imdecode = cv2.imdecode

    def load_spy(self: ImageFile.ImageFile):
        calls.append(self)
        return real_load(self)

    def imdecode_spy(*args: object, **kwargs: object):
        calls.append(args)
        return real_imdecode(*args, **kwargs)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load_spy)
    monkeypatch.setattr(loader.cv2, "imdecode", imdecode_spy)
    return calls


def test_the_decode_spy_sees_a_decode(imdecode_calls: list[object]) -> None:
    assert_rgb8(load_image(cv2_encode(upright(), ".png")), (H, W))
    assert imdecode_calls  # so the "== []" checks below mean "refused before decoding"


@pytest.mark.parametrize("make", [png_claiming, jpeg_header_only])
def test_header_claiming_400_megapixels_is_refused_before_decoding(
    tmp_path: Path, make, imdecode_calls: list[object]
) -> None:
    data = make(20000, 20000)
    assert len(data) < 100
    with raises_code("image_too_large") as info:
        load_image(write(tmp_path, "bomb", data))
    assert imdecode_calls == []  # refused on the header alone
    assert info.value.params == {"megapixels": 400.0, "limit": 50}
    assert str(info.value) == "The image is too large (400.0 MP; the limit is 50 MP)."


def test_real_png_bomb_is_refused_before_decoding(imdecode_calls: list[object]) -> None:
    # 8000 x 7000 black pixels: compresses to a few hundred kB, decodes to 168 MB.
    ihdr = struct.pack(">IIBBBBB", 8000, 7000, 8, 2, 0, 0, 0)
    row = b"\x00" * (1 + 8000 * 3)
    idat = zlib.compress(row * 7000, 9)
    data = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")
    assert len(data) < 1_000_000
    with raises_code("image_too_large"):
        load_image(data, max_megapixels=50)
    assert imdecode_calls == []


def test_max_megapixels_is_respected(imdecode_calls: list[object]) -> None:
    data = cv2_encode(upright(), ".png")  # 48 x 32 = 0.001536 MP
    with raises_code("image_too_large") as info:
        load_image(data, max_megapixels=0.001)
    assert info.value.params["limit"] == 0.001
    assert imdecode_calls == []
    assert_rgb8(load_image(data, max_megapixels=0.002), (H, W))
    with pytest.raises(ValueError):
        load_image(data, max_megapixels=0)


def _python(code: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k != loader.OPENCV_PIXEL_LIMIT_VAR}
    result = subprocess.run(
        [sys.executable, "-c", code], env=clean | env, capture_output=True, text=True, timeout=120, check=True
    )
    return result.stdout.strip()


def test_opencv_pixel_limit_is_set_before_cv2_import() -> None:
    out = _python(
        "import os, sys; from kiosk.vision import loader;"
        "print(loader.CV2_IMPORTED_FIRST, os.environ['OPENCV_IO_MAX_IMAGE_PIXELS'])"
    )
    assert out == "False 100000000"
    assert _python("import cv2; from kiosk.vision import loader; print(loader.CV2_IMPORTED_FIRST)") == "True"


def test_deployer_pixel_limit_is_kept_and_reaches_opencv() -> None:
    code = (
        "import numpy as np; from kiosk.vision import loader; import cv2\n"
        "ok, buf = cv2.imencode('.png', np.zeros((100, 100, 3), np.uint8))\n"
        "try:\n    r = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED); print('decoded', r is not None)\n"
        "except cv2.error:\n    print('refused by opencv')\n"
    )
    assert _python(code, OPENCV_IO_MAX_IMAGE_PIXELS="5000") == "refused by opencv"


# --------------------------------------------------------------------------- decoder misbehaviour


@pytest.mark.parametrize(
    "error",
    [
        OSError("image file is truncated"),
        SyntaxError("broken PNG file"),
        ValueError("bad"),
        EOFError(),
        struct.error("unpack"),
        RuntimeError("boom"),
    ],
)
def test_decoder_failures_become_corrupt_image(monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    def fail(self: ImageFile.ImageFile):
        raise error

    monkeypatch.setattr(ImageFile.ImageFile, "load", fail)
    with raises_code("corrupt_image"):
        load_image(cv2_encode(upright(), ".png"))


def test_out_of_memory_while_decoding_is_a_one_line_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(self: ImageFile.ImageFile):
        raise MemoryError

    monkeypatch.setattr(ImageFile.ImageFile, "load", fail)
    with raises_code("image_needs_too_much_memory"):
        load_image(cv2_encode(upright(), ".png"))


# --------------------------------------------------------------------------- encode_jpeg


def test_encode_jpeg_round_trip_without_exif() -> None:
    data = encode_jpeg(upright(), quality=95)
    assert data.startswith(b"\xff\xd8") and data.endswith(b"\xff\xd9")
    assert b"Exif" not in data  # nothing to rotate, no GPS leaked into records
    assert probe_image(data) == ImageInfo("jpeg", W, H)
    assert max_diff(load_image(data), upright()) <= 8  # 4:4:4 keeps even the block edges
    # 4:4:4: every component has sampling factors 1x1 (0x11) in the SOF0 frame header.
    sof = data.index(b"\xff\xc0") + 4
    assert data[sof + 5] == 3
    assert [data[sof + 6 + 3 * i + 1] for i in range(3)] == [0x11, 0x11, 0x11]


def test_encode_jpeg_quality_and_non_contiguous_input() -> None:
    rng = np.random.default_rng(3)
    noisy = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert len(encode_jpeg(noisy, quality=30)) < len(encode_jpeg(noisy, quality=95))
    flipped = upright()[:, ::-1]
    assert max_diff(load_image(encode_jpeg(flipped, quality=95)), flipped) <= 8


@pytest.mark.parametrize(
    ("image", "quality"),
    [
        (np.zeros((4, 4), np.uint8), 90),
        (np.zeros((4, 4, 4), np.uint8), 90),
        (np.zeros((4, 4, 3), np.float32), 90),
        (np.zeros((0, 4, 3), np.uint8), 90),
        ([[1, 2, 3]], 90),
        (np.zeros((4, 4, 3), np.uint8), 0),
        (np.zeros((4, 4, 3), np.uint8), 101),
        (np.zeros((4, 4, 3), np.uint8), True),
        (np.zeros((4, 4, 3), np.uint8), 90.0),
    ],
)
def test_encode_jpeg_rejects_bad_arguments(image, quality) -> None:
    with pytest.raises(ValueError):
        encode_jpeg(image, quality=quality)


# --------------------------------------------------------------------------- properties


def _seed_files() -> list[bytes]:
    rng = np.random.default_rng(11)
    small = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    bgra = np.dstack([small, rng.integers(0, 256, (12, 16), dtype=np.uint8)])
    return [
        cv2_encode(small, ".png"),
        cv2_encode(bgra, ".png"),
        cv2_encode(small.astype(np.uint16) * 257, ".png"),
        cv2_encode(small, ".jpg"),
        pil_encode(Image.fromarray(small), "JPEG", progressive=True),
        pil_encode(Image.fromarray(small).convert("CMYK"), "JPEG"),
        oriented_file(6, "JPEG"),
        cv2_encode(small, ".webp", cv2.IMWRITE_WEBP_QUALITY, 80),
        cv2_encode(small, ".webp", cv2.IMWRITE_WEBP_QUALITY, 101),
        cv2_encode(small, ".bmp"),
        bmp_bytes(small, header=12),
    ]


SEEDS = _seed_files()


@st.composite
def mutated_images(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    position = st.one_of(st.integers(0, 80), st.integers(0, 1 << 16))  # favour the header
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        op = draw(st.sampled_from(["flip", "truncate", "insert", "delete"]))
        i = draw(position) % len(data)
        if op == "flip":
            data[i] ^= draw(st.integers(1, 255))
        elif op == "truncate":
            del data[i:]
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=16))
        else:
            del data[i : i + draw(st.integers(1, 16))]
    return bytes(data)


def _load_or_image_error(data: bytes) -> None:
    # A small pixel limit keeps mutated headers that claim a big image fast;
    # the property (an RGB array or an ImageError, nothing else) is the same.
    try:
        img = load_image(data, max_megapixels=1.0)
    except ImageError:
        return
    assert isinstance(img, np.ndarray)
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    assert img.shape[0] > 0 and img.shape[1] > 0
    assert img.flags.c_contiguous


PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(
    st.one_of(
        st.binary(max_size=2048),
        st.tuples(
            st.sampled_from([b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM", b"RIFF\x00\x01\x00\x00WEBPVP8"]),
            st.binary(max_size=512),
        ).map(b"".join),
    )
)
def test_arbitrary_bytes_never_raise_anything_but_image_error(data: bytes) -> None:
    _load_or_image_error(data)
    try:
        probe_image(data)
    except ImageError:
        pass


@PROPERTY
@given(mutated_images())
def test_damaged_real_images_never_raise_anything_but_image_error(data: bytes) -> None:
    _load_or_image_error(data)


def test_seeds_are_valid_images() -> None:
    for data in SEEDS:
        img = load_image(data)
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3


# --------------------------------------------------------------------------- bounded decode memory


def big_png(width: int, height: int, *, depth: int, colour: int = 6) -> bytes:
    """A real, valid PNG of any size, built row by row so the test itself stays small.

    A half-transparent horizontal ramp: compresses to a few hundred kB like the
    389 kB, 50 MP, 16-bit RGBA file that once took the server to 1.9 GB.
    """
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    dtype = ">u2" if depth == 16 else "u1"
    top = 65535 if depth == 16 else 255
    row = np.zeros((width, channels), dtype)
    row[:, 0] = np.arange(width) * top // width
    row[:, -1] = top * 3 // 5  # alpha (or grey)
    packer = zlib.compressobj(9)
    first = packer.compress(b"\x00" + row.tobytes())
    same = b"\x02" + bytes(row.nbytes)  # filter "Up": every further row repeats the one above
    idat = first + b"".join(packer.compress(same) for _ in range(height - 1)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def test_48mp_16bit_rgba_png_is_refused_before_decoding(imdecode_calls: list[object]) -> None:
    # Inside the 50 MP limit, but its 384 MB of samples do not fit the 300 MB decode budget.
    data = big_png(8000, 6000, depth=16)
    assert len(data) < 2_000_000
    with raises_code("image_needs_too_much_memory") as info:
        load_image(data)
    assert imdecode_calls == []
    assert info.value.params == {"megabytes": 384, "limit": 300}
    assert str(info.value) == (
        "The image needs too much memory to decode (384 MB; the limit is 300 MB). Use a JPEG or a smaller picture."
    )
    with raises_code("image_needs_too_much_memory"):
        load_image(cv2_encode(upright(), ".png"), decode_budget_mb=0.001)


def test_large_jpeg_is_decoded_at_reduced_scale_by_libjpeg(monkeypatch: pytest.MonkeyPatch) -> None:
    drafts: list[tuple[object, ...]] = []
    real = JpegImagePlugin.JpegImageFile.draft

    def spy(self: JpegImagePlugin.JpegImageFile, mode: str | None, size: tuple[int, int] | None):
        drafts.append((mode, size))
        return real(self, mode, size)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    data = cv2_encode(upright(), ".jpg", cv2.IMWRITE_JPEG_QUALITY, 95)
    assert_rgb8(load_image(data), (H, W))  # 1536 px: under the default 16 MP, decoded whole
    # A cap of 500 px is 3.07x too small: libjpeg decodes at 1/2 (8 x 8 DCT blocks shrink to 4 x 4).
    img = load_image(data, max_decoded_megapixels=0.0005)
    assert drafts == [(None, (W // 2, H // 2))]
    assert_rgb8(img, (H // 2, W // 2))
    half = cv2.resize(upright(), (W // 2, H // 2), interpolation=cv2.INTER_AREA)
    inner = [1, 2, 3, 4, 9, 10, 11, 12]  # away from the colour blocks' edges
    assert max_diff(img[2:-2, 2:-2][:, inner], half[2:-2, 2:-2][:, inner]) <= 16


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "BMP"])
def test_large_lossless_photos_are_reduced_by_whole_factors(fmt: str) -> None:
    options = {"lossless": True} if fmt == "WEBP" else {}
    data = pil_encode(Image.fromarray(upright()), fmt, **options)
    img = load_image(data, max_decoded_megapixels=0.0002)  # 1536 px -> factor ceil(sqrt(7.68)) = 3
    assert_rgb8(img, (H // 3 + 1, W // 3))  # reduce() rounds up: 32 / 3 -> 11 rows
    # Whole 3 x 3 boxes inside one 16-pixel block keep its colour exactly.
    assert tuple(img[1, 1]) == COLOURS[0][0] and tuple(img[7, 13]) == COLOURS[1][2]


def test_reduction_keeps_alpha_and_exif_orientation() -> None:
    bgra = np.zeros((40, 60, 4), np.uint8)
    bgra[:, 30:] = (0, 0, 255, 255)  # opaque red right half; left half transparent
    img = load_image(cv2_encode(bgra, ".png"), max_decoded_megapixels=0.0006)  # factor 2
    assert_rgb8(img, (20, 30))
    assert (img[:, :15] == 255).all() and (img[:, 15:] == (255, 0, 0)).all()
    turned = load_image(oriented_file(6, "JPEG"), max_decoded_megapixels=0.0005)
    assert_rgb8(turned, (H // 2, W // 2))
    assert block_diff(np.repeat(np.repeat(turned, 2, 0), 2, 1), upright(), margin=4) <= 16


_PEAK_SCRIPT = """
import sys, time
from kiosk.vision.loader import load_image
def peak_kb():  # VmHWM: this process's own peak; ru_maxrss would start at the forking parent's size
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
data = open(sys.argv[1], "rb").read()
before = peak_kb()
started = time.perf_counter()
shape = load_image(data).shape
ms = (time.perf_counter() - started) * 1000
print(shape[0], shape[1], (peak_kb() - before) * 1024, round(ms))
"""


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads VmHWM from /proc (Linux)")
def test_peak_memory_of_a_48mp_rgba_png_stays_within_the_decode_budget(tmp_path: Path) -> None:
    # 8-bit RGBA at 48 MP: 192 MB of samples, inside the budget, so it is decoded (and reduced
    # to 12 MP). Before the strip-wise conversion it peaked near 1 GB above the interpreter.
    path = write(tmp_path, "big.png", big_png(8000, 6000, depth=8))
    out = subprocess.run(
        [sys.executable, "-c", _PEAK_SCRIPT, str(path)], capture_output=True, text=True, timeout=300, check=True
    ).stdout.split()
    height, width, grown, _ms = map(int, out)
    assert (height, width) == (3000, 4000)
    assert 48_000_000 < grown < (loader.DEFAULT_DECODE_BUDGET_MB + 60) * 1_000_000, f"peak grew by {grown / 1e6:.0f} MB"
