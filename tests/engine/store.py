"""Databases and tables of the local engine: line protocol in, Apache DataFusion SQL out.

What it keeps of InfluxDB 3 Core's storage model (v3.10.1), because plugins and clients can observe it:
- the catalog: a table's columns are typed on first write (tags dictionary-encoded strings, fields float64 /
  int64 / uint64 / utf8 / bool, `time` a nanosecond timestamp) and a write of another type is refused with
  the catalog's message; Core's limits (5 databases, 2,000 tables over all databases, 500 columns per table)
  refuse growth with the catalog's messages;
- the write path (influxdb3_write/src/write_buffer/validator.rs): lines are validated one by one against a
  catalog transaction; with `accept_partial` the valid lines are written and the invalid ones reported per
  line (the catalog changes of every line, even failed ones, are committed), without it the first invalid line
  fails the whole write and commits nothing; a point without a timestamp gets the ingest time;
- a point with the same tags and time as an earlier one replaces it (fields merge, the later value wins);
- queries run on DataFusion, configured as InfluxDB 3 configures it (information_schema, catalog `public`,
  schema `iox`, string types not mapped to Utf8View), over tables whose columns are sorted by name like the
  catalog's schema; errors carry the server's texts and HTTP statuses (http.rs `datafusion_error_status_code`);
- Parquet files (tests/engine/parquet.py): every row knows whether it is still buffered or in which persisted
  file it is, and a query counts, per table scanned, the files its time filter selects and fails above the
  file limit with Core's message.
Results are converted for plugins the way the engine converts them (tests/engine/api.py).
"""

from __future__ import annotations

import json
import time as _time
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from datafusion import SessionConfig, SessionContext
from datafusion.catalog import Schema as DataFusionSchema

from tests.engine.parquet import ParquetFile, file_limit_message
from tests.engine.timebounds import BoundsError, scan_bounds
from tests.support.lineprotocol import LineProtocolError, ParsedPoint, parse_line

__all__ = [
    "COLUMNS_PER_TABLE_LIMIT", "DATABASE_LIMIT", "INTERNAL_DATABASE", "TABLE_LIMIT", "Catalog", "CatalogError",
    "Database", "InvalidDatabaseName", "LineError", "PanicException", "QueryError", "Table", "WriteError",
    "WriteResult", "check_database_name", "datafusion_status", "rows_from_batches", "validate_db_name",
    "validate_plugin_db_name",
]

# influxdb3/src/commands/serve.rs (v3.10.1): CORE_NUM_DBS_LIMIT, CORE_NUM_TABLES_LIMIT,
# CORE_NUM_COLUMNS_PER_TABLE_LIMIT. Databases and tables are counted over the whole catalog, without
# `_internal` and deleted ones (influxdb3_catalog/src/catalog/versions/v3/inner.rs `current_usage`); the
# column limit counts tags and fields, not `time` (transaction.rs `check_columns_limit`).
DATABASE_LIMIT = 5
TABLE_LIMIT = 2000
COLUMNS_PER_TABLE_LIMIT = 500
# influxdb3_catalog/src/catalog.rs: the system database every catalog has (listed, never counted).
INTERNAL_DATABASE = "_internal"

_KIND_TYPES = {
    "tag": pa.dictionary(pa.int32(), pa.utf8()), "float": pa.float64(), "int": pa.int64(), "uint": pa.uint64(),
    "string": pa.utf8(), "bool": pa.bool_(),
}
# schema crate `InfluxColumnType` Display (influxdb3_core): how the catalog's errors name column types.
_COLUMN_TYPE_NAMES = {
    "tag": "iox::column_type::tag", "float": "iox::column_type::field::float",
    "int": "iox::column_type::field::integer", "uint": "iox::column_type::field::uinteger",
    "string": "iox::column_type::field::string", "bool": "iox::column_type::field::boolean",
    "time": "iox::column_type::timestamp",
}
TIME_TYPE = pa.timestamp("ns")
_FILE = "__file"  # hidden column: -1 while buffered, else the id of the Parquet file the row is in
_BUFFERED = -1
_PRECISION_NS = {"second": 10**9, "millisecond": 10**6, "microsecond": 10**3, "nanosecond": 1}
_PRECISION_NAMES = {"auto": "Auto", "second": "Second", "millisecond": "Millisecond", "microsecond": "Microsecond",
                    "nanosecond": "Nanosecond"}


# ---- errors ---------------------------------------------------------------------------------------------------
def _server_parse_message(line: str, reason: str) -> str:
    """The server's parser message where we know it (influxdb3_core influxdb_line_protocol/src/lib.rs Error, seen
    from a real 3.6 server): a line without a field set, or whose field set does not start with key=value, is "No
    fields were provided" (the field set is optional to the parser, then missing); other texts are the strict
    parser's own (tests/support/lineprotocol.py)."""
    if " " not in line.replace("\\ ", "") or reason.endswith("has no '='"):
        return "No fields were provided"
    return reason


