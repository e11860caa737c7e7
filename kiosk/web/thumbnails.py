"""A stored screening's photo, shrunk for where it is shown: the slip, the follow-up page, History's thumbnails.

``GET /photos/<id>/<size>.jpg`` with ``size`` one of :data:`SIZES`. Read like
the result itself (:func:`kiosk.web.access.may_read`: the session that took it,
or a PIN session); anyone else gets 404, as if it did not exist. The photo is
decoded at reduced size inside libjpeg (Pillow's ``draft``), so a 12 MP photo
becomes a thumbnail without its full-size pixels in memory. Thumbnails are
kept in a small in-memory cache (:class:`ThumbnailCache`, bounded in bytes),
never on the SD card, so a photo removed by retention leaves no copy behind.

>>> cache = ThumbnailCache(max_bytes=10)
>>> cache.put(("a", "thumb", 1), b"12345"); cache.put(("b", "thumb", 1), b"123456")
>>> cache.get(("a", "thumb", 1)), cache.get(("b", "thumb", 1))
(None, b'123456')
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from pathlib import Path

from flask import Blueprint, Response, current_app
from flask.typing import ResponseReturnValue
from PIL import Image, UnidentifiedImageError

from .access import may_read
from .context import kiosk
from .errors import WebError

__all__ = ["SIZES", "ThumbnailCache", "bp", "shrunk_jpeg"]

bp = Blueprint("thumbnails", __name__)

#: size name -> the longest side in pixels. "slip": a 58 mm thermal head prints 384 dots across.
SIZES: dict[str, int] = {"thumb": 96, "slip": 384, "view": 640}
JPEG_QUALITY = 82
CACHE_BYTES = 2 * 2**20  # ~500 thumbnails: a few History pages, a fraction of the Pi's memory
CACHED_SIZES = frozenset({"thumb"})  # the others are opened once per slip or follow-up
EXTENSION = "kiosk_thumbnails"

CacheKey = tuple[str, str, int]  # id, size, photo mtime in ns (a replaced photo is not served stale)


class ThumbnailCache:
    """Small JPEGs by key, least recently used dropped first once over ``max_bytes``. Thread-safe."""

    def __init__(self, *, max_bytes: int = CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[CacheKey, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: CacheKey) -> bytes | None:
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
            return data

    def put(self, key: CacheKey, data: bytes) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            self._bytes -= len(old) if old is not None else 0
            self._items[key] = data
            self._bytes += len(data)
            while self._bytes > self.max_bytes and self._items:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= len(dropped)


def shrunk_jpeg(path: Path, *, longest_side: int) -> bytes:
    """The photo at ``path`` as a JPEG whose longest side is at most ``longest_side`` pixels."""
    with Image.open(path) as opened:
        opened.draft("RGB", (longest_side, longest_side))  # JPEG: decode at 1/2..1/8 size in libjpeg
        image = opened.convert("RGB")
    image.thumbnail((longest_side, longest_side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return out.getvalue()


def _cache() -> ThumbnailCache:
    cache = current_app.extensions.get(EXTENSION)
    if cache is None:
        cache = current_app.extensions.setdefault(EXTENSION, ThumbnailCache())
    assert isinstance(cache, ThumbnailCache)
    return cache


@bp.get("/photos/<sid>/<size>.jpg")
def photo(sid: str, size: str) -> ResponseReturnValue:
    if size not in SIZES or not may_read(sid):
        raise WebError(404, "not_found")  # not 403: another patient's id is not confirmed to exist
    records = kiosk().records
    stored = records.get(sid) if records is not None else None
    if stored is None or stored.image_path is None:
        raise WebError(404, "not_found")
    try:
        mtime = stored.image_path.stat().st_mtime_ns
        key = (stored.id, size, mtime)
        data = _cache().get(key) if size in CACHED_SIZES else None
        if data is None:
            data = shrunk_jpeg(stored.image_path, longest_side=SIZES[size])
            if size in CACHED_SIZES:
                _cache().put(key, data)
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError):
        raise WebError(404, "not_found") from None  # removed by retention meanwhile, or damaged
    return Response(data, mimetype="image/jpeg", headers={"Cache-Control": "private, no-store"})
