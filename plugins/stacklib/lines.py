"""Points built with the engine's LineBuilder, refusing anything the server would reject.

The engine queues every `write()` and sends a plugin's lines for one database in a single request that is
all-or-nothing: one NaN (LineBuilder spells it `nan`, which is not line protocol), one empty tag value or one
out-of-range integer loses every other line of the call. `PointWriter` checks each point before it reaches
LineBuilder, skips a bad one with a counted reason, and so keeps one bad row from killing its batch.
`LineBuilder` is injected into builtins by the engine (and by the local test engine): never imported.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from typing import Any

__all__ = ["PointWriter", "point_problem"]

_INT64 = (-(2**63), 2**63 - 1)


def _text_problem(text: str) -> str | None:
    if text == "":
        return "is empty"
    if "\n" in text or "\r" in text:
        return "contains a line break"
    return None


def point_problem(tags: Mapping[str, Any], fields: Mapping[str, Any], time_ns: int | None) -> str | None:
    """Why this point cannot be written as it is, or None. Tags whose value is None are left out."""
    for key, value in tags.items():
        if value is None:
            continue
        if not isinstance(value, str):
            return f"tag {key!r} is {type(value).__name__}, not text"
        problem = _text_problem(value)
        if problem:
            return f"tag {key!r} {problem}"
    if not fields:
        return "no field to write"
    for key, value in fields.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            if not _INT64[0] <= value <= _INT64[1]:
                return f"field {key!r}={value} does not fit in int64"
        elif isinstance(value, float):
            if not math.isfinite(value):
                return f"field {key!r} is {value} (InfluxDB stores finite numbers only)"
        elif isinstance(value, str):
            if "\n" in value or "\r" in value:
                return f"field {key!r} contains a line break"
        else:
            return f"field {key!r} is {type(value).__name__}, not a number, bool or text"
    if time_ns is not None and not (isinstance(time_ns, int) and _INT64[0] <= time_ns <= _INT64[1]):
        return f"time {time_ns!r} is not an int64 nanosecond timestamp"
    return None


class PointWriter:
    """Queue points into the trigger's database, or into `database` when given (`write_to_db`)."""

    def __init__(self, influxdb3_local: Any, database: str | None = None):
        self._api = influxdb3_local
        self.database = database
        self.written = 0
        self.skipped: Counter[str] = Counter()

    def add(self, table: str, tags: Mapping[str, Any], fields: Mapping[str, Any], time_ns: int | None) -> bool:
        """Queue one point; False (and a counted reason) when the server would refuse it."""
        problem = point_problem(tags, fields, time_ns)
        if problem:
            self.skipped[problem] += 1
            return False
        builder = LineBuilder(table)
        for key, value in tags.items():
            if value is not None:
                builder.tag(key, value)
        for key, value in fields.items():
            if isinstance(value, bool):
                builder.bool_field(key, value)
            elif isinstance(value, int):
                builder.int64_field(key, value)
            elif isinstance(value, float):
                builder.float64_field(key, value)
            else:
                builder.string_field(key, value)
        if time_ns is not None:
            builder.time_ns(time_ns)
        if self.database is None:
            self._api.write(builder)
        else:
            self._api.write_to_db(self.database, builder)
        self.written += 1
        return True

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def skipped_summary(self, limit: int = 3) -> str:
        """The most common reasons points were skipped, for one log line."""
        return "; ".join(f"{count}x {reason}" for reason, count in self.skipped.most_common(limit))
