"""Whole-table statistics: running state in the engine cache, rebuilt from the table when it is missing.

A flush adds its batch's values to per-field `RunningStats` kept in the trigger's cache, so its cost does
not grow with the table. The state is rebuilt from the table when the cache has none for a field (first
flush, a server restart, a new field) and when it expires after `resync`: a point re-sent with the same
series and time is counted twice by the running state until that rebuild, which reads the table as it is.
The rebuild reads the table in time windows of at most `max_files` Parquet files each.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from stacklib.sql import file_windows, quote, window_condition
from stacklib.stats import FieldStats, RunningStats

from .batch import row_key

__all__ = ["update"]

def _state_key(table: str) -> str:
    return f"table_stats.running:{table}"


def _dedup_batch(rows: Sequence[Mapping[str, Any]], tags: Sequence[str]) -> list[Mapping[str, Any]]:
    """The batch's rows with one row per series and time (the last one written wins, as in the table)."""
    return list({row_key(row, tags): row for row in rows}.values())


def _rebuild(influxdb3_local: Any, table: str, tags: Sequence[str], fields: Sequence[str],
             batch_rows: Sequence[Mapping[str, Any]], max_files: int) -> dict[str, RunningStats]:
    """Running statistics of `fields` over the whole table and the batch, the batch's rows counted once whether
    or not the server already shows them. The table is read in time windows of at most `max_files` Parquet files
    each (one query over a long history would be refused past Core's --query-file-limit)."""
    values: dict[str, list[float]] = {field: [] for field in fields}
    batch_keys = {row_key(row, tags) for row in batch_rows}
    select = ", ".join(["time", *(quote(name) for name in [*tags, *fields])])
    for window in file_windows(influxdb3_local, table, max_files):
        rows = influxdb3_local.query(f"SELECT {select} FROM {quote(table)} WHERE {window_condition(window)}")
        for row in rows:
            if row_key(row, tags) in batch_keys:
                continue
            for field in fields:
                value = row.get(field)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    values[field].append(float(value))
    for row in batch_rows:
        for field in fields:
            value = row.get(field)
            if isinstance(value, int | float) and not isinstance(value, bool):
                values[field].append(float(value))
    return {field: RunningStats(values[field]) for field in fields}


def update(influxdb3_local: Any, table: str, tags: Sequence[str], fields: Sequence[str],
           batch_rows: Sequence[Mapping[str, Any]], resync_seconds: float,
           max_files: int) -> tuple[dict[str, FieldStats], list[str]]:
    """Fold the batch into the state; returns each field's statistics and the fields rebuilt from the table."""
    cache = influxdb3_local.cache
    key = _state_key(table)
    state: dict[str, RunningStats] | None = cache.get(key)
    if state is None:
        state = {}
        # Stored once with a lifetime: later flushes mutate the objects in place, so the TTL is absolute.
        cache.put(key, state, ttl=resync_seconds)
    rows = _dedup_batch(batch_rows, tags)
    missing = [field for field in fields if field not in state]
    if missing:
        state.update(_rebuild(influxdb3_local, table, tags, missing, rows, max_files))
    for field in fields:
        if field in missing:
            continue
        state[field].add(_numbers(row.get(field) for row in rows))
    result = {}
    for field in fields:
        snapshot = state[field].snapshot()
        if snapshot is not None:
            result[field] = snapshot
    return result, missing


def _numbers(values) -> list[float]:
    return [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
