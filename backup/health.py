"""Container health: unhealthy when the last good backup is older than the schedule allows.

"Good" = a complete set whose last verification passed, read from the backup directory itself (the truth,
whatever process wrote it). The latest scheduled slot that should be finished by now is
`schedule.previous_at_or_before(now - grace)`; a good set (or, on a fresh stack, the scheduler's own start)
must be at least that recent. The scheduler also records its start and each run in `.state.json` so the
`backup health` process can tell "no backup yet because it just started" from "backups stopped".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from backup.manifest import iso, parse_iso, write_json_atomic
from backup.schedule import Schedule
from backup.sets import SetStore

__all__ = ["Health", "assess", "read_state", "update_state"]

STATE_NAME = ".state.json"


def read_state(root: Path) -> dict:
    try:
        return json.loads((root / STATE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def update_state(root: Path, **changes: object) -> dict:
    state = read_state(root)
    state.update({key: iso(value) if isinstance(value, datetime) else value for key, value in changes.items()})
    root.mkdir(parents=True, exist_ok=True)
    write_json_atomic(root / STATE_NAME, state)
    return state


@dataclass(frozen=True)
class Health:
    healthy: bool
    message: str


def assess(store: SetStore, schedule: Schedule, grace: timedelta, now: datetime) -> Health:
    state = read_state(store.root)
    good = [item for item in store.sets() if item.complete and item.verified]
    last_good = good[-1].finished if good else None
    started = parse_iso(state["scheduler_started_at"]) if state.get("scheduler_started_at") else None
    due = schedule.previous_at_or_before(now - grace)
    reference = max(filter(None, [last_good, started]), default=None)
    last_error = (state.get("last_run") or {}).get("error")
    detail = f" (last run failed: {last_error})" if last_error else ""
    if reference is None:
        return Health(False, f"no good backup in {store.root} and the scheduler has not started{detail}")
    if reference >= due:
        what = f"last good backup {good[-1].name}" if good else "no backup due yet since the scheduler started"
        return Health(True, f"ok: {what}; next run {iso(schedule.next_after(now))}")
    age = now - last_good if last_good else None
    shown = f"{good[-1].name}, {age.total_seconds() / 3600:.1f} h old" if good and age else "none"
    return Health(False, f"the last good backup ({shown}) is older than the run due at {iso(due)} "
                         f"(+{grace} grace){detail}")
