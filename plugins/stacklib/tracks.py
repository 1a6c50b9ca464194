"""Track summaries: what the rollups plugin keeps of animal tracking fixes per bucket, and the SQL both it and the
Birds dashboard use, so that a bucket's summary and the dashboard's reading of raw fixes agree exactly.

A bucket's row, per tag set (e.g. species and individual), holds what a panel needs over any range without the
fixes themselves: how many fixes and outliers, the legs flown between consecutive good fixes inside the bucket
(km and hours), the first and last good position, and the newest outlier's position. The leg between two buckets
is not stored: it joins one bucket's last position to the next one's first, so a reader computes it with `lag()`
over the buckets it reads, and a coarser bucket adds up its finer ones the same way. A fix is good when it is not
an outlier (Movebank's `outlier` flag, or `visible` false) and has a position.

Every column is written only when it has a value (Core 3.6.0's plugin `query()` reads NULL as 0): `good` and
`placed` count the good fixes and the outliers with a position, and the positions are written only when those
are above zero.
"""

from __future__ import annotations

from .windows import over

__all__ = [
    "EARTH_RADIUS_KM", "LAT", "LON", "TRACK_COLUMNS", "TRACK_COUNTS", "TRACK_POSITIONS", "fix_columns",
    "haversine_km", "is_good", "is_outlier", "summary_sql",
]

LAT, LON, OUTLIER, VISIBLE = "lat", "lon", "outlier", "visible"
EARTH_RADIUS_KM = 6371.0088  # mean Earth radius (IUGG)

# (column, type) of a summary row, as influxdb3-init creates the tables (compose/influxdb3-init spec.py mirrors it).
TRACK_COUNTS = (("fixes", "int64"), ("outliers", "int64"), ("good", "int64"), ("placed", "int64"),
                ("km", "float64"), ("hours", "float64"), ("newest_ns", "int64"))
TRACK_POSITIONS = (("first_ns", "int64"), ("first_lat", "float64"), ("first_lon", "float64"),
                   ("last_ns", "int64"), ("last_lat", "float64"), ("last_lon", "float64"),
                   ("outlier_ns", "int64"), ("outlier_lat", "float64"), ("outlier_lon", "float64"))
TRACK_COLUMNS = TRACK_COUNTS + TRACK_POSITIONS


def is_outlier(prefix: str = "") -> str:
    """Movebank marks the fix (manually or on import) or hides it (visible=false)."""
    return f"(coalesce({prefix}{OUTLIER}, false) OR NOT coalesce({prefix}{VISIBLE}, true))"


def _placed(prefix: str = "") -> str:
    return f"({prefix}{LAT} IS NOT NULL AND {prefix}{LON} IS NOT NULL)"


def is_good(prefix: str = "") -> str:
    """A fix a route and a distance use: not an outlier, with a position."""
    return f"(NOT {is_outlier(prefix)} AND {_placed(prefix)})"


def haversine_km(lat1: str, lon1: str, lat2: str, lon2: str) -> str:
    """Great-circle distance in km between two points given in degrees (SQL expression)."""
    return (f"2 * {EARTH_RADIUS_KM} * asin(sqrt(power(sin(radians({lat2} - {lat1}) / 2), 2) + "
            f"cos(radians({lat1})) * cos(radians({lat2})) * power(sin(radians({lon2} - {lon1}) / 2), 2)))")


def fix_columns() -> list[str]:
    """A raw fix as a summary row of one fix (a bucket holding only it): the SELECT list over the raw table."""
    good, bad, placed = is_good(), is_outlier(), f"({is_outlier()} AND {_placed()})"
    ns = "CAST(time AS BIGINT)"

    def when(condition: str, value: str) -> str:
        return f"CASE WHEN {condition} THEN {value} END"

    return ["CAST(1 AS BIGINT) AS fixes", f"CAST(CASE WHEN {bad} THEN 1 ELSE 0 END AS BIGINT) AS outliers",
            f"CAST(CASE WHEN {good} THEN 1 ELSE 0 END AS BIGINT) AS good",
            f"CAST(CASE WHEN {placed} THEN 1 ELSE 0 END AS BIGINT) AS placed",
            "CAST(0 AS DOUBLE) AS km", "CAST(0 AS DOUBLE) AS hours", f"{ns} AS newest_ns",
            f"{when(good, ns)} AS first_ns", f"{when(good, LAT)} AS first_lat", f"{when(good, LON)} AS first_lon",
            f"{when(good, ns)} AS last_ns", f"{when(good, LAT)} AS last_lat", f"{when(good, LON)} AS last_lon",
            f"{when(placed, ns)} AS outlier_ns", f"{when(placed, LAT)} AS outlier_lat",
            f"{when(placed, LON)} AS outlier_lon"]


def summary_sql(rows: str, bucket: str, tags: list[str]) -> str:
    """One summary row per bucket and tag set from `rows`: a query whose columns are `time`, `tags` and
    TRACK_COLUMNS (raw fixes through `fix_columns`, or finer summary rows). `bucket` is the SQL of a row's bucket.

    A bucket's legs: its rows' own legs, plus one leg from each row's predecessor with a position in the same
    bucket and tag set (its last position) to the row's first position."""
    key = ", ".join(["_bucket", *tags])
    window = over(*tags, expressions=(bucket, "(good > 0)"))
    legs = (f"SELECT {bucket} AS _bucket, *, lag(last_lat) {window} AS prev_lat, lag(last_lon) {window} AS prev_lon, "
            f"lag(last_ns) {window} AS prev_ns FROM ({rows}) AS summaries")
    leg_km = f"CASE WHEN good > 0 THEN {haversine_km('prev_lat', 'prev_lon', 'first_lat', 'first_lon')} END"
    leg_hours = "CASE WHEN good > 0 THEN (first_ns - prev_ns) / 3600000000000.0 END"
    has, placed = "(good > 0)", "(placed > 0)"
    select = [
        "_bucket", *tags, "sum(fixes) AS fixes", "sum(outliers) AS outliers", "sum(good) AS good",
        "sum(placed) AS placed", f"coalesce(sum(km), 0) + coalesce(sum({leg_km}), 0) AS km",
        f"coalesce(sum(hours), 0) + coalesce(sum({leg_hours}), 0) AS hours", "max(newest_ns) AS newest_ns",
        f"coalesce(min(CASE WHEN {has} THEN first_ns END), 0) AS first_ns",
        f"coalesce(first_value(first_lat ORDER BY (NOT {has}), time), 0) AS first_lat",
        f"coalesce(first_value(first_lon ORDER BY (NOT {has}), time), 0) AS first_lon",
        f"coalesce(max(CASE WHEN {has} THEN last_ns END), 0) AS last_ns",
        f"coalesce(last_value(last_lat ORDER BY {has}, time), 0) AS last_lat",
        f"coalesce(last_value(last_lon ORDER BY {has}, time), 0) AS last_lon",
        f"coalesce(max(CASE WHEN {placed} THEN outlier_ns END), 0) AS outlier_ns",
        f"coalesce(last_value(outlier_lat ORDER BY {placed}, outlier_ns), 0) AS outlier_lat",
        f"coalesce(last_value(outlier_lon ORDER BY {placed}, outlier_ns), 0) AS outlier_lon",
    ]
    return f"SELECT {', '.join(select)} FROM ({legs}) AS legs GROUP BY {key}"
