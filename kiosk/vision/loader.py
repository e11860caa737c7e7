"""Load an uploaded or captured photo safely, as an upright RGB uint8 array.

The header is parsed by hand first (:func:`probe_image`), so an image that
claims too many pixels is refused before OpenCV allocates anything: a 100 kB
PNG can claim 20000x20000 pixels and take 1.2 GB to decode. Only then is the
file decoded with OpenCV and normalised: grey, alpha (over white), 16-bit and
CMYK inputs all come out as 3-channel 8-bit RGB, turned upright by the EXIF
Orientation tag. Every problem with the bytes is an :class:`ImageError`.

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

import os
import stat
import struct
import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final, Literal

# Defence in depth against decompression bombs: OpenCV reads its own pixel
# limit from the environment once, when cv2 is first imported, so it must be
# set before the import below. Caveat: if anything imported cv2 before this
# module, the variable has no effect in this process (OpenCV then keeps
# whatever it read, by default 2**30 pixels); the header check in
# load_image() is the real defence and does not depend on it. A value the
# deployer already set is kept.
OPENCV_PIXEL_LIMIT_VAR: Final = "OPENCV_IO_MAX_IMAGE_PIXELS"
DEFAULT_OPENCV_PIXEL_LIMIT: Final = 100_000_000  # twice load_image's default limit
CV2_IMPORTED_FIRST: Final = "cv2" in sys.modules  # True: the limit above may not apply
os.environ.setdefault(OPENCV_PIXEL_LIMIT_VAR, str(DEFAULT_OPENCV_PIXEL_LIMIT))

import cv2  # noqa: E402 - must follow the environment set-up above
import numpy as np  # noqa: E402

from ..reasons import ImageError, KioskError  # noqa: E402

__all__ = ["IMAGE_SUFFIXES", "ImageInfo", "probe_image", "load_image", "encode_jpeg"]

#: File name endings of the formats load_image reads (for listing folders of photos).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})

ImageFormat = Literal["jpeg", "png", "webp", "bmp"]

_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
# Allowed bit depths per PNG colour type (PNG spec, IHDR table).
_PNG_DEPTHS: Final[dict[int, tuple[int, ...]]] = {
    0: (1, 2, 4, 8, 16),  # greyscale
    2: (8, 16),  # truecolour
    3: (1, 2, 4, 8),  # palette
    4: (8, 16),  # greyscale + alpha
    6: (8, 16),  # truecolour + alpha
}
# SOFn frame headers carry the size; C4 (DHT), C8 (JPG) and CC (DAC) share the range.
_JPEG_SOF: Final = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE: Final = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RST0-7: no length
_JPEG_SOS: Final = 0xDA
_JPEG_EOI: Final = 0xD9
# BMP DIB header sizes: OS/2 core (12), INFO (40), V2/V3 (52/56), OS/2 v2 (64), V4 (108), V5 (124).
_BMP_CORE_HEADER: Final = 12
_BMP_INFO_HEADERS: Final = frozenset({40, 52, 56, 64, 108, 124})
_EXIF_ORIENTATION_TAG: Final = 0x0112


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

    Only the first bytes are parsed; no pixels are decoded, so this is safe
    to call on untrusted input of any claimed size.

    >>> probe_image(bytes.fromhex(
    ...     "89504e470d0a1a0a0000000d49484452000007d0000005dc08060000007a65152b"))
    ImageInfo(format='png', width=2000, height=1500)
    >>> probe_image(b"%PDF-1.7")
    Traceback (most recent call last):
    ...
    kiosk.reasons.ImageError: The file is not an image the kiosk can read (JPEG, PNG, WebP or BMP).

    Raises:
        ImageError: ``empty_file`` for no bytes, ``not_an_image`` for an
            unknown format, ``corrupt_image`` for a truncated or
            inconsistent header.
    """
    if not isinstance(data, bytes):
        data = bytes(data)  # bytearray / memoryview: slicing must give bytes
    if not data:
        raise ImageError("empty_file")
    if data.startswith(_PNG_SIGNATURE):
        return _probe_png(data)
    if data.startswith(b"\xff\xd8"):
        return _probe_jpeg(data)
    if data.startswith(b"BM"):
        return _probe_bmp(data)
    if data.startswith(b"RIFF") and len(data) < 12:
        raise ImageError("corrupt_image")  # cut off before the form type says what it is
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return _probe_webp(data)  # other RIFF forms (WAVE, AVI) fall through
    if 2 <= len(data) < len(_PNG_SIGNATURE) and _PNG_SIGNATURE.startswith(data):
        raise ImageError("corrupt_image")  # a PNG cut off inside its signature
    raise ImageError("not_an_image")


