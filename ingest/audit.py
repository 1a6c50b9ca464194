"""Check that `history` holds every rollup row the live databases copied to it, and have the rollup triggers write
again what it lacks.

The rollups plugin (plugins/history/rollups) writes each row to its own database and, with `copy_to`, to `history`:
two writes the Processing Engine makes one after the other once the run has returned, the trigger's own database
first, with the cursor (Core 3.6.0 influxdb3_processing_engine/src/plugins.rs `handle_return_state`; an error is
only logged, plugins.rs:838-842). When only the copy fails (a restart between the two, `history` refusing it), the
cursor has moved on, the copy is never written again, and once the live database's retention drops the raw rows
and their rollups the gap is for good.

So the audit compares, for each copying trigger's tables and levels (found from their cursors in `rollup_state`),
the rows of the live database with those of the copy, over the buckets the copy's cursor has passed in the last 31
days (influxdb3-init keeps raw rows at least 32: common/retention.py), and marks each bucket where the copy lacks a
row or holds other values (a late-data recompute whose copy failed) in the live database's `rollup_marks`, as late
data is marked. The trigger's next runs compute those buckets
again from the raw rows and write them to both databases (the same point again where it exists) and mark the
coarser levels above them. Every query reads one level of one table over 31 days: at most 744 hourly files.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import requests

from ingest.stored import StoredRows, sql_ident, sql_time

__all__ = ["AUDIT_DAYS", "Copy", "HistoryAudit"]

log = logging.getLogger("ingest.audit")

AUDIT_DAYS = 31
QUIET_NS = 5 * 60 * 10**9  # buckets the newest run may still be copying are left to the next audit
LEVEL_NS = {"m": 60 * 10**9, "h": 3_600 * 10**9, "d": 86_400 * 10**9, "w": 7 * 86_400 * 10**9}


@dataclass(frozen=True)
class Copy:
    """One level of one table a trigger copies: its cursor's `done_ns` (every bucket before it was written)."""

    table: str
    level: str
    target: str
    done_ns: int

    @property
    def output(self) -> str:
        return f"{self.table}_{self.level}"  # plugins/history/rollups/levels.py `chain`


class HistoryAudit:
    """The audit of one live database's copies (`live`: a reader of it; `open_database`: a reader of another)."""

    def __init__(self, live: StoredRows, open_database: Callable[[str], StoredRows], *, days: int = AUDIT_DAYS):
        self.live, self.open_database, self.days = live, open_database, days

    def copies(self, now_ns: int) -> list[Copy]:
        """The copying cursors that moved in the last day (`<table>@<target>`, plugins/history/rollups
        `cursor_key`); none before the database has rollups."""
        if not self.live.columns("rollup_state"):
            return []
        rows = self.live.sql(
            "SELECT source, level, max(done_ns) AS done_ns FROM rollup_state WHERE source LIKE '%@%' "
            f"AND time >= {sql_time(now_ns - LEVEL_NS['d'])} GROUP BY source, level", "json").json()
        out = []
        for row in rows:
            table, _, target = str(row["source"]).rpartition("@")
            if table and target and _width(str(row["level"])):
                out.append(Copy(table, str(row["level"]), target, int(row["done_ns"])))
        return sorted(out, key=lambda copy: (copy.table, _width(copy.level), copy.target))

    def missing(self, copy: Copy, now_ns: int) -> list[int]:
        """The buckets of `copy` in the audited span where the copy lacks a row of the live table, (bucket, tags),
        or holds other values for it (a bucket computed again for late data whose copy failed)."""
        width = _width(copy.level)
        start = (now_ns - self.days * LEVEL_NS["d"]) // width * width
        end = min(copy.done_ns, (now_ns - QUIET_NS) // width * width)
        if end <= start:
            return []
        live = _rows(self.live, copy.output, start, end)
        if not live:
            return []
        copied = _rows(self.open_database(copy.target), copy.output, start, end)
        return sorted({key[0] for key, values in live.items() if copied.get(key) != values})

    def mark(self, copy: Copy, buckets: list[int], now_ns: int) -> None:
        """Marks as the plugin writes them (plugins/history/rollups/state.py): stamped with the time made, unique."""
        lines = "\n".join(f"rollup_marks,level={_tag(copy.level)},source={_tag(copy.table)} bucket_ns={bucket}i "
                          f"{now_ns + index}" for index, bucket in enumerate(buckets))
        self.live.write(lines)

    def run(self, now_ns: int | None = None) -> dict[str, int]:
        """Audit every copy; {"<database>.<table>_<level>": buckets marked} (only those with gaps). A copy that
        cannot be checked is logged, and the others still are."""
        now = time.time_ns() if now_ns is None else now_ns
        marked: dict[str, int] = {}
        for copy in self.copies(now):
            try:
                buckets = self.missing(copy, now)
                if buckets:
                    self.mark(copy, buckets, now)
            except (RuntimeError, requests.RequestException) as exc:
                log.error("audit of %s.%s against %s failed, tried again on the next audit: %s", self.live.database,
                          copy.output, copy.target, exc)
                continue
            if buckets:
                marked[f"{self.live.database}.{copy.output}"] = len(buckets)
                log.warning("%s.%s: %s lacks or differs in %d buckets of it (first %s); marked, so the rollup "
                            "trigger writes them again on its next runs", self.live.database, copy.output,
                            copy.target, len(buckets), sql_time(buckets[0]))
        return marked


def _width(level: str) -> int:
    unit = LEVEL_NS.get(level[-1:])
    return int(level[:-1]) * unit if unit and level[:-1].isdigit() else 0


def _tag(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def _rows(reader: StoredRows, table: str, start: int, end: int) -> dict[tuple, dict]:
    """{(bucket, tag values...): the row's other non-null values} of the table's rows in [start, end); empty without
    the table. Both databases got the same line protocol, so equal rows have equal values, to the last bit."""
    columns = reader.columns(table)
    if not columns:
        return {}
    tags = sorted(name for name, kind in columns.items() if kind.startswith("Dictionary"))
    rows = reader.sql(f"SELECT CAST(time AS BIGINT) AS audit_bucket, * FROM {sql_ident(table)} "
                      f"WHERE time >= {sql_time(start)} AND time < {sql_time(end)}", "json").json()
    out = {}
    for row in rows:
        key = (int(row["audit_bucket"]), *(row.get(name) for name in tags))
        out[key] = {name: value for name, value in row.items()
                    if value is not None and name not in ("audit_bucket", "time", *tags)}
    return out
