"""A vectorized line-protocol encoder: a whole table in, one buffer of lines out, no Python object per row.

The official clients build a `Point` (or a Python string) per row and write `host=` for a null tag; here every
column is formatted by Arrow compute kernels in C++ and the lines are glued in one pass, sliced across a few
threads (the kernels release the GIL). Rules, held to `tests/support/lineprotocol.py`:

- measurement: `,` and space escaped; tag keys, tag values, field keys: `,` `=` and space escaped;
  string fields: `\\` and `"` escaped, then double-quoted.
- a null (or empty) tag is left out of its line; a null, NaN or infinite field is left out; a row left with
  no field, or with no timestamp, is rejected with a reason, never written.
- a tag value with a raw line break, or with a backslash at its end or before `\\` `,` `=` or space, is
  rejected: InfluxDB 2 (Go) and InfluxDB 3 (Rust) parse those differently, or not at all, so no spelling of
  the value lands intact in both. A string field with a line break is rejected for the same reason.
- floats are written in their shortest round-trip form (`0.1`, `1e+20`), integers with `i`, unsigned with
  `u`, booleans as `true`/`false`; timestamps are integer nanoseconds.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["Encoded", "LineEncoder", "Rejected", "check_name"]

# Backslash rules shared by names and tag values (see module docstring).
_BAD_BACKSLASH = re.compile(r"\\(?:[\\,= ]|$)")
_BAD_TAG_VALUE = r"[\r\n]|\\(?:[\\,= ]|$)"
_NEEDS_TAG_ESCAPE = r"[,= ]"
_NULL_STRING = pa.scalar(None, pa.string())
_SLICE_ROWS = 65_536

_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1)),
                                       thread_name_prefix="lp-encode")
        return _pool


def check_name(kind: str, name: str) -> str:
    """Validate a measurement, tag key or field key; return it or raise ValueError saying why."""
    if not name:
        raise ValueError(f"{kind} name is empty")
    if "\n" in name or "\r" in name:
        raise ValueError(f"{kind} name {name!r} contains a line break")
    if _BAD_BACKSLASH.search(name):
        raise ValueError(f"{kind} name {name!r} has a backslash at its end or before \\ , = or space")
    if kind == "measurement":
        if name.startswith("#"):
            raise ValueError(f"measurement name {name!r} starts with '#', which line protocol reads as a comment")
        if name[0].isspace():
            raise ValueError(f"measurement name {name!r} starts with whitespace, which InfluxDB strips")
    else:
        if name == "time":
            raise ValueError(f"{kind} name 'time' is reserved by InfluxDB")
        if name.startswith("_"):
            raise ValueError(f"{kind} name {name!r} starts with '_', which InfluxDB 2 reserves")
    return name


def _escape_measurement(name: str) -> str:
    return name.replace(",", "\\,").replace(" ", "\\ ")


def _escape_key(name: str) -> str:
    return name.replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


@dataclass
class Rejected:
    """Row positions (0-based, in the encoded table) that were not written, and why."""

    rows: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    reasons: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.reasons)

    def __iter__(self) -> Iterator[tuple[int, str]]:
        return zip(self.rows.tolist(), self.reasons, strict=True)


@dataclass
class Encoded:
    """Encoded lines, each ending in `\\n`, as Arrow string arrays (zero-copy views for gzip and sockets)."""

    chunks: list[pa.Array]
    rejected: Rejected
    measurement: str = ""  # the table the lines go to (a history load's steps count windows per table)

    @property
    def rows(self) -> int:
        return sum(len(chunk) for chunk in self.chunks)

    @property
    def nbytes(self) -> int:
        return sum(_span(chunk)[1] - _span(chunk)[0] for chunk in self.chunks)

    def line_ends(self, chunk: pa.Array) -> np.ndarray:
        """Byte offsets (relative to the chunk's first line) where each line of `chunk` ends."""
        offsets = _offsets(chunk)
        return offsets[1:] - offsets[0]

    def views(self) -> Iterator[memoryview]:
        for chunk in self.chunks:
            start, end = _span(chunk)
            if end > start:
                yield memoryview(chunk.buffers()[2])[start:end]

    def to_bytes(self) -> bytes:
        return b"".join(self.views())

    def text(self) -> str:
        return self.to_bytes().decode("utf-8")


def _offsets(chunk: pa.Array) -> np.ndarray:
    buffer = chunk.buffers()[1]
    return np.frombuffer(buffer, dtype=np.int32)[chunk.offset:chunk.offset + len(chunk) + 1]


def _span(chunk: pa.Array) -> tuple[int, int]:
    if len(chunk) == 0:
        return 0, 0
    offsets = _offsets(chunk)
    return int(offsets[0]), int(offsets[-1])


class LineEncoder:
    """Encode tables for one measurement. Columns: `time` (timestamp or int64 ns), tag columns (strings),
    field columns (float, int, uint, bool or string; the Arrow type decides the line-protocol type).

    `tags` and `fields` name the columns, which are also the keys written. Fields default to every column
    that is neither the time nor a tag. Names are checked once, here.
    """

    def __init__(self, measurement: str, tags: Sequence[str] = (), fields: Sequence[str] | None = None, *,
                 time: str = "time", slice_rows: int = _SLICE_ROWS):
        self.measurement = check_name("measurement", measurement)
        self.tags = [check_name("tag key", tag) for tag in tags]
        self.fields = None if fields is None else [check_name("field key", name) for name in fields]
        clash = set(self.tags) & set(self.fields or ())
        if clash:
            raise ValueError(f"{sorted(clash)} cannot be both a tag and a field")
        self.time = time
        self.slice_rows = slice_rows
        self._prefix = _escape_measurement(self.measurement)

    def _field_columns(self, table: pa.Table) -> list[str]:
        if self.fields is not None:
            missing = [name for name in [self.time, *self.tags, *self.fields] if name not in table.column_names]
            if missing:
                raise KeyError(f"columns missing for {self.measurement}: {missing}")
            return self.fields
        missing = [name for name in [self.time, *self.tags] if name not in table.column_names]
        if missing:
            raise KeyError(f"columns missing for {self.measurement}: {missing}")
        skip = {self.time, *self.tags}
        return [check_name("field key", name) for name in table.column_names if name not in skip]

    def encode(self, data: pa.Table | pa.RecordBatch | object) -> Encoded:
        """Encode every row of `data` (an Arrow table/batch or a pandas DataFrame)."""
        table = _as_table(data)
        fields = self._field_columns(table)
        columns = [self.time, *self.tags, *fields]
        table = table.select(columns)
        total = table.num_rows
        if total == 0:
            return Encoded([], Rejected(), self.measurement)
        starts = list(range(0, total, self.slice_rows))
        if len(starts) == 1:
            parts = [self._encode_slice(table, 0, fields)]
        else:
            parts = list(_executor().map(
                lambda start: self._encode_slice(table.slice(start, self.slice_rows), start, fields), starts))
        chunks = [lines for lines, _ in parts if len(lines)]
        rows = [rejected.rows for _, rejected in parts if len(rejected)]
        reasons = [reason for _, rejected in parts for reason in rejected.reasons]
        rejected = Rejected(np.concatenate(rows) if rows else np.empty(0, dtype=np.int64), reasons)
        return Encoded(chunks, rejected, self.measurement)

    # ---- one slice, on a worker thread ----------------------------------------------------------------
    def _encode_slice(self, table: pa.Table, base: int, fields: list[str]) -> tuple[pa.Array, Rejected]:
        rows = table.num_rows
        problems: list[tuple[np.ndarray, object]] = []  # (mask, reason or callable(row) -> reason)

        stamps = _timestamps(table.column(self.time).combine_chunks())
        if stamps.null_count:
            problems.append((_mask(pc.is_null(stamps)), "timestamp is missing"))
            stamps = pc.fill_null(stamps, 0)
        stamp_text = pc.cast(stamps, pa.string())

        head: list[object] = [self._prefix]
        for tag in self.tags:
            piece, bad = _tag_piece(table.column(tag).combine_chunks(), _escape_key(tag))
            head.append(piece)
            if bad is not None:
                values = table.column(tag)
                problems.append((bad, lambda row, tag=tag, values=values: _tag_reason(tag, values[row].as_py())))

        values: list[tuple[str, list[object]]] = []
        any_null = False
        for name in fields:
            parts, bad = _field_parts(table.column(name).combine_chunks(), name)
            if parts is None:
                continue
            if bad is not None:
                problems.append((bad, f"field {name!r}: string contains a line break"))
            any_null = any_null or any(isinstance(part, pa.Array) and part.null_count for part in parts)
            values.append((_escape_key(name), parts))

        if not values:
            problems.append((np.ones(rows, dtype=bool), "no field has a value (every field is empty, NaN or inf)"))
            lines = pa.array([""] * rows, pa.string())
        elif any_null:
            # Each present field as `,key=value`, absent ones as "", joined, then the first comma cut off.
            # (Arrow's own null_handling="skip" drops rows whose values are all null, so it is not used.)
            joined = pc.binary_join_element_wise(
                *[pc.fill_null(pc.binary_join_element_wise(f",{key}=", *parts, ""), "") for key, parts in values], "")
            empty = _mask(pc.equal(pc.binary_length(joined), 0))
            if empty.any():
                problems.append((empty, "no field has a value (every field is empty, NaN or inf)"))
            field_set = pc.utf8_slice_codeunits(joined, 1)
            lines = pc.binary_join_element_wise(*head, " ", field_set, " ", stamp_text, "\n", "")
        else:
            # No value missing anywhere: one pass glues keys (as literals) and values.
            glued: list[object] = []
            for index, (key, parts) in enumerate(values):
                glued.extend([f"{' ' if index == 0 else ','}{key}=", *parts])
            lines = pc.binary_join_element_wise(*head, *glued, " ", stamp_text, "\n", "")

        if not problems:
            return lines, Rejected()
        bad_rows = np.zeros(rows, dtype=bool)
        reasons: dict[int, str] = {}
        for mask, reason in problems:
            for row in np.flatnonzero(mask & ~bad_rows).tolist():
                reasons[row] = reason(row) if callable(reason) else reason  # type: ignore[operator]
            bad_rows |= mask
        lines = pc.filter(lines, pa.array(~bad_rows))
        ordered = sorted(reasons)
        return lines, Rejected(np.asarray(ordered, dtype=np.int64) + base, [reasons[row] for row in ordered])


def _as_table(data: object) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    return pa.Table.from_pandas(data, preserve_index=False)  # type: ignore[arg-type]


def _mask(array: pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(array, False).to_numpy(zero_copy_only=False), dtype=bool)


def _timestamps(column: pa.Array) -> pa.Array:
    kind = column.type
    if pa.types.is_timestamp(kind):
        if kind.unit != "ns":
            column = pc.cast(column, pa.timestamp("ns", kind.tz))
        return pc.cast(column, pa.int64())
    if pa.types.is_integer(kind):
        return pc.cast(column, pa.int64())
    raise TypeError(f"time column must be a timestamp or integer nanoseconds, not {kind}")


def _strings(column: pa.Array) -> pa.Array:
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    if pa.types.is_large_string(column.type) or pa.types.is_string_view(column.type):
        column = pc.cast(column, pa.string())
    if pa.types.is_null(column.type):
        return pa.nulls(len(column), pa.string())
    if not pa.types.is_string(column.type):
        raise TypeError(f"tag columns must hold strings, not {column.type}")
    return column


def _tag_piece(column: pa.Array, key: str) -> tuple[pa.Array, np.ndarray | None]:
    """`,key=value` per row (empty where the value is null or empty), escaping done once per distinct value."""
    encoded = pc.dictionary_encode(_strings(column))
    values = encoded.dictionary
    bad_values = _mask(pc.match_substring_regex(values, _BAD_TAG_VALUE)) if len(values) else np.zeros(0, bool)
    if len(values) and pc.any(pc.match_substring_regex(values, _NEEDS_TAG_ESCAPE)).as_py():
        values = pc.replace_substring_regex(values, r"([,= ])", r"\\\1")
    pieces = pc.binary_join_element_wise(f",{key}=", values, "")
    pieces = pc.if_else(pc.equal(pc.binary_length(values), 0), "", pieces)
    per_row = pc.fill_null(pieces.take(encoded.indices), "")
    if not bad_values.any():
        return per_row, None
    bad = np.asarray(pc.fill_null(pa.array(bad_values).take(encoded.indices), False).to_numpy(
        zero_copy_only=False), dtype=bool)
    return per_row, bad


def _tag_reason(tag: str, value: object) -> str:
    text = str(value)
    if "\n" in text or "\r" in text:
        return f"tag {tag!r}: value {text[:80]!r} contains a line break"
    return (f"tag {tag!r}: value {text[:80]!r} has a backslash at its end or before \\ , = or space, "
            "which InfluxDB 2 and 3 read differently")


def _field_parts(column: pa.Array, name: str) -> tuple[list[object] | None, np.ndarray | None]:
    """The join arguments that spell one field's values (null where missing, so the row leaves it out), and
    the rows to reject; (None, None) for a column that holds nothing at all."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        column = column.dictionary_decode()
        kind = column.type
    if pa.types.is_null(kind):
        return None, None
    if pa.types.is_floating(kind):
        finite = pc.is_finite(column)
        if not pc.all(finite).as_py():
            column = pc.if_else(finite, column, pa.scalar(None, kind))
        return [pc.cast(column, pa.string())], None
    if pa.types.is_boolean(kind):
        return [pc.if_else(column, "true", "false")], None
    if pa.types.is_integer(kind):
        return [pc.cast(column, pa.string()), "u" if pa.types.is_unsigned_integer(kind) else "i"], None
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        text = pc.cast(column, pa.string())
        bad = _mask(pc.match_substring_regex(text, r"[\r\n]"))
        if pc.any(pc.match_substring_regex(text, r'[\\"]')).as_py():
            text = pc.replace_substring(pc.replace_substring(text, "\\", "\\\\"), '"', '\\"')
        return ['"', text, '"'], (bad if bad.any() else None)
    raise TypeError(f"field {name!r} has type {kind}; use a float, integer, boolean or string column")
