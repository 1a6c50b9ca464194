"""The local engine: InfluxDB 3 Core's plugin runtime and storage without a server, for tests and the CLI.

It does what the server (v3.10.1) does around a plugin call: builds the arguments in the engine's shapes
(`args` None for a trigger created without arguments, a dict, possibly empty, otherwise; WAL `table_batches`
as [{"table_name", "rows"}] filtered to the trigger's table; `call_time` a naive UTC datetime; request query
parameters and headers as dicts of str with lowercased header names and no Authorization, the body as bytes),
runs the plugin, then writes what it queued, one all-or-nothing write per database (nothing at all when the
plugin raised or, for a request, when its return value could not be converted), and converts a request
plugin's return value to an HTTP response (an error is HTTP 500 `{"error": "..."}`). A plugin exception is
caught and reported the way the server logs it, never raised into the caller; `PluginRun.raise_for_error()`
raises it when a test wants.

Storage follows Core's write buffer and Parquet accounting (tests/engine/parquet.py): writes are buffered
until `snapshot()` persists them as one file per table and gen1 window, queries count the files their time
filter selects and fail above `query_file_limit`, and `restart()` reloads the file index under the
`gen1_lookback` rule.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from tests.engine import packages as package_env
from tests.engine.api import LogLine, PluginApi
from tests.engine.cache import CacheStore, PluginCache
from tests.engine.humantime import parse_duration_ns
from tests.engine.loader import PluginFailure, PluginLoadError, load_function, resolve_plugin
from tests.engine.parquet import (
    DEFAULT_QUERY_FILE_LIMIT,
    GEN1_DURATIONS_NS,
    ParquetFile,
    PersistedSnapshot,
    SnapshotStore,
    snapshots_to_load,
)
from tests.engine.responses import Response, UnsupportedResponse, to_response
from tests.engine.store import (
    INTERNAL_DATABASE,
    Catalog,
    CatalogError,
    Database,
    InvalidDatabaseName,
    QueryError,
    WriteError,
    WriteResult,
    soft_deleted_name,
    validate_db_name,
    validate_plugin_db_name,
)
from tests.support.paths import REPO

__all__ = ["LocalEngine", "PluginError", "PluginRun"]

PLUGIN_DIR = REPO / "plugins"

# plugins.rs (v3.10.1): the `context` of the log line of a failed call and of failed write-backs
_CONTEXT = {"process_writes": "wal plugin", "process_scheduled_call": "schedule plugin",
            "process_request": "request plugin"}


class PluginError(Exception):
    pass


@dataclass
class PluginRun:
    """What one plugin call did: its log, the lines it wrote per database, what failed.

    `error` is the Python traceback (for people), `error_message` the engine's one-line error (what the server
    logs and answers), `write_errors` the failed write-backs as the server logs them."""

    plugin: str
    logs: list[LogLine] = field(default_factory=list)
    writes: dict[str, list[str]] = field(default_factory=dict)
    write_errors: list[str] = field(default_factory=list)
    error: str | None = None
    error_message: str | None = None
    response: Response | None = None
    seconds: float = 0.0

    def messages(self, level: str | None = None) -> list[str]:
        return [line.message for line in self.logs if level is None or line.level == level]

    def log_text(self) -> str:
        return "\n".join(str(line) for line in self.logs)

    def raise_for_error(self) -> PluginRun:
        problems = ([self.error] if self.error else []) + self.write_errors
        if problems:
            raise PluginError(f"{self.plugin}: " + "\n".join(problems) + "\n--- log ---\n" + self.log_text())
        return self


def _py_error(exc: BaseException) -> str:
    return f"{type(exc).__qualname__}: {exc}"


class LocalEngine:
    """Databases, the cache and plugin calls of one simulated InfluxDB 3 Core server.

    Settings mirror `influxdb3 serve`: `gen1_duration` (1m, 5m or 10m), `query_file_limit` (default 432),
    `gen1_lookback` (default 1month). `wall_clock` (ns) stamps snapshots and the retention cutoff; `clock`
    (monotonic seconds) drives cache TTLs. `packages` is the processing engine's venv (tests/engine/packages.py):
    what `importlib.metadata` answers in plugins; None leaves the test interpreter's answers alone."""

    def __init__(self, plugin_dir: Path = PLUGIN_DIR, clock: Callable[[], float] = time.monotonic, *,
                 wall_clock: Callable[[], int] | None = None, gen1_duration: str = "10m",
                 query_file_limit: int = DEFAULT_QUERY_FILE_LIMIT, gen1_lookback: str = "1month",
                 packages: package_env.PackageEnvironment | None = None, node_id: str = "local-engine"):
        self.plugin_dir = Path(plugin_dir)
        self.cache_store = CacheStore(clock)
        self.wall_clock = wall_clock or time.time_ns
        if gen1_duration not in GEN1_DURATIONS_NS:
            raise ValueError(f"invalid gen1 duration {gen1_duration}. Must be one of 1m, 5m, 10m")
        self.gen1_ns = GEN1_DURATIONS_NS[gen1_duration]
        self.gen1_lookback = gen1_lookback
        self.packages = packages
        self.node_id = node_id
        self.snapshots = SnapshotStore()
        self._wal_sequence = 0
        self._all: list[Database] = []
        self.catalog = Catalog(lambda: self._all)
        self.catalog.query_file_limit = query_file_limit
        self.catalog.wall_clock = self.wall_clock
        self._add_database(INTERNAL_DATABASE, parse_duration_ns("7d"))

    @property
    def query_file_limit(self) -> int:
        return self.catalog.query_file_limit

    @query_file_limit.setter
    def query_file_limit(self, value: int) -> None:
        self.catalog.query_file_limit = value

    # ---- databases -------------------------------------------------------------------------------------
    def _add_database(self, name: str, retention_ns: int | None = None) -> Database:
        database = Database(name, self.catalog.new_database_id(), self.catalog, retention_ns)
        self._all.append(database)
        return database

    def live_database(self, name: str) -> Database | None:
        """The database called `name` that is not (soft-)deleted, or None."""
        for database in self._all:
            if database.name == name and not database.deleted:
                return database
        return None

    def create_database(self, name: str, *, retention_period: str | None = None,
                        exist_ok: bool = True) -> Database:
        """POST /api/v3/configure/database: http.rs `validate_db_name`, then the catalog's AlreadyExists (409) and
        database limit (422)."""
        validate_db_name(name)
        existing = self.live_database(name)
        if existing is not None:
            if exist_ok:
                return existing
            raise CatalogError("AlreadyExists", "attempted to create a resource that already exists")
        self.catalog.check_new_database()
        retention = parse_duration_ns(retention_period) if retention_period else None
        return self._add_database(name, retention)

    def database(self, name: str) -> Database:
        """A database; like the server's write path, a new name creates it (within the database limit)."""
        existing = self.live_database(name)
        if existing is not None:
            return existing
        self.catalog.check_new_database()
        return self._add_database(name)

    def has_database(self, name: str) -> bool:
        return self.live_database(name) is not None

    @property
    def databases(self) -> list[str]:
        """The user databases (without `_internal` and deleted ones)."""
        return sorted(db.name for db in self._all if not db.deleted and db.name != INTERNAL_DATABASE)

    def all_databases(self, include_deleted: bool = False) -> list[Database]:
        return [db for db in self._all if include_deleted or not db.deleted]

    def delete_database(self, name: str) -> Database:
        """DELETE /api/v3/configure/database (soft delete): ops/database.rs and format/records/database.rs: the
        database is renamed `{name}-{time}` so the name is free again, its tables stop counting."""
        if name == INTERNAL_DATABASE:
            raise CatalogError("CannotDeleteInternalDatabase", "cannot delete internal db")
        database = self.live_database(name)
        if database is None:
            raise CatalogError("NotFound", f"the requested resource was not found: {name}")
        taken = {db.name for db in self._all}
        database.name = soft_deleted_name(name, self.wall_clock(), database.id, taken.__contains__)
        database.deleted = True
        return database

    # ---- writes ----------------------------------------------------------------------------------------------
    def write(self, database: str, text: str | Iterable[str], ingest_time_ns: int | None = None, *,
              accept_partial: bool = False, precision: str = "nanosecond") -> WriteResult:
        """One write request through Core's write path (write_buffer/mod.rs `write_lp`): the database is created
        if new (within the limit), lines validated and buffered; raises WriteError (or CatalogError) for a write
        that fails as a whole."""
        existing = self.live_database(database)
        if existing is None:
            self.catalog.check_new_database()  # catalog.rs `begin_database_transaction`
            target = Database(database, -1, self.catalog)
        else:
            target = existing
        result = target.write(text, ingest_time_ns if ingest_time_ns is not None else self.wall_clock(),
                              accept_partial=accept_partial, precision=precision)
        if existing is None:  # the transaction that created the database was committed
            target.id = self.catalog.new_database_id()
            self._all.append(target)
        if result.line_count:
            self._wal_sequence += 1
        elif not result.line_errors:
            raise WriteError("incoming write was empty")
        return result

    def write_lp(self, database: str, text: str | Iterable[str], ingest_time_ns: int | None = None) -> list[dict]:
        """Write line protocol in nanoseconds, all-or-nothing (what plugin writes do); returns the written rows as
        [{"table", "row"}]."""
        return self.write(database, text, ingest_time_ns).rows

    def load_frame(self, database: str, table: str, frame: pd.DataFrame, tags: Iterable[str] = ()) -> None:
        self.database(database).load_frame(table, frame, list(tags))

    # ---- Parquet files ---------------------------------------------------------------------------------------
    def snapshot(self, *, older_than: int | None = None, at_ns: int | None = None) -> PersistedSnapshot | None:
        """A WAL snapshot: every buffered (table, gen1 window) becomes one Parquet file (queryable_buffer.rs); with
        `older_than` only windows that start before it (an in-order snapshot). `at_ns` is the wall-clock time of
        the snapshot (the month its checkpoint goes to). Returns None when nothing was buffered."""
        sequence = self.snapshots.next_sequence
        snapshot = PersistedSnapshot(sequence, self._wal_sequence, (at_ns or self.wall_clock()) // 10**6)
        for database in self._all:
            if database.deleted:
                continue
            for table in database.tables.values():
                ids = {}
                for window, low, high, rows in table.buffered_windows(self.gen1_ns, older_than):
                    file_id = self.snapshots.next_file_id
                    self.snapshots.next_file_id += 1
                    # paths.rs `ParquetFilePath::new`
                    stamp = datetime.fromtimestamp(window / 10**9, UTC)
                    path = (f"{self.node_id}/dbs/{database.id}/{table.id}/{stamp:%Y-%m-%d/%H-%M}/"
                            f"{self._wal_sequence:010}.parquet")
                    item = ParquetFile(file_id, path, database.name, table.name, window, low, high, rows, sequence)
                    snapshot.files.append(item)
                    database.files.setdefault(table.name, []).append(item)
                    ids[window] = file_id
                if ids:
                    table.persist(self.gen1_ns, ids)
        if not snapshot.files:
            return None
        self.snapshots.next_sequence += 1
        self.snapshots.add(snapshot)
        return snapshot

    def parquet_files(self, database: str, table: str) -> list[ParquetFile]:
        """The files of `table` in the index, newest min_time first (persisted_files.rs `get_files`)."""
        db = self.live_database(database)
        files = list(db.files.get(table, [])) if db else []
        return sorted(files, key=lambda item: item.min_time, reverse=True)

    def files_scanned(self, database: str, sql: str, params: Mapping[str, str] | None = None) -> int:
        """How many Parquet files `sql` makes its busiest table scan count (what is compared with the limit)."""
        db = self.live_database(database)
        return db.files_scanned(sql, params) if db else 0

    # ---- queries ---------------------------------------------------------------------------------------------
    def query(self, database: str, sql: str, params: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """Rows of `sql` as `influxdb3_local.query` returns them; QueryError on failure (the file limit too)."""
        db = self._query_db(database, sql)
        if "parquet_files" in sql:
            self.refresh_parquet_files_table(db)
        return db.query(sql, params)

    def refresh_parquet_files_table(self, db: Database) -> None:
        """system.parquet_files of one database as a query sees it now (influxdb3_system_tables/src/
        parquet_files.rs): every file of the index with its table, path, size, rows and time span.

        Without a table_name filter the server lists, for every table of EVERY database, this database's files of
        that table id (parquet_files.rs uses `self.db_id` with other databases' table ids)."""
        rows: list[tuple[str, Any]] = []
        for other in self.all_databases(include_deleted=True):
            for table in other.tables.values():
                for item in sorted((f for files in db.files.values() for f in files
                                    if db.tables.get(f.table) is not None and db.tables[f.table].id == table.id),
                                   key=lambda f: f.min_time, reverse=True):
                    rows.append((table.name, item))
        db.set_system_table("parquet_files", pa.table({
            "table_name": pa.array([name for name, _ in rows], pa.utf8()),
            "path": pa.array([item.path for _, item in rows], pa.utf8()),
            "size_bytes": pa.array([item.size_bytes for _, item in rows], pa.uint64()),
            "row_count": pa.array([item.row_count for _, item in rows], pa.uint64()),
            "min_time": pa.array([item.min_time for _, item in rows], pa.int64()),
            "max_time": pa.array([item.max_time for _, item in rows], pa.int64()),
        }))

    def _query_db(self, database: str, sql: str) -> Database:
        db = self.live_database(database)
        if db is None:
            # influxdb3_internal_api QueryExecutor::get_db_namespace: DatabaseNotFound (HTTP 404)
            raise QueryError(f"database not found: {database}", database, sql, status=404, stage="database")
        return db

    def execute(self, database: str, sql: str, params: Mapping[str, str] | None = None) -> list:
        """Arrow record batches of `sql` (what /api/v3/query_sql serializes)."""
        return self._query_db(database, sql).execute(sql, params)

    # ---- restarts --------------------------------------------------------------------------------------------
    def restart(self, *, gen1_lookback: str | None = None, checkpoints: bool = True) -> int:
        """A restart of the server process. Returns how many rows became invisible.

        - A new Python interpreter: every module imported from the plugin directory is imported again on the
          next call. Within one process the server never re-imports a multi-file plugin (loader.py); only a new
          process does.
        - The engine cache is empty (it lives in the process).
        - The write buffer is replayed from the WAL: rows not snapshotted yet stay.
        - The Parquet file index is rebuilt from the snapshots in object storage under the lookback rule
          (parquet.py, `SnapshotStore.load`): rows of files left out disappear from queries, for good here (a
          later restart never loads older snapshots again). `gen1_lookback` overrides the engine's setting for
          this and later restarts; `checkpoints=False` models v3.6.0, which has no checkpoints.
        """
        self.cache_store.clear()
        root = str(self.plugin_dir.resolve())
        for name, module in list(sys.modules.items()):
            origin = getattr(module, "__file__", None) or ""
            if origin.startswith(root):
                del sys.modules[name]
        if gen1_lookback is not None:
            self.gen1_lookback = gen1_lookback
        count = snapshots_to_load(parse_duration_ns(self.gen1_lookback), self.gen1_ns)
        visible = self.snapshots.load(count, checkpoints=checkpoints)
        visible_ids = {item.id for item in visible}
        dropped = 0
        for database in self._all:
            database.files = {}
            for item in visible:
                if item.database == database.name:
                    database.files.setdefault(item.table, []).append(item)
            for table in database.tables.values():
                gone = {item.id for snapshot in self.snapshots.snapshots for item in snapshot.files
                        if item.database == database.name and item.table == table.name and item.id not in visible_ids}
                dropped += table.drop_files(gone)
        return dropped

    def drop_trigger_cache(self, database: str, trigger: str) -> None:
        """What disabling a trigger does to the cache (lib.rs `stop_trigger`: `drop_trigger_cache`); its modules
        stay imported."""
        self.cache_store.drop_namespace(("trigger", database, trigger))

    # ---- plugin calls ----------------------------------------------------------------------------------------
    def _call(self, plugin: str, database: str, trigger: str | None, entry: str,
              invoke: Callable[[Any, PluginApi], Any]) -> PluginRun:
        path = resolve_plugin(self.plugin_dir, plugin)
        self.database(database)
        api = PluginApi(self, database, PluginCache(self.cache_store, (database, trigger or plugin)))
        run = PluginRun(plugin)
        started = time.perf_counter()
        result = None
        with package_env.active(self.packages):
            try:
                function = load_function(path, entry)
            except (PluginFailure, PluginLoadError) as exc:
                run.error, run.error_message = traceback.format_exc(limit=8), str(exc)
            else:
                try:
                    result = invoke(function, api)
                except KeyboardInterrupt:
                    raise
                except BaseException as exc:  # pyo3 turns every Python exception into an error of the call
                    run.error = traceback.format_exc(limit=8)
                    # system_py.rs: only the request path wraps the call's error
                    run.error_message = (f"Python function call failed: {_py_error(exc)}"
                                         if entry == "process_request" else _py_error(exc))
                if entry == "process_request" and run.error_message is None:
                    try:
                        run.response = to_response(result)
                    except UnsupportedResponse as exc:
                        run.error, run.error_message = traceback.format_exc(limit=8), str(exc)
        run.seconds = time.perf_counter() - started
        run.logs = api.logs
        context = _CONTEXT[entry]
        if run.error_message is not None:
            # The call failed before the engine collected the queued lines: none is written (system_py.rs
            # returns the error before `write_accumulator.flush()`). plugins.rs logs it.
            verb = "running" if entry == "process_request" else "executing"
            run.logs.append(LogLine("ERROR", f"error {verb} {context}: {run.error_message}"))
            if entry == "process_request":
                # plugins.rs `process_request`: 500 with `serde_json::json!({"error": e.to_string()})`, no headers
                body = json.dumps({"error": run.error_message}, separators=(",", ":"), ensure_ascii=False)
                run.response = Response(500, body, {})
            return run
        for db_name, lines in api.queued.items():
            run.writes[db_name] = list(lines)
            problem = self._write_back(db_name, lines)
            if problem:
                run.write_errors.append(problem)
                run.logs.append(LogLine("ERROR", f"error running {context}: {problem}"))
        return run

    def _write_back(self, db_name: str, lines: list[str]) -> str | None:
        """plugins.rs `handle_return_state`: one write per database, partial writes off, nanoseconds."""
        try:
            validate_plugin_db_name(db_name)
        except InvalidDatabaseName:
            return f"invalid database name: {db_name}"
        try:
            self.write(db_name, "\n".join(lines))
        except WriteError as exc:
            text = f"catalog update error: {exc}" if getattr(exc, "kind", None) == "TooManyDbs" else str(exc)
            return f"error writing back lines to {db_name}: Cannot write: {text}"
        return None

    def run_writes(self, plugin: str, database: str, lines: str | Iterable[str] | None = None, *,
                   table: str | None = None, table_batches: list[dict] | None = None,
                   args: Mapping[str, str] | None = None, trigger: str | None = None,
                   ingest_time_ns: int | None = None) -> PluginRun:
        """Write `lines` to `database`, then fire a WAL trigger (`table:<table>`, or `all_tables` when table is
        None) with the rows just written; or fire it with explicit `table_batches`."""
        if table_batches is None:
            written = self.write_lp(database, lines or [], ingest_time_ns) if lines is not None else []
            grouped: dict[str, list[dict]] = {}
            for item in written:
                if table is None or item["table"] == table:
                    grouped.setdefault(item["table"], []).append(item["row"])
            table_batches = [{"table_name": name, "rows": rows} for name, rows in grouped.items()]
        arguments = _arguments(args)
        return self._call(plugin, database, trigger, "process_writes",
                          lambda function, api: function(api, table_batches, arguments))

    def run_schedule(self, plugin: str, database: str, call_time: datetime | None = None, *,
                     args: Mapping[str, str] | None = None, trigger: str | None = None) -> PluginRun:
        """Fire a scheduled trigger. `call_time` is passed as the engine passes it: naive, UTC (the official
        image runs in UTC), whole seconds."""
        moment = call_time or datetime.now(UTC)
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC).replace(tzinfo=None)
        moment = moment.replace(microsecond=0)
        arguments = _arguments(args)
        return self._call(plugin, database, trigger, "process_scheduled_call",
                          lambda function, api: function(api, moment, arguments))

    def run_request(self, plugin: str, database: str, query: Mapping[str, str] | None = None,
                    headers: Mapping[str, str] | None = None, body: bytes = b"", *,
                    args: Mapping[str, str] | None = None, trigger: str | None = None) -> PluginRun:
        """Call a request trigger; the answer is `PluginRun.response`. Header names reach the plugin lowercased
        (hyper's `HeaderName` is always lowercase; http.rs `processing_engine_request_plugin` uses
        `k.to_string()`) and without Authorization (removed by `authenticate_request`, filtered again there)."""
        params = {str(k): str(v) for k, v in (query or {}).items()}
        sent = {str(k).lower(): str(v) for k, v in (headers or {}).items() if str(k).lower() != "authorization"}
        arguments = _arguments(args)
        return self._call(plugin, database, trigger, "process_request",
                          lambda function, api: function(api, params, sent, bytes(body), arguments))


def _arguments(args: Mapping[str, str] | None) -> dict[str, str] | None:
    """Trigger arguments as the engine passes them (py_conversion.rs `args_to_py_object`): None when the
    trigger was created without arguments (`trigger_arguments` absent or null), otherwise a dict of str to
    str, empty for `{}` (the catalog keeps `Some(empty)`: ops/trigger.rs, format/records/trigger.rs)."""
    if args is None:
        return None
    return {str(key): str(value) for key, value in args.items()}
