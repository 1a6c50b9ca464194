"""
{
    "plugin_type": ["http"],
    "http_args_config": [
        {
            "name": "table",
            "example": "peyton_views",
            "description": "Table holding the daily series (default peyton_views).",
            "required": false
        },
        {
            "name": "series",
            "example": "peyton_manning",
            "description": "Default value of the series tag; a request may ask for another with ?series=.",
            "required": false
        },
        {
            "name": "forecast_table",
            "example": "peyton_forecast",
            "description": "Table with the forecast rows (default peyton_forecast).",
            "required": false
        },
        {
            "name": "max_files",
            "example": "400",
            "description": "Most Parquet files one query opens: history is read in time windows (default 400).",
            "required": false
        }
    ]
}
"""

# The forecast chart: GET /api/v3/engine/<path>[?series=...&days=N&run=...] answers an interactive Plotly page
# (text/html) of the series' history (the last N days, default all), the latest forecast run (or ?run=) and its
# prediction interval. plotly.js is embedded, so the page draws without internet access.

import sys
from pathlib import Path

# The engine imports this folder as a top-level package with only plugins/forecast on sys.path and pops
# sys.path[0] right after: append (never insert) the plugin directory so the shared `stacklib` resolves.
_PLUGIN_DIR = str(Path(__file__).resolve().parents[2])
if _PLUGIN_DIR not in sys.path:
    sys.path.append(_PLUGIN_DIR)

import pandas as pd  # noqa: E402
from stacklib.args import ArgumentError, Param, identifier, integer, parse, tag_value  # noqa: E402
from stacklib.chart import forecast_page  # noqa: E402
from stacklib.forecasting import frame_from_rows  # noqa: E402
from stacklib.runlog import RunLog, run_started_ns  # noqa: E402
from stacklib.sql import (  # noqa: E402
    MAX_FILES_PER_QUERY,
    lookback_bounds,
    quote,
    table_exists,
    timestamp_literal,
    windowed_query,
)
from stacklib.tables import FORECAST, RUN_WINDOW_NS, SERIES  # noqa: E402

PLUGIN = "forecast_chart"
PARAMS = (
    Param("table", identifier, default=SERIES.name),
    Param("series", tag_value, default="peyton_manning"),
    Param("forecast_table", identifier, default=FORECAST.name),
    Param("max_files", integer(1, 100_000), default=MAX_FILES_PER_QUERY),
)
_HTML = {"Content-Type": "text/html; charset=utf-8"}


def _error_page(status: int, message: str):
    return f"<!doctype html><title>{status}</title><p>{message}</p>", status, _HTML


# InfluxDB 3 prunes Parquet files by time, never by tag: the latest run is looked for in growing windows back
# from now (stacklib.sql.lookback_bounds; daily runs are found in the first), and a run's rows are read from its
# own one-second window.
def _run_id(text: str) -> str:
    try:
        run_started_ns(tag_value(text))
    except ValueError:
        raise ValueError("must be a forecast run id such as 2026-11-29T03:00:00Z-a1b2c3") from None
    return text


def _latest_run(influxdb3_local, table: str, series: str) -> str | None:
    for bound in lookback_bounds():
        since = "" if bound is None else f" AND {bound}"
        rows = influxdb3_local.query(f"SELECT max(run) AS run FROM {table} WHERE series = $series{since}",
                                     {"series": series})
        if rows and rows[0].get("run"):
            return rows[0]["run"]
    return None


def _forecast(influxdb3_local, config, series: str, run: str | None):
    if not table_exists(influxdb3_local, config["forecast_table"]):
        return None, None
    table = quote(config["forecast_table"])
    run = run or _latest_run(influxdb3_local, table, series)
    if run is None:
        return None, None
    start = run_started_ns(run)
    rows = influxdb3_local.query(
        f"SELECT ds, yhat, yhat_lower, yhat_upper FROM {table} WHERE series = $series AND run = $run "
        f"AND time >= {timestamp_literal(start)} AND time < {timestamp_literal(start + RUN_WINDOW_NS)} ORDER BY ds",
        {"series": series, "run": run})
    frame = pd.DataFrame(rows, columns=["ds", "yhat", "yhat_lower", "yhat_upper"]).dropna()
    frame["ds"] = pd.to_datetime(frame["ds"].astype("int64"), unit="ns")
    return frame, run


def process_request(influxdb3_local, query_parameters, request_headers, request_body, args=None):
    log = RunLog(influxdb3_local, PLUGIN)
    try:
        config = parse(args, PARAMS)
    except ArgumentError as exc:
        log.error(str(exc))
        return _error_page(500, "the chart's trigger is misconfigured; see the server log")
    try:
        request = parse(query_parameters, (
            Param("series", tag_value, default=config["series"]),
            Param("days", integer(1, 100_000), default=None),
            Param("run", _run_id, default=None),
        ), source="query parameter", allow_unknown=True)
    except ArgumentError as exc:
        return _error_page(400, str(exc).replace("<", "&lt;"))
    series = request["series"]
    if not table_exists(influxdb3_local, config["table"]):
        return _error_page(404, f"no table {config['table']} yet: load the series first")
    # In time windows of at most max_files Parquet files: one query over the whole history would be refused past
    # Core's --query-file-limit.
    history, _ = frame_from_rows(windowed_query(
        influxdb3_local, config["table"], f"SELECT time, {quote(SERIES.field_names[0])} AS y "
        f"FROM {quote(config['table'])} WHERE series = $series AND {{window}} ORDER BY time", {"series": series},
        config["max_files"]))
    if history.empty:
        return _error_page(404, f"no observations for series {series!r}".replace("<", "&lt;"))
    if request["days"]:
        history = history[history["ds"] > history["ds"].max() - pd.Timedelta(days=request["days"])]
    forecast, run = _forecast(influxdb3_local, config, series, request["run"])
    note = f"forecast run {run}" if run else "no forecast run yet: the scheduled forecast has not run"
    page = forecast_page(f"{series}: history and forecast", history, forecast, note)
    log.info("chart served", series=series, history=len(history), forecast=0 if forecast is None else len(forecast),
             run=run or "none", bytes=len(page))
    return page, 200, _HTML
