"""SQL helpers: quoting checked identifiers, timestamps as query parameters, table metadata.

Text values always travel as query parameters (`$name`, strings, as the engine's `query(sql, args)` takes
them); names go into the SQL text only after `args.identifier` accepted them and `quote` wrapped them, and
timestamps only as literals formatted from integers.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from stacklib.args import identifier

__all__ = ["LOOKBACK_DAYS", "MAX_FILES_PER_QUERY", "column_types", "file_spans", "file_windows", "lookback_bounds",
           "quote", "split_windows", "table_exists", "table_span", "tag_columns", "timestamp_literal",
           "window_condition", "windowed_query"]


def quote(name: str) -> str:
    """A checked identifier as a double-quoted SQL name (raises ValueError for anything else)."""
    return '"' + identifier(name) + '"'


def timestamp_literal(time_ns: int) -> str:
    """A quoted RFC 3339 UTC timestamp with nanoseconds, to compare with `time` (`time >= '...Z'`).

    Built from an int, so nothing from outside reaches the SQL text. Literals rather than `$params`: the
    plugin API passes parameters as strings, and a string compared with a timestamp column is only
    documented for literals.
    """
    seconds, nanos = divmod(int(time_ns), 10**9)
    return "'" + datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z'"


# InfluxDB 3 reads only the Parquet files a query's time bounds select: what is newest is looked for in growing
# windows back from now (live tables find it in the first), the whole table only as the last resort.
LOOKBACK_DAYS = (2, 40, 400)


def lookback_bounds() -> Iterator[str | None]:
    """`time >= '...'` for each of LOOKBACK_DAYS back from now (read once, at the first bound), then None: no bound."""
    now = time.time_ns()
    for days in LOOKBACK_DAYS:
        yield f"time >= {timestamp_literal(now - days * 86_400 * 10**9)}"
    yield None


def table_exists(influxdb3_local: Any, table: str) -> bool:
    rows = influxdb3_local.query(
        "SELECT table_name FROM information_schema.tables WHERE table_name = $table", {"table": identifier(table)})
    return bool(rows)


def column_types(influxdb3_local: Any, table: str) -> dict[str, str]:
    """Column name -> Arrow type as the server prints it (tags are `Dictionary(Int32, Utf8)`); {} if no table."""
    rows = influxdb3_local.query(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = $table",
        {"table": identifier(table)})
    return {str(row["column_name"]): str(row["data_type"]) for row in rows}


def tag_columns(types: dict[str, str]) -> list[str]:
    """The tag columns of a table, from `column_types`: InfluxDB 3 stores tags dictionary-encoded."""
    return sorted(name for name, kind in types.items() if kind.startswith("Dictionary("))


def table_span(influxdb3_local: Any, table: str) -> tuple[int, int, int] | None:
    """(first time, last time, rows) of the table without reading every Parquet file: a min/max/count over the
    table would scan them all and fail past --query-file-limit. The persisted part comes from
    system.parquet_files (influxdb3_system_tables/src/parquet_files.rs: each file's min/max time and rows);
    rows newer than the newest file are in the write buffer (or in files of that span), read with a bound."""
    files = influxdb3_local.query("SELECT min(min_time) AS lo, max(max_time) AS hi, sum(row_count) AS n, "
                                  "count(*) AS files FROM system.parquet_files WHERE table_name = $table",
                                  {"table": identifier(table)})
    low = high = None
    total = 0
    if files and files[0].get("files"):
        low, high, total = int(files[0]["lo"]), int(files[0]["hi"]), int(files[0]["n"] or 0)
    since = f" WHERE time > {timestamp_literal(high)}" if high is not None else ""
    newer = influxdb3_local.query(f"SELECT min(time) AS lo, max(time) AS hi, count(*) AS n FROM {quote(table)}{since}")
    if newer and newer[0].get("n"):
        low = int(newer[0]["lo"]) if low is None else min(low, int(newer[0]["lo"]))
        high = int(newer[0]["hi"]) if high is None else max(high, int(newer[0]["hi"]))
        total += int(newer[0]["n"])
    return None if low is None or high is None or not total else (low, high, total)


# Core refuses a query whose time bounds select more Parquet files than --query-file-limit (the stack runs with at
# most 2,000; Core's default is 432): a read of a whole history is cut into windows of at most this many files.
MAX_FILES_PER_QUERY = 400

Window = tuple[int | None, int | None]


def split_windows(spans: Iterable[tuple[int, int]], max_files: int, lower: int | None = None,
                  upper: int | None = None) -> list[Window]:
    """Consecutive disjoint windows [start, end] (ns, both inclusive, None: unbounded) covering [lower, upper],
    each overlapping at most `max_files` of the files whose (min time, max time) are `spans`, as Core selects files
    (a file is read when its span overlaps the query's time bounds). The last window reaches `upper`, so rows
    newer than every file (the write buffer) are read too. Files that all start at one instant cannot be told apart
    by time: more than `max_files` of them make one window over the limit."""
    spans = sorted((low, high) for low, high in spans
                   if (upper is None or low <= upper) and (lower is None or high >= lower))
    windows: list[Window] = []
    start, first = lower, 0
    reaching: list[int] = []  # max times of the files before `first` that overlap the window starting at `start`
    while True:
        room = max(1, max_files - len(reaching))
        if len(spans) - first <= room:
            windows.append((start, upper))
            return windows
        cut = first + room  # the first file of the next window, which starts where that file starts
        while cut > first and spans[cut - 1][0] == spans[cut][0]:
            cut -= 1
        if cut == first:
            cut = first + room
            while cut < len(spans) and spans[cut][0] == spans[cut - 1][0]:
                cut += 1
            if cut == len(spans):
                windows.append((start, upper))
                return windows
        windows.append((start, spans[cut][0] - 1))
        for _, high in spans[first:cut]:
            heapq.heappush(reaching, high)
        start, first = spans[cut][0], cut
        while reaching and reaching[0] < start:
            heapq.heappop(reaching)


def file_spans(influxdb3_local: Any, table: str) -> list[tuple[int, int]]:
    """(min time, max time) of each of the table's Parquet files as system.parquet_files lists them: what Core has
    persisted (rows still in its write buffer are in none)."""
    rows = influxdb3_local.query("SELECT min_time, max_time FROM system.parquet_files WHERE table_name = $table",
                                 {"table": identifier(table)})
    return [(int(row["min_time"]), int(row["max_time"])) for row in rows
            if row.get("min_time") is not None and row.get("max_time") is not None]


def file_windows(influxdb3_local: Any, table: str, max_files: int = MAX_FILES_PER_QUERY, lower: int | None = None,
                 upper: int | None = None) -> list[Window]:
    """`split_windows` over the table's Parquet files (`file_spans`): one query per window then opens at most
    `max_files` files."""
    return split_windows(file_spans(influxdb3_local, table), max_files, lower, upper)


def window_condition(window: Window) -> str:
    """The `time` condition of a window (`TRUE` when it is unbounded on both sides)."""
    start, end = window
    parts = ([f"time >= {timestamp_literal(start)}"] if start is not None else []) + (
        [f"time <= {timestamp_literal(end)}"] if end is not None else [])
    return " AND ".join(parts) or "TRUE"


def windowed_query(influxdb3_local: Any, table: str, sql: str, params: Mapping[str, str] | None = None,
                   max_files: int = MAX_FILES_PER_QUERY, lower: int | None = None,
                   upper: int | None = None) -> list[dict[str, Any]]:
    """The rows of `sql` over `table` between `lower` and `upper`, read one `file_windows` window at a time: `sql`
    holds `{window}` where the window's time condition goes (e.g. `... WHERE series = $series AND {window} ORDER
    BY time`). Windows are disjoint and ascending, so rows ordered by time come out as one query would give them."""
    rows: list[dict[str, Any]] = []
    for window in file_windows(influxdb3_local, table, max_files, lower, upper):
        rows.extend(influxdb3_local.query(sql.replace("{window}", window_condition(window)), params))
    return rows
