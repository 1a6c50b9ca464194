"""Delivery to InfluxDB 2 and 3 over real HTTP: what is sent, and what happens when the database misbehaves."""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from pathlib import Path

import pyarrow as pa
import pytest

from common.retry import RetryPolicy
from ingest.lineprotocol import LineEncoder
from ingest.rejects import RejectsFile
from ingest.sinks import Batch, FatalSinkError, Sink
from ingest.sinks.influxdb2 import InfluxDB2Transport
from ingest.sinks.influxdb3 import InfluxDB3Transport
from ingest.spool import Spool, SpoolFullError
from ingest.writer import Writer
from tests.support.lineprotocol import parse_lines
from tests.support.openapi import validate_influxdb3_request
from tests.support.recorder import Reply

T0 = 1_700_000_000_000_000_000
ENCODER = LineEncoder("sensors", ["device"])


def rows(count: int, start: int = 0) -> pa.Table:
    return pa.table({"time": pa.array([T0 + (start + i) * 10**9 for i in range(count)], pa.int64()),
                     "device": pa.array([f"d{(start + i) % 3}" for i in range(count)]),
                     "temperature": pa.array([20.0 + (start + i) / 100 for i in range(count)])})


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def sinks_for(fake, server, tmp_path, *, token2=None, token3=None, attempts=3, probe=0.0, sleeps=None, in_flight=1):
    sleeps = sleeps if sleeps is not None else Sleeps()
    policy = RetryPolicy(attempts=attempts, base=0.1, cap=1.0)
    rejects = RejectsFile(tmp_path / "rejects", "refused", "test")
    made = []
    for transport in (InfluxDB2Transport(server.url, token2 or fake.token2, "stack", timeout=5),
                      InfluxDB3Transport(server.url, token3 or fake.token3, database="telemetry", timeout=5)):
        made.append(Sink(transport, Spool(tmp_path / "spool" / transport.name), policy=policy, rejects=rejects,
                         sleep=sleeps, probe_interval=probe, in_flight=in_flight))
    return made


def test_requests_are_what_each_database_documents(fake_influx, tmp_path):
    fake, server = fake_influx
    writer = Writer(sinks_for(fake, server, tmp_path), "telemetry")
    writer.write(ENCODER.encode(rows(5)))
    writer.close()
    v2 = server.matching("POST", "/api/v2/write")[0]
    assert v2.query == {"org": ["stack"], "bucket": ["telemetry"], "precision": ["ns"]}
    assert v2.header("authorization") == f"Token {fake.token2}"
    v3 = server.matching("POST", "/api/v3/write_lp")[0]
    assert v3.param("db") == "telemetry" and v3.param("precision") == "nanosecond"
    assert v3.header("authorization") == f"Bearer {fake.token3}"
    for request in (v2, v3):
        assert request.header("content-encoding") == "gzip" and gzip.decompress(request.raw_body) == request.body
        assert request.header("content-type").startswith("text/plain")
        assert [point.timestamp for point in parse_lines(request.text())] == [T0 + i * 10**9 for i in range(5)]
    validate_influxdb3_request(v3)
    assert fake.keys("influxdb2") == fake.keys("influxdb3") and len(fake.keys("influxdb2")) == 5


def test_500_then_success_is_retried_and_lands_once(fake_influx, tmp_path):
    fake, server = fake_influx
    fake.script["influxdb2"] = [Reply(500, {"code": "internal error", "message": "boom"}), Reply(502)]
    fake.script["influxdb3"] = [Reply(503, {"error": "starting"})]
    sleeps = Sleeps()
    sinks = sinks_for(fake, server, tmp_path, sleeps=sleeps)
    writer = Writer(sinks, "telemetry")
    writer.write(ENCODER.encode(rows(4)))
    writer.close()
    assert len(fake.landed["influxdb2"]) == len(fake.landed["influxdb3"]) == 4
    assert [sink.counters.retries for sink in sinks] == [2, 1]
    assert all(len(sink.spool) == 0 for sink in sinks) and len(sleeps) == 3


