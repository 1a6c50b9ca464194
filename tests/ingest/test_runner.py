"""`python -m ingest run`: the schedule, the cursors across restarts, metrics and the heartbeat."""

from __future__ import annotations

import gzip
import itertools
import threading

import pytest

from ingest.config import IngestConfig
from ingest.download import Http
from ingest.jobs import Jobs
from ingest.outputs import Outputs
from ingest.runner import Runner
from ingest.state import Cursors, Heartbeat
from tests.ingest.formats import movebank_csv, movebank_row
from tests.support.lineprotocol import parse_lines
from tests.support.recorder import RecordingServer, Reply


class Capture:
    name = "capture"

    def __init__(self):
        self.points: dict[str, list] = {"telemetry": [], "monitoring": [], "history": []}

    def send(self, payload: bytes, database: str) -> None:
        self.points[database] += parse_lines(gzip.decompress(payload).decode())

    def close(self) -> None:
        pass


def open_meteo(request):
    return Reply(200, {"utc_offset_seconds": 0, "current": {"time": 1704067200, "temperature_2m": 3.0}})


def run_for(seconds: float, config: IngestConfig, capture: Capture) -> Runner:
    jobs = Jobs(config, Outputs(config, "test", transports=[capture]))
    state = config.state_dir
    runner = Runner(jobs, cursors=Cursors(state / "cursors.json"), heartbeat=Heartbeat(state / "heartbeat"))
    timer = threading.Timer(seconds, runner.stop.set)
    timer.start()
    try:
        runner.run()
    finally:
        timer.cancel()
    return runner


@pytest.mark.slow
def test_run_schedules_every_job_and_remembers_what_was_loaded(tmp_path, write_file):
    birds = write_file("birds.csv", movebank_csv([movebank_row(index) for index in range(12)]))
    with RecordingServer(open_meteo) as meteo:
        config = IngestConfig.from_env({
            "INGEST_STATE_DIR": str(tmp_path / "state"), "MOVEBANK_SOURCES": str(birds),
            "OPEN_METEO_URL": meteo.url, "WEATHER_LOCATIONS": "Assen=52.99,6.56", "WEATHER_INTERVAL": "1h",
            "SENSORS_INTERVAL": "1s", "SENSORS_DEVICES": "2", "INGEST_METRICS_INTERVAL": "1s",
            "INGEST_REPLAY_INTERVAL": "1s"}, need_influxdb2=False, need_influxdb3=False)
        capture = Capture()
        run_for(2.6, config, capture)
        assert len(meteo.requests) == 1
        run_for(1.2, config, capture)  # a restart: the birds are not loaded again
        assert len(meteo.requests) == 2

    by_measurement: dict[str, list] = {}
    for point in capture.points["telemetry"]:
        by_measurement.setdefault(point.measurement, []).append(point)
    # the bird study is history loaded from the past: into `history`, which no raw retention reaches
    assert "bird_fixes" not in by_measurement and len(capture.points["history"]) == 12
    assert len(by_measurement["weather"]) == 2
    sensor_ticks = sorted({point.timestamp for point in by_measurement["sensors"]})
    assert len(sensor_ticks) >= 3 and len(by_measurement["sensors"]) == 2 * len(sensor_ticks)
    assert len(sensor_ticks) == len(set(sensor_ticks))
    gaps = {b - a for a, b in itertools.pairwise(sensor_ticks)}
    assert gaps == {1_000_000_000}  # the restart filled its gap second by second
    sources = {point.tags["source"] for point in capture.points["monitoring"]}
    assert {"birds", "weather", "sensors"} <= sources
    assert Cursors(tmp_path / "state" / "cursors.json").get("birds.loaded") == [str(birds)]
    age = Heartbeat(tmp_path / "state" / "heartbeat").age()
    assert age is not None and age < 5


def test_a_failing_source_is_logged_and_the_loop_goes_on(tmp_path, caplog):
    config = IngestConfig.from_env({
        "INGEST_STATE_DIR": str(tmp_path), "MOVEBANK_SOURCES": str(tmp_path / "missing.csv"),
        "INGEST_RUN_JOBS": "birds,sensors", "SENSORS_INTERVAL": "1s", "SENSORS_DEVICES": "1"},
        need_influxdb2=False, need_influxdb3=False)
    capture = Capture()
    jobs = Jobs(config, Outputs(config, "test", transports=[capture]), Http())
    runner = Runner(jobs, cursors=Cursors(tmp_path / "cursors.json"), heartbeat=Heartbeat(tmp_path / "beat"))
    threading.Timer(0.5, runner.stop.set).start()
    runner.run()
    assert "missing.csv: no such file" in caplog.text
    assert capture.points["telemetry"]  # sensors still ran
    assert Cursors(tmp_path / "cursors.json").get("birds.loaded") is None


