"""Which backup sets to keep: the newest set of each of the last N days, ISO weeks and months.

The same rule as `borg prune` / `restic forget --keep-daily/--keep-weekly/--keep-monthly`, with two
guarantees on top: the newest verified complete set is never pruned, and sets that did not back up every store
("partial") never fill a keep slot; a partial set is kept only while it is newer than every complete one.
Only sets this service made are ever candidates (`SetStore.sets()` returns nothing else).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from backup.config import RetentionPolicy
from backup.sets import BackupSet

__all__ = ["Decision", "plan_retention"]


@dataclass(frozen=True)
class Decision:
    backup_set: BackupSet
    keep: bool
    reasons: tuple[str, ...]


def _periods(tz: ZoneInfo) -> list[tuple[str, Callable[[datetime], tuple]]]:
    return [
        ("daily", lambda moment: moment.astimezone(tz).date().timetuple()[:3]),
        ("weekly", lambda moment: moment.astimezone(tz).isocalendar()[:2]),
        ("monthly", lambda moment: (moment.astimezone(tz).year, moment.astimezone(tz).month)),
    ]


def plan_retention(sets: Sequence[BackupSet], policy: RetentionPolicy, tz: ZoneInfo) -> list[Decision]:
    """A keep/prune decision with reasons for every set, newest first."""
    newest_first = sorted(sets, key=lambda item: (item.finished, item.name), reverse=True)
    reasons: dict[str, list[str]] = {item.name: [] for item in newest_first}
    complete = [item for item in newest_first if item.complete]
    for label, period_of in _periods(tz):
        limit = getattr(policy, label)
        seen: list[tuple] = []
        for item in complete:
            if len(seen) >= limit:
                break
            period = period_of(item.finished)
            if period in seen:
                continue
            seen.append(period)
            reasons[item.name].append(f"{label} #{len(seen)}")
    verified = [item for item in complete if item.verified]
    if verified:
        reasons[verified[0].name].append("newest verified set")
    newest_complete = complete[0].finished if complete else None
    for item in newest_first:
        if not item.complete and (newest_complete is None or item.finished > newest_complete):
            reasons[item.name].append("partial, but newer than every complete set")
    return [Decision(item, bool(reasons[item.name]), tuple(reasons[item.name])) for item in newest_first]
