"""`influxdb3_local`: the object a plugin receives as its first argument.

Matched to InfluxDB 3.10's plugin API: `info/warn/error(*args)` join their arguments' str() with spaces;
`query(sql, args=None)` runs on the trigger's database and returns a list of dicts; `write(builder)` and
`write_to_db(database, builder)` call `builder.build()` at once (so LineBuilder errors raise in the plugin)
and queue the line, which is only written after the plugin returns, one all-or-nothing request per database;
`cache` is the trigger's view of the engine cache. Writing to `_internal` raises, as on the server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tests.engine.cache import PluginCache

if TYPE_CHECKING:
    from tests.engine.engine import LocalEngine

__all__ = ["LogLine", "PluginApi"]


@dataclass(frozen=True)
class LogLine:
    level: str  # INFO | WARN | ERROR
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.message}"


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

    def query(self, query: str, args: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        if args is not None:
            bad = [key for key, value in args.items() if not isinstance(key, str) or not isinstance(value, str)]
            if bad:
                # The engine takes the parameters as a dict of str to str and raises a TypeError otherwise.
                raise TypeError(f"query args must map str to str; not: {bad}")
        return self.engine.database(self.database).query(query, args)

    def write(self, line_builder: Any) -> None:
        self.write_to_db(self.database, line_builder)

    def write_to_db(self, db_name: str, line_builder: Any) -> None:
        if db_name == "_internal":
            raise Exception("Python plugins cannot write to the _internal database")
        line = line_builder.build()
        if not isinstance(line, str):
            raise TypeError(f"build() returned {type(line).__name__}, not str")
        self.queued.setdefault(db_name, []).append(line)
