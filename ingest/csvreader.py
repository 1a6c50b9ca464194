"""Read a large CSV (plain or gzip) in blocks, every value as text, knowing each record's line number, and
quarantine damaged records instead of failing the load.

Arrow's CSV parser does the work (in C++, a block at a time, so memory stays flat), but its streaming reader
cannot tell where a malformed row was, and its invalid-row handler fails on a row that is not valid UTF-8. So
the file is cut into blocks here, always at a record boundary (a newline outside quotes), each block is parsed
on its own, and line numbers are rebuilt from the block's first line (the header is line 1): exactly, also with
blank lines or quoted values that span lines.

Quoting follows Arrow: a quote opens a quoted value only at the start of a field (elsewhere it is text) and a
doubled quote inside one is a quote. Record boundaries come from quote parity, vectorized, as long as every
quote sits where parity reads it right; from a quote that does not (text, damage), the records are found one by
one until quoting is regular again.

A clean block goes to Arrow as it is: that is the fast path, and the only one a clean file takes. A block with
a problem is taken apart record by record (slower, that block only): its bad records land in `CsvBlock.invalid`
as (line, reason, text), the text with undecodable bytes written as `\\xff` escapes so that it fits a JSON
rejects file, and its other records still load with their own line numbers. A record is bad when it
- is not valid UTF-8: "not valid UTF-8 (byte 0xff at column 7)" (columns count bytes), or contains a NUL byte:
  "contains a NUL byte (column 3)";
- has a carriage return inside an unquoted value (Arrow would end the row there);
- has too few or too many fields: "2 fields where the header has 3", as a line cut short mostly has (one cut
  inside its last unquoted value still has all its fields and cannot be told from a shorter value);
- has a quoted value that does not end properly: "cut short: the quoted value at column 9 is not closed at the
  end of the file", or "text after the closing quote of the value at column 5".
The first of these a record has is its reason.

A line cut short inside a quoted value leaves its quote open, so by the rules of CSV the next lines are part of
that value. When such a value spanning lines does not end properly (no closing quote by the end of the file or
within `span_bytes` after the line, or the quote that closes it is followed by text, as when it really is the
opening quote of a field further on), the record is taken to be its first line alone: that line is quarantined
as "cut short inside the quoted value at column N" and reading resumes on the next line, so the lines after it
still load. Only when the open quote happens to be closed cleanly (followed by a delimiter or a line break) by a
quote on a later line do the lines up to there form one record, as CSV says: if that record is bad it is
quarantined once, at its first line, with the text of all its lines.

Whether the header is preceded by an unnamed index column (as pandas writes one) is decided by a vote of the
first records, so that one damaged line among them does not shift every column.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv

from ingest.arrowio import read_csv
from ingest.sources import SourceError

__all__ = ["CsvBlock", "CsvFile", "CsvFormatError"]

log = logging.getLogger("ingest.csv")
_QUOTE, _NEWLINE, _COMMA, _CR = ord('"'), ord("\n"), ord(","), ord("\r")
_BOM = b"\xef\xbb\xbf"
_HEAD_BYTES = 1 << 20  # read to find the header and whether an unnamed index column precedes the named ones
_INDEX_VOTES = 10  # records after the header that decide about that index column
_BARE_CR = "a carriage return inside an unquoted value"
_SMALL_WINDOW = 1 << 18  # bytes looked at after a block that had to be read record by record


class CsvFormatError(SourceError):
    """The file is not a CSV this reader can use (no header, empty, unreadable)."""


class _NeedMore(Exception):
    """The record goes on past the bytes read so far."""


class _Records(NamedTuple):
    """The records of a block: byte ranges [start, stop) (stop past the line break), field counts, and the
    problems seen while cutting them (record index -> reason: quoting, carriage return)."""

    starts: np.ndarray
    stops: np.ndarray
    fields: np.ndarray
    problems: dict[int, str]


@dataclass
class CsvBlock:
    """The good rows of a block as a table of text columns, and its quarantined records.

    `invalid` holds (line, reason, text) for each record that could not be loaded; `lines()` maps rows of
    `table` back to their line in the file.
    """

    table: pa.Table
    first_line: int
    invalid: list[tuple[int | None, str, str]]
    _text: bytes = field(repr=False, default=b"")
    _simple: bool = True  # one row per line, no blank line: row r is on line first_line + r
    _lines: np.ndarray | None = field(repr=False, default=None)

    def lines(self, rows: np.ndarray | list[int]) -> np.ndarray:
        """Line numbers in the file (header = line 1) of the given rows of `table`."""
        rows = np.asarray(rows, dtype=np.int64)
        if self._simple:
            return rows + self.first_line
        if self._lines is None:
            records = _records_by_parity(self._text)
            self._lines = _start_lines(self._text, records.starts, self.first_line)[~_blank(self._text, records)]
        return self._lines[rows]


class CsvFile:
    """One CSV file. `columns` are the header names; an unnamed leading index column (more fields per row than
    names, as pandas writes them) gets the name "".

    `span_bytes` bounds how far past its first line a record whose quoted value spans lines may run; beyond
    that, an open quote counts as never closed (see the module docstring), which keeps memory flat.
    """

    def __init__(self, path: Path, *, label: str | None = None, block_bytes: int = 8 << 20,
                 span_bytes: int = 1 << 20):
        self.path = Path(path)
        self.label = label or str(path)
        self.block_bytes = block_bytes
        self.span_bytes = span_bytes
        self.size = self.path.stat().st_size
        self._raw: BinaryIO | None = None
        with self._open() as stream:
            head = stream.read(_HEAD_BYTES)
            eof = not stream.read(1)
        if not head.strip():
            raise CsvFormatError(f"{self.label}: the file is empty")
        head = head.removeprefix(_BOM)
        start, stop = self._header_bounds(head, eof)
        # where blocks() starts: past the header (offsets after a BOM), and the line number there
        self._body, self._body_line = stop, 1 + head.count(b"\n", 0, stop)
        self.columns = self._header(head, start, stop, eof)

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

    def _header(self, head: bytes, start: int, stop: int, eof: bool) -> list[str]:
        """The column names of the header record head[start:stop], with "" first for an unnamed index column."""
        text = head[start:stop].rstrip(b"\n").rstrip(b"\r").decode("utf-8", "replace")
        names = [name.strip() for name in next(csv.reader(io.StringIO(text, newline="")), [])]
        if not names:
            raise CsvFormatError(f"{self.label}: no header line")
        # Vote among the first records: a wrong line among them must not shift every column.
        votes, position, seen = {len(names): 0, len(names) + 1: 0}, stop, 0
        while position < len(head) and seen < _INDEX_VOTES:
            try:
                end, fields, problem, _ = _scan_record(head, position, eof, self.span_bytes)
            except _NeedMore:
                break
            if head[position:end].strip(b"\r\n"):
                seen += 1
                if problem is None and fields in votes:
                    votes[fields] += 1
            position = end
        if votes[len(names) + 1] > votes[len(names)]:
            names = ["", *names]
        if len(set(names)) != len(names):
            raise CsvFormatError(f"{self.label}: the header names a column twice: {names}")
        return names

    def _header_bounds(self, head: bytes, eof: bool) -> tuple[int, int]:
        """Byte range of the header record (the first one that is not blank) in the head of the file; a header
        whose end is not in sight in the head is its first line."""
        position = 0
        while position < len(head):
            try:
                stop = _scan_record(head, position, eof, self.span_bytes)[0]
            except _NeedMore:
                newline = head.find(b"\n", position)
                if newline < 0:
                    raise CsvFormatError(f"{self.label}: no line break in the first {_HEAD_BYTES >> 20} MiB, "
                                         "so no header line") from None
                stop = newline + 1
            if head[position:stop].strip(b"\r\n"):
                return position, stop
            position = stop
        raise CsvFormatError(f"{self.label}: no header line")

    def blocks(self) -> Iterator[CsvBlock]:
        """Blocks of whole records, in file order, after the header."""
        with self._open() as stream:

            def more(buffer: bytes) -> tuple[bytes, bool]:
                data = stream.read(self.block_bytes)
                return buffer + data, not data

            buffer = stream.read(max(self.block_bytes, len(_BOM)))
            eof = not buffer
            buffer = buffer.removeprefix(_BOM)
            while len(buffer) < self._body and not eof:  # up to the end of the header __init__ found
                buffer, eof = more(buffer)
            line, start = self._body_line, self._body
            # Cut from a window at `start` of the buffer rather than from all of it: after a block that had to be
            # read record by record the window starts small and doubles with each clean block, so a damaged line
            # costs a look at a little more than itself, not at all that was read.
            window = self.block_bytes
            while True:
                if not eof and len(buffer) - start < self.block_bytes:
                    buffer, eof = more(buffer[start:])
                    start = 0
                if start >= len(buffer):
                    break
                end = min(len(buffer), start + window)
                view = buffer if start == 0 and end == len(buffer) else buffer[start:end]
                cut = _cut(view, eof and end == len(buffer), self.span_bytes, self.block_bytes)
                if cut.stop == 0:  # a record longer than the window, or than what was read: look further
                    if end < len(buffer):
                        window *= 2
                    else:
                        buffer, eof = more(buffer[start:])
                        start = 0
                    continue
                block = view if cut.stop == len(view) else view[:cut.stop]
                start += cut.stop
                window = min(window * 2 if cut.records is None else _SMALL_WINDOW, self.block_bytes)
                if block.strip(b"\r\n"):
                    yield self._parse(block, line, cut)
                line += len(cut.newlines) if cut.newlines is not None else block.count(b"\n")

    def _parse(self, block: bytes, first_line: int, cut: _Cut) -> CsvBlock:
        """Fast path for a clean block (one Arrow parse); else record by record."""
        records = cut.records
        if records is None:
            table = self._clean(block, cut)
            if table is not None:
                return CsvBlock(table, first_line, [], block, _simple(block, cut))
            records = _records_by_parity(block)
        return self._sort_out(block, first_line, records)

    def _clean(self, block: bytes, cut: _Cut) -> pa.Table | None:
        """The block as Arrow reads it, or None when a record of it needs a closer look."""
        if b"\0" in block or _has_bare_cr(block, cut):
            return None
        try:
            return self._arrow(block)
        except pa.ArrowInvalid:  # a row with the wrong number of fields, text that is not UTF-8
            return None

    def _arrow(self, data: bytes) -> pa.Table:
        """Parse with Arrow, no invalid-row handler: it would fail on a row that is not UTF-8, and any bad row
        sends the block down the record-by-record path anyway."""
        names = self.columns
        read = pcsv.ReadOptions(column_names=names, use_threads=False, block_size=len(data) + 16)
        parse = pcsv.ParseOptions(newlines_in_values=True)
        convert = pcsv.ConvertOptions(column_types={name: pa.string() for name in names},
                                      strings_can_be_null=False, quoted_strings_can_be_null=False)
        return read_csv(data, read_options=read, parse_options=parse, convert_options=convert)

    def _sort_out(self, block: bytes, first_line: int, records: _Records) -> CsvBlock:
        """Quarantine the bad records of a block; Arrow parses the rest."""
        starts, stops = records.starts, records.stops
        lines = _start_lines(block, starts, first_line)
        blank = _blank(block, records)
        encoding = _encoding_problems(block, records)
        expected = len(self.columns)
        invalid: list[tuple[int | None, str, str]] = []
        bad = np.zeros(len(starts), dtype=bool)
        suspects = (records.fields != expected) | _marked(len(starts), encoding, records.problems)
        for index in np.flatnonzero(~blank & suspects).tolist():
            start, line = int(starts[index]), int(lines[index])
            if index in encoding:
                offset = encoding[index]
                where = _where(block, offset, start, line)
                reason = (f"contains a NUL byte ({where})" if block[offset] == 0
                          else f"not valid UTF-8 (byte 0x{block[offset]:02x} at {where})")
            else:
                reason = records.problems.get(index) or _fields_reason(int(records.fields[index]), expected)
            text = block[start:stops[index]].rstrip(b"\n").rstrip(b"\r")
            invalid.append((line, reason, text.decode("utf-8", "backslashreplace")))
            bad[index] = True
        good = ~blank & ~bad
        if not bad.any():
            kept = block
        else:
            cuts = np.flatnonzero(np.diff(np.concatenate(([True], bad, [True])).astype(np.int8)))
            kept = b"".join(block[starts[begin]:stops[end - 1]] for begin, end in zip(cuts[::2], cuts[1::2],
                                                                                       strict=True))
        expected_rows = int(good.sum())
        try:
            table = (self._arrow(kept) if expected_rows
                     else pa.schema([(name, pa.string()) for name in self.columns]).empty_table())
        except pa.ArrowInvalid as exc:  # records found good that Arrow reads otherwise: a bug here
            raise CsvFormatError(f"{self.label} near line {first_line}: {exc}") from None
        if table.num_rows != expected_rows:
            raise CsvFormatError(f"{self.label} near line {first_line}: {table.num_rows} rows parsed where "
                                 f"{expected_rows} were expected")
        if invalid:
            log.debug("%s: %d records from line %d quarantined", self.label, len(invalid), first_line)
        return CsvBlock(table, first_line, invalid, block, False, lines[good])


def _fields_reason(fields: int, expected: int) -> str:
    return f"{fields} field{'' if fields == 1 else 's'} where the header has {expected}"


def _marked(count: int, *groups: dict[int, object]) -> np.ndarray:
    mask = np.zeros(count, dtype=bool)
    for group in groups:
        if group:
            mask[list(group)] = True
    return mask


def _where(block: bytes, offset: int, record_start: int, record_line: int) -> str:
    """`column C` of a byte (1-based, in bytes), or `line L, column C` when it is on a later line of its record."""
    line_start = block.rfind(b"\n", 0, offset) + 1
    later = block.count(b"\n", record_start, line_start)
    column = offset - line_start + 1
    return f"line {record_line + later}, column {column}" if later else f"column {column}"


def _encoding_problems(block: bytes, records: _Records) -> dict[int, int]:
    """Record index -> offset of its first byte that is NUL or not part of valid UTF-8."""
    found: dict[int, int] = {}
    starts, stops = records.starts, records.stops
    try:
        block.decode("utf-8")
    except UnicodeDecodeError as exc:
        for index in range(int(np.searchsorted(stops, exc.start, side="right")), len(starts)):
            try:
                block[starts[index]:stops[index]].decode("utf-8")
            except UnicodeDecodeError as bad:
                found[index] = int(starts[index]) + bad.start
    if b"\0" in block:
        nuls = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 0)
        owners, first = np.unique(np.searchsorted(stops, nuls, side="right"), return_index=True)
        for index, offset in zip(owners.tolist(), nuls[first].tolist(), strict=True):
            found[index] = min(offset, found.get(index, offset))
    return found


def _start_lines(block: bytes, starts: np.ndarray, first_line: int) -> np.ndarray:
    """Line in the file of each record start: the block's first line plus the line breaks before it."""
    newlines = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == _NEWLINE)
    return first_line + np.searchsorted(newlines, starts)


