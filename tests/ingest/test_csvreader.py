"""The block CSV reader: exact line numbers whatever the block boundaries, gzip, and damaged lines (not UTF-8,
NUL bytes, cut short, wrong field counts, binary garbage) quarantined with their line while every other line
loads, checked on examples and on generated damage against a byte-by-byte model of the rules."""

from __future__ import annotations

import gzip
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.csvreader import CsvFile, CsvFormatError

TRICKY = (b'a,b,c\r\n1,,3\r\n\r\n4,5\r\n"x\r\ny",7,8\r\n6,7,8,9\r\n'
          + b"".join(b"%d,%d,%d\r\n" % (i, i, i) for i in range(10)) + b'last,"q ""u"" o",z')


def read_all(path, block_bytes):
    rows, invalid = [], []
    source = CsvFile(path, block_bytes=block_bytes)
    for block in source.blocks():
        invalid += block.invalid
        lines = block.lines(np.arange(block.table.num_rows)).tolist()
        rows += list(zip(lines, block.table.column("a").to_pylist(), block.table.column("b").to_pylist(),
                         strict=True))
    return source.columns, rows, invalid


@pytest.mark.parametrize("block_bytes", [7, 16, 33, 1 << 20])
@pytest.mark.parametrize("compress", [False, True])
def test_line_numbers_survive_blank_lines_quoted_newlines_bad_rows_and_any_block_size(tmp_path, block_bytes,
                                                                                      compress):
    path = tmp_path / "t.csv"
    path.write_bytes(gzip.compress(TRICKY) if compress else TRICKY)
    columns, rows, invalid = read_all(path, block_bytes)
    assert columns == ["a", "b", "c"]
    assert rows[:3] == [(2, "1", ""), (5, "x\r\ny", "7"), (8, "0", "0")]
    assert rows[-1] == (18, "last", 'q "u" o')
    assert [line for line, *_ in rows] == [2, 5, *range(8, 19)]
    assert invalid == [(4, "2 fields where the header has 3", "4,5"), (7, "4 fields where the header has 3",
                                                                        "6,7,8,9")]


def test_unnamed_leading_index_column_like_pandas_writes_it(tmp_path):
    path = tmp_path / "occupancy.csv"
    path.write_text('"date","Temperature","CO2"\n"140","2015-02-11 14:48:00",21.76,1029.6\n'
                    '"141","2015-02-11 14:49:00",21.79,1000.0\n')
    source = CsvFile(path)
    assert source.columns == ["", "date", "Temperature", "CO2"]
    [block] = list(source.blocks())
    assert block.table.column("CO2").to_pylist() == ["1029.6", "1000.0"] and not block.invalid


