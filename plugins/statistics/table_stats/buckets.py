"""Bucketed statistics: recompute only the buckets a batch touched, from the table.

A flush reads back the rows of its own buckets (a time-range query the server answers from the chunks of
those times only), so its cost follows the size of a bucket, never the size of the table. The batch's rows
are merged in with the table's, keeping one row per series and time: whether or not the server already
shows the batch when the trigger runs, and whether a row was new or replaced an older one, every row is
counted once, as the table holds it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from stacklib.sql import quote, timestamp_literal
from stacklib.stats import FieldStats, bucket_ranges, bucket_start, summarize

from .batch import row_key

__all__ = ["recompute"]

# Time ranges per query: keeps the SQL short when a back-fill touches many separate buckets.
_RANGES_PER_QUERY = 32
# Core persists one Parquet file per table per 10 minutes of data time (gen1): a query spanning `max_files` times
# this opens about `max_files` files of a table written without a break (more snapshots of one window add a few).
_FILE_SPAN_NS = 600 * 10**9


def _query_groups(ranges: Sequence[tuple[int, int]], max_files: int) -> list[list[tuple[int, int]]]:
    """The ranges cut into pieces no longer than `max_files` file spans, grouped so that the outer bounds of each
    group span no more than that either (a wide bucket, e.g. 30 days, is read in several queries)."""
    longest = max_files * _FILE_SPAN_NS
    groups: list[list[tuple[int, int]]] = []
    for start, end in ranges:
        for piece in range(start, end, longest):
            item = (piece, min(piece + longest, end))
            if groups and len(groups[-1]) < _RANGES_PER_QUERY and item[1] - groups[-1][0][0] <= longest:
                groups[-1].append(item)
            else:
                groups.append([item])
    return groups


def _read_ranges(influxdb3_local: Any, table: str, columns: Sequence[str], ranges: Sequence[tuple[int, int]],
                 max_files: int) -> Iterator[dict[str, Any]]:
    select = ", ".join(["time", *(quote(name) for name in columns)])
    for chunk in _query_groups(ranges, max_files):
        conditions = [f"(time >= {timestamp_literal(start)} AND time < {timestamp_literal(end)})"
                      for start, end in chunk]
        # InfluxDB 3 picks the Parquet files to read from the query's bounds on time, and an OR gives it none
        # (influxdb3_write/src/lib.rs ChunkFilter): the outer bounds keep it to the files of these buckets.
        bounds = f"time >= {timestamp_literal(chunk[0][0])} AND time < {timestamp_literal(chunk[-1][1])}"
        yield from influxdb3_local.query(
            f"SELECT {select} FROM {quote(table)} WHERE {bounds} AND ({' OR '.join(conditions)})")


def recompute(influxdb3_local: Any, table: str, tags: Sequence[str], fields: Sequence[str], width_ns: int,
              batch_rows: Sequence[Mapping[str, Any]], max_files: int) -> dict[str, dict[int, FieldStats]]:
    """field -> bucket start -> statistics, for every bucket the batch touched."""
    touched = {bucket_start(row["time"], width_ns) for row in batch_rows}
    merged: dict[tuple, Mapping[str, Any]] = {}
    for row in _read_ranges(influxdb3_local, table, [*tags, *fields], bucket_ranges(sorted(touched), width_ns),
                            max_files):
        merged[row_key(row, tags)] = row
    for row in batch_rows:
        merged[row_key(row, tags)] = row
    times = np.fromiter((key[0] for key in merged), dtype=np.int64, count=len(merged))
    buckets = times - times % width_ns
    result: dict[str, dict[int, FieldStats]] = {}
    for field in fields:
        values = np.array([_number(row.get(field)) for row in merged.values()], dtype=np.float64)
        per_bucket: dict[int, FieldStats] = {}
        for start in sorted(touched):
            stats = summarize(values[buckets == start])
            if stats is not None:
                per_bucket[start] = stats
        if per_bucket:
            result[field] = per_bucket
    return result


def _number(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return float("nan")
