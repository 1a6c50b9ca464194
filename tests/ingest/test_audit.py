"""The audit of the rollups copied to `history` (ingest/audit.py), over HTTP against the stand-in, with the stack's
own rollups plugin run by its engine: a copy the engine failed to write is found, marked, and written again by the
trigger's next runs; a whole copy marks nothing."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from datetime import UTC, datetime

import pandas as pd
import pytest

from ingest.audit import HistoryAudit
from ingest.config import IngestConfig
from ingest.jobs import Jobs
from ingest.outputs import Outputs
from ingest.runner import Runner
from ingest.state import Cursors, Heartbeat
from ingest.stored import StoredRows
from tests.ingest.test_runner import Capture
from tests.plugins.conftest import MINUTE, sensor_frame, sensor_lines

HOUR, DAY = 60 * MINUTE, 24 * 60 * MINUTE
ARGS = {"tables": "sensors", "levels": "1h 1d", "copy_to": "history"}


def at(time_ns: int) -> datetime:
    return datetime.fromtimestamp(time_ns // 10**9, UTC)


def rows(engine, database: str, table: str) -> list[dict]:
    if table not in {row["table_name"] for row in engine.query(database, "SHOW TABLES")}:
        return []
    return engine.query(database, f"SELECT * FROM {table} ORDER BY time, device")


@pytest.fixture
def stack(fake_influx, influxdb3_outputs):
    """Two days of three devices' readings a minute in `telemetry`, ending yesterday; the jobs against the stand-in."""
    fake, _ = fake_influx
    config, outputs = influxdb3_outputs("audit")
    engine = fake.v3.engine
    start = (time.time_ns() // DAY - 3) * DAY
    frame = sensor_frame(2 * 24 * 60 * 3, start_ns=start, seed=3, quantized=False)
    engine.write("telemetry", sensor_lines(frame))
    engine.snapshot()
    yield engine, Jobs(config, outputs)
    outputs.close()


def roll(engine, minutes_ahead: int) -> None:
    run = engine.run_schedule("history/rollups", "telemetry", at(time.time_ns() + minutes_ahead * MINUTE), args=ARGS)
    assert run.error is None, run.error


def test_a_copy_the_engine_failed_to_write_is_marked_and_written_again(stack, monkeypatch, caplog):
    engine, jobs = stack
    write_back = engine._write_back

    def refuse_history(db_name: str, lines: list[str]) -> str | None:  # the own database first, then the copy
        if db_name == "history":
            return "error writing back lines to history: Cannot write: refused"
        return write_back(db_name, lines)

    monkeypatch.setattr(engine, "_write_back", refuse_history)
    roll(engine, 0)  # the hours: written in telemetry, refused in history; the cursor moves on all the same
    monkeypatch.setattr(engine, "_write_back", write_back)
    roll(engine, 1)  # the days, from the hours: copied
    hours, days = rows(engine, "telemetry", "sensors_1h"), rows(engine, "telemetry", "sensors_1d")
    assert len(hours) == 2 * 24 * 3 and len(days) == 2 * 3
    assert rows(engine, "history", "sensors_1h") == [] and rows(engine, "history", "sensors_1d") == days
    roll(engine, 2)
    assert rows(engine, "history", "sensors_1h") == [], "without the audit the hours are never copied"

    caplog.set_level(logging.WARNING, logger="ingest.audit")
    assert jobs.audit() == {"telemetry.sensors_1h": 2 * 24}
    assert "telemetry.sensors_1h: history lacks or differs in 48 buckets of it" in caplog.text
    for minute in range(3, 8):  # marks are read once 30 s old; half a run's budget goes to them
        roll(engine, minute)
    for table in ("sensors_1h", "sensors_1d"):  # the days were computed again too, from the hours marked
        assert pd.DataFrame(rows(engine, "history", table)).equals(pd.DataFrame(rows(engine, "telemetry", table)))
    assert len(rows(engine, "history", "sensors_1h")) == len(hours)
    assert jobs.audit() == {}


def test_a_copy_with_other_values_is_marked_and_written_again(stack, caplog):
    """A bucket computed again for late data whose copy failed: history keeps the old values of that row."""
    engine, jobs = stack
    roll(engine, 0)
    roll(engine, 1)
    hour = rows(engine, "telemetry", "sensors_1h")[5]
    stamp = int(pd.Timestamp(hour["time"], tz="UTC").value)
    engine.write("history", [f"sensors_1h,device={hour['device']},location={hour['location']} "
                             f"temperature_max={hour['temperature_max'] + 1.0} {stamp}"])
    caplog.set_level(logging.WARNING, logger="ingest.audit")
    assert jobs.audit() == {"telemetry.sensors_1h": 1}
    for minute in range(2, 4):
        roll(engine, minute)
    assert pd.DataFrame(rows(engine, "history", "sensors_1h")).equals(pd.DataFrame(rows(engine, "telemetry",
                                                                                        "sensors_1h")))
    assert jobs.audit() == {}


def test_whole_copies_mark_nothing_and_a_database_without_rollups_is_skipped(stack):
    engine, jobs = stack
    roll(engine, 0)
    roll(engine, 1)
    assert jobs.audit() == {}
    assert not rows(engine, "telemetry", "rollup_marks")
    reader = StoredRows(jobs.config.influxdb3.url, jobs.config.influxdb3.token, "history")
    try:
        assert HistoryAudit(reader, lambda name: reader).copies(time.time_ns()) == []  # history copies nothing
    finally:
        reader.close()


def test_a_copy_that_cannot_be_read_is_logged_and_the_others_are_still_audited(stack, monkeypatch, caplog):
    engine, jobs = stack
    roll(engine, 0)
    roll(engine, 1)
    real = StoredRows.sql

    def failing(self, query: str, fmt: str):
        if self.database == "history" and "sensors_1h" in query:
            raise RuntimeError("500 the server broke")
        return real(self, query, fmt)

    monkeypatch.setattr(StoredRows, "sql", failing)
    caplog.set_level(logging.ERROR, logger="ingest.audit")
    assert jobs.audit() == {}
    assert "audit of telemetry.sensors_1h against history failed, tried again on the next audit: 500" in caplog.text
    assert "sensors_1d" not in caplog.text


def test_the_run_loop_audits_every_interval(tmp_path, monkeypatch):
    config = IngestConfig.from_env({"INGEST_STATE_DIR": str(tmp_path), "INGEST_RUN_JOBS": "audit",
                                    "INGEST_AUDIT_INTERVAL": "1s"}, need_influxdb2=False, need_influxdb3=False)
    jobs = Jobs(config, Outputs(config, "test", transports=[Capture()]))
    audits: list[float] = []
    monkeypatch.setattr(jobs, "audit", lambda: audits.append(time.monotonic()) or {})
    runner = Runner(jobs, cursors=Cursors(tmp_path / "cursors.json"), heartbeat=Heartbeat(tmp_path / "beat"))
    timer = threading.Timer(2.5, runner.stop.set)
    timer.start()
    runner.run()
    assert len(audits) == 3 and all(0.9 < b - a < 1.5 for a, b in itertools.pairwise(audits))


def test_the_command_without_influxdb3_says_there_is_nothing_to_audit(ingest_env, capsys):
    from ingest.__main__ import main

    assert main(["audit", "--no-influxdb3", "--skip-buckets"]) == 2
    assert "nothing to audit without InfluxDB 3" in capsys.readouterr().err
