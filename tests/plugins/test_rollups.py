"""The rollups plugin (plugins/history/rollups) on the local engine: every rollup row equals the same aggregate
computed from the raw rows; a late reading is in its hour and day after the next runs; history loaded in bulk gets
its rollups in bounded steps under the file limit; a run that fails says which table and window and the next one
catches up without a gap."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.engine import PLUGIN_DIR
from tests.plugins.conftest import MINUTE, daily_series, sensor_frame, sensor_lines, series_lines

PLUGIN = "history/rollups"
DB = "telemetry"
HOUR, DAY = 60 * MINUTE, 24 * 60 * MINUTE
# The write trigger stamps its marks with the wall clock, as on the server: scheduled calls run from now on.
NOW = time.time_ns() // MINUTE * MINUTE + MINUTE
START = NOW // DAY * DAY - 45 * DAY  # a day boundary
ARGS = {"tables": "sensors", "levels": "1h 1d"}
FIELDS = ("temperature", "humidity", "co2")


def at(time_ns: int) -> datetime:
    return datetime.fromtimestamp(time_ns // 10**9, UTC)


def readings(days: int, start: int = START, seed: int = 1) -> pd.DataFrame:
    """Three devices every minute, with a field missing now and then (a null in the table)."""
    frame = sensor_frame(days * 24 * 60 * 3, start_ns=start, seed=seed, quantized=False)
    frame.loc[frame.index % 17 == 0, "humidity"] = np.nan
    return frame


def expected(frame: pd.DataFrame, width: int) -> pd.DataFrame:
    """Count, sum, min, max, mean and last non-null value per bucket and device, straight from the raw rows."""
    frame = frame.sort_values("time").assign(bucket=lambda f: f["time"] // width * width)
    out = []
    for (bucket, device), group in frame.groupby(["bucket", "device"]):
        row = {"time": bucket, "device": device}
        for field in FIELDS:
            values = group[field].dropna()
            if len(values):
                row.update({f"{field}_count": len(values), f"{field}_sum": values.sum(), f"{field}_min": values.min(),
                            f"{field}_max": values.max(), f"{field}_mean": values.mean(),
                            f"{field}_last": values.iloc[-1]})
        out.append(row)
    return pd.DataFrame(out).sort_values(["time", "device"]).reset_index(drop=True)


def stored(engine, table: str, database: str = DB) -> pd.DataFrame:
    rows = engine.query(database, f"SELECT * FROM {table} ORDER BY time, device")
    frame = pd.DataFrame(rows)
    frame["time"] = pd.to_datetime(frame["time"]).astype("int64")
    return frame.reset_index(drop=True)


def same(actual: pd.DataFrame, wanted: pd.DataFrame) -> None:
    assert list(actual["time"]) == list(wanted["time"]) and list(actual["device"]) == list(wanted["device"])
    for field in FIELDS:
        assert list(actual[f"{field}_count"]) == list(wanted[f"{field}_count"]), field
        for what in ("min", "max", "last"):
            assert np.array_equal(actual[f"{field}_{what}"], wanted[f"{field}_{what}"]), (field, what)
        for what in ("sum", "mean"):  # sums of floats in another order: equal to the last few bits
            assert np.allclose(actual[f"{field}_{what}"], wanted[f"{field}_{what}"], rtol=1e-12), (field, what)


def schedule(engine, time_ns: int, **args: str):
    run = engine.run_schedule(PLUGIN, DB, at(time_ns), args={**ARGS, **args})
    assert run.error is None, run.error
    return run


def load(engine, frame: pd.DataFrame, **args: str):
    """Write the rows as the stack does, with the rollups' write trigger watching."""
    run = engine.run_writes(PLUGIN, DB, sensor_lines(frame), args={**ARGS, **args})
    assert run.error is None, run.error
    return run


def test_hourly_and_daily_rows_equal_the_aggregates_of_the_raw_rows(engine):
    frame = readings(2)
    engine.write(DB, sensor_lines(frame))
    engine.snapshot()
    schedule(engine, NOW)  # a run reads 300 files: 50 hours of raw data
    same(stored(engine, "sensors_1h"), expected(frame, HOUR))
    # The days read the hours, which land when the run returns: the next run computes them.
    schedule(engine, NOW + MINUTE)
    same(stored(engine, "sensors_1d"), expected(frame, DAY))