def test_429_and_503_retry_after_are_obeyed(fake_influx, tmp_path):
    fake, server = fake_influx
    fake.script["influxdb2"] = [Reply(429, {"code": "too many requests", "message": "slow down"},
                                      {"Retry-After": "7"})]
    fake.script["influxdb3"] = [Reply(503, {"error": "busy"}, {"Retry-After": "2"})]
    sleeps = Sleeps()
    writer = Writer(sinks_for(fake, server, tmp_path, sleeps=sleeps), "telemetry")
    writer.write(ENCODER.encode(rows(2)))
    writer.close()
    assert sleeps == [7.0, 2.0]
    assert len(fake.landed["influxdb2"]) == len(fake.landed["influxdb3"]) == 2


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_connection_refused_spools_every_batch_then_replays_them_in_order(fake_influx, tmp_path):
    fake, server = fake_influx
    dead = f"http://127.0.0.1:{_closed_port()}"
    policy = RetryPolicy(attempts=2, base=0.01, cap=0.01)
    sink = Sink(InfluxDB2Transport(dead, fake.token2, "stack", timeout=2), Spool(tmp_path / "spool"), policy=policy,
                sleep=Sleeps(), probe_interval=60)
    writer = Writer([sink], "telemetry", batch_rows=10)
    writer.write(ENCODER.encode(rows(35)))
    writer.flush()
    assert len(sink.spool) == 4 and sink.spool.rows == 35 and sink.counters.written == 0
    assert sink.counters.spooled == 35
    assert not writer.sinks[0].drain()  # marked down: no attempt at all yet

    alive = Sink(InfluxDB2Transport(server.url, fake.token2, "stack"), Spool(tmp_path / "spool"), policy=policy)
    assert alive.drain(force=True)
    assert alive.counters.replayed == 35 and len(alive.spool) == 0
    assert [point.timestamp for point in fake.landed["influxdb2"]] == [T0 + i * 10**9 for i in range(35)]
    assert not list((tmp_path / "spool").glob("*.spool"))


@pytest.mark.parametrize("in_flight", [1, 4])
def test_a_server_that_disappears_mid_load_and_comes_back_loses_and_duplicates_nothing(fake_influx, tmp_path,
                                                                                     in_flight):
    fake, server = fake_influx
    count = {"writes": 0}
    base = server.responder

    def flaky(request):
        if request.path in ("/api/v2/write", "/api/v3/write_lp"):
            count["writes"] += 1
            if 6 <= count["writes"] <= 30:
                return Reply(close_connection=True)  # gone mid-load
        return base(request)

    server.responder = flaky
    sinks = sinks_for(fake, server, tmp_path, attempts=2, probe=0.0, in_flight=in_flight)
    writer = Writer(sinks, "telemetry", batch_rows=50)
    total = 2_000
    for start in range(0, total, 250):
        writer.write(ENCODER.encode(rows(250, start)))
    writer.close()

    expected = {("sensors", (("device", f"d{i % 3}"),), T0 + i * 10**9) for i in range(total)}
    for kind, sink in zip(("influxdb2", "influxdb3"), sinks, strict=True):
        landed = fake.keys(kind)
        assert len(landed) == len(set(landed)) == total, kind  # every row once, none twice
        assert set(landed) == expected
        assert sink.counters.written + sink.counters.replayed == total and len(sink.spool) == 0
        assert sink.counters.spooled > 0  # the outage really happened


def test_wrong_token_stops_with_a_clear_message_and_keeps_the_batch(fake_influx, tmp_path):
    fake, server = fake_influx
    sink2, sink3 = sinks_for(fake, server, tmp_path, token2="wrong", token3="wrong")
    for sink, variable in ((sink2, "INFLUXDB2_TOKEN"), (sink3, "INFLUXDB3_TOKEN")):
        with pytest.raises(FatalSinkError, match=f"401.*{variable}"):
            sink.deliver(Batch(ENCODER.encode(rows(3)).to_bytes(), 3, "telemetry"))
        assert sink.spool.rows == 3


def test_unknown_bucket_stops_with_a_clear_message(fake_influx, tmp_path):
    fake, server = fake_influx
    sink2, _ = sinks_for(fake, server, tmp_path)
    with pytest.raises(FatalSinkError, match=r'404: bucket "nope" not found.*no such bucket'):
        sink2.deliver(Batch(ENCODER.encode(rows(1)).to_bytes(), 1, "nope"))


