"""The screening result: what one photo produced, end to end.

A plain dataclass so every consumer (CLI JSON, records, web page, GPIO LEDs)
reads the same fields. ``to_dict()`` gives the JSON contract of
``kiosk screen --json``.

>>> r = ScreeningResult.retake("blurry", quality={"sharpness": 3.1})
>>> r.status, r.reason, r.risk
('retake', 'blurry', None)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from .reasons import message

Status = Literal["ok", "retake", "error"]
Risk = Literal["low", "refer"]


@dataclass(frozen=True, kw_only=True)
class ScreeningResult:
    status: Status
    reason: str | None = None  # a code from kiosk.reasons; None when status == "ok"
    malignant_probability: float | None = None
    risk: Risk | None = None  # "refer" when probability >= threshold
    threshold: float | None = None
    features: dict[str, Any] = field(default_factory=dict)  # ABCD features
    quality: dict[str, Any] = field(default_factory=dict)  # quality-gate measures
    model_sha256: str | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)

    @classmethod
    def retake(cls, reason: str, **kwargs: Any) -> ScreeningResult:
        return cls(status="retake", reason=reason, **kwargs)

    @classmethod
    def error(cls, reason: str, **kwargs: Any) -> ScreeningResult:
        return cls(status="error", reason=reason, **kwargs)

    @property
    def reason_message(self) -> str | None:
        """The English one-line text for ``reason`` (the web page translates the code)."""
        return message(self.reason) if self.reason else None

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["reason_message"] = self.reason_message
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScreeningResult:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def score_number(value: float, *, threshold: float) -> tuple[str, str]:
    """The score and the threshold, with as few decimals as keep them on the right side of each other.

    >>> score_number(0.1362, threshold=0.13671875)
    ('0.136', '0.137')
    """
    for places in (2, 3, 4):
        score, limit = f"{value:.{places}f}", f"{threshold:.{places}f}"
        if (float(score) >= float(limit)) == (value >= threshold):
            return score, limit
    return f"{value:.6f}", f"{threshold:.6f}"
