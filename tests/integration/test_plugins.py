"""The plugins in the running stack: provisioned triggers exist and fire, tables fill, endpoints answer.

The series is loaded from a generated CSV the InfluxDB 3 server can read (copied into its container under
Docker; the provisioned loader's default URL needs internet access), by a temporary trigger of the same plugin;
a temporary every:5s trigger runs the forecast so the test does not wait for the daily schedule. Temporary
triggers are deleted after.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests
import yaml

from plugins.stacklib.tables import HOST_TABLES
from tests.engine import PLUGIN_DIR
from tests.integration.conftest import wait_for
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