@pytest.mark.slow
def test_a_database_outage_in_run_mode_is_spooled_and_replayed_without_gaps(tmp_path):
    from common.retry import RetryableError

    class Flaky(Capture):
        def __init__(self):
            super().__init__()
            self.down = threading.Event()
            self.down.set()

        def send(self, payload: bytes, database: str) -> None:
            if self.down.is_set():
                raise RetryableError("connection refused")
            super().send(payload, database)

    config = IngestConfig.from_env({
        "INGEST_STATE_DIR": str(tmp_path), "INGEST_RUN_JOBS": "sensors", "SENSORS_INTERVAL": "1s",
        "SENSORS_DEVICES": "1", "INGEST_REPLAY_INTERVAL": "1s", "INGEST_RETRY_ATTEMPTS": "1"},
        need_influxdb2=False, need_influxdb3=False)
    flaky = Flaky()
    threading.Timer(1.5, flaky.down.clear).start()
    runner = run_for(3.5, config, flaky)
    ticks = sorted(point.timestamp for point in flaky.points["telemetry"])
    assert len(ticks) >= 3 and {b - a for a, b in itertools.pairwise(ticks)} == {1_000_000_000}
    assert ticks[0] <= (runner.clock() - 2.5) * 1e9  # the ones from the outage arrived too
    sink = runner.outputs.sinks[0]
    assert sink.counters.spooled > 0 and sink.counters.replayed == sink.counters.spooled and len(sink.spool) == 0


def test_live_readings_keep_coming_while_a_history_load_waits_for_its_steps(tmp_path, fake_influx, write_file):
    """The bird study in steps of 30 windows (ingest/pacing.py) against the stand-in, whose engine snapshots at
    each of the run loop's turns as Core's next snapshot would: the sensors job runs between the steps, so the
    readings are not held up until the study is in, and a stop ends the load at its next step."""
    fake, server = fake_influx
    birds = write_file("birds.csv", movebank_csv([movebank_row(index) for index in range(200)]))  # 140 windows
    config = IngestConfig.from_env({
        "INFLUXDB3_URL": server.url, "INFLUXDB3_TOKEN": fake.token3, "INGEST_INFLUXDB2": "false",
        "INGEST_STATE_DIR": str(tmp_path / "state"), "MOVEBANK_SOURCES": str(birds),
        "INGEST_RUN_JOBS": "birds,sensors", "SENSORS_INTERVAL": "1s", "SENSORS_DEVICES": "1",
        "INGEST_WINDOWS_PER_SNAPSHOT": "30"}, need_influxdb2=False)
    outputs = Outputs(config, "test")
    outputs.ensure_buckets()
    jobs = Jobs(config, outputs, Http())
    runner = Runner(jobs, cursors=Cursors(tmp_path / "cursors.json"), heartbeat=Heartbeat(tmp_path / "beat"))
    turn = outputs.between_steps
    assert turn is not None

    def turn_then_snapshot() -> None:
        turn()
        fake.v3.engine.snapshot()

    outputs.between_steps = turn_then_snapshot
    threading.Timer(6.0, runner.stop.set).start()
    runner.run()
    order = [point.measurement for point in fake.landed["influxdb3"] if point.measurement in ("bird_fixes", "sensors")]
    last_fix = len(order) - order[::-1].index("bird_fixes")
    assert order.count("bird_fixes") == 200 and "sensors" in order[order.index("bird_fixes"):last_fix]
    runs = {point.tags["source"]: point.fields for point in fake.landed["influxdb3"]
            if point.measurement == "ingest" and point.tags["sink"] == "influxdb3"}
    assert runs["birds"]["rows_written"] == 200  # the sensor ticks run meanwhile count as theirs, not the load's
    assert runs["sensors"]["rows_written"] == order.count("sensors")
    assert Cursors(tmp_path / "cursors.json").get("birds.loaded") == [str(birds)]


def test_a_stop_while_a_history_load_waits_ends_the_load_and_keeps_it_for_the_next_start(tmp_path, fake_influx,
                                                                                        write_file, caplog):
    fake, server = fake_influx
    birds = write_file("birds.csv", movebank_csv([movebank_row(index) for index in range(200)]))
    config = IngestConfig.from_env({
        "INFLUXDB3_URL": server.url, "INFLUXDB3_TOKEN": fake.token3, "INGEST_INFLUXDB2": "false",
        "INGEST_STATE_DIR": str(tmp_path / "state"), "MOVEBANK_SOURCES": str(birds), "INGEST_RUN_JOBS": "birds",
        "INGEST_WINDOWS_PER_SNAPSHOT": "30"}, need_influxdb2=False)
    outputs = Outputs(config, "test")
    outputs.ensure_buckets()
    runner = Runner(Jobs(config, outputs, Http()), cursors=Cursors(tmp_path / "cursors.json"),
                    heartbeat=Heartbeat(tmp_path / "beat"))
    threading.Timer(1.5, runner.stop.set).start()  # no snapshot ever comes: the first step waits until the stop
    runner.run()
    fixes = [point for point in fake.landed["influxdb3"] if point.measurement == "bird_fixes"]
    assert 0 < len(fixes) < 200 and "stopping: the history load ends here" in caplog.text
    assert Cursors(tmp_path / "cursors.json").get("birds.loaded") is None
