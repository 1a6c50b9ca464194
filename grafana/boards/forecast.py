"""Forecast: the series against Prophet's forecast with its interval band, and the forecast's accuracy per run.

Everything here is in InfluxDB 3's `forecast` database, written by the forecast plugins (tables.py). Every query
opens a bounded number of Parquet files however long the history (issue #18): the series (one file per day) is
read range-aware through its rollups (grafana/history.py, the forecast-rollups trigger), a run's rows from the
run's own second, and the runs (one evaluation file per daily run) from the last ACCURACY_DAYS days.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.models import common, dashboard, units

from grafana import history
from grafana.alerting.settings import DEFAULTS, Settings
from grafana.datasources import SQL_FORECAST
from grafana.names import column
from grafana.panels import (
    DATE_BIN,
    TIME_FILTER,
    board,
    finish,
    override,
    stat_panel,
    table_panel,
    time_series,
    variable,
)
from grafana.queries import TABLE, TIME_SERIES, SqlQuery
from plugins.stacklib.runlog import RUN_TIME_CHARS
from plugins.stacklib.tables import EVALUATION, FORECAST, RUN_WINDOW_NS, SERIES

UID = "forecast"
DS = SQL_FORECAST
SERIES_TAG = column(SERIES, "series")
Y = column(SERIES, "y")
YHAT, LOWER, UPPER = (column(FORECAST, name) for name in ("yhat", "yhat_lower", "yhat_upper"))
RUN = column(FORECAST, "run")
MAE, MAPE, COVERAGE = (column(EVALUATION, name) for name in ("mae", "mape", "coverage"))
RUN_COLUMNS = [column(EVALUATION, name) for name in ("run", "mae", "mape", "coverage", "holdout_days", "train_rows",
                                                     "test_rows", "fit_seconds")]
THIS_SERIES = f"{SERIES_TAG} = ${{series:sqlstring}}"
FORECAST_DAY = column(FORECAST, "ds")
# A run's rows (its forecast, its grade) sit in the run's own second (plugins/stacklib/tables.py, FORECAST), found
# from the run id's RFC 3339 prefix: InfluxDB 3 then reads that run's Parquet file only (it prunes files by time,
# never by tag).
RUN_START = f"to_timestamp(left(${{run:sqlstring}}, {RUN_TIME_CHARS}))"
IN_RUN_WINDOW = f"time >= {RUN_START} AND time < {RUN_START} + INTERVAL '{RUN_WINDOW_NS // 10**9} second'"
RUN_ROWS = f"{THIS_SERIES} AND {RUN} = ${{run:sqlstring}} AND {IN_RUN_WINDOW}"
THIS_RUN = f"{THIS_SERIES} AND {column(EVALUATION, 'run')} = ${{run:sqlstring}} AND {IN_RUN_WINDOW}"
# The runs are daily (one evaluation file each); accuracy panels look at the last quarter whatever range the
# forecast chart shows (their relative time, which Grafana puts in place of the dashboard's range).
ACCURACY_DAYS = 90
ACCURACY_RANGE = f"{ACCURACY_DAYS}d"
RECENT_RUNS = f"time >= now() - INTERVAL '{ACCURACY_DAYS} days'"


def observed(where: str = THIS_SERIES) -> str:
    """The series over the range: raw days, or its hourly, daily or weekly rollups by the range's length."""
    return history.source(SERIES.name, (SERIES_TAG,), (Y,), where)


def accuracy_stat(name: str, title: str, description: str, unit: str, steps: tuple = ((None, "green"),)):
    return stat_panel(title, description, unit, DS, [
        SqlQuery(DS, f"SELECT time, {name} FROM {EVALUATION.name} WHERE {THIS_RUN}")], field=name, width=6,
        steps=steps)