def load_image(source: bytes | str | os.PathLike[str], *, max_megapixels: float = 50.0) -> np.ndarray:
    """Decode a JPEG, PNG, WebP or BMP file (path or bytes) to an upright RGB array.

    The result is a C-contiguous ``H x W x 3`` uint8 array in RGB order:
    grey is expanded, transparency is composited over white, 16-bit samples
    are scaled (not truncated) to 8 bits, CMYK is converted and the EXIF
    Orientation tag is applied (JPEG APP1, PNG ``eXIf``, WebP ``EXIF``).

    >>> load_image(b"")
    Traceback (most recent call last):
    ...
    kiosk.reasons.ImageError: The file is empty.

    Args:
        source: the file's bytes, or a path to read them from.
        max_megapixels: refuse images whose *header* claims more pixels than
            this, before decoding anything. It is also capped by OpenCV's own
            limit (``OPENCV_IO_MAX_IMAGE_PIXELS``, 100 MP unless set), since
            OpenCV would refuse those anyway.

    Raises:
        ImageError: ``file_not_found`` / ``file_unreadable`` (with ``path``),
            ``empty_file``, ``not_an_image``, ``corrupt_image``, or
            ``image_too_large`` (with ``megapixels`` and ``limit``).
    """
    if not max_megapixels > 0:
        raise ValueError(f"max_megapixels must be positive, not {max_megapixels!r}")
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        data = _read_file(source)
    else:
        raise TypeError(f"source must be bytes or a path, not {type(source).__name__}")

    info = probe_image(data)
    limit_mp = max_megapixels
    opencv_limit = _opencv_pixel_limit()
    if opencv_limit is not None:
        limit_mp = min(limit_mp, opencv_limit / 1_000_000)
    if info.width * info.height > limit_mp * 1_000_000:
        raise ImageError("image_too_large", megapixels=info.megapixels, limit=_tidy(limit_mp))
    if info.format == "jpeg" and not _jpeg_has_eoi(data):
        # OpenCV 4.x decodes a cut-off JPEG with a grey lower part, which the
        # model would happily score; OpenCV 5 refuses it. Refuse it everywhere.
        raise ImageError("corrupt_image")

    flags = cv2.IMREAD_UNCHANGED  # keeps alpha and 16 bits; also skips EXIF rotation (done below)
    if info.format == "bmp" and _u32le(data, 14) == _BMP_CORE_HEADER:
        # OpenCV decodes old OS/2 (12-byte header) BMPs as grey under
        # IMREAD_UNCHANGED; forcing colour gives the right pixels (no alpha exists there).
        flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    try:
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except MemoryError:
        raise
    except Exception as exc:  # cv2.error and anything else OpenCV throws on bad bytes
        raise ImageError("corrupt_image") from exc
    if decoded is None or decoded.size == 0:
        raise ImageError("corrupt_image")
    if decoded.shape[:2] != (info.height, info.width):
        raise ImageError("corrupt_image")  # the pixels disagree with the header we checked

    rgb = _to_rgb8(decoded, opaque_if_alpha_zero=info.format == "bmp")
    transform = _ORIENTATION_TRANSFORMS.get(_exif_orientation(data, info.format))
    if transform is not None:
        rgb = transform(rgb)
    return np.ascontiguousarray(rgb, dtype=np.uint8)


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