def test_lines_the_database_refuses_are_kept_with_its_reason(fake_influx, tmp_path):
    fake, server = fake_influx
    body = ENCODER.encode(rows(4))
    bad_line = body.text().splitlines()[1]
    problem = "invalid column type for column 'temperature'"
    fake.script["influxdb3"] = [Reply(400, {"error": "partial write of line protocol occurred", "data": [
        {"original_line": bad_line, "line_number": 2, "error_message": problem}]})]
    # InfluxDB 2 itself refuses what has another type than the stored field (http/write_handler.go: 422, the
    # other points written, only a count of the dropped ones).
    fake.v2.points["telemetry"] = []
    fake.v2.field_kinds[("telemetry", "sensors", "temperature")] = "int"
    sink2, sink3 = sinks_for(fake, server, tmp_path)
    writer = Writer([sink2, sink3], "telemetry")
    writer.write(body)
    writer.close()
    assert (sink2.counters.refused, sink2.counters.written) == (4, 0)
    assert (sink3.counters.refused, sink3.counters.written) == (1, 3)
    log = [json.loads(line) for line in sink3.rejects.path.read_text().splitlines()]
    assert {entry["input"] for entry in log} == {"influxdb2:telemetry", "influxdb3:telemetry"}
    saved = next(entry["record"] for entry in log if entry["input"].startswith("influxdb3"))
    assert gzip.decompress(Path(saved).read_bytes()).decode() == bad_line + "\n"
    assert "invalid column type" in next(entry["reason"] for entry in log if entry["input"].startswith("influxdb3"))
    assert all("field type conflict" in entry["reason"] for entry in log if entry["input"].startswith("influxdb2"))


def _typed_integer(fake) -> None:
    """Make `temperature` an integer column in InfluxDB 3, so the float readings of rows() conflict."""
    fake.v3.engine.write("telemetry", f"sensors,device=d0 temperature=1i {T0 - 10**9}")