class WriteError(ValueError):
    """A write the server refuses; str() is the server's write_buffer::Error text."""

    def __init__(self, message: str, line_error: LineError | None = None):
        super().__init__(message)
        self.line_error = line_error


class CatalogError(WriteError):
    """influxdb3_catalog CatalogError: `kind` is the variant name (AlreadyExists, TooManyDbs, ...)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


class InvalidDatabaseName(WriteError):
    """http.rs `validate_db_name` (HTTP API) or influxdb3_types `DatabaseName::new` (plugins) refused a name."""


class QueryError(Exception):
    """What `influxdb3_local.query` raises (system_py.rs: `error: {e} executing query on {db}: {query}`).

    `error` is the QueryExecutorError text (`e`), `datafusion` the DataFusion error inside it, `status` the
    HTTP status /api/v3/query_sql answers with, `stage` planning | execution | database."""

    def __init__(self, error: str, database: str, query: str, *, status: int, stage: str,
                 datafusion: str | None = None, message: str | None = None):
        super().__init__(message if message is not None else f"error: {error} executing query on {database}: {query}")
        self.error, self.database, self.query = error, database, query
        self.status, self.stage, self.datafusion = status, stage, datafusion


class PanicException(BaseException):  # pyo3's name
    """pyo3_runtime.PanicException: a Rust panic inside a plugin API call (derives from BaseException)."""


@dataclass(frozen=True)
class LineError:
    """influxdb3_types/src/write.rs `WriteLineError`."""

    original_line: str
    line_number: int
    error_message: str

    def as_json(self) -> dict[str, Any]:
        """Serialize: field order error_message, line_number, original_line; the line cut to 20 bytes at a
        char boundary (TRUNCATE_LIMIT; v3.6.0, influxdb3_write/src/lib.rs, cuts at byte 20 even inside a
        character, which panics)."""
        raw = self.original_line.encode("utf-8")[:20]
        return {"error_message": self.error_message, "line_number": self.line_number,
                "original_line": raw.decode("utf-8", errors="ignore")}


@dataclass
class WriteResult:
    rows: list[dict[str, Any]] = field(default_factory=list)  # [{"table", "row"}] as the WAL hands them to plugins
    line_errors: list[LineError] = field(default_factory=list)
    line_count: int = 0


# ---- database names ---------------------------------------------------------------------------------------------
def validate_db_name(name: str) -> None:
    """http.rs (v3.10.1) `validate_db_name`: what the HTTP API accepts (create database, write_lp, create table)."""
    if not name:
        raise InvalidDatabaseName("db name cannot be empty")
    if len(name.encode("utf-8")) > 511:  # MAXIMUM_DATABASE_NAME_LENGTH
        raise InvalidDatabaseName("db name too long: max 511")
    separator_seen = False
    for index, char in enumerate(name):
        if len(char.encode("utf-8")) > 1:
            raise InvalidDatabaseName("invalid character in database or rp name: must be ASCII, containing only "
                                      "letters, numbers, underscores, or hyphens")
        if index == 0:
            if not char.isascii() or not char.isalnum():
                raise InvalidDatabaseName("db name did not start with a number or letter")
            continue
        if char == "/":
            if separator_seen:
                raise InvalidDatabaseName("db name with invalid retention policy, if providing a retention policy "
                                          "name, must be of form '<db_name>/<rp_name>'")
            separator_seen = True
        elif not (char.isascii() and (char.isalnum() or char in "_-")):
            raise InvalidDatabaseName("invalid character in database or rp name: must be ASCII, containing only "
                                      "letters, numbers, underscores, or hyphens")
    if name.endswith("/"):
        raise InvalidDatabaseName("db name with invalid retention policy, if providing a retention policy name, "
                                  "must be of form '<db_name>/<rp_name>'")


def validate_plugin_db_name(name: str) -> None:
    """influxdb3_types/src/database_name.rs `DatabaseName::new`: what plugin writes and queries accept
    (1..=511 chars, alphanumeric in the Unicode sense, '/', '_', '-')."""
    if not 1 <= len(name) <= 511:
        raise InvalidDatabaseName(f"database name {name[:511]} length must be between 1 and 511 characters")
    for offset, char in enumerate(name):
        if not (char.isalnum() or unicodedata.category(char).startswith("N") or char in "/_-"):
            raise InvalidDatabaseName(f"database name '{name[:511]}' contains invalid character, character number "
                                      f"{offset} is not allowed")


check_database_name = validate_db_name  # the name the engine used before


# ---- the catalog ------------------------------------------------------------------------------------------------
class Catalog:
    """What the whole catalog shares: limits, ids and usage over all databases."""

    def __init__(self, databases: Callable[[], Iterable[Database]], *, database_limit: int = DATABASE_LIMIT,
                 table_limit: int = TABLE_LIMIT, column_limit: int = COLUMNS_PER_TABLE_LIMIT):
        self._databases = databases
        self.database_limit, self.table_limit, self.column_limit = database_limit, table_limit, column_limit
        self.next_database_id = 0
        self.uuid = "00000000-0000-4000-8000-000000000000"
        # `--query-file-limit` (None: no file accounting) and the wall clock (ns) of the retention cutoff
        self.query_file_limit: int | None = None
        self.wall_clock: Callable[[], int] = _time.time_ns

    def database_count(self) -> int:
        return sum(1 for db in self._databases() if not db.deleted and db.name != INTERNAL_DATABASE)

    def table_count(self) -> int:
        return sum(len(db.tables) for db in self._databases() if not db.deleted and db.name != INTERNAL_DATABASE)

    def check_new_database(self) -> None:
        """ops/database.rs `limits_check` and catalog.rs `begin_database_transaction`."""
        if self.database_count() >= self.database_limit:
            raise CatalogError("TooManyDbs", f"Adding a new database would exceed limit of {self.database_limit} "
                                             "databases")

    def new_database_id(self) -> int:
        self.next_database_id += 1
        return self.next_database_id - 1


# ---- tables -----------------------------------------------------------------------------------------------------
class Table:
    """One table: typed columns and Arrow batches, deduplicated lazily on read.

    Rows carry a hidden column with the Parquet file they are in (-1: still in the write buffer)."""

    def __init__(self, name: str, table_id: int = 0):
        self.name = name
        self.id = table_id
        self.kinds: dict[str, str] = {}
        self._batches: list[pa.Table] = []
        self._keys: set[int] = set()
        self._maybe_duplicates = False
        self._full: pa.Table | None = None
        self._visible: pa.Table | None = None
        self.version = 0

    @property
    def tags(self) -> list[str]:
        return [name for name, kind in self.kinds.items() if kind == "tag"]

    def schema(self) -> pa.Schema:
        """The catalog's schema: every column, `time` included, sorted by name (schema/table.rs
        `TableDefinition::add_columns` sorts the column set before building the Arrow schema)."""
        columns = {"time": TIME_TYPE, **{name: _KIND_TYPES[kind] for name, kind in self.kinds.items()}}
        return pa.schema([(name, columns[name]) for name in sorted(columns, key=lambda n: n.encode("utf-8"))])

    def append(self, columns: Mapping[str, Sequence], times: Sequence[int], kinds: Mapping[str, str]) -> None:
        """Add rows (columns of equal length; None for a missing value) of already-checked kinds."""
        for name, kind in kinds.items():
            self.kinds.setdefault(name, kind)
        stamps = np.asarray(times, dtype=np.int64)
        arrays = {"time": pa.array(stamps, type=pa.int64()).cast(TIME_TYPE)}
        for name, values in columns.items():
            arrays[name] = pa.array(values, type=_KIND_TYPES[self.kinds[name]])
        arrays[_FILE] = pa.array(np.full(len(stamps), _BUFFERED, dtype=np.int64))
        batch = pa.table(arrays)
        self._note_keys(batch)
        self._batches.append(batch)
        self._full = self._visible = None
        self.version += 1

    def touch(self) -> None:
        """The catalog changed (a new column): the registered schema must be rebuilt."""
        self._full = self._visible = None
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

    def full(self) -> pa.Table:
        """Every column plus the hidden file column, one row per series key and time."""
        if self._full is not None:
            return self._full
        visible = self.schema()
        schema = pa.schema([*visible, pa.field(_FILE, pa.int64())])
        parts = []
        for part in self._batches:
            for item in schema:
                if item.name not in part.column_names:
                    part = part.append_column(item.name, pa.nulls(part.num_rows, type=item.type))
            parts.append(part.select(schema.names).cast(schema))
        table = pa.concat_tables(parts) if parts else schema.empty_table()
        if self._maybe_duplicates:
            table = _deduplicate(table, self.tags, schema)
            self._maybe_duplicates = False
        self._batches = [table] if table.num_rows else []
        self._full = table
        return table

    def arrow(self) -> pa.Table:
        """The table as queries see it (no hidden column)."""
        if self._visible is None:
            self._visible = self.full().drop_columns([_FILE])
        return self._visible

    def buffered_windows(self, gen1_ns: int, older_than: int | None = None) -> list[tuple[int, int, int, int]]:
        """(chunk_time, min_time, max_time, rows) of the buffered rows per gen1 window."""
        table = self.full()
        if not table.num_rows:
            return []
        files = table.column(_FILE).to_numpy()
        mask = files == _BUFFERED
        if not mask.any():
            return []
        times = table.column("time").cast(pa.int64()).to_numpy()[mask]
        windows = times - np.sign(times) * (np.abs(times) % gen1_ns)
        result = []
        for window in np.unique(windows):
            if older_than is not None and window >= older_than:
                continue
            selected = times[windows == window]
            result.append((int(window), int(selected.min()), int(selected.max()), int(selected.size)))
        return result

    def persist(self, gen1_ns: int, file_ids: Mapping[int, int]) -> None:
        """Mark the buffered rows of the given windows (chunk_time -> file id) as being in those files."""
        table = self.full()
        files = table.column(_FILE).to_numpy().copy()
        times = table.column("time").cast(pa.int64()).to_numpy()
        windows = times - np.sign(times) * (np.abs(times) % gen1_ns)
        for window, file_id in file_ids.items():
            files[(files == _BUFFERED) & (windows == window)] = file_id
        table = table.set_column(table.schema.get_field_index(_FILE), _FILE, pa.array(files, type=pa.int64()))
        self._batches = [table]
        self._full = table  # the visible table is unchanged

    def drop_files(self, file_ids: set[int]) -> int:
        """Forget the rows of files the file index no longer has (a restart); returns how many went."""
        table = self.full()
        if not file_ids or not table.num_rows:
            return 0
        keep = ~np.isin(table.column(_FILE).to_numpy(), np.fromiter(file_ids, dtype=np.int64))
        dropped = int((~keep).sum())
        if dropped:
            table = table.filter(pa.array(keep))
            self._batches = [table] if table.num_rows else []
            self._full = self._visible = None
            self.version += 1
        return dropped


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


# ---- the write path ---------------------------------------------------------------------------------------------
def _rust_float(value: float) -> str:
    """Rust's `{}` for f64 (shortest round trip, never an exponent): how ParsedLine re-prints a float."""
    text = repr(float(value))
    if "e" in text or "E" in text:
        text = format(Decimal(text), "f")
    if text.endswith(".0"):
        text = text[:-2]
    return text


