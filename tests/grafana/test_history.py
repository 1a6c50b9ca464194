"""Range-aware panels (grafana/history.py): at every range Grafana's picker offers, no query opens more than a few
hundred Parquet files of any table however old the stack is, each series has at most about 2,000 points, and the
tiers add up to what the raw rows say.

Files are counted as InfluxDB 3 Core counts them (tests/engine/timebounds.py: the time bounds the optimized plan
gives each scan, `ChunkFilter::new`) over a stack ten years old that wrote every live table without a break: one
file per 10 minutes of raw data, one per bucket of a rollup (rows stamped at bucket starts).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import yaml

from common.retention import LIVE_RANGE, MIN_RAW_RETENTION
from grafana import history
from grafana.datasources import SQL_LANGUAGE, Datasource
from plugins.stacklib.tables import EVALUATION, FORECAST, analytics_table
from tests.engine import PLUGIN_DIR, LocalEngine
from tests.engine.timebounds import scan_bounds
from tests.grafana.dashboards import boards, database_at, queries, variables
from tests.grafana.data import create_rollup_tables
from tests.grafana.expand import TimeRange, expand_sql, interpolate, interval_ms, resolve_time
from tests.grafana.sqlrun import declared, rollup_tables, statistics_sources

BOARDS = boards()
NOW = datetime(2026, 12, 6, 12, 34, 56, tzinfo=UTC)
AGE = timedelta(days=3653)  # the stack's age: ten years of files before NOW
# Grafana's time picker (packages/grafana-ui TimeRangePicker options): every "Last ..." entry, and the previous year.
PICKER = ["now-5m", "now-15m", "now-30m", "now-1h", "now-3h", "now-6h", "now-12h", "now-24h", "now-2d", "now-7d",
          "now-30d", "now-90d", "now-6M", "now-1y", "now-2y", "now-5y"]
RANGES = [TimeRange(resolve_time(start, NOW), NOW) for start in PICKER] + [
    TimeRange(datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC))]
FILE_BUDGET = 1_000  # per scan: half the file limit the stack runs with
MAX_POINTS = 2_000
ROLLUPS = {table.name for table in rollup_tables()}
LIVE = ROLLUPS | {name.rsplit("_", 1)[0] for name in ROLLUPS}
# Tables written in steps rather than without a break: the data time one of their Parquet files spans (rows are
# stamped at their run's or bucket's start). A forecast run a day writes one file to each forecast table; the
# provisioned statistics triggers write hourly buckets at the finest (a whole-table bucket would write a row a
# flush: not provisioned).
STEPPED_S = {FORECAST.name: 86_400, EVALUATION.name: 86_400,
             **{analytics_table(name).name: 3_600 for name in statistics_sources()}}
# Values for variables without a current value: a run id as the forecast plugin makes them (its time prefix is
# what bounds the run's rows).
SAMPLE = {"run": ["2026-12-06T03:00:00Z-a1b2c3"]}


def _span_s(table: str) -> int:
    if table in STEPPED_S:
        return STEPPED_S[table]
    suffix = table.rsplit("_", 1)[-1]
    return next((tier.width_s for tier in history.TIERS[1:] if tier.level == suffix and table in ROLLUPS), 600)


def files(table: str, lower: int | None, upper: int | None) -> int:
    """Files of `table` whose window overlaps [lower, upper], on a stack that wrote it for AGE without a break."""
    span = _span_s(table) * 10**9
    first, newest = int((NOW - AGE).timestamp()) * 10**9, int(NOW.timestamp()) * 10**9
    low, high = max(lower if lower is not None else first, first), min(upper if upper is not None else newest, newest)
    return 0 if high < low else high // span - low // span + 1


def _everything_selected(text: str, board: dict) -> str:
    values = {item.name: item.current or SAMPLE.get(item.name, ["x"]) for item in variables(board)}
    return interpolate(text, values)


def sql_texts(uid: str) -> list[tuple[str, Datasource, str, dict]]:
    """(label, datasource, text, panel: {} for a variable) of every SQL panel query and variable query of a
    dashboard."""
    board = BOARDS[uid]
    found = [(f"{uid}: variable {item.name}", item.datasource, item.query, {})
             for item in variables(board) if item.datasource.language == SQL_LANGUAGE]
    found += [(query.label, query.datasource, query.text, query.panel)
              for query in queries(board, uid) if query.is_sql]
    return found


def ranges_of(uid: str, panel: dict) -> list[TimeRange]:
    """The ranges a query runs at: every picker range and the dashboard's default one, or the panel's relative
    time (`timeFrom`, e.g. 90d), which Grafana puts in place of the dashboard's range."""
    if panel.get("timeFrom"):
        return [TimeRange(resolve_time(f"now-{panel['timeFrom']}", NOW), NOW)]
    default = BOARDS[uid]["time"]
    return [*RANGES, TimeRange(resolve_time(default["from"], NOW), resolve_time(default["to"], NOW))]


