"""Offline melanoma screening kiosk: a referral aid for health workers, never a diagnosis."""

import os

# OpenCV prints its own WARN lines (e.g. while probing for a USB camera that is not
# there); the kiosk reports such conditions itself, in one translatable line.
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")

__version__ = "0.1.0"