def _escape(text: str, characters: str) -> str:
    for char in characters:
        text = text.replace(char, "\\" + char)
    return text


def _display_line(point: ParsedPoint) -> str:
    """influxdb_line_protocol `impl Display for ParsedLine` (the `original_line` of a validation error)."""
    out = _escape(point.measurement, ", ")
    for key, value in point.tags.items():
        out += f",{_escape(key, ',= ')}={_escape(value, ',= ')}"
    parts = []
    for key, value in point.fields.items():
        kind = point.field_types[key]
        if kind == "int":
            text = f"{value}i"
        elif kind == "uint":
            text = f"{value}u"
        elif kind == "float":
            text = _rust_float(value)
        elif kind == "bool":
            text = "true" if value else "false"
        else:
            text = _escape(str(value), '"')  # FIELD_VALUE_STRING_DELIMITERS; no quotes are written back
        parts.append(f"{_escape(key, ',= ')}={text}")
    out += " " + ",".join(parts)
    if point.timestamp is not None:
        out += f" {point.timestamp}"
    return out


def _to_nanos(timestamp: int | None, default_ns: int, precision: str) -> int:
    """influxdb3_types/src/write.rs (v3.10.1) `Precision::to_nanos` and `guess_precision`."""
    if timestamp is None:
        if precision == "auto":
            return default_ns
        unit = _PRECISION_NS[precision]
        return int(default_ns / unit) * unit  # toward zero
    if precision == "auto":
        seconds = abs(timestamp) // 10**9
        unit = 10**9 if seconds < 5 else 10**6 if seconds < 5_000 else 10**3 if seconds < 5_000_000 else 1
    else:
        unit = _PRECISION_NS[precision]
    value = timestamp * unit
    if not -(2**63) <= value < 2**63:
        raise ValueError(f"timestamp, {timestamp}, out of range for precision: {_PRECISION_NAMES[precision]}")
    return value


