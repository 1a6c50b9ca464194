"""Reads of a whole history in windows of at most `max_files` Parquet files (plugins/stacklib/sql.py): with Core's
--query-file-limit below a table's file count, the one-query read is refused while each window's query is under
the limit, and the windows together give exactly the rows of the one-query read."""

from __future__ import annotations

import sys
from itertools import pairwise

import pytest

from tests.engine import PLUGIN_DIR
from tests.engine.api import PluginApi
from tests.engine.store import QueryError
from tests.plugins.conftest import daily_series, series_csv, series_lines
from tests.support.recorder import RecordingServer, Reply

if str(PLUGIN_DIR) not in sys.path:
    sys.path.append(str(PLUGIN_DIR))

from stacklib.sql import split_windows, window_condition, windowed_query

DAY = 86_400 * 10**9
READ = "SELECT time, y FROM peyton_views WHERE series = $series AND {window} ORDER BY time"


def _overlapping(spans, window):
    start, end = window
    return sum(1 for low, high in spans if (end is None or low <= end) and (start is None or high >= start))


@pytest.mark.parametrize("max_files", [1, 2, 7, 100, 1000])
def test_windows_cover_the_range_and_each_overlaps_at_most_max_files(max_files):
    # Files of 10-minute windows, a few sharing a window (several snapshots), one every day or so.
    spans = [(day * DAY + extra, day * DAY + extra + 599 * 10**9) for day in range(300) for extra in
             ((0, 10**9) if day % 17 == 0 else (0,))]
    windows = split_windows(spans, max_files)
    assert windows[0][0] is None and windows[-1][1] is None
    assert all(left[1] + 1 == right[0] for left, right in pairwise(windows))
    assert max(_overlapping(spans, window) for window in windows) <= max(max_files, 2)
    assert sum(1 for low, _ in spans if any(_overlapping([(low, low)], window) for window in windows)) == len(spans)


def test_bounds_are_kept_and_files_outside_them_ignored():
    spans = [(day * DAY, day * DAY + 10) for day in range(100)]
    windows = split_windows(spans, 10, lower=20 * DAY + 5, upper=60 * DAY)
    assert windows[0][0] == 20 * DAY + 5 and windows[-1][1] == 60 * DAY
    assert [_overlapping(spans, window) for window in windows] == [10, 10, 10, 10, 1]
    assert split_windows([], 10, lower=1, upper=2) == [(1, 2)]
    assert window_condition((None, None)) == "TRUE"


def test_a_read_over_the_file_limit_is_refused_and_the_windowed_read_equals_it(engine, query_log):
    days = 400
    engine.write_lp("forecast", series_lines(daily_series(days)))
    engine.snapshot()
    engine.write_lp("forecast", series_lines(daily_series(3, start="2020-06-01"), series="other"))  # buffered
    assert len(engine.parquet_files("forecast", "peyton_views")) == days
    unbounded = READ.replace("{window}", "TRUE")
    engine.query_file_limit = 20_000
    expected = engine.query("forecast", unbounded, {"series": "peyton_manning"})
    engine.query_file_limit = 100
    with pytest.raises(QueryError, match="query-file-limit"):
        engine.query("forecast", unbounded, {"series": "peyton_manning"})

    api = PluginApi(engine, "forecast", None)
    query_log.clear()
    got = windowed_query(api, "peyton_views", READ, {"series": "peyton_manning"}, max_files=90)
    assert got == expected and len(got) == days
    reads = [engine.files_scanned("forecast", sql, {"series": "peyton_manning"})
             for sql in query_log if "peyton_views" in sql and "parquet_files" not in sql]
    assert len(reads) == 5 and max(reads) <= 90
    # Rows newer than every file (the write buffer) are in the last window.
    later = windowed_query(api, "peyton_views", READ, {"series": "other"}, max_files=90)
    assert len(later) == 3


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.drop")
def test_the_forecast_plugins_read_a_series_of_more_files_than_the_limit(engine, query_log, monkeypatch):
    """A 400-day series in 400 files under --query-file-limit 100: the forecast, the chart and a reload of the
    same CSV each read it in windows of at most `max_files`, and see every observation."""
    frame = daily_series(400)
    engine.write_lp("forecast", series_lines(frame))
    engine.snapshot()
    engine.query_file_limit = 100
    small = {"max_files": "90"}
    query_log.clear()
    forecast = engine.run_request("forecast/prophet_forecast", "forecast", args={
        **small, "horizon_days": "10", "holdout_days": "0", "seed": "1"}).raise_for_error().response.json()
    assert forecast["status"] == "success" and forecast["observations"] == 400
    chart = engine.run_request("forecast/forecast_chart", "forecast", args=small).raise_for_error().response
    assert chart.status == 200
    with RecordingServer(lambda request: Reply(200, series_csv(frame), {"Content-Type": "text/csv"})) as server:
        loaded = engine.run_request("forecast/load_series", "forecast", args={
            **small, "url": f"{server.url}/series.csv"}).raise_for_error().response.json()
    assert loaded["rows_written"] == 0 and loaded["rows_unchanged"] == 400
    reads = [engine.files_scanned("forecast", sql, {"series": "peyton_manning"})
             for sql in query_log if "FROM \"peyton_views\"" in sql]
    assert len(reads) == 3 * 5 and max(reads) <= 90
