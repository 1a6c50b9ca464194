"""Read InfluxDB 2's annotated CSV (a Flux query's answer) as a stream of typed Arrow tables, never all of it.

What the server writes (flux v0.196.1 csv/result.go `ResultEncoder.Encode`, the version InfluxDB v2.7.12
builds with; v0.200.0 of v2.9.1 is the same), through Go's encoding/csv writer with `UseCRLF`:
- a block per schema: the `#datatype`, `#group` and `#default` annotation rows (those asked for in the request's
  dialect), a header row, then data rows. Consecutive tables with the same columns and group key share a block
  (only the `table` column changes); a new schema starts with an empty line and its own annotations;
- the first three columns are the annotation column (empty in data rows), `result` and `table`; the columns
  after them are the table's, typed by `#datatype` (double, long, unsignedLong, boolean, string,
  dateTime:RFC3339 written as RFC3339 with up to nine fractional digits, trailing zeros cut);
- a null is an empty field; so is an empty string (encoding/csv quotes only a field with a comma, a quote, a
  CR or LF, or a leading space, and `\\.`), so the two cannot be told apart here (the reader of a pivoted
  measurement asks for empty strings separately);
- inside a quoted field a quote is doubled, LF is written as CRLF and a CR is dropped;
- each result ends with an empty line; a query that fails after the first bytes were sent ends with an error
  table (`#datatype,string,string`, header `,error,reference`) in a 200 answer.

Blocks are cut at row boundaries into pieces of at most about `piece_bytes` and each piece is parsed by
Arrow's CSV reader with the block's types, so memory stays at a piece whatever the answer's size. Row
boundaries are found by quote parity (a doubled quote keeps it), vectorized.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from ingest.arrowio import read_csv

__all__ = ["TYPES", "Block", "Column", "FluxCsvError", "FluxQueryError", "read_blocks"]

# csv/result.go decodeType: the #datatype names and the Arrow types they are read as.
TYPES: dict[str, pa.DataType] = {
    "double": pa.float64(), "long": pa.int64(), "unsignedLong": pa.uint64(), "boolean": pa.bool_(),
    "string": pa.string(), "dateTime": pa.timestamp("ns", tz="UTC"),
}
_META = 3  # the annotation, result and table columns (csv/result.go annotationIdx, resultIdx, tableIdx)
_CRLF = b"\r\n"


class FluxCsvError(ValueError):
    """The answer is not annotated CSV as Flux writes it; the message says where."""


class FluxQueryError(RuntimeError):
    """The query failed on the server after its answer had begun (the error table of csv/result.go
    `EncodeError`); the message is the server's."""


@dataclass(frozen=True)
class Column:
    name: str
    datatype: str  # as in #datatype, without a format (dateTime:RFC3339 -> dateTime)
    group: bool
    default: str

    @property
    def type(self) -> pa.DataType:
        return TYPES[self.datatype]


@dataclass
class Block:
    """Rows of one annotated block (or a piece of it): its columns (after result and table) and their values."""

    columns: tuple[Column, ...]
    table: pa.Table

    @property
    def group(self) -> list[str]:
        return [column.name for column in self.columns if column.group]


def read_blocks(chunks: Iterable[bytes], *, piece_bytes: int = 8 << 20) -> Iterator[Block]:
    """The data rows of an annotated CSV answer, block by block, each cut into pieces of about `piece_bytes`.
    Raises FluxQueryError for an error table, FluxCsvError for anything that is not Flux's CSV."""
    stream = _Buffer(iter(chunks))
    columns: tuple[Column, ...] | None = None
    while True:
        if not stream.fill_line():
            return
        if stream.at(_CRLF):  # the empty line between blocks and after each result
            stream.skip(2)
            columns = None
            continue
        if stream.at(b"#"):
            columns = _head(stream)
            continue
        if columns is None:
            raise FluxCsvError("data rows without annotations: ask for the datatype, group and default annotations")
        piece = stream.take_rows(piece_bytes)
        if piece:
            yield Block(columns, _parse(piece, columns))


def _head(stream: _Buffer) -> tuple[Column, ...]:
    """Annotation rows and the header row of a block (csv/result.go writeSchema)."""
    annotations: dict[str, list[str]] = {}
    while stream.fill_line() and stream.at(b"#"):
        row = _csv_row(stream.line())
        annotations[row[0][1:]] = row
    if not stream.fill_line():
        raise FluxCsvError("the answer ends after its annotations, without a header row")
    header = _csv_row(stream.line())
    if header[1:] == ["error", "reference"]:
        message = _csv_row(stream.line()) if stream.fill_line() else ["", "", ""]
        raise FluxQueryError(message[1] if len(message) > 1 else "unknown error")
    if "datatype" not in annotations:
        raise FluxCsvError("a block without a #datatype annotation")
    types = annotations["datatype"]
    groups = annotations.get("group", ["", "false", "false"] + ["false"] * (len(header) - _META))
    defaults = annotations.get("default", [""] * len(header))
    if not len(types) == len(groups) == len(defaults) == len(header) or header[1:_META] != ["result", "table"]:
        raise FluxCsvError(f"a block whose annotations do not match its header {header[:8]}")
    columns = []
    for index in range(_META, len(header)):
        datatype = types[index].split(":", 1)[0]
        if datatype not in TYPES:
            raise FluxCsvError(f"column {header[index]!r} has the unknown datatype {types[index]!r}")
        columns.append(Column(header[index], datatype, groups[index] == "true", defaults[index]))
    return tuple(columns)


