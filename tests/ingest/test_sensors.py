"""The simulated fleet (deterministic, with daily rhythms) and the CSV replay."""

from __future__ import annotations

import gzip
import time

import numpy as np
import pytest

from ingest.config import IngestConfig
from ingest.csvreader import CsvFile
from ingest.jobs import Jobs
from ingest.outputs import Outputs
from ingest.schema import SENSORS
from ingest.sources import SourceError
from ingest.sources.sensors import Fleet, Replay
from ingest.state import Cursors
from tests.support.lineprotocol import parse_lines

NS = 10**9
MONDAY = 1_704_067_200 * NS  # 2024-01-01 00:00 UTC, a Monday
DAY = 86_400 * NS


def test_same_seed_same_readings_for_the_same_instants_whatever_the_window():
    fleet = Fleet(5, 7, [("office", 1.0), ("lab", -5.0)])
    whole = fleet.readings(MONDAY, MONDAY + 3_600 * NS, 10).to_pylist()
    part = Fleet(5, 7, [("office", 1.0), ("lab", -5.0)]).readings(MONDAY + 600 * NS, MONDAY + 900 * NS, 10)
    assert part.to_pylist() == [row for row in whole if MONDAY + 600 * NS <= row["time"] < MONDAY + 900 * NS]
    other = Fleet(5, 8, [("office", 1.0)]).readings(MONDAY, MONDAY + 3_600 * NS, 10).to_pylist()
    assert [row["temperature"] for row in other] != [row["temperature"] for row in whole]


