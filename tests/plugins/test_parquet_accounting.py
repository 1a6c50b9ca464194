"""Parquet file accounting over repeated daily runs: what InfluxDB 3 Core would have to read, run after run.

Core writes one Parquet file per table per 10-minute window of data time per snapshot and never compacts; a query
reads every file its time bounds select and is refused past --query-file-limit (the local engine models this:
tests/engine/parquet.py). Here the real plugins run day after day the way the stack runs them: the series gains a
day and is loaded again, the forecast runs, a snapshot persists what was written. The files each query of the
chart, the Forecast dashboard and influxdb3-init reads must not grow with the number of runs.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from grafana.boards import forecast as forecast_board
from tests.grafana.dashboards import boards, queries
from tests.grafana.expand import TimeRange, expand_sql, interpolate
from tests.plugins.conftest import daily_series, series_csv
from tests.support.recorder import RecordingServer, Reply

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.drop")]

RUNS = 12
FORECAST = {"horizon_days": "30", "holdout_days": "7", "min_rows": "30", "seed": "1"}


def test_files_read_per_query_stay_flat_over_daily_runs_and_reloads(engine, query_log, monkeypatch):
    engine.query_file_limit = 20_000
    first_day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=RUNS + 120)
    served = {"csv": ""}
    reads: dict[str, list[int]] = {"chart history": [], "chart latest run": [], "chart forecast": [],
                                   "dashboard forecast": [], "load": []}
    board = boards()[forecast_board.UID]
    panel_query = next(q for q in queries(board, forecast_board.UID) if q.target.get("refId") == "B")
    with RecordingServer(lambda request: Reply(200, served["csv"], {"Content-Type": "text/csv"})) as server:
        load_args = {"url": f"{server.url}/series.csv", "series": "s"}
        for run in range(RUNS):
            # The series gains a day; the whole CSV is loaded again, as the provisioned loader would.
            served["csv"] = series_csv(daily_series(120 + run, start=str(first_day.date())))
            query_log.clear()
            loaded = engine.run_request("forecast/load_series", "forecast", args=load_args).raise_for_error()
            reads["load"].append(max(engine.files_scanned("forecast", sql) for sql in query_log))
            assert loaded.response.json()["rows_written"] == (120 if run == 0 else 1)
            moment = datetime.now(UTC) - timedelta(days=RUNS - run)
            engine.run_schedule("forecast/prophet_forecast", "forecast", moment.replace(tzinfo=None),
                                args={**FORECAST, "series": "s"}).raise_for_error()
            engine.snapshot()

            query_log.clear()
            # The chart is opened a few minutes after that day's run (the plugin's clock is the server's).
            after = int((moment + timedelta(minutes=5)).timestamp()) * 10**9
            with monkeypatch.context() as clock:
                clock.setattr(time, "time_ns", lambda after=after: after)
                chart = engine.run_request("forecast/forecast_chart", "forecast", {"series": "s"},
                                           args={"series": "s"}).raise_for_error()
            assert chart.response.status == 200 and "forecast run " in chart.response.body
            history = [sql for sql in query_log if "peyton_views" in sql and "information_schema" not in sql]
            forecast = [sql for sql in query_log if "peyton_forecast" in sql and "information_schema" not in sql]
            lookup = [sql for sql in forecast if "max(run)" in sql]
            rows = [sql for sql in forecast if "max(run)" not in sql]
            reads["chart history"].append(max(engine.files_scanned("forecast", sql) for sql in history))
            reads["chart latest run"].append(max(engine.files_scanned("forecast", sql) for sql in lookup))
            reads["chart forecast"].append(max(engine.files_scanned("forecast", sql) for sql in rows))

            latest = engine.query("forecast", "SELECT max(run) AS run FROM peyton_forecast")[0]["run"]
            text = interpolate(panel_query.target["rawSql"], {"series": ["s"], "run": [latest]})
            sql = expand_sql(text, TimeRange(first_day, datetime.now(UTC) + timedelta(days=365)), 86_400_000)
            reads["dashboard forecast"].append(engine.files_scanned("forecast", sql))
            assert len(engine.query("forecast", sql)) == 30

    files = {table: len(engine.parquet_files("forecast", table))
             for table in ("peyton_views", "peyton_forecast", "forecast_evaluation")}
    # One file per day of the series (a reload adds only the new day), one per forecast run.
    assert files == {"peyton_views": 120 + RUNS - 1, "peyton_forecast": RUNS, "forecast_evaluation": RUNS}
    # The latest run is found among the last two days' runs and read from its own file, however many came before.
    assert reads["chart latest run"] == [1] + [2] * (RUNS - 1)
    assert reads["chart forecast"] == [1] * RUNS
    assert reads["dashboard forecast"] == [1] * RUNS
    # The history read covers the history: one file per day of data in its range, not one per day per load.
    assert reads["chart history"] == [120 + run for run in range(RUNS)]
    assert reads["load"][1:] == [120 + run - 1 for run in range(1, RUNS)]
