"""The one exception every update step raises: :class:`UpdateError`, a coded, translatable refusal.

>>> UpdateError("update_unsigned", path="x.kioskupdate").code
'update_unsigned'
"""

from __future__ import annotations

from ..reasons import KioskError

__all__ = ["UpdateError"]


class UpdateError(KioskError):
    """An update, rollback or signing step was refused; nothing in use was changed."""
