"""Core's Parquet file accounting in the local engine (tests/engine/parquet.py), against the v3.10.1 source:
one file per table per gen1 window per snapshot, no compaction, a per-scan file count bounded by the query's time
filter, the `--query-file-limit` error, and what a restart loads back."""

from __future__ import annotations

import pytest

from tests.engine import LocalEngine, QueryError
from tests.engine.parquet import FILE_LIMIT_MESSAGE, chunk_time, snapshots_to_load

MINUTE = 60 * 10**9
DAY = 86_400 * 10**9
T0 = 1_700_006_400 * 10**9  # 2023-11-15T00:00:00Z


def test_gen1_windows_and_the_restart_count_follow_the_source():
    assert chunk_time(T0 + 11 * MINUTE, 10 * MINUTE) == T0 + 10 * MINUTE
    assert chunk_time(-1, 10 * MINUTE) == 0, "Rust's % truncates toward zero"
    assert snapshots_to_load(10**9 * 2_630_016, 10 * MINUTE) == 4383, "1month / 10m (humantime months)"
    assert snapshots_to_load(3_600 * 10**9, 10 * MINUTE) == 100, "never fewer than 100"


def test_a_snapshot_persists_one_file_per_table_and_window_and_never_compacts():
    engine = LocalEngine(wall_clock=lambda: T0)
    engine.write_lp("db", [f"m,s=a v={i}.0 {T0 + i * MINUTE}" for i in range(25)] + [f"n v=1.0 {T0}"])
    assert engine.parquet_files("db", "m") == [], "buffered rows are in-memory chunks, not files"
    assert engine.files_scanned("db", "SELECT * FROM m") == 0
    engine.snapshot()
    files = engine.parquet_files("db", "m")
    assert [(f.chunk_time - T0) // MINUTE for f in files] == [20, 10, 0]
    assert [(f.row_count, (f.min_time - T0) // MINUTE, (f.max_time - T0) // MINUTE) for f in files] == [
        (5, 20, 24), (10, 10, 19), (10, 0, 9)]
    assert files[0].path.endswith("/2023-11-15/00-20/0000000001.parquet")
    assert len(engine.parquet_files("db", "n")) == 1
    engine.write_lp("db", [f"m,s=a v=99.0 {T0 + 3 * MINUTE}"])  # rewrite a point: a new file, nothing merged
    engine.snapshot()
    assert len(engine.parquet_files("db", "m")) == 4
    assert engine.query("db", f"SELECT v FROM m WHERE time = to_timestamp_nanos({T0 + 3 * MINUTE})") == [{"v": 99.0}]
    assert engine.snapshot() is None, "nothing buffered: no snapshot"


def test_queries_count_the_files_their_time_filter_selects_per_table_scan():
    engine = LocalEngine(wall_clock=lambda: T0 + 400 * DAY)
    engine.write_lp("db", [f"m v={i}.0 {T0 + i * DAY}" for i in range(30)] + [f"k v=1.0 {T0}"])
    engine.snapshot()
    day = (T0 + 20 * DAY) // 10**9
    assert engine.files_scanned("db", "SELECT count(*) FROM m") == 30
    assert engine.files_scanned("db", f"SELECT * FROM m WHERE time >= to_timestamp({day})") == 10
    assert engine.files_scanned("db", f"SELECT * FROM m WHERE time > to_timestamp({day})") == 9
    assert engine.files_scanned("db", f"SELECT * FROM m WHERE time BETWEEN to_timestamp({day}) AND "
                                      f"to_timestamp({day}) + INTERVAL '2 days'") == 3
    assert engine.files_scanned("db", f"SELECT * FROM m WHERE time >= to_timestamp({day}) OR v > 1") == 30, \
        "interval analysis derives no bound through OR"
    assert engine.files_scanned("db", "SELECT * FROM m WHERE time > now() - INTERVAL '7 days'") == 0
    assert engine.files_scanned("db", f"SELECT * FROM m WHERE time > to_timestamp({day}) AND v > 1") == 9
    # a join scans each table with its own filters: the busiest scan is what the limit is held against
    assert engine.files_scanned("db", f"SELECT * FROM m JOIN k ON m.time = k.time WHERE k.time < "
                                      f"to_timestamp({T0 // 10**9 + 1})") == 1


def test_the_file_limit_fails_the_query_with_cores_message():
    engine = LocalEngine(query_file_limit=5)
    engine.write_lp("db", [f"m v={i}.0 {T0 + i * DAY}" for i in range(6)])
    assert engine.query("db", "SELECT count(*) AS n FROM m") == [{"n": 6}], "buffered: no file counts"
    engine.snapshot()
    with pytest.raises(QueryError) as raised:
        engine.query("db", "SELECT count(*) AS n FROM m")
    error = raised.value
    assert (error.status, error.stage) == (500, "planning")
    assert error.datafusion == "External error: " + FILE_LIMIT_MESSAGE.format(5), "the limit, not the count"
    assert str(error) == f"error: error while planning query: {error.datafusion} executing query on db: " \
                         "SELECT count(*) AS n FROM m"
    assert engine.query("db", f"SELECT count(*) AS n FROM m WHERE time > to_timestamp_nanos({T0})") == [{"n": 5}]
    with pytest.raises(QueryError, match="provided filters on time column did not produce a valid set of boundaries"):
        engine.query("db", f"SELECT * FROM m WHERE time > to_timestamp_nanos({T0 + 5 * DAY}) "
                           f"AND time < to_timestamp_nanos({T0})")


def test_a_retention_period_raises_the_lower_bound():
    engine = LocalEngine(wall_clock=lambda: T0 + 10 * DAY)
    engine.create_database("kept", retention_period="3d")
    engine.write_lp("kept", [f"m v={i}.0 {T0 + i * DAY}" for i in range(10)])
    engine.snapshot()
    assert engine.files_scanned("kept", "SELECT * FROM m") == 3


def test_a_restart_loads_only_the_newest_snapshots_and_their_data_goes():
    clock = {"now": T0}
    engine = LocalEngine(wall_clock=lambda: clock["now"], gen1_lookback="1h")  # N = max(100, 6) = 100
    for index in range(150):
        engine.write_lp("db", [f"m v={index}.0 {T0 + index * 10 * MINUTE}"])
        engine.snapshot()
    engine.write_lp("db", [f"m v=-1.0 {T0 - DAY}"])  # still in the WAL: replayed, never lost
    assert engine.restart() == 50
    assert len(engine.parquet_files("db", "m")) == 100
    assert engine.query("db", "SELECT count(*) AS n, min(v) AS lo FROM m WHERE v >= 0") == [{"n": 100, "lo": 50.0}]
    assert engine.query("db", "SELECT v FROM m WHERE v < 0") == [{"v": -1.0}]
    # the first restart built a monthly checkpoint from what it loaded; the next one loads it whole when its
    # sequence is within the newest N (persister.rs list_latest_checkpoints_per_month)
    assert [(c.year_month, c.last_snapshot_sequence, len(c.files)) for c in engine.snapshots.checkpoints] == [
        ((2023, 11), 150, 100)]
    for index in range(150, 170):
        engine.write_lp("db", [f"m v={index}.0 {T0 + index * 10 * MINUTE}"])
        engine.snapshot()
    assert engine.restart() == 0
    assert len(engine.parquet_files("db", "m")) == 121
    # v3.6.0 has no checkpoints: the newest 100 snapshots only
    assert engine.restart(checkpoints=False) == 20 and len(engine.parquet_files("db", "m")) == 101


def test_a_daily_future_forecast_crosses_a_20000_file_limit_after_54_runs():
    """The arithmetic of the issue: a daily job writing 365 future days (one point a day at 00:00 UTC, as the
    Prophet plugin wrote peyton_forecast) adds 365 files per run, one per 10-minute window, whatever else changes:
    after 54 runs a query over the forecast holds 19,710 files, the 55th run takes it over 20,000."""
    engine = LocalEngine(query_file_limit=20_000)
    everything = "SELECT count(*) AS n FROM forecast"

    def run(day: int) -> None:  # a snapshot happens between two daily runs (every ~10 minutes on a live server)
        start = T0 + day * DAY
        engine.write_lp("db", [f"forecast,run=r{day} yhat={ahead}.0 {start + ahead * DAY}" for ahead in range(1, 366)])
        engine.snapshot()

    for day in range(54):
        run(day)
    assert len(engine.parquet_files("db", "forecast")) == 54 * 365 == 19_710
    assert engine.query("db", everything) == [{"n": 54 * 365}]
    run(54)
    assert engine.files_scanned("db", everything) == 20_075
    with pytest.raises(QueryError, match="Query would scan 20000 Parquet files, exceeding the file limit"):
        engine.query("db", everything)
    latest = f"SELECT count(*) AS n FROM forecast WHERE time > to_timestamp({(T0 + 54 * DAY) // 10**9})"
    assert engine.files_scanned("db", latest) == sum(1 for day in range(55) for ahead in range(1, 366)
                                                     if day + ahead > 54) == 18_590


@pytest.mark.parametrize(("lookback", "history_kept"), [("1day", False), (None, True)])
def test_a_restart_after_live_writes_keeps_the_loaded_history_only_with_the_stacks_lookback(lookback, history_kept):
    """History loaded on the first day (the Peyton series, 2007-2016), then live writes: a snapshot at most every
    10 minutes. A lookback of N snapshots hides the history after N more (Core's default, 1 month, is 4,320:
    shown here with a day, 144); the stack's INFLUXDB3_GEN1_LOOKBACK (.env.example) keeps it."""
    from tests.support.paths import REPO
    from tests.support.stackcli import stack_module

    setting = lookback or stack_module().read_env(REPO / ".env.example")["INFLUXDB3_GEN1_LOOKBACK"]
    clock = {"now": T0}
    engine = LocalEngine(wall_clock=lambda: clock["now"], gen1_lookback=setting)
    engine.write_lp("db", [f"history v={day}.0 {T0 - (3000 - day) * DAY}" for day in range(50)])
    engine.snapshot()
    for tick in range(160):  # more than a day of live writes, one snapshot per 10 minutes
        clock["now"] = T0 + tick * 10 * MINUTE
        engine.write_lp("db", [f"live v={tick}.0 {clock['now']}"])
        engine.snapshot()
    engine.restart()
    assert engine.query("db", "SELECT count(*) AS n FROM history") == [{"n": 50 if history_kept else 0}]
