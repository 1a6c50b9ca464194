"""Read a large CSV (plain or gzip) in blocks, every value as text, knowing each record's line number.

Arrow's CSV parser does the work (in C++, a block at a time, so memory stays flat), but its streaming reader
cannot tell where a malformed row was. So the file is cut into blocks here, always at a record boundary
(a newline outside quotes), each block is parsed on its own, and line numbers are rebuilt from the block's
first line: exactly, also with blank lines or quoted values that span lines (then the block is re-scanned
with the `csv` module, only when a row of it is rejected). Rows with too few or too many fields are reported
with their line number and text instead of stopping the load.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv

from ingest.sources import SourceError

__all__ = ["CsvBlock", "CsvFile", "CsvFormatError"]

log = logging.getLogger("ingest.csv")
_QUOTE, _NEWLINE = ord('"'), ord("\n")


class CsvFormatError(SourceError):
    """The file is not a CSV this reader can use (no header, empty, unreadable)."""


@dataclass
class CsvBlock:
    table: pa.Table
    first_line: int
    invalid: list[tuple[int | None, str, str]]  # (line, reason, text) of rows with the wrong number of fields
    _text: bytes = field(repr=False, default=b"")
    _simple: bool = True
    _records: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))  # record number per row
    _starts: np.ndarray | None = None

    def lines(self, rows: np.ndarray | list[int]) -> np.ndarray:
        """Line numbers in the file (header = line 1) of the given rows of `table`."""
        return self._record_lines(self._records[np.asarray(rows, dtype=np.int64)])

    def _record_lines(self, records: np.ndarray) -> np.ndarray:
        if self._simple:
            return records - 1 + self.first_line
        if self._starts is None:
            self._starts = _record_start_lines(self._text, self.first_line)
        return self._starts[records - 1]


def _record_start_lines(text: bytes, first_line: int) -> np.ndarray:
    """Start line of each non-empty record of `text` (what Arrow counts as rows), via the csv module."""
    reader = csv.reader(io.StringIO(text.decode("utf-8", "replace"), newline=""))
    starts, line = [], first_line
    for record in reader:
        if record:
            starts.append(line)
        line = first_line + reader.line_num
    return np.asarray(starts, dtype=np.int64)


class CsvFile:
    """One CSV file. `columns` are the header names; an unnamed leading index column (more fields per row than
    names, as pandas writes them) gets the name ""."""

    def __init__(self, path: Path, *, label: str | None = None, block_bytes: int = 8 << 20):
        self.path = Path(path)
        self.label = label or str(path)
        self.block_bytes = block_bytes
        self.size = self.path.stat().st_size
        self._raw: BinaryIO | None = None
        with self._open() as stream:
            head = stream.read(min(block_bytes, 1 << 20))
        if not head.strip():
            raise CsvFormatError(f"{self.label}: the file is empty")
        self.columns = self._header(head)

    def _open(self) -> BinaryIO:
        raw = open(self.path, "rb")  # noqa: SIM115 - closed through the stream returned
        self._raw = raw
        if raw.read(2) == b"\x1f\x8b":
            raw.seek(0)
            return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
        raw.seek(0)
        return raw

    @property
    def position(self) -> int:
        """Bytes of the file on disk consumed so far (for a progress bar)."""
        return self._raw.tell() if self._raw is not None and not self._raw.closed else self.size

    def _header(self, head: bytes) -> list[str]:
        head = head.removeprefix(b"\xef\xbb\xbf")
        first = _record_cut(head, final=True, first_only=True)
        second = first + _record_cut(head[first:], final=False, first_only=True)
        records = [row for row in csv.reader(io.StringIO(head[:second or first].decode("utf-8", "replace"),
                                                         newline="")) if row]
        if not records:
            raise CsvFormatError(f"{self.label}: no header line")
        names = [name.strip() for name in records[0]]
        if second > first and len(records) > 1 and len(records[1]) == len(names) + 1:
            names = ["", *names]
        if len(set(names)) != len(names):
            raise CsvFormatError(f"{self.label}: the header names a column twice: {names}")
        return names

    def blocks(self) -> Iterator[CsvBlock]:
        """Blocks of whole records, in file order, after the header."""
        with self._open() as stream:
            buffer = stream.read(self.block_bytes).removeprefix(b"\xef\xbb\xbf")
            buffer = buffer[_record_cut(buffer, final=True, first_only=True):]
            line, eof = 2, False
            while buffer or not eof:
                if not eof and len(buffer) < self.block_bytes:
                    more = stream.read(self.block_bytes)
                    eof = not more
                    buffer += more
                cut = len(buffer) if eof else _record_cut(buffer, final=False)
                if cut == 0:
                    if eof:
                        break
                    more = stream.read(self.block_bytes)  # a record longer than a block: read on
                    eof = not more
                    buffer += more
                    continue
                block, buffer = buffer[:cut], buffer[cut:]
                if block.strip():
                    yield self._parse(block, line)
                line += block.count(b"\n")

    def _parse(self, block: bytes, first_line: int) -> CsvBlock:
        invalid: list[tuple[int | None, str, str]] = []

        def handler(row: pcsv.InvalidRow) -> str:
            invalid.append((row.number, f"{row.actual_columns} fields where the header has {row.expected_columns}",
                            row.text))
            return "skip"

        names = self.columns
        read = pcsv.ReadOptions(column_names=names, use_threads=False, block_size=len(block) + 16)
        parse = pcsv.ParseOptions(newlines_in_values=True, invalid_row_handler=handler)
        convert = pcsv.ConvertOptions(column_types={name: pa.string() for name in names},
                                      strings_can_be_null=False, quoted_strings_can_be_null=False)
        try:
            table = pcsv.read_csv(io.BytesIO(block), read_options=read, parse_options=parse, convert_options=convert)
        except pa.ArrowInvalid as exc:
            if "UTF8" not in str(exc).upper():
                raise CsvFormatError(f"{self.label} near line {first_line}: {exc}") from None
            log.warning("%s: lines from %d are not valid UTF-8; undecodable bytes were replaced", self.label,
                        first_line)
            invalid.clear()
            block = block.decode("utf-8", "replace").encode("utf-8")
            table = pcsv.read_csv(io.BytesIO(block), read_options=read, parse_options=parse, convert_options=convert)
        simple = not _has_quoted_newline(block) and b"\n\n" not in block and b"\n\r\n" not in block \
            and not block.startswith((b"\n", b"\r\n"))
        bad_records = {number for number, _, _ in invalid if number is not None}
        total = table.num_rows + len(invalid)
        records = np.asarray([number for number in range(1, total + 1) if number not in bad_records]
                             if bad_records else np.arange(1, total + 1), dtype=np.int64)
        out = CsvBlock(table, first_line, [], block, simple, records)
        if invalid:
            numbers = [number for number, _, _ in invalid]
            if all(number is not None for number in numbers):
                lines: list[int | None] = out._record_lines(np.asarray(numbers, dtype=np.int64)).tolist()
            else:
                lines = [None] * len(invalid)
            out.invalid = [(line, reason, text) for line, (_, reason, text) in zip(lines, invalid, strict=True)]
        return out


def _quote_parity(buffer: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Newline offsets, and whether each lies inside quotes (an odd number of `"` before it)."""
    data = np.frombuffer(buffer, dtype=np.uint8)
    newlines = np.flatnonzero(data == _NEWLINE)
    if not buffer.count(b'"'):
        return newlines, np.zeros(len(newlines), dtype=bool)
    quotes = np.flatnonzero(data == _QUOTE)
    return newlines, (np.searchsorted(quotes, newlines) & 1).astype(bool)


def _has_quoted_newline(block: bytes) -> bool:
    if b'"' not in block:
        return False
    _, odd = _quote_parity(block)
    return bool(odd.any())


def _record_cut(buffer: bytes, *, final: bool, first_only: bool = False) -> int:
    """Offset just past the last (or first) newline that ends a record; len(buffer) at the end of the file."""
    newlines, odd = _quote_parity(buffer)
    ends = newlines[~odd]
    if len(ends):
        return int(ends[0] if first_only else ends[-1]) + 1
    return len(buffer) if final else 0
