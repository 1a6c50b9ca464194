"""
{
    "plugin_type": [
        "scheduled",
        "http"
    ],
    "scheduled_args_config": [
        {
            "name": "table",
            "example": "peyton_views",
            "description": "Table holding the daily series (default peyton_views).",
            "required": false
        },
        {
            "name": "series",
            "example": "peyton_manning",
            "description": "Value of the series tag to forecast (default peyton_manning).",
            "required": false
        },
        {
            "name": "field",
            "example": "y",
            "description": "Field holding the values (default y).",
            "required": false
        },
        {
            "name": "horizon_days",
            "example": "365",
            "description": "Days to forecast past the last observation (default 365).",
            "required": false
        },
        {
            "name": "holdout_days",
            "example": "30",
            "description": "Last K days held out to grade the model (MAE, MAPE, coverage); 0 turns grading off.",
            "required": false
        },
        {
            "name": "min_rows",
            "example": "60",
            "description": "Fewer observations than this: log why and fit nothing (default 60).",
            "required": false
        },
        {
            "name": "interval_width",
            "example": "0.8",
            "description": "Width of the prediction interval, between 0 and 1 (default 0.8).",
            "required": false
        },
        {
            "name": "seed",
            "example": "42",
            "description": "Seed for Prophet's uncertainty sampling, for reproducible intervals.",
            "required": false
        },
        {
            "name": "forecast_table",
            "example": "peyton_forecast",
            "description": "Table for yhat, yhat_lower, yhat_upper (default peyton_forecast).",
            "required": false
        },
        {
            "name": "evaluation_table",
            "example": "forecast_evaluation",
            "description": "Table for the holdout grades (default forecast_evaluation).",
            "required": false
        },
        {
            "name": "max_files",
            "example": "400",
            "description": "Most Parquet files one query opens: the series is read in windows (default 400).",
            "required": false
        }
    ],
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
            "description": "Value of the series tag to forecast (default peyton_manning).",
            "required": false
        },
        {
            "name": "field",
            "example": "y",
            "description": "Field holding the values (default y).",
            "required": false
        },
        {
            "name": "horizon_days",
            "example": "365",
            "description": "Days to forecast past the last observation (default 365).",
            "required": false
        },
        {
            "name": "holdout_days",
            "example": "30",
            "description": "Last K days held out to grade the model (MAE, MAPE, coverage); 0 turns grading off.",
            "required": false
        },
        {
            "name": "min_rows",
            "example": "60",
            "description": "Fewer observations than this: log why and fit nothing (default 60).",
            "required": false
        },
        {
            "name": "interval_width",
            "example": "0.8",
            "description": "Width of the prediction interval, between 0 and 1 (default 0.8).",
            "required": false
        },
        {
            "name": "seed",
            "example": "42",
            "description": "Seed for Prophet's uncertainty sampling, for reproducible intervals.",
            "required": false
        },
        {
            "name": "forecast_table",
            "example": "peyton_forecast",
            "description": "Table for yhat, yhat_lower, yhat_upper (default peyton_forecast).",
            "required": false
        },
        {
            "name": "evaluation_table",
            "example": "forecast_evaluation",
            "description": "Table for the holdout grades (default forecast_evaluation).",
            "required": false
        },
        {
            "name": "max_files",
            "example": "400",
            "description": "Most Parquet files one query opens: the series is read in windows (default 400).",
            "required": false
        }
    ]
}
"""

# Forecast on a schedule, and on demand over HTTP: read the series, fit Prophet, write H days of yhat /
# yhat_lower / yhat_upper with this run's id as the `run` tag, and grade the model on the last K days it did
# not see (one row per run in the evaluation table, so accuracy can be watched over time). Non-finite values
# never reach the database. A run's rows are stamped in the run's own time window, the forecast day in `ds`
# (see stacklib/tables.py: InfluxDB 3 Core would otherwise add a Parquet file per forecast day per run).

import math
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

# The engine imports this folder as a top-level package with only plugins/forecast on sys.path and pops
# sys.path[0] right after: append (never insert) the plugin directory so the shared `stacklib` resolves.
_PLUGIN_DIR = str(Path(__file__).resolve().parents[2])
if _PLUGIN_DIR not in sys.path:
    sys.path.append(_PLUGIN_DIR)

import pandas as pd  # noqa: E402
from stacklib import forecasting  # noqa: E402
from stacklib.args import ArgumentError, Param, fraction, identifier, integer, parse, tag_value  # noqa: E402
from stacklib.lines import PointWriter  # noqa: E402
from stacklib.runlog import RunLog, new_run_id, run_started_ns  # noqa: E402
from stacklib.sql import MAX_FILES_PER_QUERY, quote, windowed_query  # noqa: E402
from stacklib.tables import EVALUATION, FORECAST, SERIES  # noqa: E402