class _Transaction:
    """A catalog transaction of one write (catalog/versions/v3/transaction.rs): the schema changes it would
    commit, checked against the limits as they are made."""

    def __init__(self, database: Database, catalog: Catalog):
        self.database, self.catalog = database, catalog
        self.kinds: dict[str, dict[str, str]] = {}  # table -> its columns (copy) as the transaction sees them
        self.new_tables: list[str] = []
        self.table_count = catalog.table_count()

    def table(self, name: str) -> dict[str, str]:
        """`table_or_create`."""
        if name not in self.kinds:
            existing = self.database.tables.get(name)
            if existing is None:
                if self.table_count >= self.catalog.table_limit:
                    # v3.6.0 (error.rs): "Update to schema would exceed number of tables limit of {0} tables"
                    raise CatalogError("TooManyTables", "Update to schema would exceed number of tables limit: "
                                                        f"attempted to create table but already have "
                                                        f"{self.table_count} table(s) (limit: "
                                                        f"{self.catalog.table_limit})")
                self.table_count += 1
                self.new_tables.append(name)
            self.kinds[name] = dict(existing.kinds) if existing is not None else {}
        return self.kinds[name]

    def column(self, table: str, column: str, kind: str) -> None:
        """`column_or_create` (then `add_tag` / `add_field` with `check_columns_limit`)."""
        kinds = self.table(table)
        existing = kinds.get(column)
        if existing is not None:
            if existing != kind:
                raise CatalogError("InvalidColumnType", f"invalid column type for column '{column}', expected "
                                                        f"{_COLUMN_TYPE_NAMES[existing]}, got "
                                                        f"{_COLUMN_TYPE_NAMES[kind]}")
            return
        if len(kinds) >= self.catalog.column_limit:
            raise CatalogError("TooManyColumns", "Update to schema would exceed number of columns per table limit "
                                                 f"of {self.catalog.column_limit} columns")
        kinds[column] = kind

    def commit(self) -> None:
        for name, kinds in self.kinds.items():
            table = self.database.tables.get(name)
            if table is None:
                table = self.database.tables[name] = Table(name, self.database.next_table_id())
            added = {key: kind for key, kind in kinds.items() if key not in table.kinds}
            if added:
                table.kinds.update(added)
                table.touch()


