"""The block CSV reader: exact line numbers whatever the block boundaries, malformed rows reported, gzip."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

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


def test_invalid_utf8_is_replaced_not_fatal(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("name,v\nM\u00fcnster,1\n".encode("latin-1"))
    [block] = list(CsvFile(path).blocks())
    assert block.table.column("v").to_pylist() == ["1"]
    assert block.table.column("name")[0].as_py().startswith("M")


@pytest.mark.parametrize("content,problem", [(b"", "empty"), (b"\n\n", "empty"), (b"a,a\n1,2\n", "twice")])
def test_unusable_files_say_why(tmp_path, content, problem):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(CsvFormatError, match=problem):
        CsvFile(path, label="my upload")
