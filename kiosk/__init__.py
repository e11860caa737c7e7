"""Offline melanoma screening kiosk: a referral aid for health workers, never a diagnosis."""

__version__ = "0.1.0"
