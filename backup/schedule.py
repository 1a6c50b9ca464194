"""A 5-field cron schedule evaluated in a configured time zone, with defined behaviour across DST.

croniter walks wall-clock times; this module turns them into real instants with zoneinfo and decides the
two cases a wall clock cannot express, the way Vixie cron does:
- a time that does not exist (the spring-forward gap) runs once, at the first minute after the gap;
- a time that occurs twice (the fall-back overlap) runs once, at its first occurrence.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

__all__ = ["Schedule", "ScheduleError"]

_MAX_GAP_MINUTES = 24 * 60


class ScheduleError(ValueError):
    """The expression is not a valid 5-field cron schedule."""


def _exists(naive: datetime, tz: ZoneInfo) -> bool:
    aware = naive.replace(tzinfo=tz)
    return aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == naive


class Schedule:
    """`Schedule("59 23 * * *", ZoneInfo("Europe/Berlin")).next_after(now)` → the next run as an aware instant."""

    def __init__(self, expression: str, tz: ZoneInfo):
        text = " ".join(expression.split())
        if len(text.split(" ")) != 5:
            raise ScheduleError(f"{expression!r} must have 5 fields (minute hour day-of-month month day-of-week), "
                                f"e.g. '59 23 * * *'")
        if not croniter.is_valid(text):
            raise ScheduleError(f"{expression!r} is not a valid cron expression")
        self.expression, self.tz = text, tz

    def __repr__(self) -> str:
        return f"Schedule({self.expression!r}, {self.tz.key})"

    def _to_instant(self, naive: datetime) -> datetime:
        """The instant a wall-clock time stands for: first occurrence in an overlap, gap end in a gap."""
        probe = naive
        for _ in range(_MAX_GAP_MINUTES):
            if _exists(probe, self.tz):
                return probe.replace(tzinfo=self.tz, fold=0).astimezone(UTC)
            probe += timedelta(minutes=1)
        raise ScheduleError(f"no valid local time within a day after {naive} in {self.tz.key}")

    def next_after(self, moment: datetime) -> datetime:
        """The first run strictly after `moment` (aware), as an aware UTC datetime."""
        moment = moment.astimezone(UTC)
        # Start an hour early in wall-clock terms so a run inside a just-passed overlap/gap is not missed;
        # anything not strictly after `moment` is skipped below.
        local = moment.astimezone(self.tz).replace(tzinfo=None) - timedelta(hours=2)
        walker = croniter(self.expression, local)
        for _ in range(100_000):
            candidate = self._to_instant(walker.get_next(datetime))
            if candidate > moment:
                return candidate
        raise ScheduleError(f"{self.expression!r} has no run after {moment.isoformat()}")

    def previous_at_or_before(self, moment: datetime) -> datetime:
        """The latest run at or before `moment`: the slot a backup should already exist for."""
        moment = moment.astimezone(UTC)
        local = moment.astimezone(self.tz).replace(tzinfo=None) + timedelta(hours=2, minutes=1)
        walker = croniter(self.expression, local)
        for _ in range(100_000):
            candidate = self._to_instant(walker.get_prev(datetime))
            if candidate <= moment:
                return candidate
        raise ScheduleError(f"{self.expression!r} has no run before {moment.isoformat()}")

    def interval_around(self, moment: datetime) -> timedelta:
        """The gap between the run before `moment` and the one after it (how often backups happen)."""
        return self.next_after(moment) - self.previous_at_or_before(moment)
