"""Delivery to a database: retries, the spool, refused batches and fatal errors, the same for every sink.

A `Transport` only sends one gzip'd batch and says how it went (by raising one of the errors below); the
`Sink` around it decides what happens next:

- retryable (connection refused or reset, timeout, 408/429/5xx): retried with full-jitter backoff that obeys
  `Retry-After`; when the attempts run out the batch goes to the on-disk spool, the sink is marked down for a
  while, and later batches queue behind it in the spool so the order is kept. The spool is replayed oldest
  first as soon as the database answers.
- too large (413): the batch is split in two and each half sent.
- refused (400/422: bad data): when the database names the refused lines (InfluxDB 3's partial write), they
  are kept in the rejects folder with its reason and the rest counts as written. When it does not (InfluxDB 2:
  a 400 parse error writes nothing of the request, a 422 partial write says only `dropped=N`), the batch is
  split in two and each half re-sent, down to single lines, so every good line lands and exactly the bad
  ones are kept (re-sending a point InfluxDB 2 already has rewrites it in place).
- fatal (401/403/404 and other client errors: wrong token, unknown bucket): the batch is spooled, then
  `FatalSinkError` stops the run with the database's message.

Up to `in_flight` batches are sent at once. Both databases acknowledge a write only once it is durable:
InfluxDB 3 Core after its next WAL flush (`--wal-flush-interval`, 1 s), so one request at a time caps a load
at about one batch a second whatever the batch holds (measured on a real 3.6.0 server: 13k rows/s with one
request in flight, 62k with eight). A failure of a batch in flight is raised by the next `deliver`, `drain` or
`settle`, after the batch in hand has been sent or spooled: nothing is dropped on the way.
"""

from __future__ import annotations

import gzip
import logging
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

from common.retry import RetryableError, RetryPolicy, call_with_retry
from ingest.rejects import RejectsFile
from ingest.spool import Spool

__all__ = [
    "Batch", "FatalSinkError", "RefusedError", "RetryableError", "Sink", "SinkCounters", "TooLargeError",
    "Transport",
]

log = logging.getLogger("ingest.sinks")


class FatalSinkError(RuntimeError):
    """A problem retrying cannot fix (credentials, permissions, a missing bucket); the message says which."""


class TooLargeError(RuntimeError):
    """The database refused the request body as too large (HTTP 413)."""


class RefusedError(RuntimeError):
    """The database refused some or all lines (HTTP 400/422).

    `line_numbers` holds the 1-based numbers of the refused lines in the request when the server names them
    (InfluxDB 3: the lines themselves come back cut to 20 bytes, so the sink takes them from the batch),
    `failed` the number of refused lines when only a count is known (InfluxDB 2 `dropped=N`), else every line
    counts as refused. `isolate` asks the sink to find the bad lines by splitting the batch (the server did not
    name them).
    """

    def __init__(self, message: str, *, line_numbers: list[int] | None = None, failed: int | None = None,
                 isolate: bool = False):
        super().__init__(message)
        self.line_numbers = line_numbers
        self.failed = failed
        self.isolate = isolate


class Transport(Protocol):
    name: str

    def send(self, payload: bytes, database: str) -> None:
        """POST one gzip'd line-protocol body; raise RetryableError, RefusedError, TooLargeError or
        FatalSinkError on failure."""

    def close(self) -> None: ...


@dataclass
class Batch:
    """Line protocol for one request: the raw lines, and their gzip form computed once for every sink."""

    raw: bytes
    rows: int
    database: str
    gzip_level: int = 1
    _payload: bytes | None = None

    @cached_property
    def payload(self) -> bytes:
        if self._payload is not None:
            return self._payload
        compressor = zlib.compressobj(self.gzip_level, zlib.DEFLATED, 31)
        return compressor.compress(self.raw) + compressor.flush()

    @cached_property
    def lines(self) -> bytes:
        """The raw lines; a batch replayed from the spool carries only its gzip payload."""
        return self.raw or gzip.decompress(self.payload)

    def halves(self) -> tuple[Batch, Batch]:
        lines = self.lines.splitlines(keepends=True)
        middle = len(lines) // 2
        first, second = b"".join(lines[:middle]), b"".join(lines[middle:])
        return (Batch(first, middle, self.database, self.gzip_level),
                Batch(second, len(lines) - middle, self.database, self.gzip_level))