def test_lines_influxdb3_refuses_are_kept_whole_though_its_answer_cuts_them_to_20_bytes(fake_influx, tmp_path):
    fake, server = fake_influx
    _typed_integer(fake)
    refused = ENCODER.encode(rows(4)).to_bytes()
    good = b"".join(f"other,device=x v={i}.5 {T0 + i}\n".encode() for i in range(2))
    _, sink3 = sinks_for(fake, server, tmp_path)
    sink3.deliver(Batch(good[: len(good) // 2] + refused + good[len(good) // 2:], 6, "telemetry"))
    assert (sink3.counters.refused, sink3.counters.written) == (4, 2)
    [entry] = [json.loads(line) for line in sink3.rejects.path.read_text().splitlines()]
    assert gzip.decompress(Path(entry["record"]).read_bytes()) == refused  # whole lines, in order
    assert entry["rows"] == 4 and "4 lines refused" in entry["reason"]
    assert "invalid column type" in entry["reason"] or "expected" in entry["reason"]


def test_a_wholly_refused_batch_is_summed_up_not_copied_into_the_log_and_the_rejects(fake_influx, tmp_path, caplog):
    fake, server = fake_influx
    _typed_integer(fake)
    fake.v2.points["telemetry"] = []
    body = b"".join(f"sensors,device=d{i % 3} temperature=x{i} {T0 + i}\n".encode() for i in range(200))
    sink2, sink3 = sinks_for(fake, server, tmp_path)
    with caplog.at_level("WARNING"):
        sink3.deliver(Batch(ENCODER.encode(rows(2000)).to_bytes(), 2000, "telemetry"))
        sink2.deliver(Batch(body, 200, "telemetry"))  # InfluxDB 2 names every bad line, each in full
    assert sink3.counters.refused == 2000 and sink2.counters.refused == 200
    log = [json.loads(line) for line in sink3.rejects.path.read_text().splitlines()]
    [whole] = [entry for entry in log if entry["input"] == "influxdb3:telemetry"]
    assert "2,000 lines refused" in whole["reason"] and "and 1,997 more" in whole["reason"]
    assert max(len(entry["reason"]) for entry in log) < 1_500
    assert max(len(record.getMessage()) for record in caplog.records) < 2_000
    assert any("and 197 more" in record.getMessage() for record in caplog.records)


def test_influxdb2_refusals_are_split_until_only_the_bad_lines_are_left(fake_influx, tmp_path):
    """A 400 from InfluxDB 2 (one line that does not parse) writes nothing of the request, and a 422 partial write
    names no line: the sink re-sends halves until every good line has landed and each bad one is kept alone."""
    fake, server = fake_influx
    good = ENCODER.encode(rows(7)).text().splitlines()
    conflict = good[5].replace("temperature=", "temperature=\"text\",x=")  # a string where a float is stored
    lines = [*good[:2], "sensors,device=d0 temperature=", *good[2:5], conflict, good[6]]
    sink2, _ = sinks_for(fake, server, tmp_path)
    fake.v2.field_kinds[("telemetry", "sensors", "temperature")] = "float"
    sink2.deliver(Batch(("\n".join(lines) + "\n").encode(), len(lines), "telemetry"))
    landed = {point.timestamp for point in fake.landed["influxdb2"]}  # a re-sent half rewrites points in place
    assert landed == {T0 + i * 10**9 for i in range(7)} - {T0 + 5 * 10**9}
    assert (sink2.counters.written, sink2.counters.refused) == (6, 2)
    log = [json.loads(line) for line in sink2.rejects.path.read_text().splitlines()]
    kept = sorted(gzip.decompress(Path(entry["record"]).read_bytes()).decode() for entry in log)
    assert kept == sorted(["sensors,device=d0 temperature=\n", conflict + "\n"])
    assert any("unable to parse" in entry["reason"] for entry in log)
    assert any("field type conflict" in entry["reason"] for entry in log)


def test_a_missing_bucket_is_created_because_influxdb2_answers_404_to_the_lookup(fake_influx, tmp_path):
    fake, server = fake_influx
    transport = InfluxDB2Transport(server.url, fake.token2, "stack", timeout=5)
    assert transport.ensure_database("monitoring", "metrics", None) == "created"
    lookup = server.matching("GET", "/api/v2/buckets")[0]
    assert lookup.param("name") == "monitoring"
    assert transport.ensure_database("monitoring", "metrics", None) == "exists"
    fake.v2.add_bucket("raced")  # another process created it between our lookup and create: 422 conflict
    original = fake.v2._get_buckets
    fake.v2._get_buckets = lambda request: Reply(404, {"code": "not found", "message": 'bucket "raced" not found'})
    assert transport.ensure_database("raced", "", None) == "exists"
    fake.v2._get_buckets = original


def test_an_unknown_org_is_named_with_the_variable_to_fix(fake_influx, tmp_path):
    fake, server = fake_influx
    transport = InfluxDB2Transport(server.url, fake.token2, "not-our-org", timeout=5)
    with pytest.raises(FatalSinkError, match=r"no organization 'not-our-org'.*INFLUXDB2_ORG"):
        transport.ensure_database("monitoring", "", None)


def test_413_splits_the_batch_until_it_fits(fake_influx, tmp_path):
    fake, server = fake_influx
    fake.script["influxdb2"] = [Reply(413, {"code": "request too large", "message": "too large"})]
    sink2, _ = sinks_for(fake, server, tmp_path)
    sink2.deliver(Batch(ENCODER.encode(rows(9)).to_bytes(), 9, "telemetry"))
    sizes = [len(parse_lines(request.text())) for request in server.matching("POST", "/api/v2/write")]
    assert sizes == [9, 4, 5] and len(fake.landed["influxdb2"]) == 9 and sink2.counters.written == 9


class Durable:
    """An injected transport that answers as a database does that acknowledges only after its WAL flush: each
    request takes `delay` seconds however small; from request `fatal_at` on, it answers 401 (a revoked token)."""

    name = "durable"

    def __init__(self, delay: float = 0.05, fatal_at: int | None = None):
        self.delay, self.fatal_at = delay, fatal_at
        self.bodies: list[bytes] = []
        self.active = self.most = self.calls = 0
        self.lock = threading.Lock()

    def send(self, payload: bytes, database: str) -> None:
        with self.lock:
            self.calls += 1
            call = self.calls
            self.active += 1
            self.most = max(self.most, self.active)
        try:
            time.sleep(self.delay)
            if self.fatal_at is not None and call >= self.fatal_at:
                raise FatalSinkError("durable answered 401: unauthorized")
            with self.lock:
                self.bodies.append(gzip.decompress(payload))
        finally:
            with self.lock:
                self.active -= 1

    def close(self) -> None:
        pass


def test_several_batches_are_in_flight_at_once_and_each_lands_once(tmp_path):
    durable = Durable()
    sink = Sink(durable, Spool(tmp_path / "spool"), policy=RetryPolicy(attempts=1), in_flight=4)
    writer = Writer([sink], "telemetry", batch_rows=10)
    writer.write(ENCODER.encode(rows(400)))
    writer.close()
    assert durable.most == 4  # never more than asked, and really overlapping
    lines = [line for body in durable.bodies for line in body.splitlines()]
    assert sorted(lines) == sorted(ENCODER.encode(rows(400)).to_bytes().splitlines())
    assert sink.counters.written == 400 and sink.counters.batches == 40 and len(sink.spool) == 0


def test_a_fatal_answer_to_a_batch_in_flight_stops_the_run_and_every_batch_is_landed_or_spooled(tmp_path):
    durable = Durable(fatal_at=3)
    sink = Sink(durable, Spool(tmp_path / "spool"), policy=RetryPolicy(attempts=1), in_flight=4)
    writer = Writer([sink], "telemetry", batch_rows=10)
    with pytest.raises(FatalSinkError, match="401"):
        writer.write(ENCODER.encode(rows(200)))
        writer.close()
    sink.close()  # the batches still in flight finish
    assert sink.counters.written + sink.counters.spooled == writer.rows_handed
    assert sink.spool.rows == sink.counters.spooled >= 10 and sink.counters.written >= 20  # refused ones kept
    spooled = [gzip.decompress(Spool.read(entry)[1]) for entry in sink.spool.entries]
    sent = [line for body in durable.bodies + spooled for line in body.splitlines()]
    assert sorted(sent) == sorted(ENCODER.encode(rows(writer.rows_handed)).to_bytes().splitlines())


def test_a_fatal_answer_to_a_replayed_batch_keeps_the_new_batch_too(tmp_path):
    spool = Spool(tmp_path / "spool")
    spool.put(Batch(ENCODER.encode(rows(5)).to_bytes(), 5, "telemetry").payload, database="telemetry", rows=5)
    sink = Sink(Durable(delay=0, fatal_at=1), spool, policy=RetryPolicy(attempts=1))  # the token was revoked
    with pytest.raises(FatalSinkError, match="401"):
        sink.deliver(Batch(ENCODER.encode(rows(3, start=5)).to_bytes(), 3, "telemetry"))
    assert len(spool) == 2 and spool.rows == 8


class Capture:
    """An injected transport: keeps every payload instead of sending it."""

    name = "capture"

    def __init__(self):
        self.bodies: list[bytes] = []

    def send(self, payload: bytes, database: str) -> None:
        self.bodies.append(gzip.decompress(payload))

    def close(self) -> None:
        pass


def test_batches_stay_within_the_byte_and_row_budget_and_keep_every_line_in_order(tmp_path):
    capture = Capture()
    sink = Sink(capture, Spool(tmp_path / "spool"), policy=RetryPolicy(attempts=1))
    first, second = ENCODER.encode(rows(1_000)), ENCODER.encode(rows(30, 1_000))
    budget = 4_000
    writer = Writer([sink], "telemetry", batch_bytes=budget, batch_rows=100)
    writer.write(first)
    writer.write(second)
    writer.close()
    assert b"".join(capture.bodies) == first.to_bytes() + second.to_bytes()
    for body, following in zip(capture.bodies, capture.bodies[1:], strict=False):
        assert len(body) <= budget and body.count(b"\n") <= 100
        next_line = following.split(b"\n", 1)[0] + b"\n"
        assert len(body) + len(next_line) > budget or body.count(b"\n") == 100  # batches are as full as allowed


def test_a_line_longer_than_the_budget_still_goes_alone(tmp_path):
    capture = Capture()
    writer = Writer([Sink(capture, Spool(tmp_path / "s"), policy=RetryPolicy(attempts=1))], "t", batch_bytes=10)
    writer.write(ENCODER.encode(rows(3)))
    writer.close()
    assert [body.count(b"\n") for body in capture.bodies] == [1, 1, 1]


def test_spool_files_are_atomic_ordered_shared_and_bounded(tmp_path):
    spool = Spool(tmp_path, max_bytes=10_000)
    first = spool.put(gzip.compress(b"a f=1 1\n"), database="telemetry", rows=1)
    spool.put(gzip.compress(b"a f=2 2\n"), database="telemetry", rows=2)
    (tmp_path / ".00000000000000000001-999999999-000001.tmp").write_bytes(b"half a batch from a crashed process")
    reopened = Spool(tmp_path, max_bytes=10_000)  # e.g. `docker compose exec ingest ...` beside the service
    assert [entry.rows for entry in reopened.entries] == [1, 2] and reopened.rows == 3
    assert not list(tmp_path.glob(".*.tmp"))
    header, payload = reopened.read(reopened.entries[0])
    assert header["database"] == "telemetry" and gzip.decompress(payload) == b"a f=1 1\n"
    reopened.remove(first)
    third = reopened.put(b"x", database="t", rows=4)
    assert [entry.path for entry in spool.entries][-1] == third.path and spool.rows == 6  # seen by the other
    with pytest.raises(SpoolFullError, match="INGEST_SPOOL_MAX_BYTES"):
        reopened.put(b"x" * 10_000, database="t", rows=1)