def _blank(block: bytes, records: _Records) -> np.ndarray:
    """Records that are only line breaks (Arrow skips them, so they are no rows)."""
    data = np.frombuffer(block, dtype=np.uint8)
    content = (data != _NEWLINE) & (data != _CR)
    return ~np.logical_or.reduceat(content, records.starts)


def _quote_parity(quotes: np.ndarray | None, positions: np.ndarray) -> np.ndarray:
    """Whether each position lies inside quotes (an odd number of `"` before it)."""
    if quotes is None or not len(quotes):
        return np.zeros(len(positions), dtype=bool)
    return (np.searchsorted(quotes, positions) & 1).astype(bool)


def _quotes(block: bytes, data: np.ndarray) -> np.ndarray | None:
    return np.flatnonzero(data == _QUOTE) if b'"' in block else None


def _simple(block: bytes, cut: _Cut) -> bool:
    """Whether each line of a block read by parity holds exactly one row: no quoted line break, no line that is
    empty or starts with a carriage return (which might be blank)."""
    newlines, inside = cut.newlines, cut.inside
    if newlines is None or inside is None or inside.any():
        return False
    data = np.frombuffer(block, dtype=np.uint8)
    starts = np.concatenate(([0], newlines + 1))
    if starts[-1] == len(block):
        starts = starts[:-1]
    ends = np.append(newlines, len(block))[:len(starts)]
    return not bool(((ends == starts) | (data[np.minimum(starts, len(block) - 1)] == _CR)).any())


