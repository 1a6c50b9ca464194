"""HTTP outcomes to delivery decisions, shared by the InfluxDB 2 and 3 transports."""

from __future__ import annotations

import re

import urllib3.exceptions

from common.retry import RETRY_STATUSES, RetryableError, parse_retry_after
from ingest.sinks import FatalSinkError, RefusedError, TooLargeError

__all__ = ["line_errors_message", "network_error", "status_error"]

SHOWN_LINE_ERRORS = 3

_DROPPED = re.compile(r"dropped=(\d+)")


def status_error(label: str, status: int, message: str, *, retry_after: str | None, fatal_hints: dict[int, str],
                 line_numbers: list[int] | None = None, isolate: bool = False) -> Exception:
    """The exception a write answered with `status` should raise. `fatal_hints` explains 401/403/404;
    `isolate` marks a refusal whose bad lines the server did not name (see RefusedError)."""
    text = _bounded((message or "").strip()) or f"HTTP {status}"
    if status in RETRY_STATUSES:
        return RetryableError(f"{label} answered {status}: {text}", retry_after=parse_retry_after(retry_after),
                              status=status)
    if status == 413:
        return TooLargeError(f"{label} answered 413: {text}")
    if status in (400, 422):
        dropped = _DROPPED.search(text)
        return RefusedError(f"{status}: {text}", line_numbers=line_numbers,
                            failed=int(dropped.group(1)) if dropped else None, isolate=isolate)
    hint = fatal_hints.get(status, "")
    return FatalSinkError(f"{label} answered {status}: {text}" + (f" — {hint}" if hint else ""))


def network_error(label: str, url: str, exc: BaseException) -> Exception:
    """A transport-level failure: TLS problems are fatal (they do not heal), everything else is retried."""
    if isinstance(exc, urllib3.exceptions.SSLError):
        return FatalSinkError(f"{label} at {url}: TLS error: {exc}")
    reason = getattr(exc, "reason", None) or exc
    return RetryableError(f"{label} at {url} unreachable: {type(exc).__name__}: {reason}")


def line_errors_message(message: str, errors: list[tuple[int, str, str]]) -> str:
    """A refusal's text with its first few line errors and a count: a wholly refused batch names every one of
    its lines, which would put megabytes into the log and the rejects file for one request."""
    head = (message or "").split("\n", 1)[0].rstrip(": ") or "lines refused"
    if not errors:
        return head
    shown = "; ".join(f"line {number}: {text}" + (f" (begins {line!r})" if line else "")
                      for number, text, line in errors[:SHOWN_LINE_ERRORS])
    more = len(errors) - SHOWN_LINE_ERRORS
    return f"{head}: {len(errors):,} lines refused; {shown}" + (f"; and {more:,} more" if more > 0 else "")


def _bounded(text: str, width: int = 1000) -> str:
    """The first few lines of a server's error text (each cut to `width`) and how many more there were:
    InfluxDB 2 answers a batch of bad lines with one "unable to parse '<the whole line>'" per line
    (models/points.go, v2.7.12)."""
    lines = text.split("\n")
    kept = [line if len(line) <= width else line[:width] + "…" for line in lines[:SHOWN_LINE_ERRORS]]
    more = len(lines) - len(kept)
    return "\n".join(kept) + (f"\n… and {more:,} more" if more > 0 else "")