CASES = [pytest.param(uid, label, source, text, panel, id=label)
         for uid in sorted(BOARDS) for label, source, text, panel in sql_texts(uid)]


@pytest.mark.parametrize(("uid", "label", "source", "text", "panel"), CASES)
def test_no_query_opens_more_than_the_budget_at_any_picker_range(uid, label, source, text, panel):
    """On the database each range reads: a panel over a live database reads `history` for the long ranges."""
    problems = []
    for time_range in ranges_of(uid, panel):
        context = declared(database_at(source, time_range, NOW))
        interval = interval_ms(time_range, 1_000, panel.get("interval"))
        sql = expand_sql(_everything_selected(text, BOARDS[uid]), time_range, interval)
        for scan in scan_bounds(context.sql(sql).optimized_logical_plan()):
            if scan.table in LIVE or scan.table in STEPPED_S:
                count = files(scan.table, scan.lower, scan.upper)
                if count > FILE_BUDGET:
                    problems.append(f"{time_range.start:%Y-%m-%d %H:%M} .. {time_range.end:%Y-%m-%d %H:%M}: "
                                    f"{scan.table} {count} files")
    assert not problems, f"{label}:\n" + "\n".join(problems)


SCREEN_PX = 1_900  # a full-width (24-column) panel on a 1920-pixel screen


def test_no_series_has_more_than_2000_points_at_any_picker_range():
    """Grafana bins by the interval it computes from the range and the panel's max data points (its width in
    pixels), never below the panel's min interval; a rollup tier has at most one row per bucket. So a series has
    at most range / max(interval, the coarsest tier's bucket) points."""
    problems = []
    for uid in sorted(BOARDS):
        for query in queries(BOARDS[uid], uid):
            if not (query.is_sql and query.target.get("format") == "time_series"):
                continue
            pixels = SCREEN_PX * query.panel["gridPos"]["w"] // 24
            for time_range in RANGES:
                interval = interval_ms(time_range, pixels, query.panel.get("interval"))
                tier = history.coarsest(time_range.ms / 1000)
                bucket = 0 if tier is history.TIERS[0] else tier.width_s * 1000  # raw rows come at any rate
                points = time_range.ms / max(interval, bucket)
                if points > MAX_POINTS:
                    problems.append(f"{query.label} at {time_range.ms // 3_600_000} h: {points:.0f} points")
    assert not problems, "\n".join(problems)


# A panel "per day" bins by calendar days where the range reads daily or finer tiers, by weeks beyond.
CALENDAR_BINS = (f"CASE WHEN {history.reads(history.TIERS[-1])} THEN date_bin(INTERVAL '7 days', time, "
                 f"{history.EPOCH}) ELSE date_bin(INTERVAL '1 day', time, {history.EPOCH}) END")


def _reads_a_live_table(uid: str, query) -> bool:
    sql = expand_sql(_everything_selected(query.text, BOARDS[uid]), RANGES[0], 1_000)
    plan = declared(query.datasource.database).sql(sql).optimized_logical_plan()
    return any(scan.table in LIVE for scan in scan_bounds(plan))


def test_every_time_series_of_a_live_table_is_binned():
    """A panel over a live table draws bins, never rows: the points per series follow the interval, or the
    calendar (a day up to 800 days, a week beyond: at most 800 points). Rows of tables written in steps are drawn
    as they are: a forecast run's days, a run's grade, a bucket's median."""
    unbinned = [query.label for uid in sorted(BOARDS) for query in queries(BOARDS[uid], uid)
                if query.is_sql and query.target.get("format") == "time_series" and "$__dateBin(" not in query.text
                and CALENDAR_BINS not in query.text and _reads_a_live_table(uid, query)]
    assert not unbinned


