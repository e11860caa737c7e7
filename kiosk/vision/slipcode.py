"""Read a slip's QR code from a camera picture: the returning patient holds the slip in front of the lens.

OpenCV's QR detector finds and decodes the code; the slip's QR holds the nine
digits of the slip code (:mod:`kiosk.records.codes`), so anything that is not
a valid code (another QR code, a damaged read) gives None.

>>> import numpy as np
>>> read_slip_code(np.full((240, 320, 3), 200, np.uint8)) is None
True
"""

from __future__ import annotations

import re

import cv2
import numpy as np

from ..records import codes

__all__ = ["read_slip_code"]

MAX_SIDE = 1280  # a 12 MP still is shrunk first: the slip fills much of the frame, and detection is faster


def read_slip_code(image: np.ndarray) -> str | None:
    """The nine-digit slip code in the RGB uint8 ``image``'s QR code, or None when there is none."""
    height, width = image.shape[:2]
    scale = MAX_SIDE / max(height, width)
    if scale < 1:
        image = cv2.resize(image, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    try:
        text, _, _ = cv2.QRCodeDetector().detectAndDecode(grey)
    except cv2.error:
        return None
    found = re.search(r"[0-9][0-9 \-]{7,14}[0-9]", text or "")  # a station prefix may come before it
    if found is None or not codes.is_valid(found.group(0)):
        return None
    return codes.normalise(found.group(0))