def _bare_crs(data: np.ndarray, quotes: np.ndarray | None) -> np.ndarray:
    """Offsets of carriage returns outside quotes that do not end a line (not followed by CR or LF)."""
    crs = np.flatnonzero(data == _CR)
    following = data[np.minimum(crs + 1, len(data) - 1)]
    bare = (crs + 1 < len(data)) & (following != _CR) & (following != _NEWLINE)
    bare &= ~_quote_parity(quotes, crs)
    return crs[bare]


def _has_bare_cr(block: bytes, cut: _Cut) -> bool:
    data = np.frombuffer(block, dtype=np.uint8)
    newlines = cut.newlines
    if newlines is not None:  # every carriage return ends a line: nothing to look at
        before = newlines[newlines > 0] - 1
        if np.count_nonzero(data == _CR) == np.count_nonzero(data[before] == _CR):
            return False
    return bool(len(_bare_crs(data, _quotes(block, data))))


def _records_by_parity(block: bytes) -> _Records:
    """The records of a block whose quotes are all well placed (so quote parity tells what is quoted)."""
    data = np.frombuffer(block, dtype=np.uint8)
    quotes = _quotes(block, data)
    newlines = np.flatnonzero(data == _NEWLINE)
    stops = newlines[~_quote_parity(quotes, newlines)] + 1
    if not len(stops) or stops[-1] != len(block):
        stops = np.append(stops, len(block))
    starts = np.concatenate(([0], stops[:-1])).astype(np.int64)
    commas = np.flatnonzero(data == _COMMA)
    commas = commas[~_quote_parity(quotes, commas)]
    fields = np.bincount(np.searchsorted(stops, commas, side="right"), minlength=len(stops))[:len(stops)] + 1
    problems = {}
    if block.count(b"\r") != block.count(b"\r\n"):
        problems = {int(index): _BARE_CR for index in
                    np.unique(np.searchsorted(stops, _bare_crs(data, quotes), side="right"))}
    return _Records(starts, stops, fields, problems)