def test_readings_follow_a_day_and_stay_physical():
    frame = Fleet(4, 1, [("office", 0.0)]).readings(MONDAY, MONDAY + 7 * DAY, 300).to_pandas()
    hour = (frame["time"] // NS // 3600) % 24
    weekday = (frame["time"] // DAY + 3) % 7 < 5  # day 0 of the epoch was a Thursday
    night, noon = frame[hour.isin([1, 2, 3])], frame[hour.isin([12, 13]) & weekday]
    assert noon["light"].mean() > 10 * max(night["light"].mean(), 1.0)
    assert noon["co2"].mean() > night["co2"].mean() + 150
    assert noon["motion"].mean() > night["motion"].mean() + 0.2
    assert noon["temperature"].mean() > night["temperature"].mean()
    weekend_noon = frame[hour.isin([12, 13]) & ~weekday]
    assert weekend_noon["co2"].mean() < noon["co2"].mean()
    assert frame["temperature"].between(10, 35).all() and frame["humidity"].between(5, 99).all()
    assert set(frame["motion"].unique()) <= {0.0, 1.0} and set(frame["smoke"].unique()) <= {0.0, 1.0}
    assert frame["battery"].between(0, 100).all() and frame["co"].ge(0).all() and frame["light"].ge(0).all()
    assert set(frame.columns) == {"time", *SENSORS.tags, *SENSORS.field_names}


def test_readings_are_aligned_to_the_interval_and_encode_to_the_schema():
    fleet = Fleet(3, 42)
    chunks = list(fleet.chunks(MONDAY + 5 * NS, MONDAY + 65 * NS, 10, rows_per_chunk=6))
    points = [point for chunk in chunks for point in parse_lines(chunk.encoder.encode(chunk.table).text())]
    assert len(chunks) == 3 and len(points) == 18
    assert sorted({point.timestamp for point in points}) == [MONDAY + s * NS for s in (10, 20, 30, 40, 50, 60)]
    assert {point.tags["device"] for point in points} == {"sensor-01", "sensor-02", "sensor-03"}
    assert all(set(point.fields) == set(SENSORS.field_names) for point in points)
    assert all(kind == "float" for point in points for kind in point.field_types.values())


class Capture:
    name = "capture"

    def __init__(self):
        self.lines: list[str] = []

    def send(self, payload: bytes, database: str) -> None:
        if database == "telemetry":
            self.lines += gzip.decompress(payload).decode().splitlines()

    def close(self) -> None:
        pass


def jobs_with_capture(tmp_path, **env) -> tuple[Jobs, Capture]:
    config = IngestConfig.from_env({"INGEST_STATE_DIR": str(tmp_path), "SENSORS_DEVICES": "2",
                                    "SENSORS_INTERVAL": "10s", "SENSORS_CATCHUP": "1m", **env},
                                   need_influxdb2=False, need_influxdb3=False)
    capture = Capture()
    return Jobs(config, Outputs(config, "test", transports=[capture]), bar=False), capture


def test_ticks_fill_the_gap_since_the_last_run_but_no_further_than_the_catch_up_window(tmp_path):
    jobs, capture = jobs_with_capture(tmp_path)
    cursors = Cursors(tmp_path / "cursors.json")
    jobs.sensors_tick(cursors, MONDAY + 3 * NS)
    assert len(capture.lines) == 2  # the current tick, 2 devices
    jobs.sensors_tick(cursors, MONDAY + 35 * NS)
    assert len(capture.lines) == 2 + 3 * 2  # ticks 10, 20, 30
    jobs.sensors_tick(Cursors(tmp_path / "cursors.json"), MONDAY + 35 * NS)
    assert len(capture.lines) == 8  # nothing new due, also after a restart
    jobs.sensors_tick(cursors, MONDAY + 3_600 * NS)
    stamps = sorted({int(line.rsplit(" ", 1)[1]) for line in capture.lines[8:]})
    assert stamps[0] == MONDAY + 3_540 * NS and stamps[-1] == MONDAY + 3_600 * NS  # one minute of catch-up


def test_replay_turns_numeric_columns_into_fields_and_quarantines_bad_rows(write_file, tmp_path):
    csv = ("Timestamp,Temperature,HumidityRatio,Status,CO2\n"
           "2015-02-04 17:51:00,23.18,0.0047,ok,721.25\n"
           "2015-02-04 17:52:00,23.15,0.0047,ok,\n"
           "not a time,23.1,0.0046,ok,714\n"
           "2015-02-04 17:54:00,warm,0.0046,ok,713\n"
           "2015-02-04 17:55:00,23.1,0.0046\n")
    path = write_file("room_a.csv", csv.encode())
    replay = Replay(CsvFile(path), location="lab", timezone="Europe/Amsterdam")
    chunks = list(replay.chunks())
    points = [p for chunk in chunks for p in parse_lines(chunk.encoder.encode(chunk.table).text())]
    rejects = [(line, reason) for chunk in chunks for line, reason, _ in chunk.rejects]
    assert [(p.tags, p.timestamp) for p in points] == [
        ({"device": "room_a", "location": "lab"}, 1423068660 * NS), ({"device": "room_a", "location": "lab"},
                                                                     1423068720 * NS)]
    assert points[0].fields == {"temperature": 23.18, "humidity_ratio": 0.0047, "co2": 721.25}
    assert "co2" not in points[1].fields
    assert rejects == [(4, "time 'not a time' is not a date and time"), (5, "Temperature 'warm' is not a number"),
                       (6, "3 fields where the header has 5")]


def test_replay_shift_to_now_moves_the_last_row_to_now(write_file, tmp_path):
    path = write_file("plant.csv", b"DATE_TIME,AMBIENT_TEMPERATURE\n2020-05-15 00:00:00,25.1\n"
                                   b"2020-05-15 00:15:00,24.9\n")
    jobs, capture = jobs_with_capture(tmp_path)
    before = time.time_ns()
    jobs.sensors_replay(path, shift_to_now=True)
    stamps = [int(line.rsplit(" ", 1)[1]) for line in capture.lines]
    assert stamps[1] - stamps[0] == 900 * NS and before <= stamps[1] <= time.time_ns()


def test_replay_needs_a_time_column(write_file):
    with pytest.raises(SourceError, match="no time column"):
        Replay(CsvFile(write_file("x.csv", b"a,b\n1,2\n")))
    with pytest.raises(SourceError, match="no column 'when'"):
        Replay(CsvFile(write_file("y.csv", b"a,b\n1,2\n")), time_column="when")


def test_the_shared_occupancy_set_replays_with_its_unnamed_index_column():
    from tests.support.paths import shared_file

    replay = Replay(CsvFile(shared_file("iot/occupancy_datatest2.csv")))
    chunks = list(replay.chunks())
    read = sum(chunk.rows_read for chunk in chunks)
    encoded = [chunk.encoder.encode(chunk.table) for chunk in chunks]
    assert read == 9_752 and sum(item.rows for item in encoded) == read
    first = parse_lines(encoded[0].text())[0]
    assert set(first.fields) == {"temperature", "humidity", "light", "co2", "humidity_ratio", "occupancy"}
    assert np.isclose(first.fields["co2"], 1029.66666666667)
