"""`python -m ingest ...` end to end against loopback databases: what a user runs and what they see."""

from __future__ import annotations

import gzip
import io
import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ingest.__main__ import main
from ingest.state import Heartbeat
from tests.ingest.formats import movebank_csv, movebank_row
from tests.support.lineprotocol import parse_lines
from tests.support.openapi import validate_influxdb3_request
from tests.support.recorder import RecordingServer, Reply


def bird_file(write_file, good: int = 40):
    rows = [movebank_row(index, individual=str(5515851 + index % 2)) for index in range(good)]
    rows.insert(5, movebank_row(good, **{"location-lat": "north"}))
    rows.insert(9, movebank_row(good + 1, timestamp="yesterday"))
    return write_file("birds.csv", movebank_csv(rows))


def test_birds_reach_both_databases_bad_rows_are_quarantined_and_metrics_recorded(fake_influx, ingest_env,
                                                                                 write_file, tmp_path, capsys):
    fake, server = fake_influx
    path = bird_file(write_file)
    assert main(["birds", str(path), "--no-progress"]) == 0

    telemetry2 = fake.keys("influxdb2", "bird_fixes")
    assert len(telemetry2) == 40 and sorted(telemetry2) == sorted(fake.keys("influxdb3", "bird_fixes"))
    assert {"monitoring"} <= fake.buckets and {"monitoring"} <= fake.databases
    for request in server.matching(path="/api/v3/configure/database") + server.matching(path="/api/v3/write_lp"):
        validate_influxdb3_request(request)
    rejects = list((tmp_path / "state" / "rejects").glob("birds-*.jsonl"))
    entries = [json.loads(line) for line in rejects[0].read_text().splitlines()]
    assert [(entry["line"], entry["reason"]) for entry in entries] == [
        (7, "location-lat 'north' is not a number"), (11, "timestamp 'yesterday' is not a date and time")]
    assert entries[0]["record"]["location-lat"] == "north" and entries[0]["input"] == str(path)

    metrics = [point for point in fake.landed["influxdb2"] if point.measurement == "ingest"]
    assert sorted(point.tags["sink"] for point in metrics) == ["influxdb2", "influxdb3"]  # both runs' health
    metric = next(point for point in metrics if point.tags["sink"] == "influxdb2")
    assert metric.tags == {"source": "birds", "sink": "influxdb2"}
    assert (metric.fields["rows_read"], metric.fields["rows_rejected"], metric.fields["rows_written"]) == (42, 2, 40)
    err = capsys.readouterr().err
    assert "read 42 rows, rejected 2" in err and "Traceback" not in err


def test_birds_from_a_url_plain_or_gzip(fake_influx, ingest_env):
    fake, _ = fake_influx
    body = gzip.compress(movebank_csv([movebank_row(index) for index in range(7)]))
    with RecordingServer(lambda request: Reply(200, body, {"Content-Type": "application/gzip"})) as files:
        assert main(["birds", files.url + "/exports/O_ASSEN-gps-2018.csv.gz", "--no-progress"]) == 0
    assert len(fake.keys("influxdb3", "bird_fixes")) == 7


def test_the_default_data_set_without_network_is_a_clear_error(ingest_env, monkeypatch, capsys):
    import ingest.jobs

    closed = RecordingServer().start()
    url = closed.url
    closed.stop()
    monkeypatch.setattr(ingest.jobs, "DEFAULT_URLS", (f"{url}/inbo/movepub/O_ASSEN-gps-2018.csv.gz",))
    monkeypatch.setenv("INGEST_RETRY_ATTEMPTS", "1")
    assert main(["birds", "--lp-out", "-"]) == 2
    err = capsys.readouterr().err
    assert "connection refused" in err and "With no network, load a local Movebank CSV" in err
    assert "Traceback" not in err


