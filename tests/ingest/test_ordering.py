"""A history load's rows in time order (ingest/ordering.py): the sorting itself, what each row keeps (its input
line, its record, the counts, the cursor callback), and a bird study listed bird by bird through the stand-in, whose
steps then persist one file per window."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from ingest.jobs import Jobs
from ingest.lineprotocol import LineEncoder
from ingest.ordering import in_time_order
from ingest.pacing import WINDOW_NS
from ingest.sources import Chunk
from tests.ingest.formats import movebank_csv, movebank_row


def _chunk(times: list[int], first_line: int, *, fields: tuple[str, ...] = ("v",), landed=None) -> Chunk:
    data = {"time": pa.array(times, pa.int64()), "bird": [f"b{first_line}"] * len(times)}
    data.update({name: pa.array([float(t) for t in times]) for name in fields})
    table = pa.table(data)
    return Chunk(table=table, encoder=LineEncoder("fixes", ("bird",), fields), input="study.csv",
                 rows_read=len(times) + 1, rejects=[(first_line + len(times), "timestamp is empty", {})],
                 lines=lambda rows, f=first_line: np.asarray(rows) + f,
                 record=lambda row, f=first_line: {"line": f + row}, landed=landed)


def test_rows_come_out_in_time_order_in_chunks_of_the_given_size_and_keep_their_lines():
    calls: list[str] = []
    chunks = [_chunk([50, 10, 30], 2, landed=lambda: calls.append("a")),
              _chunk([20, 40, 60, 10], 6, fields=("v", "speed"), landed=lambda: calls.append("b"))]
    out = list(in_time_order(chunks, rows_per_chunk=3))
    assert [chunk.table.column("time").to_pylist() for chunk in out] == [[10, 10, 20], [30, 40, 50], [60]]
    assert out[0].table.column("bird").to_pylist() == ["b2", "b6", "b6"]  # stable: equal times keep input order
    assert [chunk.lines(np.arange(chunk.table.num_rows)).tolist() for chunk in out] == [[3, 9, 6], [4, 7, 2], [8]]
    assert out[1].record(2) == {"line": 2} and out[2].record(0) == {"line": 8}
    assert sum(chunk.rows_read for chunk in out) == 9 and out[0].rejects == [(5, "timestamp is empty", {}),
                                                                           (10, "timestamp is empty", {})]
    assert not out[1].rejects and out[0].landed is None and out[1].landed is None
    out[2].landed()
    assert calls == ["a", "b"]  # the cursor moves once every row of the input is sent
    assert out[0].encoder.fields == ["v", "speed"] and out[0].table.column("speed").to_pylist() == [None, 10.0, 20.0]
    lines = out[0].encoder.encode(out[0].table).chunks[0].to_pylist()
    assert lines[:2] == ["fixes,bird=b2 v=10 10\n", "fixes,bird=b6 v=10,speed=10 10\n"]


def test_a_file_larger_than_max_rows_is_ordered_part_by_part(caplog):
    chunks = [_chunk([40, 30], 2), _chunk([20, 10], 5), _chunk([5, 1], 8)]
    caplog.set_level("INFO", logger="ingest.ordering")
    out = [chunk.table.column("time").to_pylist() for chunk in in_time_order(chunks, max_rows=4)]
    assert out == [[10, 20, 30, 40], [1, 5]]
    assert "more than 4 rows; ordered by time 4 rows at a time" in caplog.text


def test_a_study_listed_bird_by_bird_is_persisted_one_file_per_window(fake_influx, influxdb3_outputs, tmp_path):
    """Movebank lists each bird's fixes one bird after another; three birds over the same days, sent in steps of
    40 windows with a snapshot between steps. In file order each bird would revisit the windows the one before
    it had sent in earlier steps (a second and third file per window); in time order each window is in one step."""
    fake, _ = fake_influx
    config, outputs = influxdb3_outputs("ordered", 40)
    outputs.between_steps = fake.v3.engine.snapshot
    rows = [movebank_row(fix, individual=bird) for bird in ("b1", "b2", "b3") for fix in range(100)]
    windows = len({pd.Timestamp(row["timestamp"], tz="UTC").value // WINDOW_NS for row in rows})
    study = tmp_path / "study.csv"
    study.write_bytes(movebank_csv(rows))
    summary = Jobs(config, outputs).birds([str(study)])[0]
    fake.v3.engine.snapshot()
    assert summary.sinks["influxdb3"].written == 300 and windows == 70
    files = fake.v3.engine.live_database(config.history_bucket).files["bird_fixes"]
    assert len(files) == windows  # file order: 3 x 70 (each bird's 70 windows in steps of their own)


@pytest.mark.parametrize("size", [1, 7])
def test_chunk_size_does_not_change_what_is_sent(size):
    chunks = [_chunk([9, 3, 7], 2), _chunk([8, 1], 6)]
    out = list(in_time_order(chunks, rows_per_chunk=size))
    assert [t for chunk in out for t in chunk.table.column("time").to_pylist()] == [1, 3, 7, 8, 9]
    assert all(chunk.table.num_rows <= size for chunk in out)
