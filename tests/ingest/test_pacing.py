"""History loads in steps InfluxDB 3 persists one at a time (ingest/pacing.py): the step arithmetic against a
scripted file count, the writer cutting a load into steps, and a whole load through the stand-in's HTTP API with
its engine snapshotting between steps."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import requests

from ingest.jobs import Jobs
from ingest.lineprotocol import LineEncoder
from ingest.pacing import WINDOW_NS, SnapshotSteps, line_windows
from ingest.sinks import Batch, SinkCounters
from ingest.writer import Writer
from tests.ingest.formats import movebank_csv, movebank_row

NOW = 1_800_000_000 * 10**9  # the wall clock of every scripted test: windows from NOW // WINDOW_NS on are "live"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class Core:
    """What a test's Core lists: `persist()` is a snapshot of every window sent so far (one file per table and
    window, as queryable_buffer.rs writes them), and records how many files each snapshot wrote."""

    def __init__(self) -> None:
        self.sent: dict[str, set[int]] = {}
        self.persisted: dict[str, int] = {}
        self.snapshots: list[int] = []
        self.asked = 0

    def files(self, table: str, since: int | None) -> int:
        self.asked += 1
        self.since = since
        return self.persisted.get(table, 0)

    def persist(self) -> None:
        written = 0
        for table, windows in self.sent.items():
            self.persisted[table] = self.persisted.get(table, 0) + len(windows)
            written += len(windows)
        self.sent = {}
        if written:
            self.snapshots.append(written)


class Capture:
    name = "influxdb3"

    def __init__(self, core: Core) -> None:
        self.counters = SinkCounters()
        self.core = core
        self.lines = 0

    def deliver(self, batch: Batch) -> None:
        for line in batch.raw.splitlines():
            table = line.split(b",", 1)[0].split(b" ", 1)[0].decode()
            self.core.sent.setdefault(table, set()).add(int(line.rsplit(b" ", 1)[1]) // WINDOW_NS)
            self.lines += 1

    def settle(self) -> None: ...
    def drain(self, *, force: bool = False) -> bool: return True
    def close(self) -> None: ...


def steps(core: Core, budget: int, clock: Clock, **options) -> SnapshotSteps:
    return SnapshotSteps(budget, core.files, now=lambda: NOW, clock=clock, sleep=clock.sleep, **options)


def history(minutes: range, measurement: str = "m") -> pa.Table:
    stamps = [NOW - 400 * 86400 * 10**9 + minute * 60 * 10**9 for minute in minutes]
    return LineEncoder(measurement, ("t",), ("v",)).encode(pa.table({
        "time": pa.array(stamps, pa.timestamp("ns")), "t": ["a"] * len(stamps), "v": list(range(len(stamps)))}))


def test_windows_are_read_from_each_lines_timestamp():
    body = b'm,t=a\\ b s="x y" 1\nm v=2i -1\nm v=3 1200000000001\nm v=1 600000000000\n'
    data = np.frombuffer(body, dtype=np.uint8)
    ends = np.array([index + 1 for index, byte in enumerate(body) if byte == 0x0A])
    assert line_windows(data, ends).tolist() == [0, -1, 2, 1]


def test_a_step_holds_at_most_its_budget_of_table_windows():
    core, clock = Core(), Clock()
    step = steps(core, 3, clock)
    assert step.cut("m", np.array([5, 5, 6, 6, 7, 5])) == 6 and step.held == {"m": {5, 6, 7}}
    assert step.cut("m", np.array([6, 5])) == 2
    assert step.cut("m", np.array([8])) == 0
    assert step.cut("n", np.array([5])) == 0  # the same window of another table is another file
    second = steps(core, 3, clock)
    assert second.cut("m", np.array([1, 1, 2])) == 3 and second.cut("n", np.array([1, 2])) == 1
    assert second.held == {"m": {1, 2}, "n": {1}}


def test_the_next_step_waits_until_core_lists_a_new_file_for_every_window():
    core, clock = Core(), Clock()
    beats, turns = [], []

    def snapshot_at_six() -> None:
        turns.append(clock.now)
        if clock.now >= 6.0:
            core.persist()

    step = steps(core, 4, clock, poll=2.0, beat=lambda *a: beats.append(a), between=snapshot_at_six)
    core.persisted["m"] = 10  # files of earlier loads: only new ones count
    assert step.cut("m", np.array([1, 2, 3, 4])) == 4
    core.sent = {"m": {1, 2, 3, 4}}
    step.next()
    assert core.persisted["m"] == 14 and turns == [0.0, 2.0, 4.0, 6.0] and clock.now == 8.0  # seen at the next poll
    assert beats == [(1, 4, 0)] * 4
    assert step.held == {} and step.steps == 2 and step.waited == 8.0


def test_windows_core_cannot_persist_yet_or_drops_are_not_waited_for():
    core, clock = Core(), Clock()
    live = NOW // WINDOW_NS
    step = steps(core, 10, clock, expired_before=100)
    step.cut("m", np.array([50, 150, 151, live, live + 1]))  # expired, two due, the open window, one ahead
    core.persisted["m"] = 2
    step.next()
    assert clock.now == 0 and step.steps == 2
    assert core.since == 100 * WINDOW_NS  # files past the retention go at each snapshot: not counted at all


def test_a_step_never_persisted_goes_on_after_the_timeout_with_a_warning(caplog):
    core, clock = Core(), Clock()
    step = steps(core, 10, clock, timeout=30.0, poll=1.0)
    step.cut("m", np.array([1, 2]))
    with caplog.at_level(logging.WARNING, "ingest.pacing"):
        step.next()
    assert clock.now == pytest.approx(30.0) and step.steps == 2
    assert "step 1: InfluxDB 3 has not persisted 2 of its 2 windows (m) after 30 s; going on" in caplog.text


def test_a_server_that_cannot_list_its_files_turns_steps_off(caplog):
    clock = Clock()

    def refused(table: str, since: int | None) -> int:
        raise RuntimeError("403 no access to system tables")

    step = SnapshotSteps(2, refused, now=lambda: NOW, clock=clock, sleep=clock.sleep)
    with caplog.at_level(logging.WARNING, "ingest.pacing"):
        assert step.cut("m", np.array([1, 2, 3, 4])) == 4
    assert not step.enabled and "m: InfluxDB 3 cannot list its Parquet files (403 no access" in caplog.text
    with pytest.raises(ValueError, match="windows must be 0"):
        SnapshotSteps(-1, refused)


def test_a_history_load_goes_in_steps_each_persisted_before_the_next_is_sent():
    core, clock = Core(), Clock()
    sink = Capture(core)
    step = steps(core, 100, clock, between=core.persist)
    writer = Writer([sink], "history", batch_rows=30, steps=step)
    data = history(range(0, 1000 * 10, 5))  # 2,000 lines over 1,000 windows
    writer.write(data)
    writer.settle()
    core.persist()
    assert sink.lines == 2000 and core.persisted == {"m": 1000}
    assert core.snapshots == [100] * 10  # every snapshot took one whole step, never more
    assert step.steps == 10


def test_live_writes_and_loads_with_steps_off_are_never_stepped():
    core, clock = Core(), Clock()
    sink = Capture(core)
    assert Writer([sink], "history", steps=steps(core, 0, clock)).steps is None
    live = Writer([sink], "telemetry")
    for tick in range(500):  # a sensor tick a minute for 500 minutes: 50 windows, far past a budget of 10
        live.write(LineEncoder("m", ("t",), ("v",)).encode(pa.table({
            "time": pa.array([NOW + tick * 60 * 10**9], pa.timestamp("ns")), "t": ["a"], "v": [tick]})))
        live.flush()
    assert sink.lines == 500 and core.asked == 0 and clock.now == 0


def test_a_bird_study_through_the_stand_in_is_persisted_a_step_per_snapshot(fake_influx, influxdb3_outputs, tmp_path):
    """The whole way: `Jobs.birds` over HTTP to the stand-in, which lists Parquet files as Core 3.6 does; the run
    loop's turn (between_steps) snapshots its engine, as Core's next snapshot would."""
    fake, server = fake_influx
    config, outputs = influxdb3_outputs("steps", 40)
    turns: list[int] = []

    def snapshot() -> None:
        turns.append(1)
        fake.v3.engine.snapshot()

    outputs.between_steps = snapshot
    rows = [movebank_row(fix, individual=f"bird-{fix % 3}") for fix in range(300)]  # a fix every 7 minutes
    windows = len({pd.Timestamp(row["timestamp"], tz="UTC").value // WINDOW_NS for row in rows})
    full, rest = divmod(windows, 40)
    study = tmp_path / "study.csv"
    study.write_bytes(movebank_csv(rows))
    summary = Jobs(config, outputs).birds([str(study)])[0]
    assert summary.sinks["influxdb3"].written == 300
    files = fake.v3.engine.live_database(config.history_bucket).files["bird_fixes"]
    snapshots = sorted({file.snapshot for file in files})
    assert windows == 210 and rest  # a last step that is not full is not waited for
    assert len(turns) == len(snapshots) == full and len(files) == full * 40
    assert {sum(file.snapshot == each for file in files) for each in snapshots} == {40}
    answer = requests.post(f"{server.url}/api/v3/query_sql", headers={"Authorization": f"Bearer {fake.token3}"},
                           json={"db": config.history_bucket, "q": "SELECT count(*) AS n FROM bird_fixes",
                                 "format": "json"}, timeout=30)
    assert answer.json() == [{"n": 300}]
    beats = [point for point in fake.landed["influxdb3"] if point.measurement == "ingest_steps"]
    assert [point.fields["step"] for point in beats] == list(range(1, full + 1))
    assert all(point.tags == {"database": config.history_bucket} for point in beats)