def _first_misplaced_quote(data: np.ndarray, quotes: np.ndarray, eof: bool) -> int:
    """Offset of the first quote after which parity may no longer tell what is quoted (len(data) if none).

    Parity is exact while every opening quote (even count before it) starts a field or doubles a quote, and
    every closing one is followed by a delimiter, a line break or a doubled quote."""
    size = len(data)
    openers, closers = quotes[0::2], quotes[1::2]
    before = data[np.maximum(openers - 1, 0)]
    bad_open = (openers > 0) & (before != _COMMA) & (before != _NEWLINE) & (before != _QUOTE)
    after = data[np.minimum(closers + 1, size - 1)]
    after2 = data[np.minimum(closers + 2, size - 1)]
    at_end, at_end2 = closers + 1 >= size, closers + 2 >= size
    good_close = ~at_end & ((after == _COMMA) | (after == _NEWLINE) | (after == _QUOTE))
    good_close |= ~at_end & (after == _CR) & ((~at_end2 & (after2 == _NEWLINE)) | (at_end2 & eof))
    good_close |= at_end & eof
    first = size
    if bad_open.any():
        first = int(openers[np.argmax(bad_open)])
    if (~good_close).any():
        first = min(first, int(closers[np.argmin(good_close)]))
    if eof and len(quotes) % 2:
        first = min(first, int(quotes[-1]))  # open at the end of the file
    return first


