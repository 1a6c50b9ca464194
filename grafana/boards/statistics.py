"""Statistics: the statistics plugin's analytics_<table> tables — the latest figures and their trend per bucket."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.models import dashboard, units

from grafana.alerting.settings import DEFAULTS, Settings
from grafana.datasources import SQL_FORECAST
from grafana.names import column
from grafana.panels import TIME_FILTER, board, finish, override, sql_in, table_panel, time_series, variable
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
SELECTED = f"{THIS_BUCKET} AND {sql_in(FIELD, 'field')}"


def build(settings: Settings = DEFAULTS) -> dashboard.Dashboard:
    band = {"color": {"mode": "fixed", "fixedColor": "purple"}}
    built = (board(UID, "Statistics",
                   "What the statistics plugin computed: count, min, max, mean, median, mode and 95th percentile of "
                   "every numeric field, per bucket (analytics_<table> in InfluxDB 3's forecast database). The "
                   "latest figures ignore the time range; the trends follow it.", time=("now-7d", "now"),
                   refresh="5m", tags=["statistics"])
             .with_variable(variable(
                 "table", "Statistics table", DS,
                 "SELECT table_name FROM information_schema.tables WHERE table_schema = 'iox' AND "
                 f"starts_with(table_name, '{ANALYTICS_PREFIX}') ORDER BY table_name",
                 multi=False, include_all=False, refresh=dashboard.VariableRefresh.ON_DASHBOARD_LOAD,
                 current=analytics_table(SENSORS.name).name))
             .with_variable(variable("bucket", "Bucket", DS,
                                     f"SELECT DISTINCT {BUCKET} FROM {TABLE_REF} ORDER BY {BUCKET}",
                                     multi=False, include_all=False,
                                     refresh=dashboard.VariableRefresh.ON_DASHBOARD_LOAD))
             .with_variable(variable("field", "Field", DS,
                                     f"SELECT DISTINCT {FIELD} FROM {TABLE_REF} WHERE {THIS_BUCKET} ORDER BY {FIELD}",
                                     refresh=dashboard.VariableRefresh.ON_DASHBOARD_LOAD))
             .with_row(dashboard_builders.Row("Latest"))
             .with_panel(table_panel(
                 "Latest statistics (${table}, bucket ${bucket})",
                 "The newest bucket of every selected field, whatever the time range.", units.Short, DS,
                 [SqlQuery(DS, f"SELECT {FIELD}, time, {', '.join(STATISTICS)}\nFROM (SELECT *, row_number() OVER "
                               f"(PARTITION BY {FIELD} ORDER BY time DESC) AS rn FROM {TABLE_REF} WHERE {SELECTED}) "
                               f"AS ranked\nWHERE rn = 1\nORDER BY {FIELD}", fmt=TABLE)]))
             .with_row(dashboard_builders.Row("Trends per bucket"))
             .with_panel(time_series(
                 "${field}: min, mean, median, p95 and max per bucket",
                 "The band runs from the bucket's minimum to its maximum.", units.Short, DS,
                 [SqlQuery(DS, f"SELECT time, {MIN}, {MEAN}, {MEDIAN}, {P95}, {MAX} FROM {TABLE_REF}\n"
                               f"WHERE {SELECTED} AND {TIME_FILTER}\nORDER BY time", fmt=TIME_SERIES)],
                 overrides=[override(MIN, **band, **{"custom.lineWidth": 0}),
                            override(MAX, **band, **{"custom.lineWidth": 0, "custom.fillOpacity": 15,
                                                     "custom.fillBelowTo": MIN}),
                            override(P95, **{"custom.lineStyle": {"fill": "dash", "dash": [10, 10]}})],
                 fill=0).repeat("field").repeat_direction("h").max_per_row(2))
             .with_panel(time_series(
                 "Values per bucket", "How many values of each field every bucket summarises.", units.Short, DS,
                 [SqlQuery(DS, f"SELECT time, {FIELD}, {COUNT} FROM {TABLE_REF}\nWHERE {SELECTED} AND {TIME_FILTER}\n"
                               f"ORDER BY time, {FIELD}", fmt=TIME_SERIES)], bars=True, width=24)))
    return finish(built.build())
