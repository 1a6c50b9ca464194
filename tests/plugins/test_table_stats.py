"""Table statistics on write, through the local engine; numbers checked against NumPy and pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.plugins.conftest import MINUTE, T0, sensor_frame, sensor_lines

PLUGIN = "statistics/table_stats"
HOUR = 60 * MINUTE
FIELDS = ("temperature", "humidity", "co2")


def expected_stats(values: pd.Series) -> dict[str, float]:
    """The statistics computed independently with pandas/NumPy."""
    values = values.dropna().astype(float)
    return {"count": len(values), "min": values.min(), "max": values.max(), "mean": values.mean(),
            "median": values.median(), "mode": values.mode().min(), "p95": values.quantile(0.95)}


def analytics_rows(engine, table="analytics_sensors", database="forecast") -> pd.DataFrame:
    return pd.DataFrame(engine.query(database, f"SELECT * FROM {table} ORDER BY field, time"))


def assert_matches(row: pd.Series | dict, expected: dict[str, float]) -> None:
    for name, value in expected.items():
        assert row[name] == pytest.approx(value, rel=1e-12, abs=1e-12), name


def test_buckets_match_pandas_per_field_and_bucket(engine):
    frame = sensor_frame(600, step_ns=MINUTE)  # 200 minutes x 3 devices: 4 hourly buckets
    run = engine.run_writes(PLUGIN, "telemetry", sensor_lines(frame), table="sensors",
                            args={"bucket": "1h", "target_database": "forecast"}).raise_for_error()
    written = analytics_rows(engine)
    frame["bucket"] = frame["time"] // HOUR * HOUR
    groups = frame.groupby("bucket")
    assert len(written) == len(FIELDS) * groups.ngroups
    for field in FIELDS:
        for bucket, group in groups:
            row = written[(written["field"] == field) & (written["time"] == bucket)]
            assert len(row) == 1 and row.iloc[0]["bucket"] == "1h"
            assert_matches(row.iloc[0], expected_stats(group[field]))
    assert "statistics written" in run.log_text()


def test_late_rows_and_overwrites_recompute_only_touched_buckets(engine, query_log):
    frame = sensor_frame(600)
    args = {"bucket": "1h", "target_database": "forecast"}
    engine.run_writes(PLUGIN, "telemetry", sensor_lines(frame), table="sensors", args=args).raise_for_error()
    engine.snapshot()  # the first load is in Parquet files now: one per 10 minutes of data
    # A late reading in the first hour, and a re-sent point (same series and time) with a new value.
    late = pd.DataFrame({"time": [T0 + 5 * MINUTE + 1], "device": ["dev9"], "location": ["lab"],
                         "temperature": [35.0], "humidity": [10.0], "co2": [1500.0]})
    resent = frame.iloc[[0]].copy()
    resent["temperature"] = -5.0
    query_log.clear()
    engine.run_writes(PLUGIN, "telemetry", sensor_lines(pd.concat([late, resent])), table="sensors",
                      args=args).raise_for_error()
    reads = [sql for sql in query_log if 'FROM "sensors"' in sql]
    assert reads, "the touched bucket is read back"
    total = len(engine.parquet_files("telemetry", "sensors"))
    for sql in reads:  # Core prunes files by time bounds only: each read must bound time to its buckets
        assert engine.files_scanned("telemetry", sql) <= 6 < total, f"{sql} scans more than its hour's files"
    table = pd.concat([frame.iloc[1:], resent, late])  # what InfluxDB holds after the overwrite
    first_bucket = T0 // HOUR * HOUR
    in_bucket = table[table["time"] // HOUR * HOUR == first_bucket]
    written = analytics_rows(engine)
    row = written[(written["field"] == "temperature") & (written["time"] == first_bucket)]
    assert len(row) == 1, "the bucket's row is replaced, not duplicated"
    assert_matches(row.iloc[0], expected_stats(in_bucket["temperature"]))


def test_whole_table_running_state_matches_numpy_and_never_rereads(engine, query_log):
    frame = sensor_frame(900, quantized=True)
    parts = np.array_split(np.arange(len(frame)), 3)
    for index, rows in enumerate(parts):
        query_log.clear()
        run = engine.run_writes(PLUGIN, "telemetry", sensor_lines(frame.iloc[rows]), table="sensors").raise_for_error()
        if index > 0:
            assert not [sql for sql in query_log if 'FROM "sensors"' in sql], "warm flushes read nothing back"
    latest = run.writes["telemetry"]
    assert len(latest) == len(FIELDS)
    stats = {row["field"]: row for row in engine.query(
        "telemetry", "SELECT * FROM analytics_sensors WHERE bucket = 'all' ORDER BY time")}
    for field in FIELDS:
        values = frame[field].to_numpy()
        uniques, counts = np.unique(values, return_counts=True)
        assert_matches(stats[field], {
            "count": values.size, "min": values.min(), "max": values.max(), "mean": values.mean(),
            "median": np.median(values), "mode": uniques[np.argmax(counts)], "p95": np.percentile(values, 95)})


def test_running_state_is_rebuilt_from_the_table_after_a_restart(engine):
    frame = sensor_frame(300)
    engine.run_writes(PLUGIN, "telemetry", sensor_lines(frame.iloc[:200]), table="sensors").raise_for_error()
    engine.restart()
    run = engine.run_writes(PLUGIN, "telemetry", sensor_lines(frame.iloc[200:]), table="sensors").raise_for_error()
    assert "rebuilt from the table" in run.log_text()
    row = next(r for r in engine.query("telemetry", "SELECT * FROM analytics_sensors WHERE field = 'humidity'"))
    assert row["count"] == 300
    assert row["median"] == pytest.approx(np.median(frame["humidity"]), rel=1e-12)


def test_running_state_expires_after_resync(engine, engine_clock):
    frame = sensor_frame(60)
    args = {"resync": "10m"}
    engine.run_writes(PLUGIN, "telemetry", sensor_lines(frame.iloc[:30]), table="sensors", args=args).raise_for_error()
    run = engine.run_writes(PLUGIN, "telemetry", sensor_lines(frame.iloc[30:45]), table="sensors", args=args)
    assert "rebuilt" not in run.log_text()
    engine_clock.advance(601)
    run = engine.run_writes(PLUGIN, "telemetry", sensor_lines(frame.iloc[45:]), table="sensors", args=args)
    assert "rebuilt from the table" in run.raise_for_error().log_text()


def test_numbers_as_text_empty_batches_and_text_only_tables_log_without_failing(engine):
    lines = ['sensors,device=a,location=lab temperature="21.5",humidity=40.0 1700000000000000000',
             'sensors,device=b,location=lab temperature="22.0",humidity=41.0 1700000060000000000']
    run = engine.run_writes(PLUGIN, "telemetry", lines, table="sensors").raise_for_error()
    assert any("numbers stored as text" in m and "temperature" in m for m in run.messages("WARN"))
    assert all("field=humidity" in line for line in run.writes["telemetry"])

    # A table: trigger fires on every WAL flush of its database, with [] when its table was not written
    # (influxdb3_processing_engine/src/plugins.rs, v3.10.1): silent, not a log line every flush.
    run = engine.run_writes(PLUGIN, "telemetry", table_batches=[]).raise_for_error()
    assert run.logs == [] and not run.writes
    run = engine.run_writes(PLUGIN, "telemetry", table_batches=[{"table_name": "sensors", "rows": []}])
    assert "empty" in run.raise_for_error().log_text() and not run.writes

    run = engine.run_writes(PLUGIN, "telemetry", ['events,kind=door note="open" 1700000000000000000'],
                            table="events").raise_for_error()
    assert "no numeric field" in run.log_text() and not run.writes


def test_bad_rows_and_arguments_never_raise(engine):
    batches = [{"table_name": "sensors", "rows": [{"device": "a", "temperature": 20.0},  # no time
                                                  {"device": "a", "temperature": 21.0, "time": T0}]},
               {"table_name": "bad name; drop", "rows": [{"x": 1.0, "time": T0}]}]
    engine.write_lp("telemetry", [f"sensors,device=a temperature=21.0 {T0}"])
    run = engine.run_writes(PLUGIN, "telemetry", table_batches=batches, args={"bucket": "1h"}).raise_for_error()
    assert any("without an integer time" in m for m in run.messages("WARN"))
    assert any("not an identifier" in m for m in run.messages("WARN"))
    assert len(run.writes["telemetry"]) == 1

    run = engine.run_writes(PLUGIN, "telemetry", [f"sensors,device=a temperature=1.0 {T0}"], table="sensors",
                            args={"bucket": "soon", "colour": "red"}).raise_for_error()
    errors = run.messages("ERROR")
    assert len(errors) == 1 and "'bucket'" in errors[0] and "'colour'" in errors[0] and not run.writes


def test_all_tables_trigger_skips_its_own_output(engine):
    lines = [f"sensors,device=a temperature=20.0 {T0}", f"analytics_sensors,field=x,bucket=1h count=1i {T0}"]
    run = engine.run_writes(PLUGIN, "telemetry", lines, table=None, args={"bucket": "1h"}).raise_for_error()
    assert all(line.startswith("analytics_sensors,field=temperature") for line in run.writes["telemetry"])


def test_integer_fields_and_field_filter(engine):
    lines = [f"sensors,device=a,location=x count={n}i,temperature=1.5 {T0 + n * MINUTE}" for n in range(10)]
    run = engine.run_writes(PLUGIN, "telemetry", lines, table="sensors",
                            args={"bucket": "1h", "fields": "count"}).raise_for_error()
    assert len(run.writes["telemetry"]) == 1
    row = engine.query("telemetry", "SELECT * FROM analytics_sensors")[0]
    assert_matches(row, expected_stats(pd.Series(range(10))))


@pytest.mark.parametrize("bucket", ["30d", None])
def test_reads_of_more_files_than_the_limit_are_cut_into_windows(engine, query_log, bucket):
    """A day of readings every minute (145 files) under --query-file-limit 30: a late row in a 30-day bucket
    recomputes it, and a whole-table rebuild reads the table, both in queries of at most `max_files` files, with
    the same statistics as pandas over every row."""
    frame = sensor_frame(3 * 1440, step_ns=MINUTE)
    engine.write_lp("telemetry", sensor_lines(frame))
    engine.snapshot()
    assert len(engine.parquet_files("telemetry", "sensors")) >= 144
    engine.query_file_limit = 30
    late = frame.iloc[[5]].copy()
    late["temperature"] = 99.0
    args = {"target_database": "forecast", "max_files": "25", **({"bucket": bucket} if bucket else {})}
    query_log.clear()
    engine.run_writes(PLUGIN, "telemetry", sensor_lines(late), table="sensors", args=args).raise_for_error()
    reads = [engine.files_scanned("telemetry", sql) for sql in query_log
             if 'FROM "sensors"' in sql and "parquet_files" not in sql]
    assert len(reads) >= 144 // 25 and max(reads) <= 30
    frame.loc[5, "temperature"] = 99.0
    row = analytics_rows(engine).set_index("field").loc["temperature"]
    assert_matches(row, expected_stats(frame["temperature"]))