def test_a_bucket_is_computed_once_it_has_settled_not_while_it_fills(engine):
    frame = readings(1)
    engine.write(DB, sensor_lines(frame.loc[frame["time"] < START + 2 * HOUR + 30 * MINUTE]))
    schedule(engine, START + 2 * HOUR + MINUTE)  # the second hour ended a minute ago: not settled
    assert sorted(set(stored(engine, "sensors_1h")["time"])) == [START]
    schedule(engine, START + 2 * HOUR + 30 * MINUTE)
    assert sorted(set(stored(engine, "sensors_1h")["time"])) == [START, START + HOUR]
    assert "sensors_1d" not in {row["table_name"] for row in engine.query(DB, "SHOW TABLES")}


def minute_ahead() -> int:
    """The next minute of the wall clock: the scheduled calls of a test whose marks the write trigger stamps with
    the wall clock start here, however long after the module's import the test runs."""
    return time.time_ns() // MINUTE * MINUTE + MINUTE


def test_a_late_reading_is_in_its_hour_and_day_after_the_next_runs(engine):
    frame = readings(2)
    load(engine, frame)
    later = minute_ahead()
    schedule(engine, later)
    schedule(engine, later + MINUTE)
    late = frame.iloc[[10]].assign(time=START + 5 * HOUR + 7 * MINUTE + 1, co2=5000.0, device="dev1")
    marked = load(engine, late)
    assert "buckets marked" in marked.log_text()
    everything = pd.concat([frame, late])
    # The mark is read once it has settled (30 s), then the hour; the day follows a run later.
    schedule(engine, later + 3 * MINUTE)
    same(stored(engine, "sensors_1h"), expected(everything, HOUR))
    schedule(engine, later + 4 * MINUTE)
    same(stored(engine, "sensors_1d"), expected(everything, DAY))