def test_bom_and_no_final_newline(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbftime,v\n2024-01-01,1\n2024-01-02,2")
    source = CsvFile(path)
    assert source.columns == ["time", "v"]
    assert [b.table.column("v").to_pylist() for b in source.blocks()] == [["1", "2"]]


def test_invalid_utf8_is_quarantined_not_replaced(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("name,v\nM\u00fcnster,1\nAssen,2\n".encode("latin-1"))
    [block] = list(CsvFile(path).blocks())
    assert block.table.column("name").to_pylist() == ["Assen"] and block.lines([0]).tolist() == [3]
    assert block.invalid == [(2, "not valid UTF-8 (byte 0xfc at column 2)", "M\\xfcnster,1")]


@pytest.mark.parametrize("content,problem", [(b"", "empty"), (b"\n\n", "empty"), (b"a,a\n1,2\n", "twice")])
def test_unusable_files_say_why(tmp_path, content, problem):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(CsvFormatError, match=problem):
        CsvFile(path, label="my upload")


# ---- Damaged lines are quarantined with their line number; every other line still loads ------------------------

GARBAGE = b"\xff\xfe\x00\x13garbage \x80\xc3(,\x9c\x00\xe2\x82"


def read(path, block_bytes: int = 1 << 20, **options):
    """(columns, [(line, values)], [(line, reason, text)]) of a whole file."""
    source = CsvFile(path, block_bytes=block_bytes, **options)
    rows, invalid = [], []
    for block in source.blocks():
        invalid += block.invalid
        lines = block.lines(np.arange(block.table.num_rows)).tolist()
        rows += list(zip(lines, (tuple(row.values()) for row in block.table.to_pylist()), strict=True))
    return source.columns, rows, invalid


@pytest.mark.parametrize("block_bytes", [7, 16, 33, 1 << 20])
@pytest.mark.parametrize("compress", [False, True])
def test_a_binary_garbage_line_is_quarantined_and_every_other_line_loads(tmp_path, block_bytes, compress):
    content = b"a,b,c\r\n1,2,3\r\n" + GARBAGE + b'\r\n4,"x\r\ny",6\r\n7,8,9'
    path = tmp_path / "t.csv"
    path.write_bytes(gzip.compress(content) if compress else content)
    _, rows, invalid = read(path, block_bytes)
    assert rows == [(2, ("1", "2", "3")), (4, ("4", "x\r\ny", "6")), (6, ("7", "8", "9"))]
    assert invalid == [(3, "not valid UTF-8 (byte 0xff at column 1)",
                        "\\xff\\xfe\x00\x13garbage \\x80\\xc3(,\\x9c\x00\\xe2\\x82")]
    json.dumps(invalid)  # fit for the JSON Lines rejects file


@pytest.mark.parametrize("block_bytes", [7, 33, 1 << 20])
def test_nul_bytes_and_carriage_returns_in_unquoted_values_are_quarantined(tmp_path, block_bytes):
    path = tmp_path / "t.csv"
    path.write_bytes(b'a,b\n1,2\nx\x00y,3\n"q\x00",4\n5,6\r7\n8,"9\r"\n10,11\r\r\n')
    _, rows, invalid = read(path, block_bytes)
    assert rows == [(2, ("1", "2")), (6, ("8", "9\r")), (7, ("10", "11"))]
    assert invalid == [(3, "contains a NUL byte (column 2)", "x\x00y,3"), (4, "contains a NUL byte (column 3)",
                                                                         '"q\x00",4'),
                       (5, "a carriage return inside an unquoted value", "5,6\r7")]


@pytest.mark.parametrize("block_bytes", [7, 16, 33, 1 << 20])
def test_a_line_cut_short_inside_quotes_swallows_none_of_the_lines_after_it(tmp_path, block_bytes):
    path = tmp_path / "t.csv"
    path.write_bytes(b'a,b,c\n1,"one",x\n2,"tw\n3,"three",x\n4,5,6\n5,"fi\n6,7,8\n9,10,"ele')
    _, rows, invalid = read(path, block_bytes)
    # line 3's open quote would run to the quote opening "three"; that quote is followed by text, not by a
    # delimiter, so line 3 is taken as cut short. Line 6's never closes: the same. Line 8's is open at the end.
    assert rows == [(2, ("1", "one", "x")), (4, ("3", "three", "x")), (5, ("4", "5", "6")), (7, ("6", "7", "8"))]
    assert invalid == [(3, "cut short inside the quoted value at column 3", '2,"tw'),
                       (6, "cut short inside the quoted value at column 3", '5,"fi'),
                       (8, "cut short: the quoted value at column 6 is not closed at the end of the file",
                        '9,10,"ele')]


@pytest.mark.parametrize("block_bytes", [7, 33, 1 << 20])
def test_a_quote_closed_cleanly_on_a_later_line_makes_one_bad_record_reported_at_its_first_line(tmp_path,
                                                                                               block_bytes):
    path = tmp_path / "t.csv"
    path.write_bytes(b'a,b\n1,"cut\n2,3\n4,",x"\n5,6\n')
    _, rows, invalid = read(path, block_bytes)
    assert rows == [(5, ("5", "6"))]
    assert invalid == [(2, "3 fields where the header has 2", '1,"cut\n2,3\n4,",x"')]


@pytest.mark.parametrize("block_bytes", [16, 1 << 20])
def test_an_open_quote_is_given_up_span_bytes_after_its_line_so_memory_stays_flat(tmp_path, block_bytes):
    path = tmp_path / "t.csv"
    lines = b"".join(b"%d,%d\n" % (i, i) for i in range(200))
    path.write_bytes(b'a,b\n1,"cut\n' + lines + b'9,"a\nlong\nvalue"\n10,"x\n' + b"y" * 80 + b'"\n')
    _, rows, invalid = read(path, block_bytes, span_bytes=64)
    assert rows == [(3 + i, (str(i), str(i))) for i in range(200)] + [(203, ("9", "a\nlong\nvalue"))]
    assert invalid == [(2, "cut short inside the quoted value at column 3", '1,"cut'),
                       (206, "cut short inside the quoted value at column 4", '10,"x'),
                       (207, "1 field where the header has 2", "y" * 80 + '"')]


def test_an_index_column_is_found_by_a_vote_so_one_line_with_an_extra_field_does_not_shift_every_column(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b"a,b\n1,2,3\n4,5\n6,7\n")
    columns, rows, invalid = read(path)
    assert columns == ["a", "b"] and [line for line, _ in rows] == [3, 4]
    assert invalid == [(2, "3 fields where the header has 2", "1,2,3")]


# ---- Generated damage, checked against a plain byte-by-byte model of the rules --------------------------------

def model(data: bytes, span: int) -> tuple[list[str], list[tuple[int, tuple[str, ...] | None, str | None, int]]]:
    """The rules of the csvreader module docstring, read byte by byte over the whole file (no blocks, no parity):
    (columns, [(line, values of a good record, reason of a bad one, lines it spans)])."""
    data = data.removeprefix(b"\xef\xbb\xbf")
    records, position = [], 0
    while position < len(data):
        records.append(_model_record(data, position, span))
        position = records[-1][1]
    records = [record for record in records if data[record[0]:record[1]].strip(b"\r\n")]
    header, rest = records[0], records[1:]
    names = [value.decode() for value in header[3]]
    votes = [len(values) for _, _, kind, values in rest[:10] if kind is None]
    if votes.count(len(names) + 1) > votes.count(len(names)):
        names = ["", *names]
    out = []
    for start, stop, kind, values in rest:
        line = 1 + data.count(b"\n", 0, start)
        reason = _model_encoding(data, start, stop, line) or kind
        if reason is None and len(values) != len(names):
            reason = f"{len(values)} field{'' if len(values) == 1 else 's'} where the header has {len(names)}"
        good = tuple(value.decode() for value in values) if reason is None else None
        out.append((line, good, reason, data.count(b"\n", start, stop - 1) + 1))
    return names, out


def _model_record(data: bytes, start: int, span: int) -> tuple[int, int, str | None, list[bytes]]:
    """(start, stop, quoting or CR problem kind, values) of the record at `start`."""
    size = len(data)
    first = data.find(b"\n", start)
    first = size if first < 0 else first
    values, value, kinds = [], bytearray(), []
    state, at, opened, spanning = "start", start, -1, -1
    while True:
        if at == size:
            if state == "quoted":
                return (start, size, "cut", []) if first == size else (start, first + 1, "cut", [])
            stop = size
            break
        byte = data[at]
        if state == "quoted" and at == first:
            spanning = opened
        if state == "start":
            if byte == ord('"'):
                state, opened, at = "quoted", at, at + 1
            else:
                state = "plain"
        elif state == "quoted":
            if byte == ord('"') and data[at + 1:at + 2] == b'"':
                value.append(byte)
                at += 2
            elif byte == ord('"'):
                state, at = "closed", at + 1
            else:
                value.append(byte)
                at += 1
        elif byte == ord(","):
            values.append(bytes(value))
            value, state, at = bytearray(), "start", at + 1
        elif byte == ord("\n"):
            stop = at + 1
            break
        elif state == "closed":
            run = at
            while run < size and data[run] == ord("\r"):
                run += 1
            if run > at and (run == size or data[run] == ord("\n")):
                stop = min(run + 1, size)
                break
            kinds.append("quote")
            state = "plain"
        else:
            if byte == ord("\r") and at + 1 < size and data[at + 1] not in b"\r\n":
                kinds.append("cr")
            value.append(byte)
            at += 1
    if state == "plain":
        value = value.rstrip(b"\r")
    values.append(bytes(value))
    if spanning >= 0 and (stop > first + 1 + span or "quote" in kinds):
        return start, first + 1, "cut", []
    return start, stop, kinds[0] if kinds else None, values


def _model_encoding(data: bytes, start: int, stop: int, line: int) -> str | None:
    try:
        data[start:stop].decode()
        offset = -1
    except UnicodeDecodeError as exc:
        offset = start + exc.start
    nul = data.find(b"\0", start, stop)
    if nul >= 0 and (offset < 0 or nul < offset):
        offset = nul
    if offset < 0:
        return None
    line_start = data.rfind(b"\n", 0, offset) + 1
    later, column = data.count(b"\n", start, line_start), offset - line_start + 1
    where = f"line {line + later}, column {column}" if later else f"column {column}"
    if data[offset] == 0:
        return f"contains a NUL byte ({where})"
    return f"not valid UTF-8 (byte 0x{data[offset]:02x} at {where})"


def kind(reason: str) -> str:
    """Quoting and carriage-return reasons by kind (the model does not word them), the others as they are."""
    for prefix, name in (("cut short", "cut"), ("text after the closing quote", "quote"),
                         ("a carriage return", "cr")):
        if reason.startswith(prefix):
            return name
    return reason


# Values never start with a delimiter, a quote or a line break: then an open quote left by damage can only be
# closed by a quote that is followed by text, which ends the record at its first line (no good line swallowed),
# or by a quote inside a garbage line, which is never valid UTF-8 (see the module docstring).
VALUE = st.text(st.sampled_from(list('ab 09,"\n\ré中😀')), max_size=6).filter(
    lambda text: not text.startswith((",", '"', "\n", "\r")))
INVALID = [b"\x80", b"\xbf\xbf", b"\xc0\xaf", b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98", b"\xed\xa0\x80",
           b"\xf4\x90\x80\x80", b"\xfe", b"\xff"]
DAMAGE = ["utf8", "nul", "cut", "extra", "missing", "garbage"]


def _field(value: str, quote: bool) -> bytes:
    if quote or any(char in value for char in ',"\n\r'):
        return b'"' + value.replace('"', '""').encode() + b'"'
    return value.encode()


def _damage(draw, record: bytes, values: list[str], quoting: list[bool], how: str) -> bytes:
    columns = len(values)
    if how == "cut":
        cuts = [cut for cut in range(1, len(record))
                if _model_encoding(record[:cut], 0, cut, 1) or _model_record(record[:cut], 0, 1 << 20)[2]
                or len(_model_record(record[:cut], 0, 1 << 20)[3]) != columns]
        if cuts:
            return record[:draw(st.sampled_from(cuts))]
        how = "missing"
    if how == "missing":
        keep = draw(st.integers(1, columns - 1))
        return b",".join(_field(value, quote) for value, quote in zip(values[:keep], quoting, strict=False)) or b'""'
    if how == "extra":
        return record + b"".join(b"," + _field(draw(VALUE), False) for _ in range(draw(st.integers(1, 2))))
    if how == "garbage":
        noise = draw(st.binary(max_size=24)).replace(b"\n", b"")
        at = draw(st.integers(0, len(noise)))
        return noise[:at] + b"\xff" + noise[at:]
    at = draw(st.integers(0, len(record)))
    insert = b"\0" if how == "nul" else draw(st.sampled_from(INVALID))
    damaged = record[:at] + insert + record[at:]
    if how == "utf8":
        try:
            damaged.decode()
            damaged = b"\xff" + damaged
        except UnicodeDecodeError:
            pass
    return damaged


@st.composite
def damaged_csv(draw):
    """(file bytes, span_bytes, records as (line, values, damaged)) of a CSV with some records damaged. A record
    whose quoted value runs more than span_bytes past its first line counts as damaged too."""
    columns = draw(st.integers(2, 4))
    newline = draw(st.sampled_from([b"\n", b"\r\n"]))
    span = draw(st.sampled_from([1 << 20, 24]))
    rows = draw(st.lists(st.lists(VALUE, min_size=columns, max_size=columns), min_size=1, max_size=10))
    damage = dict(draw(st.lists(st.tuples(st.integers(0, len(rows) - 1), st.sampled_from(DAMAGE)), max_size=4)))
    blank = set(draw(st.lists(st.integers(0, len(rows)), max_size=2)))
    parts = [draw(st.sampled_from([b"", b"\xef\xbb\xbf"])), b",".join(b"c%d" % i for i in range(columns))]
    final = draw(st.booleans())  # a line break after the last record
    line, records = 1, []
    for index, values in enumerate(rows):
        parts.append(newline)
        line += 1
        if index in blank:
            parts.append(newline)
            line += 1
        quoting = draw(st.lists(st.booleans(), min_size=columns, max_size=columns))
        record = b",".join(_field(value, quote) for value, quote in zip(values, quoting, strict=True))
        if index in damage:
            record = _damage(draw, record, values, quoting, damage[index])
        ending = len(newline) if final or index < len(rows) - 1 else 0
        long = b"\n" in record and len(record) - record.index(b"\n") - 1 + ending > span
        records.append((line, tuple(values), index in damage or long))
        parts.append(record)
        line += record.count(b"\n")
    if final:
        parts.append(newline)
    return b"".join(parts), span, records


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged_csv())
def test_damaged_lines_are_quarantined_and_every_other_line_loads_whatever_the_blocks(case):
    content, span, truth = case
    expected_columns, expected = model(content, span)
    good = [(line, values) for line, values, _, _ in expected if values is not None]
    bad = [(line, reason) for line, values, reason, _ in expected if values is None]
    with tempfile.TemporaryDirectory() as folder:
        for compress in (False, True):
            path = Path(folder) / f"damaged-{compress}.csv"
            path.write_bytes(gzip.compress(content) if compress else content)
            for block_bytes in (7, 16, 33, 1 << 20):
                columns, rows, invalid = read(path, block_bytes, span_bytes=span)
                assert columns == expected_columns
                assert rows == good, (compress, block_bytes)
                assert [(line, kind(reason)) for line, reason, _ in invalid] == bad, (compress, block_bytes)
                assert len(rows) + len(invalid) == len(expected)  # every record is loaded or quarantined, once
                json.dumps(invalid)
    if expected_columns[0] == "":
        return  # the damage outvoted the header: an index column; the model comparison above covers it
    loaded = dict(rows)
    spans = [(line, line + lines - 1) for line, values, _, lines in expected if values is None]
    quarantined = {line for line, _ in bad}
    damaged_lines = [line for line, _, damaged in truth if damaged]
    first_damage = min(damaged_lines, default=None)
    # Two damaged lines can pair up into one well-formed record (`,"` then `,"` is a value holding a line break):
    # the reader loads it as CSV reads it. Only a loaded record spanning two or more damaged lines excuses them.
    paired = [(line, line + lines - 1) for line, values, _, lines in expected if values is not None and lines > 1
              and sum(line <= damaged <= line + lines - 1 for damaged in damaged_lines) >= 2]
    for line, values, damaged in truth:
        swallowed = any(first < line <= last for first, last in spans + paired)
        if damaged:
            assert line in quarantined or swallowed or any(first <= line <= last for first, last in paired), (
                f"damaged line {line} neither quarantined nor in a bad record")
        elif first_damage is None or line < first_damage:
            assert loaded.get(line) == values, f"good line {line} before any damage was lost"
        else:
            assert loaded.get(line) == values or swallowed, f"good line {line} lost"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from([b"a", b"b", b",", b'"', b'""', b"\n", b"\r", b"\r\n", b"\xff", b"\xc3", b"\x00"]),
                max_size=60).map(b"".join), st.sampled_from([1 << 20, 3, 10]))
def test_any_bytes_at_all_load_without_failing_exactly_as_the_model_reads_them(body, span):
    content = b"c0,c1\n" + body
    expected_columns, expected = model(content, span)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "noise.csv"
        path.write_bytes(content)
        for block_bytes in (1, 7, 16, 1 << 20):
            columns, rows, invalid = read(path, block_bytes, span_bytes=span)
            assert columns == expected_columns
            assert rows == [(line, values) for line, values, _, _ in expected if values is not None]
            assert [(line, kind(reason)) for line, reason, _ in invalid] == [
                (line, reason) for line, values, reason, _ in expected if values is None]
