"""Is the kiosk's clock plausible? And setting it by hand, by touch, when it is not.

Every record and slip is dated, but an offline Pi 4 has no real-time clock: after a power
cut it starts from fake-hwclock's last save (up to an hour old, plus however long it was
off), or from the image's date when fake-hwclock is missing. A Pi 5 has an RTC, which keeps
time only with its battery fitted. No network clock corrects either in a health centre.

So the kiosk checks two things a wrong clock cannot hide:

* **before the software was built**: no honest clock reads earlier than the build date
  (``kiosk/_build.py``, written by ``deploy/build-bundle``; in a checkout, the newest
  modification time of the package's own files);
* **jumped backwards**: earlier than the latest time this kiosk has already seen, kept in
  ``clock.json`` in the records folder (or, before that file exists, the newest record).

When the health worker sets the time on the settings page (behind the PIN), the time they
set becomes the new reference, so a clock that had run *ahead* can be put right.

>>> from datetime import UTC, datetime
>>> now = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)
>>> guard = ClockGuard(state_path=None, floor=datetime(2026, 12, 1, tzinfo=UTC), now=lambda: now)
>>> guard.check().plausible
True
>>> now = datetime(2024, 1, 1, tzinfo=UTC)
>>> guard.check().reason
'clock_before_build'
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import tempfile
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .reasons import KioskError

__all__ = [
    "STATE_FILE",
    "ClockCheck",
    "ClockError",
    "ClockGuard",
    "local_time",
    "set_system_time",
    "software_date",
    "station_zone",
]

log = logging.getLogger(__name__)

STATE_FILE = "clock.json"
#: Later than this behind the last time seen is a jump, not the page being opened twice in a second.
JUMP_TOLERANCE = timedelta(minutes=5)
#: How often the last-seen time is written: often enough to notice a power cut, rarely enough for an SD card.
SAVE_EVERY = timedelta(minutes=1)
#: A hand-set time further than this after the build date is a slip of the finger, not a date.
LATEST_PLAUSIBLE = timedelta(days=365 * 30)


class ClockError(KioskError):
    """Setting the clock failed or was refused (a one-line reason code)."""


@dataclass(frozen=True, kw_only=True)
class ClockCheck:
    """What :meth:`ClockGuard.check` found. ``reason`` is a code from :mod:`kiosk.reasons`, None when plausible."""

    now: datetime
    floor: datetime
    last_seen: datetime | None
    reason: str | None

    @property
    def plausible(self) -> bool:
        return self.reason is None


def software_date() -> datetime:
    """When this software was built: ``kiosk/_build.py``'s stamp, else the newest mtime of the package's files."""
    try:
        from . import _build  # type: ignore[attr-defined]  # written into the wheel by deploy/build-bundle

        return datetime.fromisoformat(str(_build.BUILD_DATE)).astimezone(UTC)
    except (ImportError, AttributeError, ValueError):
        pass
    package = Path(__file__).parent
    newest = max(p.stat().st_mtime for p in package.glob("*.py"))
    return datetime.fromtimestamp(newest, UTC)


def station_zone(name: str) -> zoneinfo.ZoneInfo:
    """The ``[station] time_zone`` (validated by kiosk.config) as a tzinfo."""
    return zoneinfo.ZoneInfo(name)


def local_time(moment: datetime, zone_name: str) -> datetime:
    """``moment`` (aware) in the station's time zone, for slips, history and the settings page.

    >>> local_time(datetime(2026, 12, 2, 1, 30, tzinfo=UTC), "Asia/Manila").isoformat()
    '2026-12-02T09:30:00+08:00'
    """
    return moment.astimezone(station_zone(zone_name))


def set_system_time(moment: datetime, *, program: str = "timedatectl", timeout: float = 15.0) -> None:
    """Set the Pi's clock through systemd-timedated (``timedatectl``), which also writes the RTC if any.

    The kiosk runs as the unprivileged user ``kiosk``; install.sh's polkit rule lets that
    user (and only it) use timedated's set-time and set-ntp actions, nothing else. A clock
    set by hand turns automatic network time off (timedated refuses set-time while it is on).
    ``program``: ``[clock] timedatectl``.
    """
    stamp = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    try:
        # Best effort: fails harmlessly where no NTP service is installed.
        subprocess.run([program, "set-ntp", "false"], capture_output=True, timeout=timeout, check=False)
        proc = subprocess.run(
            [program, "set-time", stamp], capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ClockError("clock_set_failed", detail=type(exc).__name__) from None
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout or "").strip().splitlines()
        raise ClockError("clock_set_failed", detail=lines[-1][:120] if lines else f"exit {proc.returncode}")


class ClockGuard:
    """Checks the clock against the build date and the last time seen; sets it by hand.

    ``state_path``: where the last-seen time is kept (None: in memory only). ``floor``: the
    earliest plausible time (default :func:`software_date`). ``now``: the wall clock.
    ``setter``: applies a hand-set time (default :func:`set_system_time`; tests pass a fake).
    ``newest_record``: the newest record's time, used as the last-seen time until the state
    file exists (a kiosk updated to this version, or whose state file was lost).
    """

    def __init__(
        self,
        *,
        state_path: Path | None,
        floor: datetime | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        setter: Callable[[datetime], None] = set_system_time,
        newest_record: Callable[[], datetime | None] | None = None,
    ) -> None:
        self.state_path = state_path
        self.floor = floor if floor is not None else software_date()
        self._now = now
        self._setter = setter
        self._newest_record = newest_record
        self._last_seen: datetime | None = None
        self._loaded = False

    def now(self) -> datetime:
        return self._now().astimezone(UTC)

    @property
    def last_seen(self) -> datetime | None:
        if not self._loaded:
            self._last_seen = self._read() or self._seed()
            self._loaded = True
        return self._last_seen

    def check(self) -> ClockCheck:
        """How plausible the clock is now; a plausible time also moves the last-seen time on."""
        now = self.now()
        last = self.last_seen
        if now < self.floor:
            reason: str | None = "clock_before_build"
        elif last is not None and now < last - JUMP_TOLERANCE:
            reason = "clock_jumped_back"
        else:
            reason = None
            if last is None or now - last >= SAVE_EVERY:
                self._remember(now)
        return ClockCheck(now=now, floor=self.floor, last_seen=last, reason=reason)

    def set_time(self, moment: datetime) -> None:
        """Set the clock to ``moment`` (aware); ClockError when refused or when the system refuses it."""
        if moment.tzinfo is None:
            raise ValueError("moment must carry a time zone")
        moment = moment.astimezone(UTC)
        if moment < self.floor:
            raise ClockError("clock_set_too_early", date=self.floor.date().isoformat())
        if moment > self.floor + LATEST_PLAUSIBLE:
            raise ClockError("clock_set_too_late")
        self._setter(moment)
        # The worker's time is the reference now, also when it is earlier than the last one seen.
        self._remember(moment, force=True)

    # --- the last-seen time ------------------------------------------------------------

    def _seed(self) -> datetime | None:
        if self._newest_record is None:
            return None
        try:
            return self._newest_record()
        except Exception:  # noqa: BLE001 - a broken store must not break the clock check
            log.exception("cannot read the newest record's time")
            return None

    def _read(self) -> datetime | None:
        if self.state_path is None:
            return None
        try:
            data = json.loads(self.state_path.read_text(encoding="utf-8"))
            return datetime.fromisoformat(data["last_seen"]).astimezone(UTC)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("ignoring an unreadable %s", self.state_path)
            return None

    def _remember(self, moment: datetime, *, force: bool = False) -> None:
        if not force and self._last_seen is not None and moment <= self._last_seen:
            return
        self._last_seen = moment
        self._loaded = True
        if self.state_path is None:
            return
        # Atomic: a power cut leaves the old file or the new one, never half of one.
        try:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.state_path.parent, prefix=".clock-", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    json.dump({"last_seen": moment.isoformat()}, f)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.state_path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:  # a full or read-only disk: the check still works from memory
            log.warning("cannot save the last-seen time to %s: %s", self.state_path, exc)
