"""The MJPEG live preview as a streaming response that never lets a slow reader hold a server thread.

Each preview viewer keeps one waitress thread for as long as it watches. A
viewer that stops reading (a stalled browser tab, a hostile client) would
make waitress block that thread once its output buffer is full, for minutes.
So the stream watches how much output waitress still holds for the client:
past ``MAX_QUEUED`` bytes it skips frames instead of queueing more, and a
viewer that stays that far behind for ``SLOW_READER_TIMEOUT`` seconds has
its stream ended, which frees the thread and the station's preview slot.

>>> list(mjpeg_parts(iter([b"\\xff\\xd8jpeg"]), backlog=None))
[b'--frame\\r\\nContent-Type: image/jpeg\\r\\nContent-Length: 6\\r\\n\\r\\n\\xff\\xd8jpeg\\r\\n']
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["BOUNDARY", "MAX_QUEUED", "SLOW_READER_TIMEOUT", "mjpeg_parts", "waitress_backlog"]

_LOG = logging.getLogger(__name__)

BOUNDARY = "frame"
MAX_QUEUED = 1 * 2**20  # about 30 preview frames not yet sent to the viewer
SLOW_READER_TIMEOUT = 5.0  # seconds a viewer may stay MAX_QUEUED behind before its stream ends


def waitress_backlog(environ: dict[str, Any]) -> Callable[[], int] | None:
    """A function giving the bytes waitress holds unsent for this request's client; None outside waitress.

    waitress has no public call for it. Its documented
    ``waitress.client_disconnected`` environ entry is a bound method of the
    request's channel, whose ``total_outbufs_len`` is that count (waitress 2
    and 3). Anything else (the Flask test client) gets None: no check.
    """
    check = environ.get("waitress.client_disconnected")
    channel = getattr(check, "__self__", None)
    if channel is None or not isinstance(getattr(channel, "total_outbufs_len", None), int):
        return None
    return lambda: int(channel.total_outbufs_len)


def mjpeg_parts(
    frames: Iterator[bytes],
    *,
    backlog: Callable[[], int] | None,
    clock: Callable[[], float] = time.monotonic,
    log: Callable[[str], None] = _LOG.info,
) -> Iterator[bytes]:
    """``multipart/x-mixed-replace`` parts of ``frames``, skipping frames for a viewer that falls behind."""
    behind_since: float | None = None
    try:
        for jpeg in frames:
            if backlog is not None and backlog() > MAX_QUEUED:
                now = clock()
                behind_since = now if behind_since is None else behind_since
                if now - behind_since > SLOW_READER_TIMEOUT:
                    log(f"preview: a viewer stopped reading for {SLOW_READER_TIMEOUT:g} s; its stream was ended")
                    return
                continue  # this viewer gets the next frame it has room for
            behind_since = None
            head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
            yield head + jpeg + b"\r\n"
    finally:
        close = getattr(frames, "close", None)
        if close is not None:
            close()  # the viewer left: its preview slot is free again
