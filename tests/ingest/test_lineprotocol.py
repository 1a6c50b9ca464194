"""The vectorized encoder, held to the strict parser: escaping, nulls, NaN/inf, types, rejected rows."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.lineprotocol import LineEncoder, check_name
from tests.support.lineprotocol import parse_line, parse_lines

T0 = 1_700_000_000_000_000_000


def table(**columns) -> pa.Table:
    return pa.table(columns)


def test_escaping_of_every_part_round_trips():
    data = table(time=pa.array([T0], pa.int64()), **{"ta g,=": pa.array(["va l,u=e"])},
                 **{"fi eld,=": pa.array([1.5])}, note=pa.array(['say "hi" \\ back']))
    encoder = LineEncoder("my meas,urement", ["ta g,="])
    text = encoder.encode(data).text()
    assert text == ('my\\ meas\\,urement,ta\\ g\\,\\==va\\ l\\,u\\=e fi\\ eld\\,\\==1.5,'
                    'note="say \\"hi\\" \\\\ back" 1700000000000000000\n')
    point = parse_line(text.rstrip("\n"))
    assert point.measurement == "my meas,urement"
    assert point.tags == {"ta g,=": "va l,u=e"}
    assert point.fields == {"fi eld,=": 1.5, "note": 'say "hi" \\ back'}


def test_null_and_empty_tags_are_left_out_not_written_empty():
    data = table(time=pa.array([T0, T0 + 1, T0 + 2], pa.int64()), host=pa.array(["a", None, ""]),
                 region=pa.array([None, "eu", None]), value=pa.array([1.0, 2.0, 3.0]))
    lines = LineEncoder("m", ["host", "region"]).encode(data).text().splitlines()
    assert lines == ["m,host=a value=1 1700000000000000000", "m,region=eu value=2 1700000000000000001",
                     "m value=3 1700000000000000002"]
    for line in lines:
        parse_line(line)


def test_null_nan_and_inf_fields_are_left_out_and_a_row_without_fields_is_rejected():
    data = table(time=pa.array([T0, T0 + 1, T0 + 2, T0 + 3], pa.int64()),
                 a=pa.array([1.25, math.nan, None, math.inf]), b=pa.array([None, 7, None, None], pa.int64()),
                 c=pa.array([None, None, None, -math.inf]))
    encoded = LineEncoder("m").encode(data)
    assert encoded.text().splitlines() == ["m a=1.25 1700000000000000000", "m b=7i 1700000000000000001"]
    assert [row for row, _ in encoded.rejected] == [2, 3]
    assert all("no field" in reason for _, reason in encoded.rejected)
    assert "nan" not in encoded.text().lower() and "inf" not in encoded.text().lower()


def test_field_types_and_timestamps():
    data = table(time=pa.array(pd.to_datetime(["2024-01-01T00:00:00.000000001Z"], utc=True).as_unit("ns")),
                 f=pa.array([0.1]), big=pa.array([1e300]), small=pa.array([-2.5e-8]),
                 i=pa.array([-(2**63)], pa.int64()),
                 u=pa.array([2**64 - 1], pa.uint64()), b=pa.array([False]), s=pa.array([""]))
    point = parse_line(LineEncoder("m").encode(data).text().rstrip("\n"))
    assert point.timestamp == 1704067200000000001
    assert point.fields == {"f": 0.1, "big": 1e300, "small": -2.5e-8, "i": -(2**63), "u": 2**64 - 1, "b": False,
                            "s": ""}
    assert point.field_types == {"f": "float", "big": "float", "small": "float", "i": "int", "u": "uint",
                                 "b": "bool", "s": "string"}


def test_timestamps_in_other_units_become_nanoseconds():
    data = table(time=pa.array([1_700_000_000_000], pa.timestamp("ms", "UTC")), v=pa.array([1.0]))
    assert parse_line(LineEncoder("m").encode(data).text().rstrip()).timestamp == 1_700_000_000_000_000_000


@pytest.mark.parametrize("value", ["ends with \\", "a\\,b", "a\\ b", "a\\=b", "a\\\\b", "line\nbreak", "cr\rhere"])
def test_tag_values_both_databases_would_read_differently_are_rejected_with_a_reason(value):
    data = table(time=pa.array([T0, T0 + 1], pa.int64()), host=pa.array([value, "fine"]), v=pa.array([1.0, 2.0]))
    encoded = LineEncoder("m", ["host"]).encode(data)
    assert encoded.text() == "m,host=fine v=2 1700000000000000001\n"
    [(row, reason)] = list(encoded.rejected)
    assert row == 0 and "host" in reason and ("backslash" in reason or "line break" in reason)


def test_a_backslash_before_an_ordinary_character_is_kept_literally():
    data = table(time=pa.array([T0], pa.int64()), path=pa.array(["C:\\data\\x"]), v=pa.array([1.0]))
    text = LineEncoder("m", ["path"]).encode(data).text()
    assert parse_line(text.rstrip("\n")).tags == {"path": "C:\\data\\x"}


def test_string_field_with_a_line_break_is_rejected():
    data = table(time=pa.array([T0, T0 + 1], pa.int64()), s=pa.array(["two\nlines", "one"]))
    encoded = LineEncoder("m").encode(data)
    assert encoded.text() == 'm s="one" 1700000000000000001\n'
    assert [row for row, _ in encoded.rejected] == [0]


def test_missing_timestamp_is_rejected():
    data = table(time=pa.array([None, T0], pa.int64()), v=pa.array([1.0, 2.0]))
    encoded = LineEncoder("m").encode(data)
    assert encoded.rows == 1 and list(encoded.rejected) == [(0, "timestamp is missing")]


@pytest.mark.parametrize("kind,name", [("measurement", "#comment"), ("measurement", "\tlead"), ("tag key", "time"),
                                       ("field key", "_field"), ("tag key", "ends\\"), ("field key", "a\\ b"),
                                       ("tag key", ""), ("field key", "new\nline")])
def test_invalid_names_are_refused_up_front(kind, name):
    with pytest.raises(ValueError):
        check_name(kind, name)


def test_a_tag_cannot_also_be_a_field():
    with pytest.raises(ValueError, match="both a tag and a field"):
        LineEncoder("m", ["x"], ["x"])


def test_slices_encoded_on_threads_give_the_same_bytes_in_the_same_order():
    rows = 20_000
    rng = np.random.default_rng(3)
    data = table(time=pa.array(np.arange(rows, dtype=np.int64) + T0),
                 host=pa.array(rng.choice(["a", "b b", None], rows).tolist()),
                 v=pa.array(np.where(rng.random(rows) < 0.1, np.nan, rng.normal(size=rows))))
    threaded = LineEncoder("m", ["host"], slice_rows=1_000).encode(data)
    single = LineEncoder("m", ["host"], slice_rows=10**9).encode(data)
    assert len(threaded.chunks) > 1
    assert threaded.to_bytes() == single.to_bytes()
    assert threaded.rejected.rows.tolist() == single.rejected.rows.tolist()
    stamps = [point.timestamp for point in parse_lines(threaded.text())]
    assert stamps == sorted(stamps)


def test_pandas_frames_with_categorical_tags_and_nullable_ints():
    frame = pd.DataFrame({"time": pd.to_datetime([T0, T0 + 1], utc=True), "host": pd.Categorical(["x", None]),
                          "n": pd.array([1, None], dtype="Int64"), "v": [0.5, 1.5]})
    lines = LineEncoder("m", ["host"]).encode(frame).text().splitlines()
    assert lines == ["m,host=x n=1i,v=0.5 1700000000000000000", "m v=1.5 1700000000000000001"]


# ---- property: whatever the input, the output is valid and means exactly the input ---------------------------
TEXT = st.text(alphabet=st.one_of(st.sampled_from(list(',= "\\\n\r\t#_')), st.characters(codec="utf-8")),
               max_size=10)
KEYS = st.text(alphabet=st.one_of(st.sampled_from(list(',= "\\')), st.characters(codec="utf-8",
                                                                                   exclude_characters="\n\r")),
               min_size=1, max_size=6)
FLOATS = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True, width=64))
INTS = st.one_of(st.none(), st.integers(min_value=-(2**63), max_value=2**63 - 1))
BOOLS = st.one_of(st.none(), st.booleans())
STRINGS = st.one_of(st.none(), TEXT)
KINDS = {"float": (FLOATS, pa.float64()), "int": (INTS, pa.int64()), "bool": (BOOLS, pa.bool_()),
         "string": (STRINGS, pa.string())}


def _valid(kind: str, name: str) -> bool:
    try:
        check_name(kind, name)
    except ValueError:
        return False
    return True


@st.composite
def tables(draw):
    measurement = draw(KEYS.filter(lambda name: _valid("measurement", name)))
    keys = draw(st.lists(KEYS.filter(lambda name: _valid("tag key", name)), min_size=1, max_size=6, unique=True))
    split = draw(st.integers(min_value=0, max_value=min(3, len(keys) - 1)))
    tag_keys, field_keys = keys[:split], keys[split:]
    rows = draw(st.integers(min_value=1, max_value=8))
    columns = {"time": pa.array(draw(st.lists(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
                                              min_size=rows, max_size=rows)), pa.int64())}
    kinds = {}
    for key in tag_keys:
        columns[key] = pa.array(draw(st.lists(STRINGS, min_size=rows, max_size=rows)), pa.string())
    for key in field_keys:
        kind = draw(st.sampled_from(sorted(KINDS)))
        strategy, arrow_type = KINDS[kind]
        kinds[key] = kind
        columns[key] = pa.array(draw(st.lists(strategy, min_size=rows, max_size=rows)), arrow_type)
    return measurement, tag_keys, field_keys, kinds, pa.table(columns)


def _bad_tag(value: str) -> bool:
    import re

    return bool(re.search(r"[\r\n]|\\(?:[\\,= ]|$)", value))


def expected_rows(tag_keys, field_keys, kinds, data: pa.Table) -> tuple[list[dict], list[int]]:
    """A plain-Python model of the rules the encoder must follow."""
    good, rejected = [], []
    records = data.to_pylist()
    for index, record in enumerate(records):
        tags = {key: record[key] for key in tag_keys if record[key]}
        fields = {}
        bad = record["time"] is None or any(_bad_tag(value) for value in tags.values())
        for key in field_keys:
            value = record[key]
            if value is None or (kinds[key] == "float" and not math.isfinite(value)):
                continue
            if kinds[key] == "string" and ("\n" in value or "\r" in value):
                bad = True
            fields[key] = value
        if bad or not fields:
            rejected.append(index)
        else:
            good.append({"tags": tags, "fields": fields, "time": record["time"]})
    return good, rejected


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables())
def test_property_output_parses_strictly_and_means_the_input(case):
    measurement, tag_keys, field_keys, kinds, data = case
    encoded = LineEncoder(measurement, tag_keys, field_keys).encode(data)
    good, rejected = expected_rows(tag_keys, field_keys, kinds, data)
    points = parse_lines(encoded.text())
    assert [row for row, _ in encoded.rejected] == rejected
    assert len(points) == len(good) == encoded.rows
    for point, want in zip(points, good, strict=True):
        assert point.measurement == measurement
        assert point.tags == want["tags"]
        assert point.fields == want["fields"]
        assert point.timestamp == want["time"]
        for key, value in want["fields"].items():
            assert point.field_types[key] == {"float": "float", "int": "int", "bool": "bool",
                                              "string": "string"}[kinds[key]], (key, value)


@settings(max_examples=200, deadline=None)
@given(KEYS)
def test_property_a_name_is_either_refused_or_written_so_it_reads_back_the_same(name):
    data = pa.table({"time": pa.array([T0], pa.int64()), name if name != "time" else "t": pa.array(["v"]),
                     "x" if name != "x" else "y": pa.array([1.0])})
    for kind in ("measurement", "tag key"):
        if not _valid(kind, name):
            with pytest.raises(ValueError):
                LineEncoder(name, []) if kind == "measurement" else LineEncoder("m", [name])
            continue
        if kind == "measurement":
            point = parse_line(LineEncoder(name, [], ["x" if name != "x" else "y"]).encode(
                data.select(["time", "x" if name != "x" else "y"])).text().rstrip("\n"))
            assert point.measurement == name
        else:
            point = parse_line(LineEncoder("m", [name]).encode(data).text().rstrip("\n"))
            assert point.tags == {name: "v"}
