"""The SQL of one rollup step and the points its answer becomes.

Exact by construction: from raw rows, count/sum/min/max and the last non-null value per field, per tag set and
bucket; from a finer level, the sums of counts and sums, the min of mins, the max of maxes and the last `last` of
the buckets that had a value. The last non-null value orders the rows with a value after those without, then by
time: Core 3.6.0's SQL parser refuses an aggregate's FILTER clause. The mean is sum / count, so a day's mean is
the mean of its raw values, not the mean of hourly means. Nothing here reaches a plugin API that returns NULL as
0 (v3.6.0 `query()` reads each value without a null check): a field's aggregates are written only where its
count is above zero, and tags are read through `coalesce(tag, '')` and written only when not empty.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from stacklib.sql import quote, timestamp_literal
from stacklib.tracks import TRACK_COLUMNS, TRACK_COUNTS, fix_columns, summary_sql

from .levels import Level

__all__ = ["NUMERIC_TYPES", "aggregate_sql", "bucket_sql", "fields_of", "points", "track_points", "track_sql"]

NUMERIC_TYPES = ("Float64", "Int64", "UInt64")
_BUCKET = "_bucket"


def fields_of(level: Level, columns: Mapping[str, str]) -> list[str]:
    """The fields a level rolls up: every numeric field of the raw table, or the fields its finer level wrote."""
    if level.from_raw:
        return sorted(name for name, kind in columns.items() if name != "time" and kind in NUMERIC_TYPES)
    return sorted(name[: -len("_count")] for name in columns if name.endswith("_count")
                  and all(f"{name[: -len('_count')]}_{what}" in columns for what in ("sum", "min", "max", "last")))


def _aggregates(level: Level, field: str) -> list[str]:
    if level.from_raw:
        value = quote(field)
        return [f'count({value}) AS "{field}_count"', f'sum({value}) AS "{field}_sum"',
                f'min({value}) AS "{field}_min"', f'max({value}) AS "{field}_max"',
                f'last_value({value} ORDER BY ({value} IS NOT NULL), time) AS "{field}_last"']
    count = quote(f"{field}_count")
    return [f'sum({count}) AS "{field}_count"', f'sum({quote(field + "_sum")}) AS "{field}_sum"',
            f'min({quote(field + "_min")}) AS "{field}_min"', f'max({quote(field + "_max")}) AS "{field}_max"',
            f'last_value({quote(field + "_last")} ORDER BY (coalesce({count}, 0) > 0), time) AS "{field}_last"']


def bucket_sql(width_ns: int) -> str:
    """The start of each row's bucket of `width_ns`, aligned to the Unix epoch as levels.py cuts them."""
    return f"date_bin(INTERVAL '{width_ns // 10**9} seconds', time, TIMESTAMP '1970-01-01T00:00:00Z')"


def aggregate_sql(level: Level, tags: Iterable[str], fields: Iterable[str], start_ns: int, end_ns: int) -> str:
    """One row per bucket and tag set of [start, end) of the level's source."""
    tags = list(tags)
    select = [f'{bucket_sql(level.width_ns)} AS "{_BUCKET}"']
    select += [f"coalesce({quote(tag)}, '') AS {quote(tag)}" for tag in tags]
    for field in fields:
        select += _aggregates(level, field)
    group = ", ".join(str(position) for position in range(1, len(tags) + 2))
    return (f"SELECT {', '.join(select)} FROM {quote(level.source)} "
            f"WHERE time >= {timestamp_literal(start_ns)} AND time < {timestamp_literal(end_ns)} GROUP BY {group}")


def points(rows: Iterable[Mapping[str, Any]], tags: Iterable[str], fields: Iterable[str]
           ) -> Iterable[tuple[dict[str, str | None], dict[str, int | float], int]]:
    """(tags, fields, time) of each output point; a row without any counted value gives none."""
    tags, fields = list(tags), list(fields)
    for row in rows:
        values: dict[str, int | float] = {}
        for field in fields:
            count = int(row.get(f"{field}_count") or 0)
            if count <= 0:
                continue
            total = float(row[f"{field}_sum"])
            values.update({f"{field}_count": count, f"{field}_sum": total, f"{field}_min": float(row[f"{field}_min"]),
                           f"{field}_max": float(row[f"{field}_max"]), f"{field}_last": float(row[f"{field}_last"]),
                           f"{field}_mean": total / count})
        if values:
            labels = {tag: (str(row[tag]) if row.get(tag) not in (None, "") else None) for tag in tags}
            yield labels, values, int(row[_BUCKET])


def track_sql(level: Level, tags: Iterable[str], start_ns: int, end_ns: int) -> str:
    """Track summaries (stacklib/tracks.py) per bucket and tag set of [start, end): from raw fixes, each a summary
    of one fix, or from the finer level's summaries."""
    tags = list(tags)
    columns = fix_columns() if level.from_raw else [name for name, _ in TRACK_COLUMNS]
    rows = (f"SELECT time, {', '.join(f'coalesce({quote(tag)}, {chr(39)}{chr(39)}) AS {quote(tag)}' for tag in tags)}"
            f"{', ' if tags else ''}{', '.join(columns)} FROM {quote(level.source)} "
            f"WHERE time >= {timestamp_literal(start_ns)} AND time < {timestamp_literal(end_ns)}")
    return summary_sql(rows, bucket_sql(level.width_ns), [quote(tag) for tag in tags])


_POSITIONS = {"good": ("first_ns", "first_lat", "first_lon", "last_ns", "last_lat", "last_lon"),
              "placed": ("outlier_ns", "outlier_lat", "outlier_lon")}


def track_points(rows: Iterable[Mapping[str, Any]], tags: Iterable[str]
                 ) -> Iterable[tuple[dict[str, str | None], dict[str, int | float], int]]:
    """(tags, fields, time) of each summary point: the counts always, a position only where one was seen."""
    tags = list(tags)
    for row in rows:
        values: dict[str, int | float] = {name: (int(row[name] or 0) if kind == "int64" else float(row[name] or 0))
                                          for name, kind in TRACK_COUNTS}
        if values["fixes"] <= 0:
            continue
        for count, names in _POSITIONS.items():
            if values[count] > 0:
                values.update({name: (int(row[name]) if name.endswith("_ns") else float(row[name]))
                               for name in names})
        labels = {tag: (str(row[tag]) if row.get(tag) not in (None, "") else None) for tag in tags}
        yield labels, values, int(row[_BUCKET])