@dataclass
class SinkCounters:
    """Cumulative for the life of the sink: rows delivered directly (`written`) or from the spool
    (`replayed`), put in the spool (`spooled`), refused by the database (`refused`), left out because the
    database already held them with the same values (`unchanged`, ingest/stored.py)."""

    written: int = 0
    replayed: int = 0
    spooled: int = 0
    refused: int = 0
    batches: int = 0
    retries: int = 0
    unchanged: int = 0


class Sink:
    """One database: a transport plus retry policy, spool and rejects. Called from one thread (the writers);
    the requests in flight run in its own workers."""

    def __init__(self, transport: Transport, spool: Spool, *, policy: RetryPolicy,
                 rejects: RejectsFile | None = None, probe_interval: float = 15.0, max_probe_interval: float = 300.0,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                 in_flight: int = 1):
        if in_flight < 1:
            raise ValueError(f"in_flight must be at least 1, not {in_flight}")
        self.transport = transport
        self.name = transport.name
        self.spool = spool
        self.policy = policy
        self.rejects = rejects
        self.counters = SinkCounters()
        self._sleep, self._clock = sleep, clock
        self._probe_base, self._probe_max = probe_interval, max_probe_interval
        self._probe = probe_interval
        self._down_until = 0.0
        self.in_flight = in_flight
        self._lock = threading.Lock()  # counters, spool, rejects and the down state, shared with the workers
        self._pending: deque[Future[None]] = deque()
        self._pool = (ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix=f"sink-{self.name}")
                      if in_flight > 1 else None)

    # ---- public ---------------------------------------------------------------------------------------
    def deliver(self, batch: Batch) -> None:
        """Send `batch` (in flight beside up to `in_flight - 1` others), or keep it in the spool. Raises
        FatalSinkError (the batch spooled) or SpoolFullError, for this batch or an earlier one still in flight."""
        failure = self._wait(keep=0 if len(self.spool) else self.in_flight - 1)
        try:
            behind = len(self.spool) > 0 and not self.drain()
        except Exception as exc:  # a replayed batch answered fatally, or one in flight failed: keep this one
            failure, behind = failure or exc, True
        try:
            if behind:
                self._to_spool(batch)
            elif self._pool is None:
                self._deliver_now(batch)
            else:
                self._pending.append(self._pool.submit(self._deliver_now, batch))
        except Exception as exc:
            failure = failure or exc
        if failure is not None:
            raise failure

    def settle(self) -> None:
        """Wait for every batch in flight; raise the first failure among them."""
        failure = self._wait(keep=0)
        if failure is not None:
            raise failure

    def drain(self, *, force: bool = False) -> bool:
        """Replay the spool oldest first; True when it is empty afterwards.

        Unless `force`d, nothing is tried while the sink is marked down, and the first replayed batch gets a
        single attempt (a probe), so a dead database does not stall every new batch for a full backoff.
        """
        self.settle()
        if not len(self.spool):
            return True
        if not force and self._clock() < self._down_until:
            return False
        probe = RetryPolicy(attempts=1, base=self.policy.base, cap=self.policy.cap, max_wait=self.policy.max_wait,
                            statuses=self.policy.statuses, rng=self.policy.rng)
        for position, entry in enumerate(self.spool.entries):
            try:
                header, payload = self.spool.read(entry)
            except FileNotFoundError:
                continue  # another process (the service, or a command beside it) replayed it
            batch = Batch(b"", int(header["rows"]), str(header["database"]), _payload=payload)
            try:
                landed = self._send(batch, probe if position == 0 and not force else self.policy)
            except RetryableError as exc:
                log.warning("%s: database still unavailable (%s); %d batches stay in the spool", self.name, exc,
                            len(self.spool))
                self._mark_down()
                return False
            self.spool.remove(entry)
            with self._lock:
                self.counters.replayed += landed
        log.info("%s: spool replayed; the database is back", self.name)
        self._probe, self._down_until = self._probe_base, 0.0
        return True

    def close(self) -> None:
        """Wait for the batches in flight (each is written or spooled by now), then close the connections."""
        failure = self._wait(keep=0)
        if failure is not None:
            log.error("%s: a batch in flight failed at shutdown (%s); it is in the spool", self.name, failure)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self.transport.close()

    # ---- internals ------------------------------------------------------------------------------------
    def _wait(self, *, keep: int) -> Exception | None:
        """Wait until at most `keep` batches are in flight; the first failure of those that finished."""
        failure: Exception | None = None
        while len(self._pending) > keep:
            try:
                self._pending.popleft().result()
            except Exception as exc:
                failure = failure or exc
        return failure

    def _deliver_now(self, batch: Batch) -> None:
        try:
            landed = self._send(batch, self.policy)
        except RetryableError as exc:
            log.warning("%s: write failed after %d attempts (%s); spooling %d rows", self.name,
                        self.policy.attempts, exc, batch.rows)
            self._to_spool(batch)
            self._mark_down()
            return
        except FatalSinkError:
            self._to_spool(batch)
            raise
        with self._lock:
            self.counters.written += landed

    def _to_spool(self, batch: Batch) -> None:
        with self._lock:
            self.spool.put(batch.payload, database=batch.database, rows=batch.rows)
            self.counters.spooled += batch.rows

    def _mark_down(self) -> None:
        with self._lock:
            self._down_until = self._clock() + self._probe
            self._probe = min(self._probe * 2, self._probe_max) if self._probe > 0 else 0.0

    def _on_retry(self, attempt: int, exc: RetryableError, delay: float) -> None:
        with self._lock:
            self.counters.retries += 1
        log.warning("%s: attempt %d failed (%s); retrying in %.1fs", self.name, attempt, exc, delay)

    def _send(self, batch: Batch, policy: RetryPolicy) -> int:
        """Send with retries, split on 413, quarantine refused lines; return the rows that landed.
        Retryable (after the last attempt) and fatal errors propagate."""
        try:
            call_with_retry(lambda: self.transport.send(batch.payload, batch.database), policy,
                            sleep=self._sleep, on_retry=self._on_retry)
        except TooLargeError:
            if batch.rows <= 1:
                return self._refused(batch, RefusedError("a single line is larger than the server accepts (413)"))
            log.warning("%s: batch of %d rows too large (413); splitting it", self.name, batch.rows)
            return sum(self._send(half, policy) for half in batch.halves())
        except RefusedError as exc:
            if exc.isolate and exc.line_numbers is None and batch.rows > 1:
                log.warning("%s refused a batch of %d rows without naming the bad lines (%s); splitting it so the "
                            "good lines land", self.name, batch.rows, exc)
                return sum(self._send(half, policy) for half in batch.halves())
            return self._refused(batch, exc)
        with self._lock:
            self.counters.batches += 1
        return batch.rows

    def _refused(self, batch: Batch, exc: RefusedError) -> int:
        raw = batch.lines
        named = _numbered_lines(raw, exc.line_numbers) if exc.line_numbers is not None else None
        if named is not None:
            failed, body = len(named), b"".join(line + b"\n" for line in named)
        else:
            failed = batch.rows if exc.failed is None else min(exc.failed, batch.rows)
            body = raw
        log.error("%s refused %d of %d lines: %s", self.name, failed, batch.rows, exc)
        with self._lock:
            self.counters.refused += failed
            self.counters.batches += 1
            saved = None if self.rejects is None else self.rejects.refused(
                sink=self.name, database=batch.database, reason=str(exc), body=body, rows=failed)
        if saved is not None:
            log.error("%s: refused lines saved to %s", self.name, saved)
        return batch.rows - failed


def _numbered_lines(raw: bytes, numbers: list[int]) -> list[bytes] | None:
    """The lines of a request body by 1-based number, as InfluxDB 3 counts them (`lp.lines()` beside
    `parse_lines`, influxdb3_write/src/write_buffer/validator.rs, v3.10.1); None when a number is not in the
    body (then the whole batch is kept rather than a guess)."""
    lines = raw.decode("utf-8", errors="surrogateescape").splitlines()
    if not numbers or any(not 1 <= number <= len(lines) for number in numbers):
        return None
    return [lines[number - 1].encode("utf-8", errors="surrogateescape") for number in sorted(set(numbers))]
