"""Where rows go: the enabled databases (or an `--lp-out` file), built once per process from the config.

Each database gets a `Sink` with its own spool folder under the state directory; batches the database refuses
are kept under `rejects/`. The transports can be injected (tests capture payloads that way).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path

import pyarrow as pa

from common.config import ConfigError
from common.retry import RetryableError, RetryPolicy
from ingest.buckets import BucketSpec, ensure_buckets, load_buckets
from ingest.config import IngestConfig
from ingest.lineprotocol import LineEncoder
from ingest.pacing import WINDOW_NS, SnapshotSteps
from ingest.rejects import RejectsFile
from ingest.schema import INGEST_RUNS, INGEST_STEPS
from ingest.sinks import Batch, Sink, Transport
from ingest.sinks.influxdb3 import with_port
from ingest.sinks.lpfile import LineProtocolFile
from ingest.spool import Spool
from ingest.stats import RunSummary, Tracker
from ingest.stored import StoredRows
from ingest.writer import Writer

__all__ = ["Outputs"]

log = logging.getLogger("ingest.outputs")
METRICS = LineEncoder(INGEST_RUNS.name, INGEST_RUNS.tags, INGEST_RUNS.field_names)
STEPS = LineEncoder(INGEST_STEPS.name, INGEST_STEPS.tags, INGEST_STEPS.field_names)


class Outputs:
    def __init__(self, config: IngestConfig, run_id: str, *, lp_out: str | None = None,
                 transports: Sequence[Transport] | None = None, sleep: Callable[[float], None] = time.sleep,
                 probe_interval: float | None = None):
        self.config = config
        self.run_id = run_id
        self.lp_out = lp_out
        self.policy = RetryPolicy(attempts=config.retry_attempts, max_wait=config.retry_max_wait)
        self.refused = RejectsFile(self.rejects_dir, "refused", run_id)
        self.sleep = sleep
        self.between_steps: Callable[[], None] | None = None  # the run loop's live jobs, while a history load waits
        self.loads: list[Tracker] = []  # the loads under way (pipeline.load), outermost first
        self._buckets: list[BucketSpec] | None = None  # the buckets file, read once (`buckets`)
        self.sinks: list[Sink | LineProtocolFile] = []
        if lp_out is not None:
            self.sinks.append(LineProtocolFile(lp_out))
            return
        for transport in transports if transports is not None else self._transports():
            spool = Spool(config.state_dir / "spool" / transport.name, max_bytes=config.spool_max_bytes)
            self.sinks.append(Sink(transport, spool, policy=self.policy, rejects=self.refused, sleep=sleep,
                                   probe_interval=config.replay_interval if probe_interval is None
                                   else probe_interval, in_flight=config.writes_in_flight))
        if not self.sinks:
            raise ConfigError(["INGEST_INFLUXDB2/INGEST_INFLUXDB3: both databases are turned off (or --no-influxdb2 "
                               "--no-influxdb3) and no --lp-out file was given: there is nowhere to write"])

    @property
    def rejects_dir(self) -> Path:
        return self.config.state_dir / "rejects"

    def _transports(self) -> list[Transport]:
        from ingest.sinks.influxdb2 import InfluxDB2Transport
        from ingest.sinks.influxdb3 import InfluxDB3Transport

        found: list[Transport] = []
        if self.config.influxdb2 is not None:
            target = self.config.influxdb2
            found.append(InfluxDB2Transport(target.url, target.token, target.org, timeout=self.config.http_timeout))
        if self.config.influxdb3 is not None:
            target3 = self.config.influxdb3
            found.append(InfluxDB3Transport(target3.url, target3.token, database=self.config.bucket,
                                            timeout=self.config.http_timeout))
        return found

    def writer(self, database: str | None = None, *, exclude: Sequence[str] = (), history: bool = False) -> Writer:
        """A writer to every sink (but the `exclude`d ones, which must leave one: ValueError otherwise). `history`:
        a load of existing data, sent in steps InfluxDB 3 persists one at a time (ingest/pacing.py)."""
        sinks = [sink for sink in self.sinks if sink.name not in exclude]
        name = database or self.config.bucket
        steps = self.steps(name) if history and any(sink.name == "influxdb3" for sink in sinks) else None
        return Writer(sinks, name, batch_bytes=self.config.batch_bytes, batch_rows=self.config.batch_rows,
                      gzip_level=self.config.gzip_level, steps=steps)

    def steps(self, database: str) -> SnapshotSteps | None:
        """The steps of a history load into `database`: INGEST_WINDOWS_PER_SNAPSHOT windows each, counted by
        Core's own file list; None when they are off or InfluxDB 3 is not written."""
        stored = self.stored_rows(database) if self.config.windows_per_snapshot > 0 else None
        if stored is None:
            return None
        retention = self.retention(database)
        expired = None if retention is None else (time.time_ns() - int(retention.total_seconds()) * 10**9) // WINDOW_NS

        sink = self.sink("influxdb3")
        assert isinstance(sink, Sink)

        def beat(step: int, windows: int, persisted: int) -> None:
            """The step's progress point, straight to InfluxDB 3: not a row of the load, never spooled."""
            lines = STEPS.encode(pa.table({
                "time": pa.array([time.time_ns()], pa.timestamp("ns")), "database": [database],
                "step": pa.array([step], pa.int64()), "windows": pa.array([windows], pa.int64()),
                "persisted": pa.array([persisted], pa.int64())})).to_bytes()
            try:
                sink.transport.send(Batch(lines, 1, self.config.monitoring_bucket).payload,
                                    self.config.monitoring_bucket)
            except Exception as exc:  # the next second's point goes again; the load never fails for it
                log.debug("step progress point not written: %s", exc)

        def between() -> None:
            if self.between_steps is None:
                return
            running = list(self.loads)
            before = running[0].counters() if running else {}
            self.between_steps()
            for tracker in running:  # the live jobs' rows are theirs, not the waiting load's
                tracker.discount(before, tracker.counters())

        return SnapshotSteps(self.config.windows_per_snapshot, stored.files, beat=beat, between=between,
                             expired_before=expired, sleep=self.sleep, close=stored.close)

    def sink(self, name: str) -> Sink | LineProtocolFile | None:
        return next((sink for sink in self.sinks if sink.name == name), None)

    def stored_rows(self, database: str | None = None) -> StoredRows | None:
        """A reader of what InfluxDB 3 already holds (ingest/stored.py), when InfluxDB 3 is a sink."""
        target = self.config.influxdb3
        if target is None or self.sink("influxdb3") is None:
            return None
        return StoredRows(with_port(target.url), target.token, database or self.config.bucket,
                          timeout=self.config.http_timeout)

    def retention(self, database: str | None) -> timedelta | None:
        """The retention the buckets file gives `database` (the configured bucket by default): rows older than it
        are left out of every InfluxDB 3 query and deleted by InfluxDB 2. None when it keeps everything, or when
        the file does not list it or cannot be read (ensure_buckets says why)."""
        name = database or self.config.bucket
        try:
            specs = self.buckets()
        except ValueError:
            return None
        return next((spec.retention for spec in specs if spec.name == name), None)

    def buckets(self) -> list[BucketSpec]:
        """The buckets file, `retention: raw` as RAW_RETENTION, read once: every load asks for its target's
        retention (a live sensor tick every SENSORS_INTERVAL included). ValueError names the problem."""
        if self._buckets is None:
            self._buckets = load_buckets(self.config.buckets_file, self.config.raw_retention)
        return self._buckets

    def ensure_buckets(self, sleep: Callable[[float], None] | None = None) -> None:
        """Create the buckets file's buckets/databases in every enabled database (nothing for --lp-out).
        A wrong token stops here, with the database's answer; an unreachable database does not."""
        creators = [sink.transport for sink in self.sinks if isinstance(sink, Sink)
                    and hasattr(sink.transport, "ensure_database")]
        if self.config.influxdb2 is not None and not self.config.influxdb2.create_buckets:
            # The stack's influxdb2-init made them; this token may write to them only (it cannot even list them).
            log.info("influxdb2: buckets are created by influxdb2-init (INGEST_INFLUXDB2_CREATE_BUCKETS=false)")
            creators = [creator for creator in creators if getattr(creator, "name", "") != "influxdb2"]
        if not creators:
            return
        try:
            specs = self.buckets()
        except ValueError as exc:
            raise ConfigError([f"INGEST_BUCKETS_FILE: {exc}"]) from None
        try:
            ensure_buckets(specs, creators, self.policy, sleep=sleep)  # type: ignore[arg-type]
        except RetryableError as exc:
            log.warning("could not check the buckets (%s); going on, writes are spooled until the database "
                        "answers", exc)

    def record(self, summary: RunSummary) -> None:
        """Write a run's metrics to the monitoring bucket (not for --lp-out, which holds data only)."""
        if self.lp_out is not None or not summary.sinks:
            return
        writer = self.writer(self.config.monitoring_bucket)
        writer.write(METRICS.encode(summary.table()))
        writer.close(drain=False)

    def replay(self) -> bool:
        """Try every spool once (no waiting while a database is marked down); True when all are empty."""
        return all([sink.drain() for sink in self.sinks])

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
