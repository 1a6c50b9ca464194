"""Retry with exponential backoff and full jitter, honouring `Retry-After`.

One policy for every HTTP caller in the stack (ingest sinks, the InfluxDB 3 provisioner, backup), so a
server that says "come back in 30 s" is obeyed everywhere, and nobody hammers a database that is starting.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

__all__ = ["RetryPolicy", "RetryableError", "call_with_retry", "parse_retry_after"]

T = TypeVar("T")

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class RetryableError(Exception):
    """A failure worth another attempt; `retry_after` is the server's requested wait in seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None, status: int | None = None):
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP-date); None if absent or bad."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts` counts every try, the first included. Waits never exceed `max_wait` seconds."""

    attempts: int = 5
    base: float = 0.5
    cap: float = 30.0
    max_wait: float = 300.0
    statuses: frozenset[int] = field(default=RETRY_STATUSES)
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def is_retryable_status(self, status: int) -> bool:
        return status in self.statuses

    def wait(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to sleep after failed attempt number `attempt` (1-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_wait)
        ceiling = min(self.cap, self.base * (2 ** (attempt - 1)))
        return self.rng.uniform(0, ceiling)


def call_with_retry(fn: Callable[[], T], policy: RetryPolicy, *,
                    sleep: Callable[[float], None] = time.sleep,
                    on_retry: Callable[[int, RetryableError, float], None] | None = None) -> T:
    """Call `fn` until it returns, re-raising the last RetryableError once attempts run out.

    Only RetryableError is retried; anything else (a 401, a bad request) propagates at once.
    """
    attempt = 1
    while True:
        try:
            return fn()
        except RetryableError as exc:
            if attempt >= policy.attempts:
                raise
            delay = policy.wait(attempt, exc.retry_after)
            if on_retry is not None:
                on_retry(attempt, exc, delay)
            sleep(delay)
            attempt += 1