# The write trigger stamps its marks with the wall clock: 150 s ahead of the scheduled calls, the marks become
# visible only once the cursor is crossing the gap between the history and the live day, and a run must still
# read no more than its max_files (the cursor's files and the marks' together).
@pytest.mark.parametrize("clock_ahead_s", [0, 150])
def test_history_loaded_in_bulk_is_rolled_up_in_steps_that_stay_under_the_file_limit(engine, monkeypatch,
                                                                                       clock_ahead_s):
    now = minute_ahead()
    wall_clock = time.time_ns
    monkeypatch.setattr(time, "time_ns", lambda: wall_clock() + clock_ahead_s * 10**9)
    engine.query_file_limit = 80
    live = readings(1, start=now // DAY * DAY - DAY)
    engine.write(DB, sensor_lines(live))
    engine.snapshot()
    schedule(engine, now)  # the stack is live: its cursor stands at today
    history = readings(20, seed=5)
    for day in range(20):  # loaded as a bulk load goes: many requests, the server persisting as it goes
        part = history[(history["time"] >= START + day * DAY) & (history["time"] < START + (day + 1) * DAY)]
        load(engine, part, max_files="60")
        engine.snapshot()
    runs = 0
    while True:
        runs += 1
        run = schedule(engine, now + runs * MINUTE, max_files="60")
        assert not run.messages("ERROR"), run.log_text()
        hours = [write for write in run.writes.get(DB, []) if write.startswith("sensors_1h,")]
        assert len({line.rsplit(" ", 1)[1] for line in hours}) <= 10, "60 files of 10 minutes: 10 hours a run"
        if not run.writes or runs > 200:
            break
    assert 48 <= runs <= 200
    everything = pd.concat([history, live])
    same(stored(engine, "sensors_1h"), expected(everything, HOUR))
    same(stored(engine, "sensors_1d"), expected(everything, DAY))


def test_a_sparse_history_is_caught_up_in_as_many_steps_as_it_has_files(engine):
    """Three days of readings spread over 40 days: 432 files in 5,760 ten-minute windows. A run steps over the
    empty windows (system.parquet_files says where the next files are), so three runs of 200 files catch the
    hourly level up where counting windows would take 29, and no query passes the file limit."""
    engine.query_file_limit = 250
    frame = pd.concat([readings(1, start=START + day * DAY, seed=day) for day in (0, 20, 39)])
    engine.write(DB, sensor_lines(frame))
    engine.snapshot()
    runs = []
    for index in range(6):
        run = schedule(engine, NOW + index * MINUTE, max_files="200")
        assert not run.messages("ERROR"), run.log_text()
        runs.append(len([write for write in run.writes.get(DB, []) if write.startswith("sensors_1h,")]))
    assert sum(1 for written in runs if written) <= 3, runs
    same(stored(engine, "sensors_1h"), expected(frame, HOUR))
    same(stored(engine, "sensors_1d"), expected(frame, DAY))


def test_a_history_core_has_not_persisted_yet_is_rolled_up_a_budget_a_run(engine):
    """A history load still in Core's write buffer (a step of ingest/pacing.py before its snapshot) is in no
    Parquet file, so no file count bounds a run over it: each run takes the buffer's first `max_files` non-empty
    buckets, not every hour at once, which would put a bucket for each into the snapshot that persists the load.
    Once persisted, the rest goes a file budget a run, and every row is exact."""
    frame = pd.concat([readings(1, start=START + day * DAY, seed=day) for day in range(0, 20, 2)])
    engine.write(DB, sensor_lines(frame))
    written = []
    for index in range(3):
        run = schedule(engine, NOW + index * MINUTE, max_files="100")
        written.append(len({line.rsplit(" ", 1)[1] for line in run.writes.get(DB, [])
                            if line.startswith("sensors_1h,")}))
    assert written == [100, 100, 40], written  # 240 hours of readings, 100 a run
    engine.snapshot()
    for index in range(3, 12):
        schedule(engine, NOW + index * MINUTE, max_files="100")
        engine.snapshot()
    same(stored(engine, "sensors_1h"), expected(frame, HOUR))
    same(stored(engine, "sensors_1d"), expected(frame, DAY))


def test_a_failed_run_names_the_table_and_window_and_the_next_run_catches_up(engine):
    frame = readings(2)
    engine.write(DB, sensor_lines(frame))
    engine.snapshot()
    engine.query_file_limit = 3  # a day of raw files cannot be read
    failed = engine.run_schedule(PLUGIN, DB, at(NOW), args=ARGS)
    errors = failed.messages("ERROR")
    assert len(errors) == 1 and "table=sensors" in errors[0] and "level=1h" in errors[0], failed.log_text()
    assert f"sensors {at(START):%Y-%m-%dT%H:%M:%SZ}.." in errors[0] and "file limit" in errors[0]
    assert failed.writes == {}
    engine.query_file_limit = 432
    schedule(engine, NOW + MINUTE)
    schedule(engine, NOW + 2 * MINUTE)
    same(stored(engine, "sensors_1h"), expected(frame, HOUR))
    same(stored(engine, "sensors_1d"), expected(frame, DAY))


def test_copy_to_writes_every_rollup_row_into_the_other_database_too(engine):
    """The live database's retention hides its rollups with its raw rows; `copy_to` keeps them in `history`."""
    frame = readings(2)
    engine.write(DB, sensor_lines(frame))
    engine.snapshot()
    schedule(engine, NOW, copy_to="history")
    schedule(engine, NOW + MINUTE, copy_to="history")
    for table, width in (("sensors_1h", HOUR), ("sensors_1d", DAY)):
        same(stored(engine, table, "history"), expected(frame, width))
        same(stored(engine, table), expected(frame, width))
    assert {row["table_name"] for row in engine.query("history", "SHOW TABLES") if row["table_schema"] == "iox"} \
        == {"sensors_1h", "sensors_1d"}, "the cursor and the marks stay in the trigger's own database"


def test_a_trigger_given_copy_to_on_a_rolled_up_stack_copies_the_history_too(engine):
    frame = readings(2)
    engine.write(DB, sensor_lines(frame))
    engine.snapshot()
    schedule(engine, NOW)
    schedule(engine, NOW + MINUTE)
    assert "history" not in engine.databases
    schedule(engine, NOW + 2 * MINUTE, copy_to="history")  # its own cursor: from the table's first hour
    schedule(engine, NOW + 3 * MINUTE, copy_to="history")
    same(stored(engine, "sensors_1h", "history"), expected(frame, HOUR))
    same(stored(engine, "sensors_1d", "history"), expected(frame, DAY))


def test_a_missing_table_is_said_and_the_others_roll_up(engine):
    engine.write(DB, sensor_lines(readings(1)))
    run = schedule(engine, START + 2 * DAY, tables="weather sensors")
    assert "no data yet" in run.log_text() and "table=weather" in run.log_text()
    assert len(stored(engine, "sensors_1h")) == 24 * 3


@pytest.mark.parametrize("args, problem", [
    ({"tables": ""}, "tables"), ({"tables": "sensors", "levels": "1h 90m"}, "not a multiple"),
    ({"tables": "sensors", "levels": "1y"}, "not a level"), ({"tables": "a;b"}, "identifier"),
    ({"tables": "sensors", "copy_to": "his tory"}, "copy_to"),
])
def test_arguments_are_checked_before_anything_is_read(engine, args, problem):
    run = engine.run_schedule(PLUGIN, DB, at(START), args=args)
    assert problem in run.log_text() and run.writes == {}


@pytest.mark.slow
def test_a_daily_series_loaded_in_bulk_is_rolled_up_by_the_forecast_trigger_under_cores_default_limit(engine):
    """plugins/provision.yaml's forecast-rollups arguments over three years of a daily series (one Parquet file a
    day): a run reads up to max_files of the source's files, not max_files 10-minute spans (which would be 300 / 6 =
    50 hours of a daily series: two days a run), so every run stays under Core's default --query-file-limit (432)
    and the weekly level catches up in a few runs, equal to the weekly means of the raw days."""
    trigger = next(item for item in yaml.safe_load((PLUGIN_DIR / "provision.yaml").read_text())["triggers"]
                   if item["name"] == "forecast-rollups")
    args = {key: str(value) for key, value in trigger["arguments"].items()}
    frame = daily_series(3 * 365, start="2012-01-05")  # a Thursday: epoch weeks start on Thursdays
    engine.write_lp("forecast", series_lines(frame))
    engine.snapshot()
    assert len(engine.parquet_files("forecast", "peyton_views")) == 3 * 365
    engine.query_file_limit = 432
    weeks = frame.groupby(frame.index // 7)["y"].mean().to_numpy()
    rows: list[dict] = []
    runs = 0
    while len(rows) < len(weeks) and runs < 15:
        runs += 1
        run = engine.run_schedule(PLUGIN, "forecast", at(NOW), args=args).raise_for_error()
        assert not run.messages("ERROR"), run.log_text()
        engine.snapshot()  # what the run wrote becomes files, as it does minutes later on the server
        if "peyton_views_7d" in engine.database("forecast").tables:
            rows = engine.query("forecast", "SELECT time, y_sum, y_count FROM peyton_views_7d ORDER BY time")
    # each level's last run stops at the newest file's bucket; the next finds Core's buffer empty past it
    assert len(rows) == len(weeks) and runs <= 7
    assert [row["y_sum"] / row["y_count"] for row in rows] == pytest.approx(weeks, rel=1e-12)
    assert [row["time"] for row in rows] == [pd.Timestamp("2012-01-05").value + k * 7 * DAY for k in range(len(weeks))]


def test_history_loaded_into_history_is_rolled_up_there_beside_the_live_rollups_copied_in(engine):
    """plugins/provision.yaml: telemetry-rollups copies the live devices' rollups into `history`, history-rollups
    rolls up what is loaded there from the past (a replay older than the raw retention); both land in the same
    tables, each device's rows equal to its own raw rows."""
    triggers = {item["name"]: {key: str(value) for key, value in (item.get("arguments") or {}).items()}
                for item in yaml.safe_load((PLUGIN_DIR / "provision.yaml").read_text())["triggers"]}
    live, past = readings(2), readings(2, start=START - 300 * DAY, seed=5).assign(device=lambda f: "old-" + f["device"])
    engine.write(DB, sensor_lines(live))
    engine.write("history", sensor_lines(past))
    engine.snapshot()
    for minute in range(3):
        for name, database in (("telemetry-rollups", DB), ("history-rollups", "history")):
            engine.run_schedule(PLUGIN, database, at(NOW + minute * MINUTE), args=triggers[name]).raise_for_error()
        engine.snapshot()
    both = pd.concat([live, past])
    for table, width in (("sensors_1h", HOUR), ("sensors_1d", DAY)):
        same(stored(engine, table, "history"), expected(both, width))
    assert set(stored(engine, "sensors_1d")["device"]) == set(live["device"]), "the live database: its own only"
