"""Logging every service shares: a service prefix and a run id on every line.

`docker compose logs` interleaves services; the `[service]` prefix and the `run=` id let a user follow one
run of one service through it. `LOG_FORMAT=json` switches to one JSON object per line for log shippers.
Extra fields passed with `extra={"fields": {...}}` are appended as key=value (or JSON members).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import uuid
from datetime import UTC, datetime
from typing import TextIO

__all__ = ["new_run_id", "setup_logging"]


def new_run_id() -> str:
    """A short id that is unique enough to grep one run out of a day of logs."""
    return uuid.uuid4().hex[:8]


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(record.msecs):03d}Z"


class _TextFormatter(logging.Formatter):
    def __init__(self, service: str, run_id: str):
        super().__init__()
        self.service, self.run_id = service, run_id

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None) or {}
        tail = "".join(f" {key}={value}" for key, value in fields.items())
        line = (f"[{self.service}] {_timestamp(record)} {record.levelname:<7} run={self.run_id} "
                f"{record.getMessage()}{tail}")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class _JsonFormatter(_TextFormatter):
    def format(self, record: logging.LogRecord) -> str:
        body = {"ts": _timestamp(record), "service": self.service, "run": self.run_id,
                "level": record.levelname, "logger": record.name, "msg": record.getMessage()}
        body.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            body["exc"] = self.formatException(record.exc_info)
        return json.dumps(body, default=str)


def setup_logging(service: str, *, run_id: str | None = None, level: str | None = None,
                  fmt: str | None = None, stream: TextIO | None = None) -> logging.Logger:
    """Configure the root logger for `service` and return the service's logger.

    Level and format default to `LOG_LEVEL` (INFO) and `LOG_FORMAT` (text|json) from the environment.
    """
    run_id = run_id or new_run_id()
    chosen = (fmt or os.environ.get("LOG_FORMAT") or "text").lower()
    formatter = _JsonFormatter(service, run_id) if chosen == "json" else _TextFormatter(service, run_id)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((level or os.environ.get("LOG_LEVEL") or "INFO").upper())
    logger = logging.getLogger(service)
    logger.run_id = run_id  # type: ignore[attr-defined]
    return logger
