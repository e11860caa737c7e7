"""Photos as files named by their sha256, outside the database.

The same photo imported twice is one file; a photo is written atomically
(temp file, fsync, rename) before the row that names it is committed, so a
power cut leaves at worst an unreferenced complete file, never a row that
points at half a photo. At provincial scale this folder is what moves to an
object store; the database keeps only the hash.

>>> import tempfile
>>> photos = PhotoStore(tempfile.mkdtemp())
>>> sha = photos.put(b"jpeg bytes"); photos.put(b"jpeg bytes") == sha, photos.get(sha)
(True, b'jpeg bytes')
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..storage import atomic_write_bytes

__all__ = ["PhotoStore"]

_SHA_RE = re.compile(r"[0-9a-f]{64}")


class PhotoStore:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        if not _SHA_RE.fullmatch(sha256):
            raise ValueError(f"not a sha256: {sha256!r}")
        return self.root / sha256[:2] / f"{sha256}.jpg"

    def put(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        path = self.path(sha)
        if not path.exists():
            atomic_write_bytes(path, data, mode=0o600)  # health data: the console's user only
        return sha

    def put_many(self, photos: Iterable[bytes], *, workers: int = 8) -> list[str]:
        """:meth:`put` for many photos at once: their fsyncs overlap, so the file system commits them together.

        (One at a time, a bulk import spent ~10 ms per photo waiting for its own journal commit.)
        """
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(self.put, photos))

    def get(self, sha256: str) -> bytes | None:
        try:
            return self.path(sha256).read_bytes()
        except (OSError, ValueError):
            return None

    def repair(self) -> int:
        """Remove temp files of writes cut short; returns how many."""
        removed = 0
        for tmp in self.root.glob("*/.*.tmp"):
            tmp.unlink(missing_ok=True)
            removed += 1
        return removed
