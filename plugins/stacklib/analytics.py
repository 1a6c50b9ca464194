"""Where table statistics are published and read back: the engine's global cache and `analytics_<table>`.

The statistics plugin (a WAL trigger) and the analytics API (a request trigger) are separate triggers, so
they share the engine cache's global scope. The API falls back to the analytics table when the cache is
empty (the server restarted and nothing was written to the table since) and the JSON has the same shape
either way, with `source` saying which one answered.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from stacklib.stats import FieldStats
from stacklib.tables import STATISTICS, analytics_table

__all__ = ["cache_key", "latest_from_rows", "publish", "read_cached"]


def cache_key(table: str) -> str:
    return f"stacklib.analytics:{table}"


def _iso(time_ns: int) -> str:
    seconds, nanos = divmod(int(time_ns), 10**9)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return stamp + (f".{nanos:09d}".rstrip("0") if nanos else "") + "Z"


def _entry(time_ns: int, values: Mapping[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {"time": _iso(time_ns), "time_ns": int(time_ns)}
    entry.update({name: values[name] for name in STATISTICS})
    return entry


def publish(cache: Any, table: str, bucket: str, latest: Mapping[str, tuple[int, FieldStats]]) -> dict[str, Any]:
    """Merge each field's newest statistics into the global cache entry of `table`; return the entry.

    A batch that back-fills old buckets never replaces statistics of a newer bucket.
    """
    key = cache_key(table)
    current = cache.get(key, use_global=True) or {
        "table": table, "analytics_table": analytics_table(table).name, "statistics": {}}
    fields = current["statistics"].setdefault(bucket, {})
    for field, (time_ns, stats) in latest.items():
        known = fields.get(field)
        if known is None or known["time_ns"] <= time_ns:
            fields[field] = _entry(time_ns, stats.as_fields())
    current["updated_at"] = _iso(int(datetime.now(UTC).timestamp() * 10**9))
    cache.put(key, current, use_global=True)
    return current


def read_cached(cache: Any, table: str) -> dict[str, Any] | None:
    entry = cache.get(cache_key(table), use_global=True)
    if not entry or not entry.get("statistics"):
        return None
    return {**entry, "source": "cache"}


def latest_from_rows(table: str, rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The same shape as the cache entry, from the newest `analytics_<table>` row per (bucket, field)."""
    statistics: dict[str, dict[str, Any]] = {}
    for row in rows:
        bucket, field, time_ns = row.get("bucket"), row.get("field"), row.get("time")
        if bucket is None or field is None or time_ns is None:
            continue
        known = statistics.setdefault(str(bucket), {}).get(str(field))
        if known is None or known["time_ns"] < time_ns:
            values = {name: row.get(name) for name in STATISTICS}
            statistics[str(bucket)][str(field)] = _entry(time_ns, values)
    if not statistics:
        return None
    return {"table": table, "analytics_table": analytics_table(table).name, "statistics": statistics,
            "source": "table"}
