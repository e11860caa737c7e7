"""Load an uploaded or captured photo safely, as an upright RGB uint8 array.

Pillow does the work: a lazy :func:`PIL.Image.open` reads only the header, so
an image that claims too many pixels, or whose decode would need more memory
than a budget allows, is refused before any pixel is decoded (a 400 kB PNG can
claim 48 MP of 16-bit RGBA and take 400 MB to decode). A JPEG far larger than
the kiosk needs is decoded at 1/2 to 1/8 scale by libjpeg itself
(:meth:`~PIL.Image.Image.draft`), other formats are shrunk by
:meth:`~PIL.Image.Image.reduce` straight after decoding, so everything after
the decode works on at most ``max_decoded_megapixels``. Grey, alpha (over
white), 16-bit and CMYK inputs all come out as 3-channel 8-bit RGB, turned
upright by the EXIF Orientation tag (:func:`PIL.ImageOps.exif_transpose`).
Every problem with the bytes is an :class:`ImageError`.

>>> import numpy as np
>>> rgb = np.full((2, 3, 3), (200, 30, 30), np.uint8)
>>> data = encode_jpeg(rgb, quality=95)
>>> probe_image(data)
ImageInfo(format='jpeg', width=3, height=2)
>>> out = load_image(data)
>>> out.shape, out.dtype, out.flags.c_contiguous
((2, 3, 3), dtype('uint8'), True)
"""

from __future__ import annotations

import io
import math
import os
import stat
import sys
import warnings
from dataclasses import dataclass
from typing import Final, Literal

# Defence in depth for the other OpenCV decoders in the kiosk (the replay camera
# decodes its folder with cv2.imdecode): OpenCV reads its own pixel limit from
# the environment once, when cv2 is first imported, so it must be set before
# the import below. Caveat: if anything imported cv2 before this module, the
# variable has no effect in this process (OpenCV then keeps whatever it read,
# by default 2**30 pixels). load_image itself decodes with Pillow and checks
# the header first. A value the deployer already set is kept.
OPENCV_PIXEL_LIMIT_VAR: Final = "OPENCV_IO_MAX_IMAGE_PIXELS"
DEFAULT_OPENCV_PIXEL_LIMIT: Final = 100_000_000  # twice load_image's default limit
CV2_IMPORTED_FIRST: Final = "cv2" in sys.modules  # True: the limit above may not apply
os.environ.setdefault(OPENCV_PIXEL_LIMIT_VAR, str(DEFAULT_OPENCV_PIXEL_LIMIT))

import cv2  # noqa: E402 - must follow the environment set-up above
import numpy as np  # noqa: E402
from PIL import Image, ImageFile, ImageOps  # noqa: E402

from ..reasons import ImageError, KioskError  # noqa: E402

__all__ = [
    "IMAGE_SUFFIXES",
    "DEFAULT_DECODE_BUDGET_MB",
    "DEFAULT_MAX_DECODED_MEGAPIXELS",
    "ImageInfo",
    "probe_image",
    "load_image",
    "encode_jpeg",
]

#: File name endings of the formats load_image reads (for listing folders of photos).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})

#: Most memory one decode may need, in MB (10**6 bytes): the larger of the samples
#: the decoder has to produce and the buffer Pillow decodes into.
DEFAULT_DECODE_BUDGET_MB: Final = 300
#: Larger photos are decoded at reduced size. 16 MP keeps every Pi camera's full
#: resolution (HQ 12.3 MP, Camera Module 3 11.9 MP); the model sees 160 px.
DEFAULT_MAX_DECODED_MEGAPIXELS: Final = 16.0

ImageFormat = Literal["jpeg", "png", "webp", "bmp"]