def _first_long_record(newlines: np.ndarray, inside: np.ndarray, size: int, span: int) -> int:
    """Start of the first record that runs more than `span` bytes past its first line (size if none)."""
    ends = newlines[~inside]
    quoted = newlines[inside]
    owner = np.searchsorted(ends, quoted)
    owners, first = np.unique(owner, return_index=True)
    first_breaks = quoted[first]
    stops = np.full(len(owners), size, dtype=np.int64)
    complete = owners < len(ends)
    stops[complete] = ends[owners[complete]] + 1
    long = stops - (first_breaks + 1) > span
    if not long.any():
        return size
    index = int(owners[np.argmax(long)])
    return int(ends[index - 1]) + 1 if index else 0


class _Cut(NamedTuple):
    """Where the leading whole records of a buffer end (stop 0: read on). Either `records`, when they had to be
    found one by one, or the offsets of the line breaks before `stop` and whether each is inside quotes."""

    stop: int
    records: _Records | None = None
    newlines: np.ndarray | None = None
    inside: np.ndarray | None = None


def _cut(buffer: bytes, eof: bool, span: int, most: int) -> _Cut:
    """Cut by quote parity, fast; from a misplaced quote on (parity no longer tells what is quoted), find the
    next records one by one, `most` bytes at most."""
    size = len(buffer)
    data = np.frombuffer(buffer, dtype=np.uint8)
    newlines = np.flatnonzero(data == _NEWLINE)
    inside = np.zeros(len(newlines), dtype=bool)
    suspect = size
    quotes = _quotes(buffer, data)
    if quotes is not None:
        suspect = _first_misplaced_quote(data, quotes, eof)
        inside = _quote_parity(quotes, newlines)
        if inside.any():
            suspect = min(suspect, _first_long_record(newlines, inside, size, span))
    if suspect == size and eof:
        stop = size
    else:
        ends = newlines[~inside & (newlines < suspect)]
        if len(ends):
            stop = int(ends[-1]) + 1
        elif suspect == size:
            return _Cut(0)
        else:
            return _scan(buffer, eof, span, suspect, min(1 << 16, most), most)
    kept = np.searchsorted(newlines, stop)
    return _Cut(stop, None, newlines[:kept], inside[:kept])


