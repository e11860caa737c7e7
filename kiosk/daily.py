"""Today's work at the station, for the settings page: screenings, referrals, retakes, outcomes pending.

"Today" is the calendar day in the station's time zone (``[station] time_zone``), not UTC:
in Manila a screening at 07:30 local time is stored as 23:30 UTC the day before.

>>> from datetime import UTC, datetime
>>> from kiosk.records import RecordStore
>>> from kiosk.result import ScreeningResult
>>> import tempfile
>>> with tempfile.TemporaryDirectory() as tmp, RecordStore(tmp) as store:
...     _ = store.save(ScreeningResult(status="ok", malignant_probability=0.9, risk="refer", threshold=0.5))
...     daily_summary(store, zone="Asia/Manila").referrals
1
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING

from .clock import station_zone

if TYPE_CHECKING:
    from .records import RecordStore

__all__ = ["DailySummary", "daily_summary"]

#: Outcome pending: a referral the doctor's finding has not come back for (no outcome, or "not seen yet").
_SETTLED = frozenset({"benign", "melanoma", "other_skin_cancer", "other"})


@dataclass(frozen=True, kw_only=True)
class DailySummary:
    day: date  # in the station's time zone
    screenings: int  # photos scored today (a retake is not a screening)
    referrals: int  # of those, "refer"
    retakes: int  # photos sent back today (blurry, no lesion...)
    outcomes_pending: int  # referrals of any day still waiting for what the doctor found


def daily_summary(records: RecordStore, *, zone: str, now: datetime | None = None) -> DailySummary:
    """Count today's screenings in ``records``; ``now`` (aware, default the clock) picks the day."""
    tz = station_zone(zone)
    today = (now or datetime.now(UTC)).astimezone(tz).date()
    start = datetime.combine(today, time(0), tzinfo=tz)
    end = datetime.combine(today + timedelta(days=1), time(0), tzinfo=tz)
    todays = records.between(start, end)
    scored = [s for s in todays if s.result.status == "ok"]
    latest = records.latest_outcomes()
    # Every referral the store still keeps, from the first record on (retention bounds it).
    referred = [s for s in records.between(datetime(1970, 1, 1, tzinfo=UTC), end) if s.result.risk == "refer"]
    pending = sum(1 for s in referred if s.id not in latest or latest[s.id].outcome not in _SETTLED)
    return DailySummary(
        day=today,
        screenings=len(scored),
        referrals=sum(1 for s in scored if s.result.risk == "refer"),
        retakes=sum(1 for s in todays if s.result.status == "retake"),
        outcomes_pending=pending,
    )