_PIL_FORMATS: Final[dict[str, ImageFormat]] = {
    "JPEG": "jpeg",
    "MPO": "jpeg",
    "PNG": "png",
    "WEBP": "webp",
    "BMP": "bmp",  # MPO: a phone's multi-picture JPEG
}
_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
# BMP DIB header sizes: OS/2 core (12), INFO (40), V2/V3 (52/56), OS/2 v2 (64), V4 (108), V5 (124).
_BMP_DIB_SIZES: Final = frozenset({12, 40, 52, 56, 64, 108, 124})
# Modes Image.reduce() shrinks directly; the rest are converted first (see _reduce).
_REDUCIBLE: Final = frozenset({"L", "LA", "RGB", "RGBA", "CMYK", "I", "F"})
# Bytes per pixel of Pillow's decode buffer (RGB is stored as 4 bytes) or of its first conversion:
# palette and bi-level images are expanded to RGB(A) before anything else.
_BUFFER_BYTES: Final[dict[str, int]] = {"L": 1, "I;16": 2, "I;16B": 2, "I;16L": 2}
_EXIF_ORIENTATION_TAG: Final = 0x0112
_STRIP_PIXELS: Final = 1_000_000  # pixels converted at a time: 4 MB of RGBA


@dataclass(frozen=True)
class ImageInfo:
    """What an image header claims, read without decoding any pixels.

    >>> ImageInfo("png", 4000, 3000).megapixels
    12.0
    """

    format: ImageFormat
    width: int
    height: int

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1_000_000


def probe_image(data: bytes | bytearray | memoryview) -> ImageInfo:
    """Read the format and size from the header of a JPEG, PNG, WebP or BMP file.

    Only the header is parsed (a lazy :func:`PIL.Image.open`); no pixels are
    decoded, so this is safe to call on untrusted input of any claimed size.

    >>> probe_image(encode_jpeg(np.zeros((1500, 2000, 3), np.uint8)))
    ImageInfo(format='jpeg', width=2000, height=1500)
    >>> probe_image(b"%PDF-1.7")
    Traceback (most recent call last):
    ...
    kiosk.reasons.ImageError: The file is not an image the kiosk can read (JPEG, PNG, WebP or BMP).

    Raises:
        ImageError: ``empty_file`` for no bytes, ``not_an_image`` for an
            unknown format, ``corrupt_image`` for a truncated or
            inconsistent header.
    """
    with _open_header(data) as im:
        return ImageInfo(_PIL_FORMATS[str(im.format)], *im.size)