def _scan(buffer: bytes, eof: bool, span: int, suspect: int, quiet: int, most: int) -> _Cut:
    """Records one by one from the start of `buffer`, until `quiet` bytes went by without quoting that parity
    would misread (counted from `suspect`, the first such byte), or `most` bytes were read."""
    starts: list[int] = []
    stops: list[int] = []
    fields: list[int] = []
    problems: dict[int, str] = {}
    position, calm_from = 0, suspect
    while position < len(buffer) and position < most and position < calm_from + quiet:
        try:
            stop, count, problem, misread = _scan_record(buffer, position, eof, span)
        except _NeedMore:
            break
        if problem is not None:
            problems[len(starts)] = problem
        if misread:
            calm_from = stop
        starts.append(position)
        stops.append(stop)
        fields.append(count)
        position = stop
    if not starts:
        return _Cut(0)
    return _Cut(position, _Records(np.asarray(starts, dtype=np.int64), np.asarray(stops, dtype=np.int64),
                                   np.asarray(fields, dtype=np.int64), problems))


def _column(data: bytes, offset: int) -> int:
    """1-based byte column of an offset within its line."""
    return offset - data.rfind(b"\n", 0, offset)


def _bare_cr_between(data: bytes, begin: int, end: int) -> bool:
    """Whether a carriage return in data[begin:end] is followed by something other than CR or LF."""
    found = data.find(b"\r", begin, end)
    while found >= 0:
        if found + 1 < len(data) and data[found + 1] not in (_CR, _NEWLINE):
            return True
        found = data.find(b"\r", found + 1, end)
    return False


