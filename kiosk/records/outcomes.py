"""What the doctor found for a referred (or any) screening: the ground truth of local validation.

An outcome comes from the return part of the slip (entered behind the PIN at
the kiosk) or from the rural health unit's console. A screening may get more
than one over time (``not_seen`` first, a biopsy result later); the newest by
``recorded_at`` is the one that counts. The same outcome imported twice is
stored once: ``(screening_id, source, recorded_at)`` identifies it.

>>> from datetime import UTC, datetime
>>> o = ClinicalOutcome(screening_id="x", outcome="melanoma", recorded_at=datetime(2026, 3, 1, tzinfo=UTC))
>>> o.confirmed, o.malignant
(True, True)
>>> ClinicalOutcome(screening_id="x", outcome="benign", recorded_at=o.recorded_at).malignant
False
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

__all__ = ["OUTCOMES", "ClinicalOutcome", "InvalidOutcome", "OutcomeKind"]

OutcomeKind = Literal["not_seen", "benign", "melanoma", "other_skin_cancer", "other"]
#: In the order the outcome screen lists them (``data-testid="outcome-<kind>"``).
OUTCOMES: tuple[str, ...] = typing.get_args(OutcomeKind)
MAX_NOTE_CHARS = 500


class InvalidOutcome(ValueError):
    """An outcome field is not one of the allowed values (one-line message)."""


@dataclass(frozen=True, kw_only=True)
class ClinicalOutcome:
    """One finding for one screening.

    ``outcome``: ``not_seen`` (referred but not seen yet), ``benign`` (seen: benign),
    ``melanoma`` (biopsy: melanoma), ``other_skin_cancer`` (biopsy: e.g. basal or
    squamous cell carcinoma), ``other``. ``source`` is ``kiosk`` or ``rhu:<facility>``.
    """

    screening_id: str
    outcome: OutcomeKind
    recorded_at: datetime  # timezone-aware
    seen_on: date | None = None
    note: str | None = None
    source: str = "kiosk"

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise InvalidOutcome(f"outcome must be one of {', '.join(OUTCOMES)}; got {self.outcome!r}")
        if self.recorded_at.tzinfo is None:
            raise InvalidOutcome("recorded_at must carry a time zone")
        if self.note is not None and len(self.note) > MAX_NOTE_CHARS:
            raise InvalidOutcome(f"the note is longer than {MAX_NOTE_CHARS} characters")
        if not self.source or len(self.source) > 100:
            raise InvalidOutcome("source must be 'kiosk' or 'rhu:<facility>' (at most 100 characters)")

    @property
    def confirmed(self) -> bool:
        """A doctor has seen the lesion and said what it is (counts in the validation report)."""
        return self.outcome in ("benign", "melanoma", "other_skin_cancer")

    @property
    def malignant(self) -> bool | None:
        """True for melanoma, False for benign; None where it does not decide (other cancers count separately)."""
        if self.outcome == "melanoma":
            return True
        if self.outcome == "benign":
            return False
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "screening_id": self.screening_id,
            "outcome": self.outcome,
            "recorded_at": self.recorded_at.isoformat(),
            "seen_on": self.seen_on.isoformat() if self.seen_on else None,
            "note": self.note,
            "source": self.source,
        }
