"""The analytics API: latest statistics as JSON, from the engine cache, else from analytics_<table>."""

from __future__ import annotations

import pytest

from tests.plugins.conftest import sensor_frame, sensor_lines

API = "statistics/analytics_api"
STATS = "statistics/table_stats"


@pytest.fixture
def sensors_stats(engine):
    frame = sensor_frame(600)
    engine.run_writes(STATS, "telemetry", sensor_lines(frame), table="sensors", trigger="sensors-statistics",
                      args={"bucket": "1h", "target_database": "forecast"}).raise_for_error()
    return frame


def newest_rows(engine) -> dict[str, dict]:
    rows = engine.query("forecast", "SELECT * FROM analytics_sensors ORDER BY time")
    return {row["field"]: row for row in rows}  # the last row per field is the newest bucket


def test_answers_the_newest_bucket_per_field_from_the_cache(engine, sensors_stats):
    response = engine.run_request(API, "forecast", {"table": "sensors"}, trigger="analytics-api").response
    assert response.status == 200 and response.content_type == "application/json"
    body = response.json()
    assert body["source"] == "cache" and body["analytics_table"] == "analytics_sensors"
    newest = newest_rows(engine)
    assert set(body["statistics"]["1h"]) == set(newest)
    for field, stats in body["statistics"]["1h"].items():
        assert stats["time_ns"] == newest[field]["time"]
        for name in ("count", "min", "max", "mean", "median", "mode", "p95"):
            assert stats[name] == pytest.approx(newest[field][name])


def test_falls_back_to_the_analytics_table_after_a_restart(engine, sensors_stats):
    cached = engine.run_request(API, "forecast", {"table": "sensors"}).response.json()
    engine.restart()
    response = engine.run_request(API, "forecast", {"table": "sensors"}).response
    assert response.status == 200
    body = response.json()
    assert body["source"] == "table"
    assert body["statistics"]["1h"].keys() == cached["statistics"]["1h"].keys()
    for field, stats in body["statistics"]["1h"].items():
        assert stats["mean"] == pytest.approx(cached["statistics"]["1h"][field]["mean"])
        assert stats["time"] == cached["statistics"]["1h"][field]["time"]


def test_unknown_table_is_404_json_and_bad_names_are_400(engine, sensors_stats):
    missing = engine.run_request(API, "forecast", {"table": "weather"}).response
    assert missing.status == 404 and missing.json()["table"] == "weather"
    for query in ({"table": "sensors; DROP TABLE x"}, {}):
        bad = engine.run_request(API, "forecast", query).response
        assert bad.status == 400
        assert bad.json()["tables"] == ["sensors"]


def test_stale_cache_is_bypassed_with_max_age(engine, sensors_stats):
    body = engine.run_request(API, "forecast", {"table": "sensors"}, args={"max_age": "1h"}).response.json()
    assert body["source"] == "cache"
    from stacklib.analytics import cache_key

    entry = engine.cache_store.get(("global",), cache_key("sensors"))[1]
    entry["updated_at"] = "2000-01-01T00:00:00Z"
    body = engine.run_request(API, "forecast", {"table": "sensors"}, args={"max_age": "1h"}).response.json()
    assert body["source"] == "table"


def test_the_table_fallback_reads_only_recent_files_when_the_statistics_are_recent(engine, query_log):
    """Months of hourly statistics are thousands of Parquet files (one per hour-bucket window): the API finds the
    newest statistics in the last two days first instead of scanning the whole table."""
    import time

    hour = 3_600 * 10**9
    now = time.time_ns() // hour * hour
    lines = [f"analytics_sensors,field=temperature,bucket=1h count=60i,min=1.0,max=2.0,mean=1.5,median=1.5,mode=1.0,"
             f"p95=2.0 {now - k * hour}" for k in range(24 * 90)]
    engine.write_lp("forecast", lines)
    engine.snapshot()
    assert len(engine.parquet_files("forecast", "analytics_sensors")) == 24 * 90
    response = engine.run_request(API, "forecast", {"table": "sensors"}, trigger="analytics-api").response
    assert response.status == 200 and response.json()["source"] == "table"
    reads = [sql for sql in query_log if "analytics_sensors" in sql and "information_schema" not in sql]
    assert reads and max(engine.files_scanned("forecast", sql) for sql in reads) <= 49


def test_old_statistics_are_found_in_the_newest_files_not_the_whole_table(engine, query_log):
    """Statistics that stopped long ago (older than every lookback window): the last try reads the table's newest
    MAX_FILES_PER_QUERY files, never the whole table (which Core would refuse past --query-file-limit)."""
    hour = 3_600 * 10**9
    last = 1_500_000_000 * 10**9 // hour * hour  # 2017
    lines = [f"analytics_sensors,field=temperature,bucket=1h count=60i,min=1.0,max=2.0,mean=1.5,median=1.5,mode=1.0,"
             f"p95={k}.0 {last - k * hour}" for k in range(1_000)]
    engine.write_lp("forecast", lines)
    engine.snapshot()
    engine.query_file_limit = 432
    response = engine.run_request(API, "forecast", {"table": "sensors"}, trigger="analytics-api").response
    assert response.status == 200 and response.json()["source"] == "table"
    newest = response.json()["statistics"]["1h"]["temperature"]
    assert (newest["time_ns"], newest["p95"]) == (last, 0.0)
    reads = [sql for sql in query_log if "analytics_sensors" in sql and "parquet_files" not in sql
             and "information_schema" not in sql]
    assert max(engine.files_scanned("forecast", sql) for sql in reads) <= 400