def test_logs_can_be_json_with_the_counts_as_fields(fake_influx, ingest_env, write_file, monkeypatch, capsys):
    monkeypatch.setenv("LOG_FORMAT", "json")
    assert main(["birds", str(bird_file(write_file)), "--no-progress"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    summary = next(record for record in records if record.get("rows_read") == 42)
    assert summary["service"] == "ingest" and summary["rows_rejected"] == 2 and summary["influxdb2_written"] == 40


def test_loading_the_same_file_again_writes_nothing_influxdb3_already_holds(fake_influx, ingest_env, write_file):
    """InfluxDB 3 Core stores every write in new Parquet files and never compacts: a reload must not add any.
    InfluxDB 2 gets the lines again (its engine rewrites points in place), and a changed row is written."""
    fake, _ = fake_influx
    path = bird_file(write_file)
    assert main(["birds", str(path), "--no-progress"]) == 0
    first = fake.keys("influxdb3", "bird_fixes")
    assert len(first) == 40 and len(set(first)) == len(first)
    fake.v3.engine.snapshot()
    files = len(fake.v3.engine.parquet_files("history", "bird_fixes"))  # INGEST_HISTORY_BUCKET
    assert files == 28  # 40 fixes 7 minutes apart: 28 ten-minute windows
    assert main(["birds", str(path), "--no-progress"]) == 0
    fake.v3.engine.snapshot()
    assert fake.keys("influxdb3", "bird_fixes") == first, "nothing written to InfluxDB 3 the second time"
    assert len(fake.v3.engine.parquet_files("history", "bird_fixes")) == files
    assert len(fake.keys("influxdb2", "bird_fixes")) == 80

    text = path.read_text().replace("53.0082323", "53.1082323", 1)  # one corrected latitude
    assert text != path.read_text()
    path.write_text(text)
    assert main(["birds", str(path), "--no-progress"]) == 0
    assert len(fake.keys("influxdb3", "bird_fixes")) == 41


def test_a_reload_spanning_more_files_than_the_limit_is_read_back_in_parts(fake_influx, ingest_env, tmp_path,
                                                                         caplog):
    """What a chunk's rows span (here 210 windows, one Parquet file each) may be more files than Core's
    `--query-file-limit`: the read-back is split until Core answers, instead of writing the chunk whole again."""
    fake, _ = fake_influx
    path = tmp_path / "study.csv"
    path.write_bytes(movebank_csv([movebank_row(fix) for fix in range(300)]))  # a fix every 7 minutes
    assert main(["birds", str(path), "--no-progress"]) == 0
    first = fake.keys("influxdb3", "bird_fixes")
    fake.v3.engine.snapshot()
    files = len(fake.v3.engine.parquet_files("history", "bird_fixes"))  # INGEST_HISTORY_BUCKET
    fake.v3.engine.query_file_limit = 50
    caplog.set_level("INFO")
    assert main(["birds", str(path), "--no-progress"]) == 0
    fake.v3.engine.snapshot()
    assert files == 210 and len(fake.v3.engine.parquet_files("history", "bird_fixes")) == files
    assert "could not read what InfluxDB 3 already holds" not in caplog.text
    assert len(first) == 300 and fake.keys("influxdb3", "bird_fixes") == first, "nothing written again"


def test_lp_out_writes_the_line_protocol_and_sends_nothing(fake_influx, ingest_env, write_file, tmp_path,
                                                           monkeypatch):
    _, server = fake_influx
    monkeypatch.delenv("INFLUXDB2_TOKEN")
    monkeypatch.delenv("INFLUXDB3_TOKEN")
    out = tmp_path / "birds.lp"
    assert main(["birds", str(bird_file(write_file)), "--lp-out", str(out), "--no-progress"]) == 0
    points = parse_lines(out.read_text())
    assert len(points) == 40 and {point.measurement for point in points} == {"bird_fixes"}
    assert server.requests == []


def test_wrong_token_stops_with_a_clear_message_not_a_traceback(fake_influx, ingest_env, write_file, monkeypatch,
                                                                capsys):
    monkeypatch.setenv("INFLUXDB2_TOKEN", "wrong-token")
    assert main(["birds", str(bird_file(write_file)), "--no-progress"]) == 3
    err = capsys.readouterr().err
    assert "401" in err and "INFLUXDB2_TOKEN" in err and "Traceback" not in err and "wrong-token" not in err


def test_unknown_bucket_stops_with_a_clear_message(fake_influx, ingest_env, write_file, capsys):
    assert main(["birds", str(bird_file(write_file)), "--bucket", "nope", "--skip-buckets", "--no-progress"]) == 3
    err = capsys.readouterr().err
    assert 'bucket "nope" not found' in err and "python -m ingest buckets" in err and "Traceback" not in err


@pytest.mark.parametrize("variable,value,message", [
    ("INGEST_BATCH_BYTES", "lots", "INGEST_BATCH_BYTES: 'lots' is not a size"),
    ("WEATHER_LOCATIONS", "Assen", "WEATHER_LOCATIONS: 'Assen' is not NAME=LATITUDE,LONGITUDE"),
    ("INGEST_BUCKET", "my.bucket", "INGEST_BUCKET: 'my.bucket' must be an ASCII letter or digit"),
    ("INFLUXDB3_URL", "influxdb3:8181", "INFLUXDB3_URL"),
])
def test_bad_configuration_is_reported_by_variable(ingest_env, monkeypatch, capsys, variable, value, message):
    monkeypatch.setenv(variable, value)
    assert main(["sensors", "--ticks", "1"]) == 2
    assert message in capsys.readouterr().err


def test_nowhere_to_write_is_a_configuration_error(ingest_env, capsys):
    assert main(["sensors", "--ticks", "1", "--no-influxdb2", "--no-influxdb3"]) == 2
    assert "there is nowhere to write" in capsys.readouterr().err


def test_a_missing_token_is_named(ingest_env, monkeypatch, capsys):
    monkeypatch.delenv("INFLUXDB3_TOKEN")
    assert main(["sensors", "--ticks", "1"]) == 2
    assert "INFLUXDB3_TOKEN: is required but not set (set INFLUXDB3_TOKEN or INFLUXDB3_TOKEN_FILE)" in \
        capsys.readouterr().err


def test_database_down_spools_then_replay_delivers_everything(fake_influx, ingest_env, write_file, tmp_path, capsys):
    fake, _ = fake_influx
    fake.outage.set()
    path = bird_file(write_file)
    assert main(["birds", str(path), "--skip-buckets", "--no-progress"]) == 75
    assert "wait in the spool" in capsys.readouterr().err
    assert len(list((tmp_path / "state" / "spool" / "influxdb2").glob("*.spool"))) >= 1
    assert fake.landed == {"influxdb2": [], "influxdb3": []}
    fake.outage.clear()
    assert main(["replay"]) == 0
    assert len(fake.keys("influxdb2", "bird_fixes")) == len(fake.keys("influxdb3", "bird_fixes")) == 40
    assert not list((tmp_path / "state" / "spool").rglob("*.spool"))


def test_weather_from_open_meteo_and_from_a_saved_response(fake_influx, ingest_env, monkeypatch, tmp_path):
    fake, _ = fake_influx
    doc = {"latitude": 52.99, "longitude": 6.56, "utc_offset_seconds": 0, "current_units": {"time": "unixtime"},
           "current": {"time": 1704067200, "interval": 900, "temperature_2m": 4.2, "relative_humidity_2m": 93,
                       "pressure_msl": 1001.5, "wind_speed_10m": 6.1, "wind_direction_10m": 210,
                       "precipitation": 0.4, "cloud_cover": 100}}
    with RecordingServer(lambda request: Reply(200, doc)) as meteo:
        monkeypatch.setenv("OPEN_METEO_URL", meteo.url + "/v1/forecast")
        monkeypatch.setenv("WEATHER_LOCATIONS", "Assen=52.99,6.56;Groningen=53.22,6.57")
        assert main(["weather"]) == 0
        assert [request.param("latitude") for request in meteo.requests] == ["52.99", "53.22"]
    weather = [point for point in fake.landed["influxdb3"] if point.measurement == "weather"]
    assert sorted(point.tags["location"] for point in weather) == ["Assen", "Groningen"]
    saved = tmp_path / "owm.json"
    saved.write_text(json.dumps({"main": {"temp": 1.5, "humidity": 70, "pressure": 1020}, "wind": {"speed": 3},
                                 "dt": 1704070800, "name": "Assen"}))
    assert main(["weather", "--response-file", str(saved)]) == 0
    latest = [point for point in fake.landed["influxdb2"] if point.measurement == "weather"][-1]
    assert latest.tags == {"location": "Assen", "provider": "openweathermap"} and latest.fields["temperature"] == 1.5


def test_sensors_ticks_and_backfill(fake_influx, ingest_env, monkeypatch):
    fake, _ = fake_influx
    monkeypatch.setenv("SENSORS_DEVICES", "3")
    monkeypatch.setenv("SENSORS_INTERVAL", "60s")
    assert main(["sensors", "--ticks", "1"]) == 0
    assert len(fake.keys("influxdb2", "sensors")) == 3
    assert main(["sensors", "--backfill", "1h", "--no-progress"]) == 0
    # The backfill's last minute is the tick's: the same seeded readings, already in InfluxDB 3, are not rewritten.
    assert len(fake.keys("influxdb3", "sensors")) == 3 + 3 * 60 - 3
    assert len(fake.keys("influxdb2", "sensors")) == 3 + 3 * 60


def test_export_from_influxdb3_and_influxdb2(fake_influx, ingest_env, tmp_path):
    _, server = fake_influx
    result = pa.table({"time": pa.array([1704067200000000000, 1704070800000000000], pa.timestamp("ns")),
                       "location": ["Assen", "Assen"], "temperature": [4.5, 4.25]})
    sink = io.BytesIO()
    pq.write_table(result, sink)
    annotated = ("#datatype,string,long,dateTime:RFC3339,string,double\r\n#group,false,false,false,true,false\r\n"
                 "#default,_result,,,,\r\n,result,table,_time,location,temperature\r\n"
                 ",,0,2024-01-01T00:00:00Z,Assen,4.5\r\n,,0,2024-01-01T01:00:00Z,Assen,4.25\r\n\r\n")
    base = server.responder

    def respond(request):
        if request.path == "/api/v3/query_sql":
            if request.json()["format"] == "json":
                return Reply(200, [{"column_name": "location", "data_type": "Dictionary(Int32, Utf8)"},
                                   {"column_name": "temperature", "data_type": "Float64"},
                                   {"column_name": "time", "data_type": "Timestamp(Nanosecond, None)"}])
            return Reply(200, sink.getvalue(), {"Content-Type": "application/vnd.apache.parquet"})
        if request.path == "/api/v2/query":
            return Reply(200, annotated, {"Content-Type": "text/csv; charset=utf-8"})
        return base(request)

    server.responder = respond
    out3, out2 = tmp_path / "v3.csv", tmp_path / "v2.csv"
    assert main(["export", "--measurement", "weather", "--range", "30d", "--window", "1h", "--out", str(out3)]) == 0
    assert main(["export", "--from", "influxdb2", "--measurement", "weather", "--range", "2d", "--window", "30m",
                 "--fn", "max", "--out", str(out2)]) == 0
    for out in (out3, out2):
        frame = pd.read_csv(out)
        assert list(frame.columns) == ["time", "location", "temperature"]
        assert frame["temperature"].tolist() == [4.5, 4.25]
    [schema_query, data_query] = server.matching(path="/api/v3/query_sql")
    for request in (schema_query, data_query):
        validate_influxdb3_request(request)
    sql = data_query.json()["q"]
    assert "date_bin(INTERVAL '3600 seconds', time)" in sql and 'avg("temperature")' in sql
    assert "now() - INTERVAL '2592000 seconds'" in sql and 'GROUP BY 1, "location"' in sql
    flux = server.matching(path="/api/v2/query")[0].json()["query"]
    assert "range(start: -2d)" in flux and "aggregateWindow(every: 30m, fn: max" in flux
    assert 'r._measurement == "weather"' in flux


@pytest.mark.parametrize("args,message", [(["--range", "30x"], "--range: '30x' is not a duration"),
                                          (["--window", "2d", "--range", "1d"], "longer than the range")])
def test_export_windows_are_validated(ingest_env, capsys, args, message):
    assert main(["export", "--measurement", "weather", *args]) == 2
    assert message in capsys.readouterr().err


def test_health_follows_the_heartbeat(ingest_env, tmp_path):
    assert main(["health"]) == 1
    Heartbeat(tmp_path / "state" / "heartbeat").beat()
    assert main(["health"]) == 0
    assert main(["health", "--max-age", "-1"]) == 1


def test_schema_is_printed_for_dashboards(capsys):
    assert main(["schema"]) == 0
    measurements = {item["name"]: item for item in json.loads(capsys.readouterr().out)}
    assert set(measurements) == {"bird_fixes", "weather", "sensors", "ingest", "ingest_steps"}
    assert measurements["weather"]["database"] == "telemetry" and measurements["ingest"]["database"] == "monitoring"


def test_a_replay_older_than_the_live_buckets_retention_is_written_and_said(fake_influx, ingest_env, write_file,
                                                                            capsys):
    """telemetry keeps raw rows RAW_RETENTION (ingest/buckets.yaml `retention: raw`): Core would leave 2015's rows
    out of every query, so the load says so and names the bucket history belongs in; a shifted replay is quiet."""
    fake, _ = fake_influx
    csv = "Timestamp,Temperature\n2015-02-04 17:51:00,23.18\n2015-02-04 17:52:00,23.15\n"
    path = write_file("room_a.csv", csv.encode())
    assert main(["sensors", "--replay", str(path), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "2 rows are older than the retention of telemetry (90d)" in err and "into history" in err
    assert len([p for p in fake.landed3 if p.measurement == "sensors"]) == 2, "written all the same: nothing dropped"
    assert main(["sensors", "--replay", str(path), "--shift-to-now", "--no-progress"]) == 0
    assert "older than the retention" not in capsys.readouterr().err