PLUGIN = "prophet_forecast"
_JSON = {"Content-Type": "application/json"}
PARAMS = (
    Param("table", identifier, default=SERIES.name),
    Param("series", tag_value, default="peyton_manning"),
    Param("field", identifier, default=SERIES.field_names[0]),
    Param("horizon_days", integer(1, 3650), default=365),
    Param("holdout_days", integer(0, 3650), default=30),
    Param("min_rows", integer(2, 1_000_000), default=60),
    Param("interval_width", fraction, default=0.8),
    Param("seed", integer(0, 2**32 - 1), default=None),
    Param("forecast_table", identifier, default=FORECAST.name),
    Param("evaluation_table", identifier, default=EVALUATION.name),
    Param("max_files", integer(1, 100_000), default=MAX_FILES_PER_QUERY),
)


def _read_series(influxdb3_local, config):
    """The whole series, in time windows of at most `max_files` Parquet files each: one query over a long history
    (Peyton's is ~2,900 daily files) would be refused past Core's --query-file-limit."""
    rows = windowed_query(
        influxdb3_local, config["table"],
        f"SELECT time, {quote(config['field'])} AS y FROM {quote(config['table'])} "
        "WHERE series = $series AND {window} ORDER BY time", {"series": config["series"]}, config["max_files"])
    return forecasting.frame_from_rows(rows)


def forecast_once(influxdb3_local, config, log, run_id: str) -> dict:
    """One forecast run, shared by the schedule and the HTTP trigger; returns what it did.

    Its rows are stamped from the run id's start second, the same instant every reader takes from the id.
    """
    started = time.perf_counter()
    stamp_ns = run_started_ns(run_id)
    history, dropped = _read_series(influxdb3_local, config)
    if dropped:
        log.warn("observations without a finite value ignored", rows=dropped)
    if len(history) < config["min_rows"]:
        reason = f"too little data to forecast: {len(history)} observations, need {config['min_rows']}; no fit"
        log.warn(reason, table=config["table"], series=config["series"])
        return {"status": "skipped", "reason": reason, "run": run_id}
    writer = PointWriter(influxdb3_local)
    tags = {"series": config["series"], "run": run_id}
    graded = None
    if config["holdout_days"]:
        graded = forecasting.evaluate_holdout(history, config["holdout_days"], config["min_rows"],
                                              config["interval_width"], config["seed"])
        if isinstance(graded, str):
            log.warn(f"no holdout grade this run: {graded}")
            graded = None
        else:
            writer.add(config["evaluation_table"], tags, graded.as_fields(), stamp_ns)
            log.info("holdout graded", mae=round(graded.mae, 4),
                     mape=None if graded.mape is None else round(graded.mape, 3),
                     coverage=round(graded.coverage, 3), test_rows=graded.test_rows)
    graded_rows = writer.written
    fit_started = time.perf_counter()
    forecast = forecasting.fit_predict(history, config["horizon_days"], config["interval_width"], config["seed"])
    fit_seconds = time.perf_counter() - fit_started
    # Every row of the run in the run's own time window (start + index ns), the forecast day in `ds`: one Parquet
    # file per run instead of one per forecast day per run (tables.py, FORECAST).
    for index, row in enumerate(forecast.itertuples(index=False)):
        values = {"yhat": float(row.yhat), "yhat_lower": float(row.yhat_lower), "yhat_upper": float(row.yhat_upper)}
        finite = {key: value for key, value in values.items() if math.isfinite(value)}
        if finite:
            finite["ds"] = int(pd.Timestamp(row.ds).as_unit("ns").value)
        writer.add(config["forecast_table"], tags, finite, stamp_ns + index)
    if writer.skipped_total:
        log.warn("forecast rows skipped", rows=writer.skipped_total, reasons=writer.skipped_summary())
    forecast_rows = writer.written - graded_rows
    log.info("forecast written", table=config["forecast_table"], rows=forecast_rows,
             observations=len(history), horizon_days=config["horizon_days"], fit_seconds=round(fit_seconds, 2),
             seconds=round(time.perf_counter() - started, 2))
    return {"status": "success", "run": run_id, "forecast_rows": forecast_rows, "observations": len(history),
            "graded": graded is not None, "mae": None if graded is None else graded.mae}


def process_scheduled_call(influxdb3_local, call_time, args=None):
    run_id = new_run_id(call_time)
    log = RunLog(influxdb3_local, PLUGIN, run_id)
    try:
        config = parse(args, PARAMS)
    except ArgumentError as exc:
        log.error(str(exc))
        return
    forecast_once(influxdb3_local, config, log, run_id)


def process_request(influxdb3_local, query_parameters, request_headers, request_body, args=None):
    """Forecast now (POST /api/v3/engine/<path>): what influxdb3-init calls so a new stack has a forecast."""
    now = datetime.now(UTC)
    run_id = new_run_id(now)
    log = RunLog(influxdb3_local, PLUGIN, run_id)
    try:
        config = parse(args, PARAMS)
    except ArgumentError as exc:
        log.error(str(exc))
        return {"status": "error", "error": str(exc), "run": run_id}, 500, _JSON
    outcome = forecast_once(influxdb3_local, config, log, run_id)
    return outcome, (200 if outcome["status"] == "success" else 422), _JSON
