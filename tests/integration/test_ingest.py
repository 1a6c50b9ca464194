"""The ingest service in the running stack: each source loaded through the service's own command, read back from
both databases; the long-running service's own sensors and metrics; nothing written twice; clear failures.

Every test uses its own tag values (a fresh id), so it never depends on what the service loads by itself.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import time
import uuid
from pathlib import Path

import pytest

from tests.ingest.formats import movebank_csv, movebank_row
from tests.integration.conftest import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    return folder


def run_ingest(stack, *args: str, env: dict[str, str] | None = None):
    return stack.ingest(*args, env=env)


def flux_count(stack, bucket: str, predicate: str, field: str) -> int:
    query = (f'from(bucket: "{bucket}") |> range(start: 0) |> filter(fn: (r) => {predicate} and '
             f'r._field == "{field}") |> group() |> count()')
    return stack.flux_count(query)


def test_birds_from_a_movebank_export_land_in_both_databases_once(stack, data_dir):
    individual = f"it-{uuid.uuid4().hex[:8]}"
    rows = [movebank_row(index, individual=individual) for index in range(30)]
    rows[4].update({"visible": "false", "manually-marked-outlier": "true"})
    rows.append(movebank_row(30, individual=individual, **{"location-lat": "not a number"}))
    (data_dir / "birds.csv.gz").write_bytes(gzip.compress(movebank_csv(rows)))
    source = stack.ingest_file(data_dir / "birds.csv.gz")

    first = run_ingest(stack, "birds", source, "--no-progress")
    assert first.returncode == 0, first.stderr
    assert "read 31 rows, rejected 1" in first.stderr
    second = run_ingest(stack, "birds", source, "--no-progress")
    assert second.returncode == 0, second.stderr

    # history loaded from the past: into `history`, which no raw retention reaches (common/retention.py)
    predicate = f'r._measurement == "bird_fixes" and r.individual == "{individual}"'
    assert flux_count(stack, "history", predicate, "lat") == 30
    assert flux_count(stack, "history", predicate + ' and r._value == false', "visible") == 1
    [row] = stack.sql("history", f"SELECT count(*) AS n, sum(CASE WHEN outlier THEN 1 ELSE 0 END) AS outliers "
                                    f"FROM bird_fixes WHERE individual = '{individual}'")
    assert row == {"n": 30, "outliers": 1}
    [tags] = stack.sql("history", f"SELECT DISTINCT species, sensor_type, study FROM bird_fixes "
                                     f"WHERE individual = '{individual}'")
    assert tags["species"] == "Haematopus ostralegus" and tags["sensor_type"] == "gps"
    assert tags["study"].startswith("O_ASSEN - Eurasian oystercatchers")


def test_weather_and_a_sensor_replay_land_in_both_databases(stack, data_dir):
    place, device = f"it-{uuid.uuid4().hex[:8]}", f"it-{uuid.uuid4().hex[:8]}"
    now = int(time.time()) // 60 * 60
    doc = {"latitude": 52.99, "longitude": 6.56, "utc_offset_seconds": 0, "current_units": {"time": "unixtime"},
           "current": {"time": now - 120, "interval": 900, "temperature_2m": 7.5, "relative_humidity_2m": 81,
                       "pressure_msl": 1013.2, "wind_speed_10m": 3.4, "wind_direction_10m": 200,
                       "precipitation": 0.0, "cloud_cover": 40}}
    (data_dir / "weather.json").write_text(json.dumps(doc))
    stamps = [time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now - 600 + minute * 60)) for minute in range(10)]
    readings = "time,Temperature,CO2\n" + "".join(
        f"{stamp},{20 + minute / 10},{500 + minute}\n" for minute, stamp in enumerate(stamps))
    (data_dir / "room.csv").write_text(readings)

    weather = run_ingest(stack, "weather", "--response-file", stack.ingest_file(data_dir / "weather.json"),
                         "--location", place)
    assert weather.returncode == 0, weather.stderr
    replay = run_ingest(stack, "sensors", "--replay", stack.ingest_file(data_dir / "room.csv"), "--device", device,
                        "--no-progress")
    assert replay.returncode == 0, replay.stderr

    assert flux_count(stack, "telemetry", f'r._measurement == "weather" and r.location == "{place}"',
                      "temperature") == 1
    [row] = stack.sql("telemetry", f"SELECT temperature, humidity, provider FROM weather WHERE location = '{place}'")
    assert row == {"temperature": 7.5, "humidity": 81.0, "provider": "open-meteo"}
    assert flux_count(stack, "telemetry", f'r._measurement == "sensors" and r.device == "{device}"', "co2") == 10
    [row] = stack.sql("telemetry", f"SELECT count(*) AS n, max(co2) AS co2 FROM sensors WHERE device = '{device}'")
    assert row == {"n": 10, "co2": 509.0}

    export = run_ingest(stack, "export", "--from", "influxdb3", "--measurement", "sensors", "--range", "1d",
                        "--window", "1h", "--fn", "max")
    assert export.returncode == 0, export.stderr
    exported = list(csv.DictReader(io.StringIO(export.stdout)))
    assert any(line.get("device") == device and float(line["co2"]) == 509.0 for line in exported)


def test_the_service_runs_its_schedule_and_reports_its_health(stack):
    wait_for("the ingest service's own sensor readings and metrics", lambda: stack.sql(
        "telemetry", "SELECT count(*) AS n FROM sensors WHERE device = 'sensor-01' "
                     "AND time > now() - INTERVAL '10 minutes'")[0]["n"] and stack.sql(
        "monitoring", "SELECT count(*) AS n FROM ingest WHERE source = 'sensors'")[0]["n"])
    assert flux_count(stack, "telemetry", 'r._measurement == "sensors" and r.device == "sensor-01"', "co2") > 0
    assert flux_count(stack, "monitoring", 'r._measurement == "ingest" and r.source == "sensors"', "rows_written") > 0
    health = stack.ingest_health()
    assert health.returncode == 0, health.stderr


def test_a_wrong_token_stops_with_a_clear_message(stack):
    result = run_ingest(stack, "sensors", "--ticks", "1", env={"INFLUXDB2_TOKEN": "not-the-token",
                                                                      "INFLUXDB2_TOKEN_FILE": ""})
    assert result.returncode == 3
    assert "401" in result.stderr and "INFLUXDB2_TOKEN" in result.stderr and "Traceback" not in result.stderr
