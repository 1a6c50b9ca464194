"""HTTP outcomes to delivery decisions, shared by the InfluxDB 2 and 3 transports."""

from __future__ import annotations

import re

import urllib3.exceptions

from common.retry import RETRY_STATUSES, RetryableError, parse_retry_after
from ingest.sinks import FatalSinkError, RefusedError, TooLargeError

__all__ = ["network_error", "status_error"]

_DROPPED = re.compile(r"dropped=(\d+)")


def status_error(label: str, status: int, message: str, *, retry_after: str | None, fatal_hints: dict[int, str],
                 failed_lines: list[str] | None = None, isolate: bool = False) -> Exception:
    """The exception a write answered with `status` should raise. `fatal_hints` explains 401/403/404;
    `isolate` marks a refusal whose bad lines the server did not name (see RefusedError)."""
    text = (message or "").strip() or f"HTTP {status}"
    if status in RETRY_STATUSES:
        return RetryableError(f"{label} answered {status}: {text}", retry_after=parse_retry_after(retry_after),
                              status=status)
    if status == 413:
        return TooLargeError(f"{label} answered 413: {text}")
    if status in (400, 422):
        dropped = _DROPPED.search(text)
        return RefusedError(f"{status}: {text}", failed_lines=failed_lines,
                            failed=int(dropped.group(1)) if dropped else None, isolate=isolate)
    hint = fatal_hints.get(status, "")
    return FatalSinkError(f"{label} answered {status}: {text}" + (f" — {hint}" if hint else ""))


def network_error(label: str, url: str, exc: BaseException) -> Exception:
    """A transport-level failure: TLS problems are fatal (they do not heal), everything else is retried."""
    if isinstance(exc, urllib3.exceptions.SSLError):
        return FatalSinkError(f"{label} at {url}: TLS error: {exc}")
    reason = getattr(exc, "reason", None) or exc
    return RetryableError(f"{label} at {url} unreachable: {type(exc).__name__}: {reason}")