def load_image(
    source: bytes | str | os.PathLike[str],
    *,
    max_megapixels: float = 50.0,
    max_decoded_megapixels: float = DEFAULT_MAX_DECODED_MEGAPIXELS,
    decode_budget_mb: float = DEFAULT_DECODE_BUDGET_MB,
) -> np.ndarray:
    """Decode a JPEG, PNG, WebP or BMP file (path or bytes) to an upright RGB array.

    The result is a C-contiguous ``H x W x 3`` uint8 array in RGB order:
    grey is expanded, transparency is composited over white, 16-bit grey is
    scaled (not truncated) to 8 bits (16-bit colour is read at its high byte
    by Pillow's decoder, at most one level darker), CMYK is converted and the
    EXIF Orientation tag is applied (JPEG APP1, PNG ``eXIf``, WebP ``EXIF``).
    A photo larger than ``max_decoded_megapixels`` comes out reduced by a
    whole factor (aspect kept), so its pixel size is the decoded one.

    >>> load_image(b"")
    Traceback (most recent call last):
    ...
    kiosk.reasons.ImageError: The file is empty.

    Args:
        source: the file's bytes, or a path to read them from.
        max_megapixels: refuse images whose *header* claims more pixels than
            this, before decoding anything.
        max_decoded_megapixels: decode larger photos at reduced size (a JPEG at
            1/2 to 1/8 scale inside libjpeg, other formats reduced right after
            decoding), so the later stages never hold more than this.
        decode_budget_mb: refuse, before decoding, an image whose decode needs
            more memory than this (the larger of the samples the decoder
            produces and Pillow's buffer, at the reduced JPEG scale).

    Raises:
        ImageError: ``file_not_found`` / ``file_unreadable`` (with ``path``),
            ``empty_file``, ``not_an_image``, ``corrupt_image``,
            ``image_too_large`` (with ``megapixels`` and ``limit``) or
            ``image_needs_too_much_memory`` (with ``megabytes`` and ``limit``).
    """
    for name, value in (
        ("max_megapixels", max_megapixels),
        ("max_decoded_megapixels", max_decoded_megapixels),
        ("decode_budget_mb", decode_budget_mb),
    ):
        if not value > 0:
            raise ValueError(f"{name} must be positive, not {value!r}")
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        data = _read_file(source)
    else:
        raise TypeError(f"source must be bytes or a path, not {type(source).__name__}")

    with _open_header(data) as im:
        width, height = im.size
        if width * height > max_megapixels * 1_000_000:
            raise ImageError("image_too_large", megapixels=width * height / 1_000_000, limit=_tidy(max_megapixels))
        fmt = _PIL_FORMATS[str(im.format)]
        if fmt == "jpeg":
            if not im.tile or data.find(b"\xff\xd9", im.tile[0].offset) == -1:
                # libjpeg fills a cut-off JPEG with grey, which the model would happily
                # score. Inside entropy-coded data FF is always followed by 00 or RSTn,
                # so FF D9 after the first scan can only be the real end of image.
                raise ImageError("corrupt_image")
            _draft(im, max_decoded_megapixels)
        needed = _decode_bytes(im)
        if needed > decode_budget_mb * 1_000_000:
            raise ImageError(
                "image_needs_too_much_memory", megabytes=math.ceil(needed / 1_000_000), limit=_tidy(decode_budget_mb)
            )
        try:
            im.load()
            orientation = _orientation(im)  # after load(): a PNG may keep eXIf after its pixels
            rgb = _to_rgb(im, max_decoded_megapixels=max_decoded_megapixels, bmp=fmt == "bmp")
            if orientation != 1:
                # exif_transpose reads the tag from the image it turns; the reduced copy lost it.
                rgb.getexif()[_EXIF_ORIENTATION_TAG] = orientation
                rgb = ImageOps.exif_transpose(rgb)
            pixels = np.array(rgb, dtype=np.uint8)  # a writable copy, C-contiguous
        except MemoryError:
            raise ImageError(
                "image_needs_too_much_memory", megabytes=math.ceil(needed / 1_000_000), limit=_tidy(decode_budget_mb)
            ) from None
        except ImageError:
            raise
        except Exception as exc:  # OSError (truncated), SyntaxError, ValueError...: Pillow on bad bytes
            raise ImageError("corrupt_image") from exc
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.size == 0:
        raise ImageError("corrupt_image")
    return pixels


def encode_jpeg(image_rgb: np.ndarray, *, quality: int = 90) -> bytes:
    """Encode an ``H x W x 3`` uint8 RGB array as JPEG bytes (for records).

    The output carries no EXIF (no orientation tag, no GPS): the pixels are
    already upright. Chroma is not subsampled (4:4:4) so lesion colours,
    which the screening relies on, survive storage.

    >>> import numpy as np
    >>> encode_jpeg(np.zeros((8, 8, 3), np.uint8))[:3]
    b'\\xff\\xd8\\xff'
    """
    if not (
        isinstance(image_rgb, np.ndarray)
        and image_rgb.dtype == np.uint8
        and image_rgb.ndim == 3
        and image_rgb.shape[2] == 3
        and image_rgb.shape[0] > 0
        and image_rgb.shape[1] > 0
    ):
        shape = getattr(image_rgb, "shape", None)
        dtype = getattr(image_rgb, "dtype", type(image_rgb).__name__)
        raise ValueError(f"expected an HxWx3 uint8 RGB array, got shape {shape} dtype {dtype}")
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise ValueError(f"quality must be an int from 1 to 100, not {quality!r}")
    if max(image_rgb.shape[:2]) > 65500:  # libjpeg's maximum dimension
        raise ValueError(f"image is too large for JPEG: {image_rgb.shape[1]}x{image_rgb.shape[0]}")
    bgr = np.ascontiguousarray(image_rgb[..., ::-1])
    params = [
        cv2.IMWRITE_JPEG_QUALITY, quality,
        cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
    ]  # fmt: skip
    try:
        ok, buf = cv2.imencode(".jpg", bgr, params)
    except cv2.error as exc:
        raise KioskError("internal_error") from exc
    if not ok:
        raise KioskError("internal_error")
    return buf.tobytes()