def _csv_row(line: bytes) -> list[str]:
    return next(csv.reader([line.decode("utf-8")]))


def _parse(piece: bytes, columns: tuple[Column, ...]) -> pa.Table:
    names = [f"c{index}" for index in range(_META + len(columns))]
    types = {names[_META + index]: column.type for index, column in enumerate(columns)}
    options = pcsv.ConvertOptions(column_types=types, include_columns=names[_META:], null_values=[""],
                                  strings_can_be_null=True, quoted_strings_can_be_null=False,
                                  true_values=["true"], false_values=["false"])
    read = pcsv.ReadOptions(column_names=names, block_size=max(1 << 20, len(piece) + 1))
    parse = pcsv.ParseOptions(newlines_in_values=True)
    try:
        table = read_csv(piece, read_options=read, parse_options=parse, convert_options=options)
    except pa.ArrowInvalid:
        # Arrow's timestamp parser refuses the first second of InfluxDB's range (1677-09-21T00:12:43.145224194Z
        # overflows before its fraction is added): read times as text and convert them here.
        times = {name: pa.string() for name, kind in types.items() if pa.types.is_timestamp(kind)}
        options.column_types = {**types, **times}
        table = read_csv(piece, read_options=read, parse_options=parse, convert_options=options)
        for name in times:
            position = table.column_names.index(name)
            table = table.set_column(position, name, _times(table.column(name)))
    arrays = []
    for index, column in enumerate(columns):
        values = table.column(index)
        if column.default and values.null_count:
            values = pc.fill_null(values, pa.scalar(column.default).cast(column.type))
        arrays.append(values)
    return pa.Table.from_arrays(arrays, names=[column.name for column in columns])


def _times(text: pa.ChunkedArray) -> pa.Array:
    """RFC3339 text (with `Z`) to UTC nanoseconds through NumPy, which reads the whole int64 range."""
    values = [None if value is None else np.datetime64(value.rstrip("Z"), "ns").astype(np.int64).item()
              for value in text.to_pylist()]
    return pa.array(values, pa.int64()).cast(pa.timestamp("ns", tz="UTC"))


class _Buffer:
    """The answer's bytes as they arrive, with a read position that is always at the start of a row."""

    def __init__(self, chunks: Iterator[bytes]):
        self.chunks = chunks
        self.data = bytearray()
        self.pos = 0
        self.done = False
        self._scanned = (-1, 0)  # (position, how far an empty line was looked for from it)

    def _more(self) -> bool:
        if self.done:
            return False
        if self.pos > (1 << 20):
            del self.data[:self.pos]
            self.pos = 0
        for chunk in self.chunks:
            if chunk:
                self.data += chunk
                return True
        self.done = True
        return False

    def fill_line(self) -> bool:
        """Whether a whole line (or the rest of a last line without CRLF) is buffered at the position."""
        while self.data.find(_CRLF, self.pos) < 0:
            if not self._more():
                return self.pos < len(self.data)
        return True

    def at(self, prefix: bytes) -> bool:
        return self.data.startswith(prefix, self.pos)

    def skip(self, count: int) -> None:
        self.pos += count

    def line(self) -> bytes:
        """The line at the position (annotations and headers hold no line breaks), consumed."""
        end = self.data.find(_CRLF, self.pos)
        if end < 0:
            end = len(self.data)
        line = bytes(self.data[self.pos:end])
        self.pos = min(end + 2, len(self.data))
        return line

    def take_rows(self, budget: int) -> bytes:
        """Data rows from the position up to the block's end (an empty line outside quotes) or about `budget`
        bytes, always whole rows; consumed."""
        while True:
            end = self._block_end()
            if end is not None and end - self.pos <= budget:
                piece = bytes(self.data[self.pos:end])
                self.pos = end
                return piece
            if len(self.data) - self.pos >= budget:
                # a row longer than the budget goes alone
                cut = self._row_end_before(self.pos + budget) or self._row_end_after(self.pos + budget)
                if cut is not None:
                    piece = bytes(self.data[self.pos:cut])
                    self.pos = cut
                    return piece
            if not self._more():
                piece = bytes(self.data[self.pos:])
                self.pos = len(self.data)
                if piece and not piece.endswith(_CRLF):
                    piece += _CRLF
                return piece

    def _block_end(self) -> int | None:
        """Where the empty line that ends the block at the position starts, if it is buffered."""
        search = self._scanned[1] if self._scanned[0] == self.pos else self.pos
        while True:
            found = self.data.find(b"\r\n\r\n", max(search, self.pos))
            if found < 0:
                self._scanned = (self.pos, max(self.pos, len(self.data) - 3))
                return None
            if self._outside_quotes(found + 2):
                return found + 2
            search = found + 1

    def _row_end_after(self, limit: int) -> int | None:
        """The first row boundary after `limit`, if it is buffered."""
        at = limit
        while True:
            found = self.data.find(_CRLF, at)
            if found < 0:
                return None
            if self._outside_quotes(found + 2):
                return found + 2
            at = found + 1

    def _row_end_before(self, limit: int) -> int | None:
        """The last row boundary (after a CRLF outside quotes) at or before `limit`."""
        at = limit
        while True:
            found = self.data.rfind(_CRLF, self.pos, at)
            if found < 0:
                return None
            if self._outside_quotes(found + 2):
                return found + 2
            at = found

    def _outside_quotes(self, end: int) -> bool:
        """Whether `end` is outside quotes: an even number of `"` from the position (always a row start) to it."""
        return self.data.count(b'"', self.pos, end) % 2 == 0
