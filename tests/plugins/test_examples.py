"""The three example plugins (single files) on the local engine."""

from __future__ import annotations

import time
from datetime import datetime


def test_write_counter_counts_rows_per_table_and_ignores_its_own_output(engine):
    lines = ["peyton_views,series=a y=1.0 1", "peyton_views,series=a y=2.0 2", "example_write_counts rows=9i 3"]
    run = engine.run_writes("examples/write_counter.py", "forecast", lines, table=None).raise_for_error()
    assert run.writes["forecast"] == ["example_write_counts,source_table=peyton_views rows=2i"]


def test_heartbeat_records_the_rows_of_the_last_hour_at_the_call_time(engine):
    now = time.time_ns()
    engine.write_lp("forecast", ["peyton_views,series=a y=1.0 1",  # 1970: outside the hour, not counted
                                 f"peyton_views,series=a y=2.0 {now - 60 * 10**9}",
                                 f"peyton_views,series=b y=3.0 {now - 120 * 10**9}"])
    engine.snapshot()
    run = engine.run_schedule("examples/heartbeat.py", "forecast", datetime(2024, 1, 1)).raise_for_error()
    assert run.writes["forecast"] == ["example_heartbeat,table=peyton_views rows_last_hour=2i 1704067200000000000"]
    run = engine.run_schedule("examples/heartbeat.py", "forecast", args={"table": "x;y"}).raise_for_error()
    assert run.messages("ERROR") and not run.writes


def test_hello_answers_json_and_refuses_bad_bodies(engine):
    ok = engine.run_request("examples/hello_http.py", "forecast", {"name": "Ada"}, body=b'{"a": 1}').response
    assert ok.status == 200 and ok.json() == {"message": "Hello, Ada!", "you_sent": {"a": 1}}
    assert engine.run_request("examples/hello_http.py", "forecast").response.status == 400
    assert engine.run_request("examples/hello_http.py", "forecast", {"name": "x"}, body=b"{").response.status == 400