def build(settings: Settings = DEFAULTS) -> dashboard.Dashboard:
    band = "Interval of the forecast (Prophet's interval_width, 80 % by default)."
    built = (board(UID, "Forecast",
                   "The daily series (peyton_views) against Prophet's forecast of the selected run, with its "
                   "uncertainty band, and how well each run predicted the days it held out. The default series "
                   "(Peyton Manning's page views) ends in 2016 and its forecast in 2017: the default range reaches "
                   "20 years back and one year ahead.", time=("now-20y", "now+1y"), tags=["forecast"])
             .with_variable(variable("series", "Series", DS,
                                     f"SELECT DISTINCT {SERIES_TAG} FROM {observed('')} ORDER BY {SERIES_TAG}",
                                     multi=False, include_all=False,
                                     description="The series with observations in the time range (read from "
                                                 "their rollups at long ranges)."))
             .with_variable(variable("run", "Forecast run", DS,
                                     f"SELECT DISTINCT {RUN} FROM {FORECAST.name} WHERE {THIS_SERIES} "
                                     f"AND {RECENT_RUNS} "
                                     f"ORDER BY {RUN} DESC", multi=False, include_all=False,
                                     sort=dashboard.VariableSort.DISABLED,
                                     refresh=dashboard.VariableRefresh.ON_DASHBOARD_LOAD,
                                     description=f"The runs of the last {ACCURACY_DAYS} days; run ids start with "
                                                 "their start time, so the first one is the latest run."))
             .with_row(dashboard_builders.Row("Forecast"))
             .with_panel(time_series(
                 "Actual and forecast (${series}, run ${run})",
                 "Observed values (actual: the mean of the days in each time bin, so one point per day at ranges "
                 "of months and weekly means at ranges of years, read from the series' rollups), the forecast "
                 f"(yhat, per day) and its band (yhat_lower to yhat_upper). {band}",
                 units.Short, DS, [
                     SqlQuery(DS, f"SELECT {DATE_BIN} AS time, {history.mean(Y)} AS actual\nFROM {observed()}\n"
                                  "GROUP BY 1\nORDER BY 1", ref_id="A", fmt=TIME_SERIES),
                     SqlQuery(DS, f"SELECT to_timestamp_nanos({FORECAST_DAY}) AS time, {YHAT} AS forecast, "
                                  f"{LOWER} AS lower, {UPPER} AS upper\nFROM {FORECAST.name}\nWHERE {RUN_ROWS}\n"
                                  f"ORDER BY {FORECAST_DAY}",
                              ref_id="B", fmt=TIME_SERIES)],
                 width=24, height=10, fill=0, min_interval="1d", overrides=[
                     override("actual", **{"color": {"mode": "fixed", "fixedColor": "text"}}),
                     override("forecast", **{"color": {"mode": "fixed", "fixedColor": "blue"},
                                             "custom.lineWidth": 2}),
                     override("lower", **{"color": {"mode": "fixed", "fixedColor": "blue"}, "custom.lineWidth": 0,
                                          "custom.hideFrom": {"legend": True, "tooltip": False, "viz": False}}),
                     override("upper", **{"color": {"mode": "fixed", "fixedColor": "blue"}, "custom.lineWidth": 0,
                                          "custom.fillOpacity": 20, "custom.fillBelowTo": "lower",
                                          "displayName": "interval"}),
                 ]))
             .with_row(dashboard_builders.Row("Accuracy"))
             .with_panel(accuracy_stat(MAE, "MAE", "Mean absolute error on the held-out days of the selected run "
                                       "(in the series' unit).", units.Short))
             .with_panel(accuracy_stat(MAPE, "MAPE", "Mean absolute percentage error on the held-out days (red "
                                       "where the forecast alert fires).", units.Percent,
                                       ((None, "green"), (settings.forecast_mape_max, "red"))))
             .with_panel(accuracy_stat(COVERAGE, "Interval coverage", "Share of held-out days inside the band: "
                                       "close to the interval width when the band is honest.", units.PercentUnit))
             .with_panel(stat_panel("Runs", f"Forecast runs of this series in the last {ACCURACY_DAYS} days.",
                                    units.Short, DS, [
                 SqlQuery(DS, f"SELECT count(*) AS runs FROM {EVALUATION.name} WHERE {THIS_SERIES} AND {TIME_FILTER}")],
                 field="runs", width=6).time_from(ACCURACY_RANGE))
             .with_panel(time_series(
                 "Error per run", "MAE (left axis) and MAPE (right axis) of every run, at the time it ran.",
                 units.Short, DS, [SqlQuery(DS, f"SELECT time, {MAE}, {MAPE} FROM {EVALUATION.name}\n"
                                                f"WHERE {THIS_SERIES} AND {TIME_FILTER}\nORDER BY time",
                                            fmt=TIME_SERIES)],
                 overrides=[override(MAPE, **{"unit": units.Percent, "custom.axisPlacement": "right"})])
                 .show_points(common.VisibilityMode.ALWAYS).time_from(ACCURACY_RANGE))
             .with_panel(time_series(
                 "Interval coverage per run", "Share of held-out days inside the forecast band, per run.",
                 units.PercentUnit, DS, [SqlQuery(DS, f"SELECT time, {COVERAGE} FROM {EVALUATION.name}\n"
                                                      f"WHERE {THIS_SERIES} AND {TIME_FILTER}\nORDER BY time",
                                                  fmt=TIME_SERIES)])
                 .show_points(common.VisibilityMode.ALWAYS).min(0).max(1).time_from(ACCURACY_RANGE))
             .with_panel(table_panel(
                 "Latest runs", f"The 50 newest runs of this series in the last {ACCURACY_DAYS} days with their "
                 "holdout grades.", units.NoUnit, DS,
                 [SqlQuery(DS, f"SELECT time, {', '.join(RUN_COLUMNS)} FROM {EVALUATION.name}\nWHERE {THIS_SERIES} "
                               f"AND {RECENT_RUNS}\nORDER BY time DESC LIMIT 50", fmt=TABLE)],
                 overrides=[override(MAE, unit=units.Short), override(MAPE, unit=units.Percent),
                            override(COVERAGE, unit=units.PercentUnit),
                            override(column(EVALUATION, "fit_seconds"), unit=units.Seconds),
                            override(column(EVALUATION, "holdout_days"), unit=units.Days)])))
    return finish(built.build())
