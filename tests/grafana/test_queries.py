"""Every SQL query of every dashboard, as Grafana sends it, on DataFusion over data in the stack's shapes.

Variables are resolved the way a first load resolves them (chained, All selected), each panel's text is
interpolated and macro-expanded for its own range and interval, and the result must be what the panel reads:
rows, column types Grafana's FlightSQL reader keeps, a `time` column sorted ascending for time series, and every
column the panel's configuration names.
"""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from grafana.boards.weather import WIND_DIRECTION
from grafana.datasources import SQL_HISTORY, SQL_LANGUAGE
from ingest.schema import BIRD_FIXES, SENSORS
from plugins.stacklib.tables import FORECAST_DATABASE, HOST_DATABASE, SERIES
from tests.grafana import flight_types
from tests.grafana.dashboards import (
    Query,
    Variable,
    boards,
    database_at,
    panel_range,
    queries,
    referenced_columns,
    repeat_scopes,
    resolve,
    selection_for,
)
from tests.grafana.data import StackData
from tests.grafana.expand import TimeRange, expand_sql, interpolate, interval_ms, resolve_time
from tests.grafana.sqlrun import grafana_type_problems, run

BOARDS = boards()
# Prophet 1.5 itself still calls DataFrame.drop(inplace=True), which pandas 3.1 deprecates.
pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.drop")


def options_from(data: StackData):
    """A variable query's options as Grafana lists them: the first string column (else the first non-time one)."""

    def options_of(variable: Variable, text: str, time_range: TimeRange) -> list[str]:
        if variable.datasource.language != SQL_LANGUAGE:
            return [f"<{variable.name}: Flux, not run here>"]
        table = run(data.engine.database(variable.datasource.database), expand_sql(text, time_range, 60_000))
        strings = [field.name for field in table.schema if pa.types.is_string(field.type)]
        others = [field.name for field in table.schema if not pa.types.is_timestamp(field.type)]
        column = (strings or others)[0]
        return list(dict.fromkeys(str(value) for value in table.column(column).to_pylist() if value is not None))

    return options_of


def execute(data: StackData, uid: str, query: Query, selected: dict[str, list[str]]) -> pa.Table:
    board = BOARDS[uid]
    time_range = panel_range(board, query.panel, data.now)
    interval = interval_ms(time_range, int(query.panel.get("maxDataPoints") or 1000), query.panel.get("interval"))
    sql = expand_sql(interpolate(query.text, selected), time_range, interval)
    return run(data.engine.database(query.datasource.database), sql)


def panel_results(data: StackData, uid: str) -> list[tuple[Query, pa.Table]]:
    board = BOARDS[uid]
    selected, options = resolve(board, data.now, options_from(data))
    scopes = repeat_scopes(board)
    return [(query, execute(data, uid, query, selection_for(query.panel, scopes, selected, options)))
            for query in queries(board, uid) if query.is_sql]


def problems_of(query: Query, table: pa.Table) -> list[str]:
    found = []
    if table.num_rows == 0:
        found.append("returned no rows")
    found += grafana_type_problems(table)
    if query.target.get("format") == "time_series":
        if "time" not in table.column_names or not pa.types.is_timestamp(table.schema.field("time").type):
            found.append("a time_series query needs a timestamp column named time")
        elif any(pa.types.is_string(field.type) for field in table.schema):
            stamps = table.column("time").cast(pa.int64()).to_numpy(zero_copy_only=False)
            if (np.diff(stamps) < 0).any():
                found.append("long time series (string columns) must be sorted by time for Grafana's LongToWide")
    return found


@pytest.mark.parametrize("uid", [uid for uid, board in BOARDS.items()
                                 if any(query.is_sql for query in queries(board, uid))])
def test_every_sql_query_returns_the_columns_its_panel_reads(stack_data, uid):
    results = panel_results(stack_data, uid)
    problems: list[str] = []
    by_panel: dict[int, dict[str, pa.Table]] = {}
    for query, table in results:
        problems += [f"{query.label}: {problem}" for problem in problems_of(query, table)]
        by_panel.setdefault(query.panel["id"], {})[query.target["refId"]] = table
    for query, _ in results:
        tables = by_panel[query.panel["id"]]
        for ref, names in referenced_columns(query.panel).items():
            columns = set().union(*(t.column_names for r, t in tables.items() if ref is None or r == ref))
            missing = names - columns
            if missing and query.target["refId"] == (ref or query.target["refId"]):
                problems.append(f"{query.label}: the panel names {sorted(missing)}, the query returns "
                                f"{sorted(columns)}")
    assert not sorted(set(problems)), "\n".join(sorted(set(problems)))


@pytest.mark.parametrize("uid", [uid for uid, board in BOARDS.items()
                                 if any(query.datasource.variable for query in queries(board, uid))])
