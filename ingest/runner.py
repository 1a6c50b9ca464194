"""`python -m ingest run`: the container's long-running mode.

Schedules, from the config: the bird data set once (remembered in the cursors, so a restart does not load it
again), weather every WEATHER_INTERVAL, sensor readings every SENSORS_INTERVAL (filling a gap after a restart),
spool replays every INGEST_REPLAY_INTERVAL, the service's own metrics to `monitoring` every
INGEST_METRICS_INTERVAL, and the audit of the rollups copied to `history` (ingest/audit.py) every
INGEST_AUDIT_INTERVAL. A failing source is logged and retried on its next turn; a wrong token or a full spool
stops the service with a clear message. The heartbeat file tells the container healthcheck the loop is alive.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from ingest.jobs import Jobs
from ingest.sinks import FatalSinkError
from ingest.sources import SourceError
from ingest.spool import SpoolFullError
from ingest.state import Cursors, Heartbeat
from ingest.stats import RunSummary

__all__ = ["Runner"]

log = logging.getLogger("ingest.run")
BIRDS_RETRY = 3600.0
LIVE_JOBS = ("sensors", "weather", "replay", "metrics")  # never stepped: they run while a history load waits


class Runner:
    def __init__(self, jobs: Jobs, *, cursors: Cursors, heartbeat: Heartbeat, stop: threading.Event | None = None,
                 clock: Callable[[], float] = time.time):
        self.jobs, self.config, self.outputs = jobs, jobs.config, jobs.outputs
        self.cursors, self.heartbeat = cursors, heartbeat
        self.stop = stop or threading.Event()
        self.clock = clock
        self.pending: dict[str, RunSummary] = {}
        self._last_beat = 0.0
        jobs.record_metrics = False
        jobs.drain = False
        jobs.bar = False
        jobs.on_progress = self._beat
        self.due: dict[str, float] = {}
        self._running: set[str] = set()
        self.outputs.between_steps = self._live_turn

    def _beat(self) -> None:
        now = time.monotonic()
        if now - self._last_beat >= 5:
            self._last_beat = now
            self.heartbeat.beat()

    def _keep(self, summary: RunSummary | None) -> None:
        if summary is None:
            return
        known = self.pending.get(summary.source)
        self.pending[summary.source] = known.add(summary) if known else summary

    def _flush_metrics(self) -> None:
        for summary in self.pending.values():
            self.outputs.record(summary)
        self.pending.clear()

    def run(self) -> None:
        """Until `stop` is set (SIGTERM/SIGINT). FatalSinkError and SpoolFullError end the loop."""
        now = self.clock()
        due = self.due
        due.update({name: now for name in self.config.run_jobs})
        due["replay"] = now + self.config.replay_interval
        due["metrics"] = now + self.config.metrics_interval
        log.info("running: %s; replay every %.0fs; metrics every %.0fs", ", ".join(self.config.run_jobs) or "no jobs",
                 self.config.replay_interval, self.config.metrics_interval)
        try:
            while not self.stop.is_set():
                self.heartbeat.beat()
                self._run_due(due)
                wait = min(due.values(), default=self.clock() + 15) - self.clock()
                self.stop.wait(min(max(wait, 0.05), 15.0))
        finally:
            self._flush_metrics()
            log.info("stopped")

    def _run_due(self, names: Iterable[str]) -> None:
        """Every job of `names` that is due and not already running, soonest first."""
        for name in sorted(names, key=self.due.__getitem__):
            if self.stop.is_set() or name in self._running or self.due.get(name, float("inf")) > self.clock():
                continue
            self._running.add(name)
            try:
                next_time = self._run_job(name)
            finally:
                self._running.discard(name)
            if next_time is None:
                del self.due[name]
            else:
                self.due[name] = next_time

    def _live_turn(self) -> None:
        """While a history load waits for InfluxDB 3 to persist a step (ingest/pacing.py): the live jobs that are
        due run, so the wait does not hold up readings or metrics, and the container stays healthy."""
        if self.stop.is_set():
            raise SourceError("stopping: the history load ends here; what it sent is kept and the rest is loaded on "
                              "the next start")
        self.heartbeat.beat()
        self._run_due([name for name in LIVE_JOBS if name in self.due])

    def _run_job(self, name: str) -> float | None:
        """Run one job; return when it is due next (None: never again)."""
        started = self.clock()
        try:
            if name == "birds":
                for summary in self.jobs.birds(cursors=self.cursors):
                    self._keep(summary)
                return None
            if name == "weather":
                self._keep(self.jobs.weather())
                return started + self.config.weather_interval
            if name == "sensors":
                self._keep(self.jobs.sensors_tick(self.cursors))
                step = self.config.sensors_interval
                return (self.clock() // step + 1) * step
            if name == "replay":
                self.outputs.replay()
                return started + self.config.replay_interval
            if name == "metrics":
                self._flush_metrics()
                return started + self.config.metrics_interval
            if name == "audit":
                self.jobs.audit()
                return started + self.config.audit_interval
        except (FatalSinkError, SpoolFullError):
            raise
        except SourceError as exc:
            log.error("%s: %s", name, exc)
        except Exception:
            log.exception("%s failed unexpectedly; it runs again on its next turn", name)
        if name == "birds":
            return started + BIRDS_RETRY
        if name == "weather":
            return started + self.config.weather_interval
        if name == "sensors":
            return started + self.config.sensors_interval
        if name == "audit":
            return started + self.config.audit_interval
        return started + self.config.replay_interval