# --------------------------------------------------------------------------- files


def _read_file(path: str | os.PathLike[str]) -> bytes:
    shown = os.fsdecode(os.fspath(path))
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError, ValueError):  # ValueError: NUL in the path
        raise ImageError("file_not_found", path=shown) from None
    except OSError as exc:
        raise ImageError("file_unreadable", path=shown) from exc
    if not stat.S_ISREG(info.st_mode):
        # Directories, FIFOs and devices: reading them blocks or never ends.
        raise ImageError("file_unreadable", path=shown)
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:  # removed between stat() and open()
        raise ImageError("file_not_found", path=shown) from None
    except OSError as exc:  # PermissionError, IsADirectoryError, EIO...
        raise ImageError("file_unreadable", path=shown) from exc


def _tidy(number: float) -> float | int:
    """50.0 -> 50, so messages read "the limit is 50 MP"."""
    return int(number) if float(number).is_integer() else number


# --------------------------------------------------------------------------- headers


def _sniff(data: bytes) -> ImageFormat | None:
    """Which of our formats the first bytes claim, so a damaged one is "corrupt", anything else "not an image"."""
    if data.startswith(_PNG_SIGNATURE) or (2 <= len(data) < len(_PNG_SIGNATURE) and _PNG_SIGNATURE.startswith(data)):
        return "png"
    if data.startswith(b"\xff\xd8"):
        return "jpeg"
    if data.startswith(b"RIFF") and (len(data) < 12 or data[8:12] == b"WEBP"):
        return "webp"  # other RIFF forms (WAVE, AVI) are not images
    if data.startswith(b"BM") and (len(data) < 18 or int.from_bytes(data[14:18], "little") in _BMP_DIB_SIZES):
        return "bmp"  # "BM" alone is weak evidence; the DIB header size is the real magic
    return None


def _open_header(data: bytes | bytearray | memoryview) -> ImageFile.ImageFile:
    """Open lazily (header only) with the one Pillow plugin the magic bytes name."""
    if not isinstance(data, bytes):
        data = bytes(data)
    if not data:
        raise ImageError("empty_file")
    fmt = _sniff(data)
    if fmt is None:
        raise ImageError("not_an_image")
    plugin = fmt.upper()
    try:
        with warnings.catch_warnings():  # "Corrupt EXIF data" while reading the header is no news to anyone
            warnings.simplefilter("ignore")
            im = Image.open(io.BytesIO(data), formats=[plugin])
    except Image.DecompressionBombError:
        # Pillow's own ceiling (2 x Image.MAX_IMAGE_PIXELS, 179 MP unless changed) refused the
        # header; open it again past that check only to read the size, which load_image refuses.
        try:
            im = Image.OPEN[plugin][0](io.BytesIO(data), "")
        except Exception as exc:
            raise ImageError("corrupt_image") from exc
    except Exception as exc:  # UnidentifiedImageError, SyntaxError, struct.error...: a damaged header
        raise ImageError("corrupt_image") from exc
    if not isinstance(im, ImageFile.ImageFile) or str(im.format) not in _PIL_FORMATS or 0 in im.size:
        im.close()
        raise ImageError("corrupt_image")
    return im


