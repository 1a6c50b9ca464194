"""Statistics: the statistics plugin's analytics_<table> tables — the latest figures and their trend per bucket.

The plugin writes one row per field per bucket, stamped at the bucket's start: one Parquet file per bucket (per
hour for the sensors), never compacted. A median or a 95th percentile cannot be combined from finer buckets'
ones, so there is no coarser tier to switch to at long ranges (as grafana/history.py does for raw tables):
every query reads the newest WINDOW_DAYS of the time range instead, at most 745 hourly buckets' files
(issue #18). The long-range history of the raw fields is on the Sensors and Weather dashboards.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.models import dashboard, units

from grafana.alerting.settings import DEFAULTS, Settings
from grafana.datasources import SQL_FORECAST
from grafana.names import column
from grafana.panels import board, finish, override, sql_in, table_panel, time_series, variable
from grafana.queries import TABLE, TIME_SERIES, SqlQuery
from ingest.schema import SENSORS
from plugins.stacklib.tables import ANALYTICS_PREFIX, STATISTICS, analytics_table

UID = "statistics"
DS = SQL_FORECAST
# The table is a variable: every analytics_<table> has the same columns, so one spec describes them all.
SPEC = analytics_table("<table>")
FIELD, BUCKET = column(SPEC, "field"), column(SPEC, "bucket")
COUNT, MIN, MAX, MEAN, MEDIAN, P95 = (column(SPEC, name) for name in ("count", "min", "max", "mean", "median", "p95"))
TABLE_REF = "${table:raw}"  # a table name is an identifier: inserted as it is, never quoted as a string
THIS_BUCKET = f"{BUCKET} = ${{bucket:sqlstring}}"
# The newest WINDOW_DAYS of the range: both bounds fold to timestamps before the scan, so Core opens only the files
# of those days whatever range is picked (an empty intersection with the range is impossible: the upper bound is
# the range's end).
WINDOW_DAYS = 31
WINDOW = (f"time >= greatest($__timeFrom(), $__timeTo() - INTERVAL '{WINDOW_DAYS} days') "
          "AND time <= $__timeTo()")
SELECTED = f"{THIS_BUCKET} AND {sql_in(FIELD, 'field')} AND {WINDOW}"
# The newest bucket's statistics of each field: one row per field per bucket, so each is the last by time. An
# ordered aggregate rather than row_number() OVER (PARTITION BY field ...): on Core 3.6.0 that window failed on a
# year-old stack ("Expects PARTITION BY expression to be ordered", benchmarks/bench_history.py).
NEWEST = ", ".join(f"last_value({name} ORDER BY time) AS {name}" for name in STATISTICS)
# One row per bucket: an hour apart at the finest (the provisioned statistics triggers' smallest bucket).
FINEST_BUCKET = "1h"


def build(settings: Settings = DEFAULTS) -> dashboard.Dashboard:
    band = {"color": {"mode": "fixed", "fixedColor": "purple"}}
    built = (board(UID, "Statistics",
                   "What the statistics plugin computed: count, min, max, mean, median, mode and 95th percentile of "
                   "every numeric field, per bucket (analytics_<table> in InfluxDB 3's forecast database). Every "
                   f"panel shows the newest {WINDOW_DAYS} days of the time range (one stored row per bucket: "
                   "longer ranges would read too many files); pick a range that ends in a table's data to see "
                   "older statistics.", time=("now-7d", "now"),
                   refresh="5m", tags=["statistics"])
             .with_variable(variable(
                 "table", "Statistics table", DS,
                 "SELECT table_name FROM information_schema.tables WHERE table_schema = 'iox' AND "
                 f"starts_with(table_name, '{ANALYTICS_PREFIX}') ORDER BY table_name",
                 multi=False, include_all=False, refresh=dashboard.VariableRefresh.ON_DASHBOARD_LOAD,
                 current=analytics_table(SENSORS.name).name))
             .with_variable(variable("bucket", "Bucket", DS,
                                     f"SELECT DISTINCT {BUCKET} FROM {TABLE_REF} WHERE {WINDOW} ORDER BY {BUCKET}",
                                     multi=False, include_all=False,
                                     description=f"Bucket widths with statistics in the newest {WINDOW_DAYS} days "
                                                 "of the range."))
             .with_variable(variable("field", "Field", DS,
                                     f"SELECT DISTINCT {FIELD} FROM {TABLE_REF} WHERE {THIS_BUCKET} AND {WINDOW} "
                                     f"ORDER BY {FIELD}"))
             .with_row(dashboard_builders.Row("Latest"))
             .with_panel(table_panel(
                 "Latest statistics (${table}, bucket ${bucket})",
                 f"The newest bucket of every selected field in the newest {WINDOW_DAYS} days of the range.",
                 units.Short, DS,
                 [SqlQuery(DS, f"SELECT {FIELD}, max(time) AS time, {NEWEST}\nFROM {TABLE_REF}\nWHERE {SELECTED}\n"
                               f"GROUP BY {FIELD}\nORDER BY {FIELD}", fmt=TABLE)]))
             .with_row(dashboard_builders.Row("Trends per bucket"))
             .with_panel(time_series(
                 "${field}: min, mean, median, p95 and max per bucket",
                 f"Per bucket in the newest {WINDOW_DAYS} days of the range; the band runs from the bucket's "
                 "minimum to its maximum.", units.Short, DS,
                 [SqlQuery(DS, f"SELECT time, {MIN}, {MEAN}, {MEDIAN}, {P95}, {MAX} FROM {TABLE_REF}\n"
                               f"WHERE {SELECTED}\nORDER BY time", fmt=TIME_SERIES)],
                 overrides=[override(MIN, **band, **{"custom.lineWidth": 0}),
                            override(MAX, **band, **{"custom.lineWidth": 0, "custom.fillOpacity": 15,
                                                     "custom.fillBelowTo": MIN}),
                            override(P95, **{"custom.lineStyle": {"fill": "dash", "dash": [10, 10]}})],
                 fill=0, min_interval=FINEST_BUCKET).repeat("field").repeat_direction("h").max_per_row(2))
             .with_panel(time_series(
                 "Values per bucket",
                 f"How many values of each field every bucket summarises (newest {WINDOW_DAYS} days of the range).",
                 units.Short, DS,
                 [SqlQuery(DS, f"SELECT time, {FIELD}, {COUNT} FROM {TABLE_REF}\nWHERE {SELECTED}\n"
                               f"ORDER BY time, {FIELD}", fmt=TIME_SERIES)], bars=True, width=24,
                 min_interval=FINEST_BUCKET)))
    return finish(built.build())