def _raw_lines(text: str) -> list[str]:
    """Rust `str::lines()`: split on \\n, drop one trailing \\r, no empty last line after a final \\n."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _parsed_lines(text: str) -> list[str]:
    """influxdb_line_protocol `parse_lines`: lines (leading whitespace trimmed) that are not blank or comments."""
    out = []
    for line in text.split("\n"):
        trimmed = line.lstrip(" \t\r")
        if trimmed and not trimmed.startswith("#"):
            out.append(trimmed)
    return out


# ---- databases --------------------------------------------------------------------------------------------------
class Database:
    """One database: its tables, its persisted files and a DataFusion context that sees them."""

    def __init__(self, name: str, database_id: int = 0, catalog: Catalog | None = None,
                 retention_ns: int | None = None):
        self.name = name
        self.id = database_id
        self.catalog = catalog or Catalog(lambda: [self])
        self.retention_ns = retention_ns
        self.deleted = False
        self.tables: dict[str, Table] = {}
        self.files: dict[str, list[ParquetFile]] = {}  # table -> files in the index (what queries count)
        self._next_table_id = 0
        config = (SessionConfig().with_information_schema(True)
                  .with_default_catalog_and_schema("public", "iox").with_create_default_catalog_and_schema(True)
                  # datafusion_util/src/config.rs (influxdb3_core): no Utf8View for SQL string types or Parquet
                  .set("datafusion.sql_parser.map_string_types_to_utf8view", "false")
                  .set("datafusion.execution.parquet.schema_force_view_types", "false"))
        self._ctx = SessionContext(config)
        self._registered: dict[str, int] = {}
        self._system: dict[str, pa.Table] = {}
        self._system_registered: dict[str, int] = {}

    def next_table_id(self) -> int:
        self._next_table_id += 1
        return self._next_table_id - 1

    # ---- writes --------------------------------------------------------------------------------------------
    def write(self, text: str | Iterable[str], ingest_time_ns: int | None = None, *, accept_partial: bool = False,
              precision: str = "nanosecond") -> WriteResult:
        """One write request, as `WriteBufferImpl::write_lp` validates and buffers it. Raises WriteError when a
        line fails without accept_partial (`line protocol parse failed: ...`), before anything is committed."""
        body = text if isinstance(text, str) else "\n".join(text)
        now = _time.time_ns() if ingest_time_ns is None else ingest_time_ns
        raw_lines = _raw_lines(body)
        txn = _Transaction(self, self.catalog)
        result = WriteResult()
        valid: list[ParsedPoint] = []
        stamps: list[int] = []
        for index, line in enumerate(_parsed_lines(body)):
            # validator.rs: a parse error reports the index-th raw line (`lp.lines()` also counts blank lines,
            # `parse_lines` skips them: the two drift apart after a blank or comment line); a validation error
            # reports the parsed line printed back (`line.to_string()`).
            try:
                point = parse_line(line, index + 1)
            except LineProtocolError as exc:
                error = LineError(raw_lines[index] if index < len(raw_lines) else "", index + 1,
                                  _server_parse_message(line, exc.reason))
            else:
                error = None
                try:
                    txn.table(point.measurement)
                    for key in point.tags:
                        txn.column(point.measurement, key, "tag")
                    for key, kind in point.field_types.items():
                        txn.column(point.measurement, key, kind)
                    stamp = _to_nanos(point.timestamp, now, precision)
                except (CatalogError, ValueError) as exc:
                    error = LineError(_display_line(point), index + 1, str(exc))
            if error is not None:
                if not accept_partial:
                    raise WriteError(f"line protocol parse failed: {error.error_message}", error)
                result.line_errors.append(error)
                continue
            valid.append(point)
            stamps.append(stamp)
        txn.commit()  # validator.rs `commit_catalog_changes`: before the empty-write check (engine.py)
        result.line_count = len(valid)
        self._buffer(valid, stamps, result)
        return result

    def _buffer(self, points: list[ParsedPoint], stamps: list[int], result: WriteResult) -> None:
        pending: dict[str, tuple[dict[str, list], list[int]]] = {}
        for point, stamp in zip(points, stamps, strict=True):
            columns, times = pending.setdefault(point.measurement, ({}, []))
            row_number = len(times)
            times.append(stamp)
            for key, value in {**point.tags, **point.fields}.items():
                column = columns.setdefault(key, [None] * row_number)
                column.append(value)
            for column in columns.values():
                if len(column) < row_number + 1:
                    column.append(None)
            result.rows.append({"table": point.measurement, "row": {**point.tags, **point.fields, "time": stamp}})
        for name, (columns, times) in pending.items():
            table = self.tables[name]
            table.append(columns, times, {key: table.kinds[key] for key in columns})

    def create_table(self, table: str, tags: Sequence[str], fields: Sequence[tuple[str, str]]) -> Table:
        """catalog.rs (v3.10.1) `create_table_opts`: AlreadyExists (409) for an existing table, then tags,
        fields and time in that order, each under the column limit."""
        if table in self.tables:
            raise CatalogError("AlreadyExists", "attempted to create a resource that already exists")
        txn = _Transaction(self, self.catalog)
        txn.table(table)
        for tag in tags:
            txn.column(table, tag, "tag")
        for name, kind in fields:
            # transaction.rs `field_or_create` reports the new type as `expected` and the existing as `got`.
            existing = txn.kinds[table].get(name)
            if existing is not None and existing != kind:
                raise CatalogError("InvalidColumnType", f"invalid column type for column '{name}', expected "
                                                        f"{_COLUMN_TYPE_NAMES[kind]}, got "
                                                        f"{_COLUMN_TYPE_NAMES[existing]}")
            txn.column(table, name, kind)
        txn.commit()
        return self.tables[table]

    def load_frame(self, table_name: str, frame: pd.DataFrame, tags: Sequence[str], time_column: str = "time") -> None:
        """Bulk-load a DataFrame (benchmarks, large fixtures): `time` int ns or datetime, other columns typed
        by dtype. Checked against the catalog like a write, without the line-protocol round trip."""
        txn = _Transaction(self, self.catalog)
        txn.table(table_name)
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
            txn.column(table_name, name, kind)
            if kind == "float" and not np.isfinite(series.dropna().to_numpy()).all():
                raise WriteError(f"column {name!r} has a non-finite value")
            kinds[name] = kind
            columns[name] = series.astype(object).where(series.notna(), None).tolist()
        txn.commit()
        stamps = frame[time_column]
        times = (stamps.astype("int64") if pd.api.types.is_integer_dtype(stamps)
                 else pd.to_datetime(stamps, utc=True).dt.as_unit("ns").astype("int64")).to_numpy()
        self.tables[table_name].append(columns, times, kinds)

    # ---- files ---------------------------------------------------------------------------------------------
    def files_selected(self, table: str, lower: int | None, upper: int | None, now_ns: int | None = None) -> int:
        """How many files of `table` a scan with these time bounds counts (the retention period raises the lower
        bound: influxdb3_query_executor/src/lib.rs `QueryTable::chunks`)."""
        files = self.files.get(table)
        if not files:
            return 0
        if self.retention_ns is not None:
            cutoff = (now_ns if now_ns is not None else _time.time_ns()) - self.retention_ns
            lower = cutoff if lower is None else max(lower, cutoff)
        return sum(1 for item in files if item.overlaps(lower, upper))

    # ---- queries -------------------------------------------------------------------------------------------
    def set_system_table(self, name: str, table: pa.Table) -> None:
        """Register (or replace) a `system.<name>` table (the server's system tables, e.g. triggers)."""
        self._system[name] = table

    def _register(self) -> None:
        for name in [name for name in self._registered if name not in self.tables]:
            self._ctx.deregister_table(name)
            del self._registered[name]
        for name, table in self.tables.items():
            if self._registered.get(name) != table.version:
                if name in self._registered:
                    self._ctx.deregister_table(name)
                arrow = table.arrow()
                self._ctx.register_record_batches(name, [arrow.to_batches() or [pa.RecordBatch.from_pylist(
                    [], schema=arrow.schema)]])
                self._registered[name] = table.version
        if self._system:
            catalog = self._ctx.catalog("public")
            if "system" not in catalog.schema_names():
                catalog.register_schema("system", DataFusionSchema.memory_schema())
            for name, table in self._system.items():
                if self._system_registered.get(name) != id(table):
                    if name in self._system_registered:
                        self._ctx.deregister_table(f"system.{name}")
                    self._ctx.register_record_batches(f"system.{name}", [table.to_batches() or [
                        pa.RecordBatch.from_pylist([], schema=table.schema)]])
                    self._system_registered[name] = id(table)

    def execute(self, sql: str, params: Mapping[str, Any] | None = None, *,
                typed: bool = False) -> list[pa.RecordBatch]:
        """Plan and run `sql`; raises QueryError with the server's texts (planning vs. execution). Counts the
        Parquet files of every scan against the catalog's `query_file_limit`. Parameters are strings (the plugin
        API) unless `typed` (JSON values of /api/v3/query_sql)."""
        self._register()
        values = {str(key): (value if typed else str(value)) for key, value in (params or {}).items()}
        limit = self.catalog.query_file_limit
        try:
            frame = self._ctx.sql(sql, param_values=values) if values else self._ctx.sql(sql)
            if limit is not None and self.files:
                self._check_files(frame, limit, self.catalog.wall_clock())
            stream = frame.execute_stream()
        except _FileLimit as exc:
            raise self._planning_error(sql, str(exc), 500) from None
        except Exception as exc:  # DataFusion raises its own exception types; the server wraps them all
            text = _datafusion_text(exc)
            raise self._planning_error(sql, text, datafusion_status(text)) from None
        batches = []
        try:
            for batch in stream:
                batches.append(batch.to_pyarrow())
        except Exception as exc:
            text = _datafusion_text(exc)
            raise QueryError(text, self.name, sql, status=500, stage="execution", datafusion=text) from None
        return batches

    def _planning_error(self, sql: str, text: str, status: int) -> QueryError:
        # influxdb3_internal_api QueryExecutorError::QueryPlanning: "error while planning query: {0}"
        return QueryError(f"error while planning query: {text}", self.name, sql, status=status, stage="planning",
                          datafusion=text)

    def _check_files(self, frame: Any, limit: int, now_ns: int | None) -> None:
        try:
            scans = scan_bounds(frame.optimized_logical_plan())
        except BoundsError as exc:
            raise _FileLimit(f"External error: {exc}") from None
        for scan in scans:
            if self.files_selected(scan.table, scan.lower, scan.upper, now_ns) > limit:
                # write_buffer/mod.rs `get_table_chunks`: DataFusionError::External from the scan (HTTP 500)
                raise _FileLimit(f"External error: {file_limit_message(limit)}")

    def logical_plan(self, sql: str) -> Any:
        """DataFusion's optimized logical plan of `sql` over the tables as they are now."""
        self._register()
        return self._ctx.sql(sql).optimized_logical_plan()

    def files_scanned(self, sql: str, params: Mapping[str, str] | None = None) -> int:
        """The most files any one table scan of `sql` counts (the number compared with the limit)."""
        self._register()
        values = {str(key): str(value) for key, value in (params or {}).items()}
        frame = self._ctx.sql(sql, param_values=values) if values else self._ctx.sql(sql)
        now = self.catalog.wall_clock()
        counts = [self.files_selected(scan.table, scan.lower, scan.upper, now)
                  for scan in scan_bounds(frame.optimized_logical_plan())]
        return max(counts, default=0)

    def query(self, sql: str, params: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        return rows_from_batches(self.execute(sql, params))


class _FileLimit(Exception):
    pass


def _datafusion_text(exc: BaseException) -> str:
    text = str(exc)
    return text.removeprefix("DataFusion error: ")


def datafusion_status(text: str) -> int:
    """http.rs (v3.10.1) `datafusion_error_status_code`, from the error's Display text: Plan and SQL errors 400,
    NotImplemented 405, Context/Diagnostic wrappers their inner error's, everything else 500."""
    if "\ncaused by\n" in text:
        return datafusion_status(text.split("\ncaused by\n", 1)[1])
    if text.startswith(("Error during planning:", "SQL error:")):
        return 400
    if text.startswith("This feature is not implemented:"):
        return 405
    return 500


# ---- results as the engine converts them for Python ---------------------------------------------------------------
def _rust_type(kind: pa.DataType) -> str:
    """arrow-rs `DataType` Debug, for the engine's "Unsupported data type" message."""
    simple = {
        pa.int8(): "Int8", pa.int16(): "Int16", pa.int32(): "Int32", pa.int64(): "Int64", pa.uint8(): "UInt8",
        pa.uint16(): "UInt16", pa.uint32(): "UInt32", pa.uint64(): "UInt64", pa.float16(): "Float16",
        pa.float32(): "Float32", pa.float64(): "Float64", pa.bool_(): "Boolean", pa.utf8(): "Utf8",
        pa.large_utf8(): "LargeUtf8", pa.binary(): "Binary", pa.large_binary(): "LargeBinary", pa.date32(): "Date32",
        pa.date64(): "Date64", pa.null(): "Null", pa.string_view(): "Utf8View", pa.binary_view(): "BinaryView",
    }
    if kind in simple:
        return simple[kind]
    units = {"s": "Second", "ms": "Millisecond", "us": "Microsecond", "ns": "Nanosecond"}
    if pa.types.is_timestamp(kind):
        zone = "None" if kind.tz is None else f'Some("{kind.tz}")'
        return f"Timestamp({units[kind.unit]}, {zone})"
    if pa.types.is_duration(kind):
        return f"Duration({units[kind.unit]})"
    if pa.types.is_decimal(kind):
        return f"Decimal{kind.bit_width}({kind.precision}, {kind.scale})"
    if pa.types.is_interval(kind):
        return "Interval(MonthDayNano)"
    return str(kind)


def _column_values(array: pa.ChunkedArray | pa.Array) -> list:
    """system_py.rs (v3.10.1) `query`: nulls become None; Int64, UInt64, Float64, Utf8, Boolean; any Timestamp is
    read as nanoseconds (a non-ns unit fails the downcast: a panic); Dictionary(Int32, Utf8) as str (other key or
    value types panic too); anything else raises ValueError "Unsupported data type: {DataType:?}".
    v3.6.0 does not check nulls: a null reads as the slot's default (0, "", False)."""
    kind = array.type
    if pa.types.is_int64(kind) or pa.types.is_uint64(kind) or pa.types.is_float64(kind) \
            or pa.types.is_boolean(kind) or pa.types.is_string(kind):
        return array.to_pylist()
    if pa.types.is_timestamp(kind):
        if kind.unit != "ns":
            raise PanicException("called `Option::unwrap()` on a `None` value")
        return array.cast(pa.int64()).to_pylist()
    if pa.types.is_dictionary(kind):
        if not (pa.types.is_int32(kind.index_type) and pa.types.is_string(kind.value_type)):
            raise PanicException("unexpected datatype")
        return array.cast(pa.utf8()).to_pylist()
    raise ValueError(f"Unsupported data type: {_rust_type(kind)}")


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


# ---- results as /api/v3/query_sql sends them ------------------------------------------------------------------------
def _iso(nanos: int) -> str:
    """arrow-json (via arrow-cast's default `%Y-%m-%dT%H:%M:%S%.f`): 0, 3, 6 or 9 fraction digits, no zone."""
    seconds, fraction = divmod(nanos, 10**9)
    text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if fraction:
        digits = f"{fraction:09d}"
        for width in (3, 6):
            if digits[width:] == "0" * (9 - width):
                digits = digits[:width]
                break
        text += "." + digits
    return text


def json_rows(batches: Sequence[pa.RecordBatch]) -> list[dict[str, Any]]:
    """Rows as arrow-json writes them (http.rs `record_batch_stream_to_body`, format json/jsonl): one object per
    row in column order, null values left out, timestamps as ISO-8601 text, non-finite floats as null."""
    rows: list[dict[str, Any]] = []
    for batch in batches:
        if not batch.num_rows:
            continue
        columns = []
        for index in range(batch.num_columns):
            column = batch.column(index)
            kind = column.type
            if pa.types.is_dictionary(kind):
                column, kind = column.cast(kind.value_type), kind.value_type
            if pa.types.is_timestamp(kind):
                zone = "+00:00" if kind.tz else ""  # a zoned timestamp prints its offset (`%:z`); UTC here
                values = [None if v is None else _iso(v) + zone
                          for v in column.cast(pa.timestamp("ns", kind.tz)).cast(pa.int64()).to_pylist()]
            elif pa.types.is_floating(kind):
                values = [None if v is None or not np.isfinite(v) else v for v in column.to_pylist()]
            else:
                values = column.to_pylist()
            columns.append(values)
        names = batch.schema.names
        for values in zip(*columns, strict=True):
            rows.append({name: value for name, value in zip(names, values, strict=True) if value is not None})
    return rows


def json_body(batches: Sequence[pa.RecordBatch], lines: bool = False) -> str:
    rows = json_rows(batches)
    if lines:
        return "".join(json.dumps(row, separators=(",", ":"), ensure_ascii=False) + "\n" for row in rows)
    return json.dumps(rows, separators=(",", ":"), ensure_ascii=False)


def soft_deleted_name(name: str, deleted_at_ns: int, database_id: int, taken: Callable[[str], bool]) -> str:
    """influxdb3_catalog format/records/conversions.rs `soft_deleted_name`: `{name}-%Y%m%dT%H%M%S` (`-{id}` on a
    collision)."""
    stamped = f"{name}-{datetime.fromtimestamp(deleted_at_ns // 10**9, UTC):%Y%m%dT%H%M%S}"
    return f"{stamped}-{database_id}" if taken(stamped) else stamped