def _scan_record(data: bytes, start: int, eof: bool, span: int) -> tuple[int, int, str | None, bool]:
    """The record at `start` by the rules of CSV as Arrow reads them: (stop, fields, problem or None, misread).

    A quote opens a quoted value only at the start of a field; elsewhere it is text. A record whose quoted value
    spans lines but does not end properly is its first line alone (see the module docstring). `misread` tells
    that quote parity would have read the record otherwise. Raises _NeedMore when the answer depends on bytes
    not read yet.
    """
    size = len(data)
    first = data.find(b"\n", start)
    if first < 0:
        if not eof:
            raise _NeedMore
        first = size  # the last line, without a line break
    limit = first + 1 + span  # where a record spanning lines must have ended
    fields, problem, misread, text_after_quote = 1, None, False, False
    spanning = -1  # start of the quoted value that holds the first line break
    position = start  # at the start of a field, or in one after the closing quote of a quoted value
    while True:
        if position < size and data[position] == _QUOTE and (position == start or data[position - 1] == _COMMA):
            opened, search = position, position + 1
            while True:
                close = data.find(b'"', search, min(size, limit))
                if close < 0:
                    if first == size:
                        return size, fields, (f"cut short: the quoted value at column {_column(data, opened)} is "
                                              "not closed at the end of the file"), True
                    if size < limit and not eof:
                        raise _NeedMore
                    if spanning < 0:
                        spanning = opened
                    return first + 1, fields, _cut_short(data, spanning), True
                if close + 1 == size and not eof:
                    raise _NeedMore  # a doubled quote, or the closing one
                if close + 1 < size and data[close + 1] == _QUOTE:
                    search = close + 2
                    continue
                break
            if close > first and spanning < 0:
                spanning = opened
            position = close + 1
            following = data[position] if position < size else _NEWLINE
            if following == _COMMA:
                fields += 1
                position += 1
                continue
            if following == _NEWLINE:
                stop = min(position + 1, size)
                break
            if following == _CR:
                run = position
                while run < size and data[run] == _CR:
                    run += 1
                if run == size and not eof:
                    if spanning >= 0 and run > limit:
                        return first + 1, fields, _cut_short(data, spanning), True
                    raise _NeedMore
                if run == size or data[run] == _NEWLINE:
                    misread = misread or run - position > 1
                    stop = min(run + 1, size)
                    break
            misread = text_after_quote = True
            if spanning >= 0:
                return first + 1, fields, _cut_short(data, spanning), True
            problem = problem or f"text after the closing quote of the value at column {_column(data, opened)}"
        # Unquoted text up to the line break, or up to a quote that opens a later field.
        if spanning < 0:
            line_end = first
        else:
            line_end = data.find(b"\n", position, min(size, limit))
            if line_end < 0:
                if eof and size <= limit:
                    line_end = size
                elif size > limit:
                    return first + 1, fields, _cut_short(data, spanning), True
                else:
                    raise _NeedMore
        quote = data.find(b'"', position, line_end)
        while quote >= 0 and (quote == position or data[quote - 1] != _COMMA):
            misread = True  # a quote inside an unquoted value is text; parity would take it for quoting
            quote = data.find(b'"', quote + 1, line_end)
        end = line_end if quote < 0 else quote
        fields += data.count(b",", position, end)
        if problem is None and _bare_cr_between(data, position, end):
            problem = _BARE_CR
        if quote >= 0:
            position = quote
            continue
        stop = min(line_end + 1, size)
        break
    if spanning >= 0 and (stop > limit or text_after_quote):
        return first + 1, fields, _cut_short(data, spanning), True
    return stop, fields, problem, misread


def _cut_short(data: bytes, opened: int) -> str:
    return f"cut short inside the quoted value at column {_column(data, opened)}"
