"""The local engine: InfluxDB 3's plugin runtime without a server, for tests and the CLI.

It does what the server does around a plugin call: builds the arguments in the engine's shapes (`args` None
when a trigger has none; WAL `table_batches` as [{"table_name", "rows"}] filtered to the trigger's table;
`call_time` a naive UTC datetime; request query parameters and headers as dicts of str, the body as
bytes), runs the plugin, then writes what it queued, one all-or-nothing write per database (nothing at all
when the plugin raised, as on the server), and converts
a request plugin's return value to an HTTP response. A plugin exception is caught and reported the way
the server logs it, never raised into the caller; `PluginRun.raise_for_error()` raises it when a test wants.
"""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from tests.engine.api import LogLine, PluginApi
from tests.engine.cache import CacheStore, PluginCache
from tests.engine.loader import load_plugin, resolve_plugin
from tests.engine.responses import Response, UnsupportedResponse, to_response
from tests.engine.store import DATABASE_LIMIT, Database, WriteError, check_database_name
from tests.support.paths import REPO

__all__ = ["LocalEngine", "PluginError", "PluginRun"]

PLUGIN_DIR = REPO / "plugins"


class PluginError(Exception):
    pass


@dataclass
class PluginRun:
    """What one plugin call did: its log, the lines it wrote per database, what failed."""

    plugin: str
    logs: list[LogLine] = field(default_factory=list)
    writes: dict[str, list[str]] = field(default_factory=dict)
    write_errors: list[str] = field(default_factory=list)
    error: str | None = None
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


class LocalEngine:
    """Databases, the cache and plugin triggers of one simulated InfluxDB 3 server."""

    def __init__(self, plugin_dir: Path = PLUGIN_DIR, clock: Callable[[], float] = time.monotonic):
        self.plugin_dir = Path(plugin_dir)
        self.cache_store = CacheStore(clock)
        self._databases: dict[str, Database] = {}

    # ---- databases -------------------------------------------------------------------------------------
    def create_database(self, name: str) -> Database:
        check_database_name(name)
        if name not in self._databases:
            if len(self._databases) >= DATABASE_LIMIT:
                raise WriteError(f"database limit of {DATABASE_LIMIT} reached; cannot create {name!r}")
            self._databases[name] = Database(name)
        return self._databases[name]

    def database(self, name: str) -> Database:
        """A database; like the server, a write (or a plugin query) to a new name creates it."""
        return self._databases.get(name) or self.create_database(name)

    @property
    def databases(self) -> list[str]:
        return sorted(self._databases)

    def write_lp(self, database: str, text: str | Iterable[str], ingest_time_ns: int | None = None) -> list[dict]:
        """Write line protocol (all-or-nothing); returns the written rows as [{"table", "row"}]."""
        lines = text.splitlines() if isinstance(text, str) else list(text)
        return self.database(database).write_lines(lines, ingest_time_ns)

    def load_frame(self, database: str, table: str, frame: pd.DataFrame, tags: Iterable[str] = ()) -> None:
        self.database(database).load_frame(table, frame, list(tags))

    def query(self, database: str, sql: str, params: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        return self.database(database).query(sql, params)

    def restart(self) -> None:
        """What a server restart does to plugins: the cache is empty and modules are imported afresh."""
        self.cache_store.clear()
        root = str(self.plugin_dir.resolve())
        for name, module in list(sys.modules.items()):
            origin = getattr(module, "__file__", None) or ""
            if origin.startswith(root):
                del sys.modules[name]

    # ---- plugin calls ----------------------------------------------------------------------------------
    def _call(self, plugin: str, database: str, trigger: str | None, entry: str,
              invoke: Callable[[Any, PluginApi], Any]) -> PluginRun:
        path = resolve_plugin(self.plugin_dir, plugin)
        self.database(database)
        api = PluginApi(self, database, PluginCache(self.cache_store, (database, trigger or plugin)))
        run = PluginRun(plugin)
        started = time.perf_counter()
        result = None
        try:
            module = load_plugin(path)
            function = getattr(module, entry, None)
            if function is None:
                raise PluginError(f"plugin {plugin!r} has no {entry}() function")
            result = invoke(function, api)
        except Exception:
            run.error = traceback.format_exc(limit=8)
            api.error(f"error running {entry}: {run.error.strip().splitlines()[-1]}")
        run.seconds = time.perf_counter() - started
        run.logs = api.logs
        if run.error is not None:
            # The engine returns the error before it collects the plugin's queued lines: none is written.
            api.queued.clear()
        for db_name, lines in api.queued.items():
            run.writes[db_name] = list(lines)
            try:
                self.write_lp(db_name, lines)
            except WriteError as exc:
                run.write_errors.append(f"error writing back lines to {db_name}: {exc}")
        if entry == "process_request":
            if run.error is not None:
                run.response = Response(500, run.error, {"Content-Type": "text/plain"})
            else:
                try:
                    run.response = to_response(result)
                except UnsupportedResponse as exc:
                    run.error = str(exc)
                    run.response = Response(500, str(exc), {"Content-Type": "text/plain"})
        return run

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
        """Call a request trigger; the answer is `PluginRun.response`. The Authorization header is dropped,
        as the server does before the plugin sees the headers."""
        params = {str(k): str(v) for k, v in (query or {}).items()}
        sent = {str(k): str(v) for k, v in (headers or {}).items() if str(k).lower() != "authorization"}
        arguments = _arguments(args)
        return self._call(plugin, database, trigger, "process_request",
                          lambda function, api: function(api, params, sent, bytes(body), arguments))


def _arguments(args: Mapping[str, str] | None) -> dict[str, str] | None:
    """Trigger arguments as the engine passes them: None without any, else a dict of str to str."""
    if not args:
        return None
    return {str(key): str(value) for key, value in args.items()}
