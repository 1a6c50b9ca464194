"""common.logs: every line carries the service prefix and the run id, in text and JSON."""

from __future__ import annotations

import io
import json
import logging

from common.logs import setup_logging


def test_text_lines_are_prefixed_with_service_and_run():
    stream = io.StringIO()
    log = setup_logging("ingest", run_id="abc12345", fmt="text", level="INFO", stream=stream)
    log.info("wrote %d rows", 10, extra={"fields": {"sink": "influxdb3"}})
    logging.getLogger("urllib3").warning("library line")
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("[ingest] ") and "INFO    run=abc12345 wrote 10 rows sink=influxdb3" in lines[0]
    assert lines[1].startswith("[ingest] ") and "run=abc12345 library line" in lines[1]


def test_json_lines_are_objects_with_the_same_context():
    stream = io.StringIO()
    log = setup_logging("backup", run_id="r1", fmt="json", level="DEBUG", stream=stream)
    try:
        raise ValueError("disk full")
    except ValueError:
        log.exception("backup failed", extra={"fields": {"store": "grafana"}})
    record = json.loads(stream.getvalue())
    assert record["service"] == "backup" and record["run"] == "r1" and record["level"] == "ERROR"
    assert record["msg"] == "backup failed" and record["store"] == "grafana" and "disk full" in record["exc"]
    assert record["ts"].endswith("Z")


def test_run_ids_are_generated_and_distinct():
    first = setup_logging("x", stream=io.StringIO()).run_id
    second = setup_logging("x", stream=io.StringIO()).run_id
    assert first != second and len(first) == 8
