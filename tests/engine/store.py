"""Databases and tables of the local engine: line protocol in, Apache DataFusion SQL out.

What it keeps of InfluxDB 3's storage model, because plugins can observe it:
- a table's columns are typed on first write (tags dictionary-encoded strings, fields float64 / int64 /
  uint64 / utf8 / bool, `time` a nanosecond timestamp); a later write with another type for a column, or a
  tag written as a field, is refused;
- a point with the same tags and time as an earlier one replaces it (fields merge, the later value wins);
- a write request is all-or-nothing (what plugin writes get: the engine sends them with partial writes off);
- a point without a timestamp gets the ingest time;
- queries run on DataFusion, the SQL engine inside InfluxDB 3, over the tables written so far, with
  `information_schema`, `$name` parameters (strings, as the plugin API passes them), and results converted
  the way the engine converts them: a list of dicts, `time` as int nanoseconds, tags as str, and an error for
  any Arrow type the engine cannot convert.
"""

from __future__ import annotations

import re
import time as _time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from datafusion import SessionConfig, SessionContext

from tests.support.lineprotocol import LineProtocolError, ParsedPoint, parse_line

__all__ = ["DATABASE_LIMIT", "Database", "QueryError", "Table", "WriteError", "rows_from_batches"]

# InfluxDB 3 Core refuses a sixth database.
DATABASE_LIMIT = 5
_DATABASE_NAME = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9_-]{0,62}[a-zA-Z0-9])?")
_KIND_TYPES = {
    "tag": pa.dictionary(pa.int32(), pa.utf8()), "float": pa.float64(), "int": pa.int64(), "uint": pa.uint64(),
    "string": pa.utf8(), "bool": pa.bool_(),
}
_KIND_NAMES = {"float": "float64", "int": "int64", "uint": "uint64", "string": "utf8", "bool": "bool"}
TIME_TYPE = pa.timestamp("ns")


class WriteError(ValueError):
    """A write the server would refuse, with the reason and the line."""


class QueryError(Exception):
    """What `influxdb3_local.query` raises when the query fails (the engine's QueryError)."""


@dataclass
class _Pending:
    """Rows of one write, column-wise, before they become an Arrow batch."""

    table: str
    columns: dict[str, list]
    times: list[int]


class Table:
    """One table: typed columns and Arrow batches, deduplicated lazily on read."""

    def __init__(self, name: str):
        self.name = name
        self.kinds: dict[str, str] = {}
        self._batches: list[pa.Table] = []
        self._keys: set[int] = set()
        self._maybe_duplicates = False
        self._consolidated: pa.Table | None = None
        self.version = 0

    @property
    def tags(self) -> list[str]:
        return [name for name, kind in self.kinds.items() if kind == "tag"]

    def check_point(self, point: ParsedPoint, pending_kinds: dict[str, str]) -> None:
        for key in point.tags:
            known = self.kinds.get(key, pending_kinds.get(key))
            if known not in (None, "tag"):
                raise WriteError(f"column {key!r} of table {self.name!r} is a {_KIND_NAMES[known]} field, "
                                 "written as a tag")
            pending_kinds[key] = "tag"
        for key, kind in point.field_types.items():
            known = self.kinds.get(key, pending_kinds.get(key))
            if known == "tag":
                raise WriteError(f"column {key!r} of table {self.name!r} is a tag, written as a field")
            if known is not None and known != kind:
                raise WriteError(f"invalid field value type for {self.name}.{key}: column is "
                                 f"{_KIND_NAMES[known]}, the write has {_KIND_NAMES[kind]}")
            pending_kinds[key] = kind

    def append(self, columns: Mapping[str, Sequence], times: Sequence[int], kinds: Mapping[str, str]) -> None:
        """Add rows (columns of equal length; None for a missing value) of already-checked kinds."""
        for name, kind in kinds.items():
            self.kinds.setdefault(name, kind)
        arrays = {"time": pa.array(np.asarray(times, dtype=np.int64), type=pa.int64()).cast(TIME_TYPE)}
        for name, values in columns.items():
            arrays[name] = pa.array(values, type=_KIND_TYPES[self.kinds[name]])
        batch = pa.table(arrays)
        self._note_keys(batch)
        self._batches.append(batch)
        self._consolidated = None
        self.version += 1

    def _note_keys(self, batch: pa.Table) -> None:
        """Track series-key hashes so a read only pays for deduplication when a key repeats."""
        key_columns = [name for name in self.tags if name in batch.column_names] + ["time"]
        frame = batch.select(key_columns).to_pandas()
        for name in frame.columns:
            if isinstance(frame[name].dtype, pd.CategoricalDtype):
                frame[name] = frame[name].astype(object)
        hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy()
        if len(np.unique(hashes)) != len(hashes):
            self._maybe_duplicates = True
        new = set(hashes.tolist())
        if not self._maybe_duplicates and not self._keys.isdisjoint(new):
            self._maybe_duplicates = True
        self._keys |= new

    def arrow(self) -> pa.Table:
        """The table as one Arrow table with one row per series key and time."""
        if self._consolidated is not None:
            return self._consolidated
        schema = pa.schema([("time", TIME_TYPE)] + [(name, _KIND_TYPES[kind]) for name, kind in self.kinds.items()])
        parts = []
        for part in self._batches:
            for field in schema:
                if field.name not in part.column_names:
                    part = part.append_column(field.name, pa.nulls(part.num_rows, type=field.type))
            parts.append(part.select(schema.names).cast(schema))
        table = pa.concat_tables(parts) if parts else schema.empty_table()
        if self._maybe_duplicates:
            table = _deduplicate(table, self.tags, schema)
            self._batches = [table]
            self._maybe_duplicates = False
        self._consolidated = table
        return table


