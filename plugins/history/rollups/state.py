"""Where each table's rollup stands, and which old buckets must be computed again.

Both live in the trigger's own database, written in the same all-or-nothing request as the rollup rows (the
engine sends a plugin's lines for one database as one write): the cursor moves only when the rows it stands for
landed, so a run whose write failed is simply done again.

- `rollup_state` (tags `source`, `level`; fields `done_ns`, `marks_ns`), one row per run: every bucket before
  `done_ns` has been computed, every mark up to `marks_ns` handled. Stamped with the run's time, so the newest is
  found in the last hour's files (then wider windows back, then the whole table).
- `rollup_marks` (tags `source`, `level`; field `bucket_ns`): a bucket the cursor had passed when data for it was
  written (late data, a bulk load of history), or whose finer level was computed again. Stamped with the time the
  mark was made (unique per mark), so a run reads only the marks made since the last one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from stacklib.sql import timestamp_literal

__all__ = ["MARKS", "STATE", "Cursor", "read_cursor", "read_marks"]

STATE = "rollup_state"
MARKS = "rollup_marks"
# How far back the newest cursor is looked for, in turn: a live stack finds it in the first window.
_LOOKBACK_NS = tuple(seconds * 10**9 for seconds in (3_600, 2 * 86_400, 40 * 86_400, 400 * 86_400))
MAX_MARKS = 100_000


@dataclass(frozen=True)
class Cursor:
    done_ns: int
    marks_ns: int


def _bounds(now_ns: int) -> Iterator[str]:
    for back in _LOOKBACK_NS:
        yield f" AND time >= {timestamp_literal(now_ns - back)}"
    yield ""


def read_cursor(influxdb3_local: Any, source: str, level: str, now_ns: int) -> Cursor | None:
    """The newest cursor of (source, level), or None before its first run."""
    for bound in _bounds(now_ns):
        rows = influxdb3_local.query(
            f"SELECT done_ns, marks_ns FROM {STATE} WHERE source = $source AND level = $level{bound} "
            "ORDER BY time DESC LIMIT 1", {"source": source, "level": level})
        if rows:
            return Cursor(int(rows[0]["done_ns"]), int(rows[0]["marks_ns"]))
    return None


def read_marks(influxdb3_local: Any, source: str, level: str, after_ns: int, until_ns: int) -> list[tuple[int, int]]:
    """(mark time, bucket) of the marks made in (after, until], oldest first."""
    rows = influxdb3_local.query(
        f"SELECT CAST(time AS BIGINT) AS made, bucket_ns FROM {MARKS} WHERE source = $source AND level = $level "
        f"AND time > {timestamp_literal(after_ns)} AND time <= {timestamp_literal(until_ns)} "
        f"ORDER BY made LIMIT {MAX_MARKS}", {"source": source, "level": level})
    return [(int(row["made"]), int(row["bucket_ns"])) for row in rows]
