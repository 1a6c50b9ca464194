"""Log lines with the plugin's name and a run id, through the engine's own logger.

Every call of a plugin gets a run id, and every line it logs reads `[plugin] run=<id> message k=v`, so one
run can be followed in `docker compose logs influxdb3` and in the `system.processing_engine_logs` table.
Forecast runs reuse the id as their `run` tag, which ties a forecast's rows to the log lines that made it.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

__all__ = ["RUN_TIME_CHARS", "RunLog", "new_run_id", "run_started_ns"]

# A run id starts with its start time in RFC 3339 (`2026-11-29T03:00:00Z`): SQL can turn that prefix into a
# timestamp (`to_timestamp(left(run, 20))`) and so select the run's rows by time, which InfluxDB 3 needs to read
# only the Parquet files of that run (it prunes files by time, never by tag).
RUN_TIME_CHARS = 20


def new_run_id(now: datetime | None = None) -> str:
    """`2026-11-29T03:00:00Z-xxxxxx`: sorts by start time, unique across runs started in the same second.

    A naive `now` is taken as UTC (the engine's `call_time` is naive UTC in the official image).
    """
    now = now or datetime.now(UTC)
    if now.tzinfo is not None:
        now = now.astimezone(UTC)
    return f"{now:%Y-%m-%dT%H:%M:%S}Z-{secrets.token_hex(3)}"


def run_started_ns(run_id: str) -> int:
    """The start of a run as Unix nanoseconds, from its id; ValueError when the id does not start with one."""
    moment = datetime.strptime(run_id[:RUN_TIME_CHARS], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return int(moment.timestamp()) * 10**9


def _format_value(value: Any) -> str:
    text = str(value)
    return repr(text) if (" " in text or text == "") else text


class RunLog:
    """`info`/`warn`/`error` with the plugin name, run id and key=value context on every line."""

    def __init__(self, influxdb3_local: Any, plugin: str, run_id: str | None = None):
        self._api = influxdb3_local
        self.plugin = plugin
        self.run_id = run_id or new_run_id()

    def _line(self, message: str, context: dict[str, Any]) -> str:
        extra = " ".join(f"{key}={_format_value(value)}" for key, value in context.items())
        return f"[{self.plugin}] run={self.run_id} {message}" + (f" {extra}" if extra else "")

    def info(self, message: str, **context: Any) -> None:
        self._api.info(self._line(message, context))

    def warn(self, message: str, **context: Any) -> None:
        self._api.warn(self._line(message, context))

    def error(self, message: str, **context: Any) -> None:
        self._api.error(self._line(message, context))
