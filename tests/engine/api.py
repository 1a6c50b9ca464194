"""`influxdb3_local`: the object a plugin receives as its first argument.

Matched to InfluxDB 3.10.1's `PyPluginCallApi` (influxdb3_py_api/src/system_py.rs):
- `info/warn/error(*args)` join their arguments' str() with spaces;
- `query(query, args=None, database=None)` runs on the trigger's database or `database`, with `$name`
  parameters given as a dict of str to str, and returns a list of dicts; failures raise `QueryError` with the
  text `error: {e} executing query on {db}: {query}` (an invalid name: `invalid database name provided: ...`);
  v3.6.0 has no `database` keyword and says `error: {e} executing query: {query}`;
- `write(builder)` and `write_to_db(db_name, builder)` call `builder.build()` at once (so LineBuilder errors
  raise in the plugin) and queue the line; queued lines are written after the plugin returns, one
  all-or-nothing request per database (plugins.rs `handle_return_state`), and not at all when the plugin
  raised (or, for a request plugin, when its return value could not be converted);
- `write_sync(builder, no_sync)` and `write_sync_to_db(db_name, builder, no_sync)` (v3.10; not in v3.6.0)
  write at once through the write path (all-or-nothing, nanosecond timestamps) and raise
  `error writing line protocol to {db}: ...` on failure; `no_sync` is a required bool;
- `cache` is the trigger's view of the engine cache.
Nothing refuses writes to `_internal`: the server does not either (DatabaseName::new accepts it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tests.engine.cache import PluginCache
from tests.engine.store import InvalidDatabaseName, QueryError, WriteError, validate_plugin_db_name

if TYPE_CHECKING:
    from tests.engine.engine import LocalEngine

__all__ = ["LogLine", "PluginApi"]


@dataclass(frozen=True)
class LogLine:
    level: str  # INFO | WARN | ERROR
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.message}"


def _build(line_builder: Any) -> str:
    # system_py.rs: `line_builder.getattr("build")?.call0()?` then `extract::<String>()`
    line = line_builder.build()
    if not isinstance(line, str):
        raise TypeError(f"'{type(line).__qualname__}' object is not an instance of 'str'")
    return line


@dataclass
class PluginApi:
    engine: LocalEngine
    database: str
    cache: PluginCache
    logs: list[LogLine] = field(default_factory=list)
    queued: dict[str, list[str]] = field(default_factory=dict)

    def _log(self, level: str, args: tuple[Any, ...]) -> None:
        self.logs.append(LogLine(level, " ".join(str(arg) for arg in args)))

    def info(self, *args: Any) -> None:
        self._log("INFO", args)

    def warn(self, *args: Any) -> None:
        self._log("WARN", args)

    def error(self, *args: Any) -> None:
        self._log("ERROR", args)

    def query(self, query: str, args: Mapping[str, str] | None = None,
              database: str | None = None) -> list[dict[str, Any]]:
        if args is not None:
            # pyo3 extracts Option<HashMap<String, String>>: anything else is a TypeError
            if not isinstance(args, dict):
                raise TypeError(f"argument 'args': '{type(args).__qualname__}' object is not an instance of 'dict'")
            bad = [key for key, value in args.items() if not isinstance(key, str) or not isinstance(value, str)]
            if bad:
                raise TypeError(f"argument 'args': query args must map str to str; not: {bad}")
        name = self.database if database is None else database
        if not isinstance(name, str):
            raise TypeError(f"argument 'database': '{type(name).__qualname__}' object is not an instance of 'str'")
        try:
            validate_plugin_db_name(name)
        except InvalidDatabaseName as exc:
            # system_py.rs: QueryError::new_err(format!("invalid database name provided: {e}"))
            raise QueryError(str(exc), name, query, status=400, stage="database",
                             message=f"invalid database name provided: {exc}") from None
        return self.engine.query(name, query, args)

    def write(self, line_builder: Any) -> None:
        self.write_to_db(self.database, line_builder)

    def write_to_db(self, db_name: str, line_builder: Any) -> None:
        self.queued.setdefault(db_name, []).append(_build(line_builder))

    def write_sync(self, line_builder: Any, no_sync: bool) -> None:
        self.write_sync_to_db(self.database, line_builder, no_sync)

    def write_sync_to_db(self, db_name: str, line_builder: Any, no_sync: bool) -> None:
        if not isinstance(no_sync, bool):
            raise TypeError(f"argument 'no_sync': '{type(no_sync).__qualname__}' object is not an instance of 'bool'")
        line = _build(line_builder)
        try:
            validate_plugin_db_name(db_name)
        except InvalidDatabaseName as exc:
            raise Exception(f"error writing line protocol to {db_name}: invalid database name: {exc}") from None
        try:
            self.engine.write_lp(db_name, line)
        except WriteError as exc:
            # write.rs InProcessWriteEndpoint: WriteError::Fail -> "Cannot write: {write_buffer::Error}"
            text = f"catalog update error: {exc}" if getattr(exc, "kind", None) == "TooManyDbs" else str(exc)
            raise Exception(f"error writing line protocol to {db_name}: Cannot write: {text}") from None

