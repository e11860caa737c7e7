"""Follow-through figures: per station and per month, what happened to the kiosk's referrals.

For each station and month of screening: screenings, referrals, referred
patients seen by their due date (the outcome's ``seen_on``, else the day it was
recorded), screenings with an outcome (anything but "not seen"), and the
local sensitivity and specificity on confirmed cases (latest outcome melanoma
or benign; a referral counts as a positive). Only confirmed cases count, and
patients the kiosk did not refer are rarely confirmed (verification bias), so
specificity here is an estimate from few cases; the counts are shown beside it.

>>> f = Figures(station_code="PH-LEY-0001", month="2026-03", screenings=10, referrals=3, seen_in_time=2,
...             outcomes=3, true_pos=1, false_neg=0, true_neg=1, false_pos=2)
>>> f.sensitivity, round(f.specificity, 3)
(1.0, 0.333)
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from html import escape
from typing import Any

from .db import Database

__all__ = ["Figures", "chart_svg", "follow_through", "to_csv", "totals"]

_SQL = """
SELECT s.station_code AS station_code, substr(s.created_at, 1, 7) AS month,
    count(*) AS screenings,
    sum(s.referred) AS referrals,
    sum(CASE WHEN s.referred = 1 AND lo.outcome <> 'not_seen'
             AND coalesce(lo.seen_on, substr(lo.recorded_at, 1, 10)) <= s.due_date THEN 1 ELSE 0 END) AS seen_in_time,
    sum(CASE WHEN lo.outcome <> 'not_seen' THEN 1 ELSE 0 END) AS outcomes,
    sum(CASE WHEN lo.outcome = 'melanoma' AND s.referred = 1 THEN 1 ELSE 0 END) AS true_pos,
    sum(CASE WHEN lo.outcome = 'melanoma' AND s.referred = 0 THEN 1 ELSE 0 END) AS false_neg,
    sum(CASE WHEN lo.outcome = 'benign' AND s.referred = 0 THEN 1 ELSE 0 END) AS true_neg,
    sum(CASE WHEN lo.outcome = 'benign' AND s.referred = 1 THEN 1 ELSE 0 END) AS false_pos
FROM screenings s
LEFT JOIN (
    SELECT o.screening_key, o.outcome, o.seen_on, o.recorded_at FROM outcomes o
    WHERE o.recorded_at = (SELECT max(o2.recorded_at) FROM outcomes o2 WHERE o2.screening_key = o.screening_key)
) lo ON lo.screening_key = s.key
{where}
GROUP BY s.station_code, substr(s.created_at, 1, 7)
ORDER BY s.station_code, month
"""


@dataclass(frozen=True, kw_only=True)
class Figures:
    station_code: str
    month: str  # YYYY-MM, or "all"
    screenings: int
    referrals: int
    seen_in_time: int
    outcomes: int
    true_pos: int  # confirmed melanoma, referred
    false_neg: int  # confirmed melanoma, not referred
    true_neg: int  # confirmed benign, not referred
    false_pos: int  # confirmed benign, referred

    @property
    def sensitivity(self) -> float | None:
        positives = self.true_pos + self.false_neg
        return self.true_pos / positives if positives else None

    @property
    def specificity(self) -> float | None:
        negatives = self.true_neg + self.false_pos
        return self.true_neg / negatives if negatives else None


def follow_through(db: Database, *, station: str | None = None) -> list[Figures]:
    where, params = ("WHERE s.station_code = ?", [station]) if station else ("", [])
    found = []
    for row in db.query(_SQL.format(where=where), params):
        values: dict[str, Any] = {k: (v if k in ("station_code", "month") else int(v or 0)) for k, v in row.items()}
        found.append(Figures(**values))
    return found


def totals(rows: Iterable[Figures], *, station_code: str = "all") -> Figures:
    """All months (and stations) of ``rows`` added up."""
    rows = list(rows)
    counts = {f.name: sum(getattr(r, f.name) for r in rows) for f in fields(Figures) if f.type == "int"}
    return Figures(station_code=station_code, month="all", **counts)


def to_csv(rows: Iterable[Figures]) -> str:
    out = io.StringIO()
    names = [f.name for f in fields(Figures)]
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*names, "sensitivity", "specificity"])
    for r in rows:
        extra = ["" if v is None else f"{v:.3f}" for v in (r.sensitivity, r.specificity)]
        writer.writerow([*asdict(r).values(), *extra])
    return out.getvalue()


def chart_svg(rows: Iterable[Figures], *, width: int = 720, height: int = 260) -> str:
    """Bars per month (all stations): screenings, referrals, referred and seen by the due date."""
    months: dict[str, list[int]] = {}
    for r in rows:
        m = months.setdefault(r.month, [0, 0, 0])
        m[0] += r.screenings
        m[1] += r.referrals
        m[2] += r.seen_in_time
    series = (("screenings", "#4a6fa5"), ("referrals", "#d1495b"), ("seen by due date", "#2e8b57"))
    top = max((max(v) for v in months.values()), default=0) or 1
    left, bottom, plot_h = 40, height - 40, height - 80
    group = (width - left - 10) / max(len(months), 1)
    bar = max(group / 4, 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
        ' role="img" aria-label="Screenings, referrals and referred patients seen by the due date, per month">',
        f'<line x1="{left}" y1="{bottom}" x2="{width - 5}" y2="{bottom}" stroke="#333"/>',
        f'<text x="{left - 4}" y="{bottom - plot_h + 4}" font-size="11" text-anchor="end">{top}</text>',
        f'<text x="{left - 4}" y="{bottom}" font-size="11" text-anchor="end">0</text>',
    ]
    for i, (month, values) in enumerate(months.items()):
        x0 = left + i * group + bar / 2
        for j, value in enumerate(values):
            h = plot_h * value / top
            parts.append(
                f'<rect x="{x0 + j * bar:.1f}" y="{bottom - h:.1f}" width="{bar:.1f}" height="{h:.1f}"'
                f' fill="{series[j][1]}"><title>{escape(month)} {series[j][0]}: {value}</title></rect>'
            )
        parts.append(
            f'<text x="{x0 + 1.5 * bar:.1f}" y="{bottom + 14}" font-size="11" text-anchor="middle">'
            f"{escape(month)}</text>"
        )
    for j, (name, colour) in enumerate(series):
        parts.append(f'<rect x="{left + j * 150}" y="8" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{left + j * 150 + 14}" y="17" font-size="12">{name}</text>')
    parts.append("</svg>")
    return "\n".join(parts)