def test_a_live_panel_answers_from_history_with_the_rollups_copied_there(stack_data, uid):
    """Over a range that starts more than LIVE_RANGE ago the hidden store variable names `history`: the same SQL
    answers there from the rollups the triggers copied (the raw table there is empty), with the live database's
    columns and types, and has rows wherever the live database has them."""
    board = BOARDS[uid]
    time_range = TimeRange(stack_data.now - timedelta(days=90), stack_data.now)
    selected, options = resolve(board, stack_data.now, options_from(stack_data))
    scopes = repeat_scopes(board)
    problems = []
    for query in queries(board, uid):
        if not query.datasource.variable:
            continue
        assert database_at(query.datasource, time_range, stack_data.now) == SQL_HISTORY.database
        interval = interval_ms(time_range, 1000, query.panel.get("interval"))
        sql = expand_sql(interpolate(query.text, selection_for(query.panel, scopes, selected, options)), time_range,
                         interval)
        live = run(stack_data.engine.database(query.datasource.database), sql)
        kept = run(stack_data.engine.database(SQL_HISTORY.database), sql)
        if kept.schema != live.schema:
            problems.append(f"{query.label}: {kept.schema} in history, {live.schema} live")
        if live.num_rows and not kept.num_rows:
            problems.append(f"{query.label}: no rows in history, {live.num_rows} live")
    assert not problems, "\n".join(problems)


def test_every_sql_query_answers_here_with_the_types_the_real_server_sends(stack_data):
    """The local engine's answer types equal those InfluxDB 3 Core sent over Flight SQL for the same query
    (tests/grafana/flight_types.json, recorded by the whole-stack tests), so the type checks above hold there."""
    record = flight_types.recorded()
    compared, problems = 0, []
    for uid in BOARDS:
        for query, table in panel_results(stack_data, uid):
            expected = record.get(query.label)
            if expected is None:
                continue
            compared += 1
            if flight_types.type_names(table) != expected:
                problems.append(f"{query.label}: here {flight_types.type_names(table)}, real server {expected}")
    assert compared, "no query recorded in flight_types.json"
    assert not problems, "\n".join(problems)


def test_variables_list_what_the_data_holds(stack_data):
    found = {uid: resolve(board, stack_data.now, options_from(stack_data))[1] for uid, board in BOARDS.items()}
    birds = stack_data.birds
    assert found["birds"]["species"] == sorted(birds["species"].unique())
    assert sorted(found["birds"]["individual"]) == sorted(birds["individual"].unique())
    assert found["weather"]["location"] == sorted(stack_data.weather["location"].unique())
    assert found["sensors"]["location"] == sorted(stack_data.sensors["location"].unique())
    assert sorted(found["sensors"]["device"]) == sorted(stack_data.sensors["device"].unique())
    assert found["forecast"]["series"] == [stack_data.series]
    assert found["forecast"]["run"] == stack_data.runs[::-1], "the latest run must come first (the default)"
    assert found["statistics"]["table"] == ["analytics_peyton_views", "analytics_sensors"]
    assert found["statistics"]["field"] == sorted(SENSORS.field_names)


def result(data: StackData, uid: str, title: str, ref: str = "A", kind: str | None = None) -> pa.Table:
    for query, table in panel_results(data, uid):
        if query.panel["title"] == title and query.target["refId"] == ref and kind in (None, query.panel["type"]):
            return table
    raise AssertionError(f"{uid} has no panel {title!r} with query {ref}")


