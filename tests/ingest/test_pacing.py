"""History loads in bounded steps (ingest/pacing.py): windows per request and per second, no server needed."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from ingest.lineprotocol import LineEncoder
from ingest.pacing import WINDOW_NS, WindowPacer, line_windows
from ingest.sinks import Batch, SinkCounters
from ingest.writer import Writer


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class Capture:
    name = "capture"

    def __init__(self, clock: Clock) -> None:
        self.counters = SinkCounters()
        self.clock = clock
        self.sent: list[tuple[float, bytes]] = []

    def deliver(self, batch: Batch) -> None:
        self.sent.append((self.clock.now, batch.raw))

    def settle(self) -> None: ...
    def drain(self, *, force: bool = False) -> bool: return True
    def close(self) -> None: ...


def lines(stamps: list[int]) -> bytes:
    return b"".join(b"m,t=a v=%di %d\n" % (number, stamp) for number, stamp in enumerate(stamps))


def test_windows_are_read_from_each_lines_timestamp():
    body = b'm,t=a\\ b s="x y" 1\nm v=2i -1\nm v=3 1200000000001\nm v=1 600000000000\n'
    data = np.frombuffer(body, dtype=np.uint8)
    ends = np.array([index + 1 for index, byte in enumerate(body) if byte == 0x0A])
    assert line_windows(data, ends).tolist() == [0, -1, 2, 1]


def test_a_batch_is_cut_before_it_holds_more_windows_than_a_seconds_budget():
    pacer, held = WindowPacer(2), set()
    assert pacer.cut(held, np.array([5, 5, 6, 6, 7, 5])) == 4 and held == {5, 6}
    assert pacer.cut(held, np.array([6, 5])) == 2 and held == {5, 6}
    assert pacer.cut(held, np.array([8])) == 0


def test_the_bucket_spends_a_seconds_budget_then_waits():
    clock = Clock()
    pacer = WindowPacer(100, clock=clock, sleep=clock.sleep)
    pacer.wait(100)
    assert clock.slept == []
    pacer.wait(50)
    assert clock.slept == [pytest.approx(0.5)]
    clock.now += 10  # idle time refills at most one second's budget
    pacer.wait(100)
    pacer.wait(100)
    assert clock.slept[-1] == pytest.approx(1.0)


def test_a_history_load_goes_out_in_bounded_steps_and_every_line_lands():
    clock = Clock()
    sink = Capture(clock)
    pacer = WindowPacer(10, clock=clock, sleep=clock.sleep)
    writer = Writer([sink], "telemetry", batch_rows=50_000, pacer=pacer)
    stamps = [1_700_000_000 * 10**9 + minute * 60 * 10**9 for minute in range(0, 1000 * 10, 5)]  # 1,000 windows
    table = pa.table({"time": pa.array(stamps, pa.timestamp("ns")), "t": ["a"] * len(stamps),
                      "v": list(range(len(stamps)))})
    writer.write(LineEncoder("m", ("t",), ("v",)).encode(table))
    writer.settle()
    assert sum(body.count(b"\n") for _, body in sink.sent) == len(stamps)
    for _, body in sink.sent:
        windows = {int(line.rsplit(b" ", 1)[1]) // WINDOW_NS for line in body.splitlines()}
        assert len(windows) <= 10
    assert len(sink.sent) == 100 and clock.now == pytest.approx(99.0)  # 10 windows a second after the first


def test_live_data_never_waits_and_pacing_off_changes_nothing():
    clock = Clock()
    sink = Capture(clock)
    writer = Writer([sink], "telemetry", pacer=WindowPacer(10, clock=clock, sleep=clock.sleep))
    now = 1_700_000_000 * 10**9
    for tick in range(100):  # a sensor tick every 10 s: one or two windows a write
        writer.write(LineEncoder("m", ("t",), ("v",)).encode(pa.table({
            "time": pa.array([now + tick * 10**10] * 6, pa.timestamp("ns")), "t": list("abcdef"), "v": [1] * 6})))
        writer.flush()
        clock.now += 10
    assert clock.slept == [] and len(sink.sent) == 100
    unpaced = Writer([Capture(clock)], "telemetry", pacer=WindowPacer(0))
    assert unpaced.pacer is None


def test_a_negative_rate_is_refused():
    with pytest.raises(ValueError, match="per_second"):
        WindowPacer(-1)
