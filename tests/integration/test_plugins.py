"""The plugins in the running stack: provisioned triggers exist and fire, tables fill, endpoints answer.

The series is loaded from a generated CSV the InfluxDB 3 server can read (copied into its container under
Docker; the provisioned loader's default URL needs internet access), by a temporary trigger of the same plugin;
a temporary every:5s trigger runs the forecast so the test does not wait for the daily schedule. Temporary
triggers are deleted after.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest
import requests
import yaml

from plugins.stacklib.tables import HOST_TABLES
from tests.engine import PLUGIN_DIR
from tests.integration.conftest import wait_for
from tests.plugins import trackdata
from tests.plugins.conftest import daily_series, series_csv

pytestmark = pytest.mark.integration

SERIES = "it-series"
PROVISION = yaml.safe_load((PLUGIN_DIR / "provision.yaml").read_text())


def test_provisioned_triggers_exist_and_are_enabled_as_declared(stack):
    for database in {trigger["database"] for trigger in PROVISION["triggers"]}:
        rows = {row["trigger_name"]: row for row in stack.sql(
            database, "SELECT trigger_name, plugin_filename, disabled FROM system.processing_engine_triggers")}
        for trigger in (t for t in PROVISION["triggers"] if t["database"] == database):
            assert trigger["name"] in rows, f"trigger {trigger['name']} missing in {database}"
            assert bool(rows[trigger["name"]]["disabled"]) == bool(trigger.get("disabled", False))


def test_sensor_writes_fill_the_analytics_table_and_api(stack):
    now = time.time_ns()
    lines = "\n".join(f"sensors,device=it{i % 2},location=it temperature={20 + i % 5}.5,humidity={40 + i}.0 "
                      f"{now - i * 10**9}" for i in range(20))
    response = requests.post(f"{stack.influxdb3_url}/api/v3/write_lp", headers=stack.influxdb3_headers,
                             params={"db": "telemetry", "precision": "nanosecond"}, data=lines, timeout=30)
    assert response.status_code in (200, 204), response.text
    rows = wait_for("analytics_sensors rows", lambda: stack.sql(
        "forecast", "SELECT field, count FROM analytics_sensors "
                           "WHERE bucket = '1h' AND time >= now() - interval '2 hours'"))
    assert {"temperature", "humidity"} <= {row["field"] for row in rows}
    answer = wait_for("the analytics API", lambda: (lambda r: r if r.ok else None)(
        stack.engine("analytics", table="sensors")))
    assert answer.headers["Content-Type"].startswith("application/json")
    assert "temperature" in answer.json()["statistics"]["1h"]
    missing = stack.engine("analytics", table="no_such_table")
    assert missing.status_code == 404 and missing.json()["table"] == "no_such_table"


def test_load_forecast_and_chart_in_the_stack(stack, temporary_triggers, tmp_path: Path):
    csv = tmp_path / "it-series.csv"
    csv.write_text(series_csv(daily_series(200)))
    temporary_triggers("it-load", "forecast", "forecast/load_series", "request:it-load",
                       {"url": stack.influxdb3_file(csv), "series": SERIES})
    loaded = stack.engine("it-load")
    assert loaded.status_code == 200, loaded.text
    body = loaded.json()
    assert body["status"] == "success" and body["rows_written"] == 200
    wait_for("the loaded series", lambda: stack.sql(
        "forecast", f"SELECT count(*) AS n FROM peyton_views WHERE series = '{SERIES}'")[0]["n"] == 200)
    wait_for("peyton_views statistics", lambda: stack.sql("forecast", "SELECT count(*) AS n FROM "
                                                                       "analytics_peyton_views")[0]["n"] > 0)

    temporary_triggers("it-forecast", "forecast", "forecast/prophet_forecast", "every:5s",
                       {"series": SERIES, "horizon_days": "30", "holdout_days": "10", "min_rows": "30"})
    wait_for("forecast rows", lambda: stack.sql(
        "forecast", f"SELECT count(*) AS n FROM peyton_forecast WHERE series = '{SERIES}'")[0]["n"] >= 30,
        timeout=600)
    grades = stack.sql("forecast", f"SELECT mae, coverage FROM forecast_evaluation WHERE series = '{SERIES}'")
    assert grades and all(row["mae"] >= 0 and 0 <= row["coverage"] <= 1 for row in grades)

    chart = stack.engine("peyton-chart", series=SERIES)
    assert chart.status_code == 200 and chart.headers["Content-Type"].startswith("text/html")
    assert "plotly" in chart.text.lower() and "forecast run " in chart.text
    # The page is saved to a file to open in a browser (make chart): it must never carry the admin token.
    assert stack.env["INFLUXDB3_ADMIN_TOKEN"] not in chart.text


def test_the_host_metrics_plugin_is_downloaded_by_the_server_and_writes(stack, plugin_repository):
    """The `gh:` trigger of plugins/provision.yaml: created by influxdb3-init, its plugin fetched by InfluxDB 3
    itself from INFLUXDB3_PLUGIN_REPO (the test's loopback repository natively, the pinned community repository
    under Docker), run every 30 s, its rows in the host tables."""
    trigger = next(t for t in PROVISION["triggers"] if str(t["plugin"]).startswith("gh:"))
    rows = {row["trigger_name"]: row for row in stack.sql(
        trigger["database"], "SELECT trigger_name, plugin_filename, disabled FROM system.processing_engine_triggers")}
    assert rows[trigger["name"]]["plugin_filename"] == trigger["plugin"]
    assert not rows[trigger["name"]]["disabled"]
    if plugin_repository is not None:
        assert plugin_repository.downloads() >= 1
    for table in HOST_TABLES:
        found = wait_for(f"rows in {trigger['database']}.{table.name}", lambda table=table: stack.sql(
            trigger["database"], f"SELECT count(*) AS n FROM {table.name} WHERE host = "
                                 f"'{trigger['arguments']['hostname']}'")[0]["n"], timeout=120)
        assert found > 0


def _aggregates_on_the_server(stack, table: str, width: str) -> list[dict]:
    """What the rollup rows must equal, computed by the server itself from the raw rows."""
    return stack.sql("telemetry", f"""
        SELECT date_bin(INTERVAL '{width}', time, TIMESTAMP '1970-01-01T00:00:00Z') AS time, device,
               count(co2) AS co2_count, min(co2) AS co2_min, max(co2) AS co2_max, sum(co2) AS co2_sum,
               count(humidity) AS humidity_count, max(humidity) AS humidity_max
        FROM {table} WHERE time >= '2000-01-01T00:00:00Z' GROUP BY 1, 2 ORDER BY 1, 2""")


def _rollups(stack, table: str) -> list[dict]:
    return stack.sql("telemetry", f"SELECT time, device, co2_count, co2_min, co2_max, co2_sum, humidity_count, "
                                  f"humidity_max FROM {table} WHERE time >= '2000-01-01T00:00:00Z' ORDER BY 1, 2")


def test_rollups_equal_the_servers_own_aggregates_and_take_in_late_rows(stack, temporary_triggers):
    """Two days of readings (a humidity missing now and then) in a table of their own, rolled up by the plugin the
    stack provisions, through temporary triggers that run every 5 s: every hourly and daily row equals what the
    server computes from the raw rows; a late reading is marked by the write trigger and is in its hour and day
    after the next runs."""
    table, start = "rollup_check", (time.time_ns() // 86_400_000_000_000 - 3) * 86_400 * 10**9
    lines = [f"{table},device=d{i % 2} co2={400 + i % 97}.0" + ("" if i % 13 == 0 else f",humidity={i % 50}.5")
             + f" {start + i * 60 * 10**9}" for i in range(2 * 24 * 60)]
    response = requests.post(f"{stack.influxdb3_url}/api/v3/write_lp", headers=stack.influxdb3_headers,
                             params={"db": "telemetry", "precision": "nanosecond"}, data="\n".join(lines), timeout=60)
    assert response.status_code in (200, 204), response.text
    arguments = {"tables": table}
    temporary_triggers("it-rollups", "telemetry", "history/rollups", "every:5s", arguments)
    temporary_triggers("it-rollup-marks", "telemetry", "history/rollups", f"table:{table}", arguments)

    def settled(level: str, width: str) -> list[dict] | None:
        try:
            rows = _rollups(stack, f"{table}_{level}")
        except requests.HTTPError:
            return None  # the table does not exist yet
        return rows if rows == _aggregates_on_the_server(stack, table, width) else None

    wait_for("hourly rollups equal to the raw aggregates", lambda: settled("1h", "1 hour"), timeout=120)
    wait_for("daily rollups equal to the raw aggregates", lambda: settled("1d", "1 day"), timeout=120)

    late = f"{table},device=d1 co2=9999.0,humidity=99.5 {start + 5 * 3_600 * 10**9 + 1}"
    response = requests.post(f"{stack.influxdb3_url}/api/v3/write_lp", headers=stack.influxdb3_headers,
                             params={"db": "telemetry", "precision": "nanosecond"}, data=late, timeout=60)
    assert response.status_code in (200, 204), response.text
    def with_late(level: str, width: str) -> list[dict] | None:
        rows = settled(level, width)
        return rows if rows and any(row["co2_max"] == 9999.0 for row in rows) else None

    rows = wait_for("the late reading in its hour", lambda: with_late("1h", "1 hour"), timeout=180)
    assert sum(row["co2_count"] for row in rows) == 2 * 24 * 60 + 1
    wait_for("the late reading in its day", lambda: with_late("1d", "1 day"), timeout=180)
    logs = stack.sql("telemetry", "SELECT log_text FROM system.processing_engine_logs "
                                  "WHERE trigger_name IN ('it-rollups', 'it-rollup-marks') AND log_level = 'ERROR'")
    assert not logs, logs


def test_track_summaries_equal_the_fixes_and_take_in_a_late_fix(stack, temporary_triggers):
    """Four days of two birds' fixes (outliers, hidden fixes, fixes without a position, silent spells) in a table of
    their own, summarized by the rollups plugin with kind tracks through temporary triggers every 5 s: every hourly
    and daily row equals the summary computed in Python from the fixes; a late fix is in its hour and day after
    the next runs."""
    table, start = "track_check", (time.time_ns() // 86_400_000_000_000 - 6) * 86_400 * 10**9
    frame = trackdata.fixes(days=4, seed=8, start=start)

    def write(lines: list[str]) -> None:
        response = requests.post(f"{stack.influxdb3_url}/api/v3/write_lp", headers=stack.influxdb3_headers,
                                 params={"db": "telemetry", "precision": "nanosecond"}, data="\n".join(lines),
                                 timeout=60)
        assert response.status_code in (200, 204), response.text

    write(trackdata.lines(table, frame))
    arguments = {"tables": table, "kind": "tracks", "by": "species individual"}
    temporary_triggers("it-tracks", "telemetry", "history/rollups", "every:5s", arguments)
    temporary_triggers("it-track-marks", "telemetry", "history/rollups", f"table:{table}", arguments)

    def settled(fixes, level: str, width: int) -> list[dict] | None:
        try:
            rows = stack.sql("telemetry", f"SELECT * FROM {table}_{level} WHERE time >= '2000-01-01T00:00:00Z' "
                                          "ORDER BY time, individual")
        except requests.HTTPError:
            return None  # the table does not exist yet
        return rows if not trackdata.differences(rows, trackdata.expected(fixes, width)) else None

    wait_for("hourly track summaries equal to the fixes", lambda: settled(frame, "1h", trackdata.HOUR), timeout=180)
    wait_for("daily track summaries equal to the fixes", lambda: settled(frame, "1d", trackdata.DAY), timeout=180)

    late = frame[frame["individual"] == "Ada"].iloc[[10]].assign(time=lambda f: f["time"] + 1, lat=60.0, lon=10.0,
                                                                  outlier=False, visible=True)
    write(trackdata.lines(table, late))
    with_late = pd.concat([frame, late], ignore_index=True)
    wait_for("the late fix in its hour", lambda: settled(with_late, "1h", trackdata.HOUR), timeout=180)
    wait_for("the late fix in its day", lambda: settled(with_late, "1d", trackdata.DAY), timeout=180)
    logs = stack.sql("telemetry", "SELECT log_text FROM system.processing_engine_logs "
                                  "WHERE trigger_name IN ('it-tracks', 'it-track-marks') AND log_level = 'ERROR'")
    assert not logs, logs