@pytest.mark.parametrize(("start", "days"), [("now-20d", 1), ("now-10y", 7)])
def test_distance_per_day_is_the_great_circle_sum_of_each_day(stack_data, start, days):
    """Over 20 days (hourly summaries and the newest raw fixes) a bar is a day's legs; over the default 10 years
    (weekly summaries) a week's legs per day. A leg counts in the bin of its later fix, also across summaries."""
    board = BOARDS["birds"]
    query = next(item for item in queries(board, "birds") if item.panel["title"] == "Distance per day")
    selected, _ = resolve(board, stack_data.now, options_from(stack_data))
    time_range = TimeRange(resolve_time(start, stack_data.now), stack_data.now)
    sql = expand_sql(interpolate(query.text, selected), time_range, interval_ms(time_range, 1000, None))
    # The panel's now() is the moment the summaries ran at (a live stack's run a minute ago).
    sql = sql.replace("now()", f"TIMESTAMP '{stack_data.now:%Y-%m-%dT%H:%M:%SZ}'")
    table = run(stack_data.engine.database(query.datasource.database), sql).to_pandas()
    birds = stack_data.birds
    lat, lon = BIRD_FIXES.field_names[:2]
    one = birds[(birds["individual"] == "5515851") & ~birds["outlier"] & birds["visible"]].sort_values("time")
    phi1, phi2 = np.radians(one[lat].shift()), np.radians(one[lat])
    dphi, dlmb = phi2 - phi1, np.radians(one[lon] - one[lon].shift())
    km = 2 * 6371.0088 * np.arcsin(np.sqrt(np.sin(dphi / 2) ** 2 + np.cos(phi1) * np.cos(phi2) * np.sin(dlmb / 2) ** 2))
    width = days * 86_400 * 10**9
    stamps = pd.to_datetime(one["time"], utc=True).dt.as_unit("ns").astype("int64")
    expected = (km.groupby(pd.to_datetime(stamps // width * width)).sum(min_count=1) / days).dropna()
    got = table[table["individual"] == "5515851"].set_index("time")["distance_km"]
    assert len(got) == len(expected) >= 14 // days
    for day, value in expected.items():
        assert got[day] == pytest.approx(value, rel=1e-9)


def test_latest_values_per_device_are_the_newest_readings(stack_data):
    table = result(stack_data, "sensors", "Latest values per device").to_pandas().set_index("device")
    newest = stack_data.sensors.sort_values("time").groupby("device").tail(1).set_index("device")
    assert sorted(table.index) == sorted(newest.index)
    for name in SENSORS.field_names:
        assert table[name].to_numpy() == pytest.approx(newest.loc[table.index, name].to_numpy())
    assert (table["age"] > 0).all() and (table["age"] < 3 * 3600).all(), "age is in seconds, not ns or ms"


def test_wind_direction_history_is_a_circular_mean(stack_data):
    table = result(stack_data, "weather", "Wind direction", kind="timeseries").to_pandas()
    assert ((table[WIND_DIRECTION] >= 0) & (table[WIND_DIRECTION] < 360)).all()
    width = np.diff(np.unique(table["time"])).min()
    weather = stack_data.weather.assign(time=stack_data.weather["time"].dt.tz_localize(None))
    for _, row in table.iloc[:6].iterrows():
        rows = weather[(weather["location"] == row["location"]) & (weather["time"] >= row["time"])
                       & (weather["time"] < row["time"] + width)]
        radians = np.radians(rows[WIND_DIRECTION])
        expected = math.degrees(math.atan2(np.sin(radians).mean(), np.cos(radians).mean())) % 360
        assert row[WIND_DIRECTION] == pytest.approx(expected)


def test_forecast_panel_shows_the_series_and_the_latest_runs_band(stack_data):
    """At the default range (20 years back) the series comes from its weekly rollup, in weekly bins: the mean of
    each week's days, stamped at the week's start (the newest week from the daily and hourly tiers, as far as the
    rollups, run at the hour here, got)."""
    actual = result(stack_data, "forecast", "Actual and forecast (${series}, run ${run})", "A").to_pandas()
    forecast = result(stack_data, "forecast", "Actual and forecast (${series}, run ${run})", "B").to_pandas()
    raw = pd.DataFrame(stack_data.engine.query(FORECAST_DATABASE, f"SELECT time, y FROM {SERIES.name}"))
    raw["time"] = pd.to_datetime(raw["time"])
    week, epoch = pd.Timedelta(days=7), pd.Timestamp(0)
    expected = raw.groupby(epoch + (raw["time"] - epoch) // week * week)["y"].mean()
    got = actual.set_index("time")["actual"]
    assert list(got.index) == list(expected.index)
    assert got.to_numpy()[:-1] == pytest.approx(expected.to_numpy()[:-1], rel=1e-12)
    assert len(forecast) > 0 and (forecast["lower"] <= forecast["forecast"]).all()
    assert (forecast["forecast"] <= forecast["upper"]).all()
    runs = result(stack_data, "forecast", "Latest runs").to_pandas()
    assert list(runs["run"]) == stack_data.runs[::-1]


def test_network_traffic_is_the_rate_between_samples_without_the_step_of_a_counter_reset(stack_data):
    table = result(stack_data, "host", "Network traffic").to_pandas()
    raw = pd.DataFrame(stack_data.engine.query(HOST_DATABASE, "SELECT time, interface, bytes_recv FROM system_network "
                                                              "ORDER BY interface, time"))
    raw["time"] = pd.to_datetime(raw["time"])
    grouped = raw.groupby("interface")
    raw["rate"] = grouped["bytes_recv"].diff().astype(float) / grouped["time"].diff().dt.total_seconds()
    assert (raw["rate"] < 0).sum() == 2, "the data must hold one counter reset per interface"
    width = pd.Timedelta(np.diff(np.unique(table["time"])).min())
    raw["bin"] = raw["time"].dt.floor(width)
    expected = raw[raw["rate"] >= 0].groupby(["bin", "interface"])["rate"].mean()
    got = table.set_index(["time", "interface"])["received"].dropna()
    assert (got >= 0).all() and len(got) >= len(expected) - 2
    common = got.index.intersection(expected.index)
    assert len(common) >= len(expected) - 2
    assert got[common].to_numpy() == pytest.approx(expected[common].to_numpy())