def _opencv_pixel_limit() -> int | None:
    """The pixel limit OpenCV was most likely given, or None if it is not a plain number."""
    value = os.environ.get(OPENCV_PIXEL_LIMIT_VAR, "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def _tidy(number: float) -> float | int:
    """50.0 -> 50, so messages read "the limit is 50 MP"."""
    return int(number) if float(number).is_integer() else number


# --------------------------------------------------------------------------- headers


def _u16le(data: bytes, pos: int) -> int:
    return int.from_bytes(data[pos : pos + 2], "little")


def _u32le(data: bytes, pos: int) -> int:
    return int.from_bytes(data[pos : pos + 4], "little")


def _probe_png(data: bytes) -> ImageInfo:
    # Signature (8), then IHDR must be the first chunk: length, type, 13 bytes, CRC.
    if len(data) < 33:
        raise ImageError("corrupt_image")
    length, chunk_type = struct.unpack(">I4s", data[8:16])
    if chunk_type != b"IHDR" or length != 13:
        raise ImageError("corrupt_image")
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", data[16:29])
    (crc,) = struct.unpack(">I", data[29:33])
    if zlib.crc32(data[12:29]) != crc:
        raise ImageError("corrupt_image")
    if not (0 < width < 2**31 and 0 < height < 2**31):
        raise ImageError("corrupt_image")
    if depth not in _PNG_DEPTHS.get(colour, ()) or compression or filtering or interlace not in (0, 1):
        raise ImageError("corrupt_image")
    return ImageInfo("png", width, height)


def _jpeg_segments(data: bytes) -> Iterator[tuple[int, int, int]]:
    """Yield ``(marker, payload_start, payload_end)`` after SOI, up to SOS or EOI.

    Mirrors libjpeg's marker reader: stray bytes and FF 00 pairs between
    segments are skipped and any number of FF fill bytes may precede a
    marker, so the frame header found here is the one libjpeg will use.
    """
    pos, end = 2, len(data)
    while True:
        while True:
            while pos < end and data[pos] != 0xFF:
                pos += 1
            while pos < end and data[pos] == 0xFF:
                pos += 1
            if pos >= end:
                raise ImageError("corrupt_image")  # ran out before SOS/EOI
            marker = data[pos]
            pos += 1
            if marker != 0x00:
                break
        if marker in _JPEG_STANDALONE:
            continue
        if marker == _JPEG_EOI:
            yield marker, pos, pos
            return
        if marker == 0xD8:
            raise ImageError("corrupt_image")  # a second SOI: libjpeg refuses it
        if pos + 2 > end:
            raise ImageError("corrupt_image")
        length = int.from_bytes(data[pos : pos + 2], "big")
        if length < 2 or pos + length > end:
            raise ImageError("corrupt_image")
        yield marker, pos + 2, pos + length
        if marker == _JPEG_SOS:
            return
        pos += length


def _probe_jpeg(data: bytes) -> ImageInfo:
    for marker, start, end in _jpeg_segments(data):
        if marker in _JPEG_SOF:
            if end - start < 6:
                raise ImageError("corrupt_image")
            _precision, height, width, components = struct.unpack(">BHHB", data[start : start + 6])
            if components == 0 or end - start != 6 + 3 * components:
                raise ImageError("corrupt_image")
            if width == 0 or height == 0:  # height 0 means "see DNL", which libjpeg does not support
                raise ImageError("corrupt_image")
            return ImageInfo("jpeg", width, height)
    raise ImageError("corrupt_image")  # SOS or EOI before any frame header


def _jpeg_has_eoi(data: bytes) -> bool:
    """Whether an EOI marker follows the first scan (i.e. the file is not cut off)."""
    try:
        for marker, _start, end in _jpeg_segments(data):
            if marker == _JPEG_SOS:
                # Inside entropy-coded data FF is always followed by 00 or RSTn,
                # so FF D9 there can only be the real end of image.
                return data.find(b"\xff\xd9", end) != -1
    except ImageError:
        return False
    return False


def _probe_bmp(data: bytes) -> ImageInfo:
    # File header: "BM", file size, 2 reserved words, pixel offset; then the DIB header size.
    if len(data) < 18:
        raise ImageError("corrupt_image")
    pixel_offset, header_size = _u32le(data, 10), _u32le(data, 14)
    if header_size == _BMP_CORE_HEADER:
        if len(data) < 26:
            raise ImageError("corrupt_image")
        width, height, planes, bits = struct.unpack("<HHHH", data[18:26])
        valid_bits: tuple[int, ...] = (1, 4, 8, 24)
    elif header_size in _BMP_INFO_HEADERS:
        if len(data) < 34:
            raise ImageError("corrupt_image")
        width, height, planes, bits = struct.unpack("<iiHH", data[18:30])
        valid_bits = (1, 4, 8, 16, 24, 32)
    else:
        raise ImageError("not_an_image")  # "BM" alone is weak evidence; the DIB size is the real magic
    if width <= 0 or height == 0 or planes != 1 or bits not in valid_bits:
        raise ImageError("corrupt_image")
    if pixel_offset < 14 + header_size:
        raise ImageError("corrupt_image")
    return ImageInfo("bmp", width, abs(height))  # negative height = rows stored top-down


def _probe_webp(data: bytes) -> ImageInfo:
    # RIFF header (12), then the first chunk: FourCC and payload size.
    if len(data) < 20 or _u32le(data, 4) < 12:
        raise ImageError("corrupt_image")
    fourcc, size = data[12:16], _u32le(data, 16)
    if fourcc == b"VP8 ":  # lossy: 3-byte frame tag, start code, 14-bit sizes
        if size < 10 or len(data) < 30:
            raise ImageError("corrupt_image")
        if data[20] & 1 or data[23:26] != b"\x9d\x01\x2a":  # must be a key frame
            raise ImageError("corrupt_image")
        width, height = _u16le(data, 26) & 0x3FFF, _u16le(data, 28) & 0x3FFF
    elif fourcc == b"VP8L":  # lossless: signature 0x2F, then 14+14 bits of size-1
        if size < 5 or len(data) < 25 or data[20] != 0x2F:
            raise ImageError("corrupt_image")
        bits = _u32le(data, 21)
        if bits >> 29:  # version must be 0
            raise ImageError("corrupt_image")
        width, height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    elif fourcc == b"VP8X":  # extended: flags, reserved, 24-bit canvas size-1
        if size < 10 or len(data) < 30:
            raise ImageError("corrupt_image")
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
    else:
        raise ImageError("corrupt_image")
    if width == 0 or height == 0:
        raise ImageError("corrupt_image")
    return ImageInfo("webp", width, height)


# --------------------------------------------------------------------------- EXIF orientation


def _exif_orientation(data: bytes, fmt: str) -> int:
    """The EXIF Orientation (1-8) stored in the file; 1 when absent or unreadable.

    Damaged metadata must not cost a usable photo, so every failure here means "upright".
    """
    try:
        tiff = _find_exif(data, fmt)
        return _tiff_orientation(tiff) if tiff else 1
    except (ImageError, struct.error, IndexError, ValueError):
        return 1


def _find_exif(data: bytes, fmt: str) -> bytes | None:
    """The EXIF TIFF block (starting "II*\\0" or "MM\\0*"), wherever the format keeps it."""
    if fmt == "jpeg":
        for marker, start, end in _jpeg_segments(data):
            if marker == 0xE1 and data.startswith(b"Exif\x00", start):
                return data[start + 6 : end]
            if marker == _JPEG_SOS:
                break
        return None
    if fmt == "png":
        # eXIf may follow IDAT; OpenCV and Pillow honour it anywhere before IEND.
        pos = len(_PNG_SIGNATURE)
        while pos + 8 <= len(data):
            length, chunk_type = struct.unpack(">I4s", data[pos : pos + 8])
            if chunk_type == b"eXIf":
                return _strip_exif_prefix(data[pos + 8 : pos + 8 + length])
            if chunk_type == b"IEND":
                break
            pos += 12 + length  # length, type, data, CRC
        return None
    if fmt == "webp" and data[12:16] == b"VP8X" and data[20] & 0x08:  # the EXIF flag
        pos = 12
        while pos + 8 <= len(data):
            fourcc, size = data[pos : pos + 4], _u32le(data, pos + 4)
            if fourcc == b"EXIF":
                return _strip_exif_prefix(data[pos + 8 : pos + 8 + size])
            pos += 8 + size + (size & 1)  # chunks are padded to even sizes
    return None


def _strip_exif_prefix(block: bytes) -> bytes:
    # Some writers copy the JPEG "Exif\0\0" preamble into PNG/WebP too.
    return block[6:] if block.startswith(b"Exif\x00") else block


def _tiff_orientation(tiff: bytes) -> int:
    if tiff[:2] == b"II":
        order = "<"
    elif tiff[:2] == b"MM":
        order = ">"
    else:
        return 1
    magic, ifd = struct.unpack(order + "HI", tiff[2:8])
    if magic != 42:
        return 1
    (count,) = struct.unpack(order + "H", tiff[ifd : ifd + 2])
    for i in range(count):
        entry = ifd + 2 + 12 * i
        if entry + 12 > len(tiff):
            break
        tag, kind = struct.unpack(order + "HH", tiff[entry : entry + 4])
        if tag != _EXIF_ORIENTATION_TAG:
            continue
        if kind == 3:  # SHORT, as the standard says
            (value,) = struct.unpack(order + "H", tiff[entry + 8 : entry + 10])
        elif kind == 4:  # LONG, written by a few tools
            (value,) = struct.unpack(order + "I", tiff[entry + 8 : entry + 12])
        else:
            return 1
        return value if 1 <= value <= 8 else 1
    return 1


def _transpose(a: np.ndarray) -> np.ndarray:
    return a.transpose(1, 0, 2)


# EXIF orientation -> how to turn the stored pixels upright (1 = already upright).
_ORIENTATION_TRANSFORMS: Final[dict[int, Callable[[np.ndarray], np.ndarray]]] = {
    2: lambda a: a[:, ::-1],  # mirrored left-right
    3: lambda a: a[::-1, ::-1],  # rotated 180
    4: lambda a: a[::-1],  # mirrored top-bottom
    5: _transpose,  # mirrored along the main diagonal
    6: lambda a: _transpose(a)[:, ::-1],  # needs 90 degrees clockwise
    7: lambda a: _transpose(a[::-1, ::-1]),  # mirrored along the anti-diagonal
    8: lambda a: _transpose(a)[::-1],  # needs 90 degrees counter-clockwise
}


# --------------------------------------------------------------------------- pixels


def _to_rgb8(decoded: np.ndarray, *, opaque_if_alpha_zero: bool) -> np.ndarray:
    """OpenCV's BGR / BGRA / grey output, 8 or 16 bits, to 3-channel 8-bit RGB."""
    if decoded.dtype not in (np.uint8, np.uint16):
        raise ImageError("corrupt_image")  # none of our four formats decodes to anything else
    if decoded.ndim == 3 and decoded.shape[2] == 1:
        decoded = decoded[:, :, 0]
    if decoded.ndim == 2:
        return cv2.cvtColor(_to_8bit(decoded), cv2.COLOR_GRAY2RGB)
    if decoded.ndim != 3 or decoded.shape[2] not in (3, 4):
        raise ImageError("corrupt_image")
    if decoded.shape[2] == 4:
        alpha = decoded[:, :, 3]
        # Many 32-bit BMP writers leave the fourth byte 0 meaning "unused";
        # browsers show such files opaque, and so do we.
        if opaque_if_alpha_zero and not alpha.any():
            decoded = decoded[:, :, :3]
        else:
            decoded = _composite_over_white(decoded)
    return cv2.cvtColor(_to_8bit(decoded), cv2.COLOR_BGR2RGB)


def _composite_over_white(bgra: np.ndarray) -> np.ndarray:
    """Blend colour over a white background by alpha, in integers, one channel at a time.

    A transparent PNG would otherwise turn black (its hidden colour is often
    0) and a lesion photo on a transparent canvas would look like a dark image.
    """
    top = int(np.iinfo(bgra.dtype).max)
    alpha = bgra[:, :, 3].astype(np.uint32)
    if alpha.min() == top:
        return bgra[:, :, :3]
    # c*a/top + top*(top-a)/top, rounded; the numerator stays below 2**32 for 16 bits.
    background = (top - alpha) * top + top // 2
    out = np.empty(bgra.shape[:2] + (3,), bgra.dtype)
    for c in range(3):
        out[:, :, c] = (bgra[:, :, c] * alpha + background) // top
    return out


def _to_8bit(pixels: np.ndarray) -> np.ndarray:
    if pixels.dtype == np.uint8:
        return np.ascontiguousarray(pixels)
    # Scale 0..65535 to 0..255 with rounding (x / 257); ">> 8" would darken and band.
    return ((pixels.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