def test_the_rollup_levels_are_the_tiers_the_panels_read():
    provision = yaml.safe_load((PLUGIN_DIR / "provision.yaml").read_text())
    levels = {str(trigger["arguments"]["levels"]) for trigger in provision["triggers"]
              if trigger["plugin"] == "history/rollups"}
    assert levels == {history.ROLLUP_LEVELS}


# ---- the tiers add up: rollups computed by the real plugin on the local engine ---------------------------------
PLUGIN, DB, TABLE = "history/rollups", "telemetry", "sensors"
START = datetime(2026, 9, 3, tzinfo=UTC)  # a Thursday: weeks since the epoch start on Thursdays


@pytest.fixture(scope="module")
def rolled_up() -> tuple[LocalEngine, pd.DataFrame, datetime]:
    """Raw readings every 5 minutes for ~95 days (one device silent for its last 3 days, NULLs now and then),
    rolled up by the plugin as its trigger would, until it has caught up."""
    rng = np.random.default_rng(7)
    end = START + timedelta(days=95, hours=5, minutes=7)
    times = pd.date_range(START, end, freq="5min", tz="UTC")
    frames = []
    for device, location, stop in (("d1", "lab", end), ("d2", "office", end - timedelta(days=3))):
        kept = times[times <= stop]
        values = rng.normal(21, 3, len(kept)).round(3)
        values[rng.random(len(kept)) < 0.05] = np.nan
        frames.append(pd.DataFrame({"time": kept, "device": device, "location": location, "temperature": values}))
    raw = pd.concat(frames, ignore_index=True)
    engine = LocalEngine()
    engine.create_database(DB)
    engine.load_frame(DB, TABLE, raw, tags=("device", "location"))
    create_rollup_tables(engine, DB)
    now = end + timedelta(minutes=3)
    for _ in range(6):  # 3,000 files a level a run: the hourly level catches up in three runs, the others after
        engine.run_schedule(PLUGIN, DB, now.replace(tzinfo=None), args={
            "tables": TABLE, "levels": history.ROLLUP_LEVELS, "max_files": "3000"}).raise_for_error()
    return engine, raw, now


@pytest.mark.parametrize("days", [0.25, 1.5, 6, 30, 60, 94])
def test_the_tiers_add_up_to_the_raw_rows(rolled_up, days):
    engine, raw, now = rolled_up
    # Ranges that start on a week boundary, so the coarsest tier's first bucket starts with the range.
    start = START + timedelta(days=7 * int((95 - days) // 7)) if days > 2 else now - timedelta(days=days)
    start = start.replace(second=0)
    time_range = TimeRange(start, now)
    sql = (f"SELECT device, {history.count('temperature')} AS n, {history.mean('temperature')} AS mean, "
           f"{history.minimum('temperature')} AS low, {history.maximum('temperature')} AS high, "
           f"{history.last('temperature')} AS newest, max(time) AS seen "
           f"FROM {history.source(TABLE, ('device', 'location'), ('temperature',))} GROUP BY device ORDER BY device")
    # The panel's now() is the moment the rollups ran at (the data lies in the test's own calendar).
    expanded = expand_sql(sql, time_range, 60_000).replace("now()", f"TIMESTAMP '{now:%Y-%m-%dT%H:%M:%SZ}'")
    got = engine.query(DB, expanded)
    window = raw[(raw["time"] >= pd.Timestamp(start)) & (raw["time"] <= pd.Timestamp(now))]
    for row in got:
        values = window[window["device"] == row["device"]]["temperature"]
        assert row["n"] == values.count()
        assert row["mean"] == pytest.approx(values.mean(), rel=1e-12)
        assert (row["low"], row["high"]) == (values.min(), values.max())
        assert row["newest"] == values.dropna().iloc[-1]
    assert [row["device"] for row in got] == sorted(window["device"].unique())


def test_a_range_the_live_database_serves_needs_no_tier_beyond_what_its_retention_keeps():
    """The store variable reads a live database for ranges starting within LIVE_RANGE: the hourly tier's longest
    range, so those ranges read raw rows and hourly rollups only, and RAW_RETENTION (at least a day longer) keeps
    them."""
    assert history.TIERS[1].coarsest_up_to_s == LIVE_RANGE.total_seconds()
    assert LIVE_RANGE + timedelta(seconds=history.TIERS[1].width_s + history.LAG_S) < MIN_RAW_RETENTION