def _draft(im: ImageFile.ImageFile, max_megapixels: float) -> None:
    """Ask libjpeg to decode at the smallest 1/2, 1/4 or 1/8 scale that brings the photo under the cap."""
    width, height = im.size
    excess = math.sqrt(width * height / (max_megapixels * 1_000_000))
    if excess <= 1:
        return
    scale = next((s for s in (2, 4, 8) if s >= excess), 8)
    im.draft(None, (max(1, width // scale), max(1, height // scale)))


def _decode_bytes(im: ImageFile.ImageFile) -> int:
    """Memory one decode needs: the larger of the samples decoded and Pillow's buffer for them."""
    width, height = im.size
    bits = 16 if any(";16" in str(tile.args) for tile in im.tile) else 8  # 16-bit PNG samples
    samples = width * height * len(im.getbands()) * bits // 8
    return max(samples, width * height * _BUFFER_BYTES.get(im.mode, 4))


def _orientation(im: Image.Image) -> int:
    """The EXIF Orientation (1-8); 1 when absent or damaged: bad metadata must not cost a usable photo."""
    try:
        with warnings.catch_warnings():  # as in _open_header: damaged EXIF only means "upright"
            warnings.simplefilter("ignore")
            value = im.getexif().get(_EXIF_ORIENTATION_TAG, 1)
    except Exception:  # noqa: BLE001 - any damage in the EXIF block means "upright"
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


# --------------------------------------------------------------------------- pixels


def _to_rgb(im: Image.Image, *, max_decoded_megapixels: float, bmp: bool) -> Image.Image:
    """Any decoded mode to 8-bit RGB, shrunk by a whole factor under the cap.

    Converted in strips of rows: a full-size RGBA photo converted or reduced at
    once (Pillow's reduce() premultiplies alpha into a full copy) would need
    twice its memory.
    """
    if im.mode.startswith("I") or im.mode == "F":
        im = _grey_to_8bit(im)
    width, height = im.size
    factor = max(1, math.ceil(math.sqrt(width * height / (max_decoded_megapixels * 1_000_000))))
    if im.mode == "RGB" and factor == 1:
        return im
    # Many 32-bit BMP writers leave the fourth byte 0 meaning "unused"; browsers show
    # such files opaque, and so do we. getextrema() reads the bands without copying them.
    opaque = bmp and im.mode == "RGBA" and im.getextrema()[3] == (0, 0)  # type: ignore[misc]
    out = Image.new("RGB", ((width + factor - 1) // factor, (height + factor - 1) // factor))
    step = factor * max(1, _STRIP_PIXELS // (width * factor))
    for top in range(0, height, step):
        strip = _flatten(im.crop((0, top, width, min(height, top + step))), opaque=opaque)
        out.paste(strip.reduce(factor) if factor > 1 else strip, (0, top // factor))  # box average, like INTER_AREA
    return out


def _flatten(strip: Image.Image, *, opaque: bool) -> Image.Image:
    """One strip to RGB; transparency over white (a transparent PNG would otherwise turn
    black, its hidden colour often being 0, and a lesion on it would look like a dark photo)."""
    if strip.mode in ("P", "PA", "1"):
        strip = strip.convert("RGBA" if strip.mode == "PA" or "transparency" in strip.info else "RGB")
    if strip.mode in ("RGBA", "LA") and not opaque:
        rgba = strip.convert("RGBA")
        out = Image.new("RGB", strip.size, (255, 255, 255))
        out.paste(rgba, (0, 0), rgba)
        return out
    return strip if strip.mode == "RGB" else strip.convert("RGB")


def _grey_to_8bit(im: Image.Image) -> Image.Image:
    """16-bit (or 32-bit integer) grey to 8 bits, scaled with rounding (x / 257): ">> 8" would darken.

    Converted in bands of rows so a large photo needs no 4-byte copy of itself.
    """
    grey = np.asarray(im)
    out = np.empty(grey.shape, np.uint8)
    step = max(1, 4_000_000 // max(1, grey.shape[1]))
    for top in range(0, grey.shape[0], step):
        rows = np.clip(grey[top : top + step].astype(np.int64), 0, 65535)
        out[top : top + step] = (rows * 255 + 32767) // 65535
    return Image.fromarray(out)