def _deduplicate(table: pa.Table, tags: list[str], schema: pa.Schema) -> pa.Table:
    """Last write wins per series key and time, field by field (a later null keeps the earlier value)."""
    keys = [*tags, "time"]
    decoded = table.select(keys).cast(pa.schema([(name, pa.utf8() if name in tags else TIME_TYPE) for name in keys]))
    work = decoded
    for name in schema.names:
        if name not in keys:
            work = work.append_column(name, table.column(name))
    fields = [name for name in schema.names if name not in keys]
    grouped = work.group_by(keys, use_threads=False).aggregate([(name, "last") for name in fields])
    grouped = grouped.rename_columns([name.removesuffix("_last") for name in grouped.column_names])
    return grouped.select(schema.names).cast(schema)


class Database:
    """One database: its tables and a DataFusion context that sees them."""

    def __init__(self, name: str):
        self.name = name
        self.tables: dict[str, Table] = {}
        config = (SessionConfig().with_information_schema(True)
                  .with_default_catalog_and_schema("public", "iox").with_create_default_catalog_and_schema(True))
        self._ctx = SessionContext(config)
        self._registered: dict[str, int] = {}

    # ---- writes --------------------------------------------------------------------------------------------
    def write_lines(self, lines: Iterable[str], ingest_time_ns: int | None = None) -> list[dict[str, Any]]:
        """Apply one all-or-nothing write; returns the written rows as the WAL hands them to plugins."""
        now = _time.time_ns() if ingest_time_ns is None else ingest_time_ns
        points: list[ParsedPoint] = []
        kinds: dict[str, dict[str, str]] = {}
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                point = parse_line(line, number)
            except LineProtocolError as exc:
                raise WriteError(f"invalid line protocol: {exc}") from None
            table = self.tables.get(point.measurement) or Table(point.measurement)
            table.check_point(point, kinds.setdefault(point.measurement, {}))
            points.append(point)
        pending: dict[str, _Pending] = {}
        rows = []
        for point in points:
            batch = pending.setdefault(point.measurement, _Pending(point.measurement, {}, []))
            row_number = len(batch.times)
            stamp = now if point.timestamp is None else point.timestamp
            batch.times.append(stamp)
            for key, value in {**point.tags, **point.fields}.items():
                column = batch.columns.setdefault(key, [None] * row_number)
                column.append(value)
            for column in batch.columns.values():
                if len(column) < row_number + 1:
                    column.append(None)
            rows.append((point.measurement, {**point.tags, **point.fields, "time": stamp}))
        for name, batch in pending.items():
            table = self.tables.setdefault(name, Table(name))
            table.append(batch.columns, batch.times, kinds[name])
        return [{"table": table, "row": row} for table, row in rows]

    def load_frame(self, table_name: str, frame: pd.DataFrame, tags: Sequence[str], time_column: str = "time") -> None:
        """Bulk-load a DataFrame (benchmarks, large fixtures): `time` int ns or datetime, other columns typed
        by dtype. Checked like a write, without the line-protocol round trip."""
        table = self.tables.setdefault(table_name, Table(table_name))
        kinds: dict[str, str] = {}
        columns: dict[str, list] = {}
        for name in frame.columns:
            if name == time_column:
                continue
            series = frame[name]
            if name in tags:
                kind = "tag"
            elif pd.api.types.is_bool_dtype(series):
                kind = "bool"
            elif pd.api.types.is_float_dtype(series):
                kind = "float"
            elif pd.api.types.is_unsigned_integer_dtype(series):
                kind = "uint"
            elif pd.api.types.is_integer_dtype(series):
                kind = "int"
            else:
                kind = "string"
            known = table.kinds.get(name)
            if known is not None and known != kind:
                raise WriteError(f"column {name!r} of {table_name!r} is {known}, the frame has {kind}")
            if kind == "float" and not np.isfinite(series.dropna().to_numpy()).all():
                raise WriteError(f"column {name!r} has a non-finite value")
            kinds[name] = kind
            columns[name] = series.astype(object).where(series.notna(), None).tolist()
        stamps = frame[time_column]
        times = (stamps.astype("int64") if pd.api.types.is_integer_dtype(stamps)
                 else pd.to_datetime(stamps, utc=True).dt.as_unit("ns").astype("int64")).to_numpy()
        table.append(columns, times, kinds)

    # ---- queries -------------------------------------------------------------------------------------------
    def query(self, sql: str, params: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        for name, table in self.tables.items():
            if self._registered.get(name) != table.version:
                if name in self._registered:
                    self._ctx.deregister_table(name)
                arrow = table.arrow()
                self._ctx.register_record_batches(name, [arrow.to_batches() or [pa.RecordBatch.from_pylist(
                    [], schema=arrow.schema)]])
                self._registered[name] = table.version
        values = {str(key): str(value) for key, value in (params or {}).items()}
        try:
            frame = self._ctx.sql(sql, param_values=values) if values else self._ctx.sql(sql)
            batches = frame.collect()
        except Exception as exc:  # DataFusion raises its own exception types; the engine wraps them all
            raise QueryError(f"{exc} (database: {self.name})") from None
        return rows_from_batches(batches)


def _column_values(array: pa.ChunkedArray | pa.Array) -> list:
    kind = array.type
    if pa.types.is_int64(kind) or pa.types.is_uint64(kind) or pa.types.is_float64(kind) \
            or pa.types.is_boolean(kind) or pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return array.to_pylist()
    if pa.types.is_timestamp(kind) and kind.unit == "ns":
        return array.cast(pa.int64()).to_pylist()
    if pa.types.is_dictionary(kind) and pa.types.is_int32(kind.index_type) and pa.types.is_string(kind.value_type):
        return array.cast(pa.utf8()).to_pylist()
    raise QueryError(f"unsupported Arrow type for Python conversion: {kind}. Supported types: Int64, UInt64, "
                     "Float64, Boolean, Utf8, LargeUtf8, Timestamp(Nanosecond), Dictionary(Int32, Utf8).")


def rows_from_batches(batches: Sequence[pa.RecordBatch]) -> list[dict[str, Any]]:
    """Query results as the engine returns them to Python: a list of dicts, one per row."""
    rows: list[dict[str, Any]] = []
    for batch in batches:
        if batch.num_rows == 0:
            continue
        columns = [_column_values(batch.column(index)) for index in range(batch.num_columns)]
        names = batch.schema.names
        rows.extend(dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True))
    return rows


def check_database_name(name: str) -> None:
    if not _DATABASE_NAME.fullmatch(name):
        raise WriteError(f"invalid database name {name!r}")
