"""The jobs behind the commands and the `run` loop: each turns a source into a load through the outputs."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import requests

from ingest.audit import HistoryAudit
from ingest.config import IngestConfig
from ingest.csvreader import CsvFile
from ingest.download import Http, is_url
from ingest.ordering import in_time_order
from ingest.outputs import Outputs
from ingest.pipeline import load
from ingest.progress import Progress
from ingest.sources import Chunk, SourceError
from ingest.sources.movebank import DEFAULT_URLS, MovebankApi, MovebankFile
from ingest.sources.sensors import Fleet, Replay
from ingest.sources.weather import (
    Location,
    OpenMeteo,
    OpenWeatherMap,
    chunk,
    open_meteo_current,
    open_meteo_hourly,
    openweathermap_current,
)
from ingest.state import Cursors
from ingest.stats import RunSummary

__all__ = ["Jobs"]

log = logging.getLogger("ingest.jobs")
NS = 1_000_000_000


@dataclass
class Jobs:
    config: IngestConfig
    outputs: Outputs
    http: Http = field(default_factory=Http)
    bar: bool | None = None  # None: a progress bar only on a terminal
    record_metrics: bool = True  # False when the `run` loop writes metrics once a minute instead
    drain: bool = True  # replay the spools at the end of each load (commands); the `run` loop has a replay job
    on_progress: Callable[[], None] | None = None  # e.g. the run loop's heartbeat

    def _progress(self, description: str, *, unit: str = "rows", total: int | None = None,
                  bar: bool | None = None) -> Progress:
        return Progress(description, unit=unit, total=total, bar=self.bar if bar is None else bar,
                        on_update=self.on_progress)

    def _load(self, source: str, chunks: Iterable[Chunk], progress: Progress | None = None, *,
              skip_stored: bool = True, database: str | None = None) -> RunSummary:
        """One load (into `database`, default the configured bucket). `skip_stored`: what InfluxDB 3 already holds
        is not written to it again (ingest/stored.py); every load of existing data uses it, only new live readings
        (sensor ticks, current weather) do not."""
        return load(source, chunks, self.outputs, database=database, progress=progress,
                    record_metrics=self.record_metrics, skip_stored=skip_stored, drain=self.drain)

    @property
    def downloads(self) -> Path:
        return self.config.state_dir / "downloads"

    # ---- birds --------------------------------------------------------------------------------------
    def birds(self, sources: list[str] | None = None, *, study_id: int | None = None,
              accept_license: bool | None = None, cursors: Cursors | None = None) -> list[RunSummary]:
        """Load Movebank files/URLs (default: the configured ones, else the public O_ASSEN study) or a study
        through the REST API. With `cursors`, sources loaded before are skipped (the `run` loop)."""
        study = study_id or (None if sources else self.config.movebank_study_id)
        done = cursors.get("birds.loaded", []) if cursors is not None else []
        if study:
            key = f"movebank-study:{study}"
            if key in done:
                log.info("birds: Movebank study %s was loaded before; skipped", study)
                return []
            api = MovebankApi(self.http, study, username=self.config.movebank_username,
                              password=self.config.movebank_password, url=self.config.movebank_api_url,
                              accept_license=self.config.movebank_accept_license if accept_license is None
                              else accept_license)
            movebank = api.fetch(self.downloads)
            try:
                summary = self._load_birds(movebank)
            finally:
                movebank.csv.path.unlink(missing_ok=True)
            if cursors is not None:
                cursors.set("birds.loaded", [*done, key])
            return [summary]
        chosen = list(sources or self.config.movebank_sources or DEFAULT_URLS)
        default = not sources and not self.config.movebank_sources
        summaries = []
        for source in chosen:
            if source in done:
                log.info("birds: %s was loaded before; skipped", source)
                continue
            summaries.append(self._birds_source(source, default))
            if cursors is not None:
                done = [*done, source]
                cursors.set("birds.loaded", done)
        return summaries

    def _birds_source(self, source: str, default: bool) -> RunSummary:
        if not is_url(source):
            path = Path(source)
            if not path.is_file():
                raise SourceError(f"{source}: no such file")
            return self._load_birds(MovebankFile(_csv(path, source)))
        try:
            with self._progress(f"download {Path(source).name}", unit="B") as progress:
                path = self.http.download(source, self.downloads, "Movebank data", progress=progress.update)
        except SourceError as exc:
            if default:
                raise SourceError(f"{exc}. With no network, load a local Movebank CSV instead: "
                                  "python -m ingest birds PATH") from None
            raise
        try:
            return self._load_birds(MovebankFile(_csv(path, source)))
        finally:
            path.unlink(missing_ok=True)

    def _load_birds(self, movebank: MovebankFile) -> RunSummary:
        log.info("birds: loading %s into %s", movebank.label, self.config.history_bucket)
        progress = self._progress(f"birds {Path(movebank.label).name}")
        return self._load("birds", in_time_order(movebank.chunks()), progress, database=self.config.history_bucket)

    # ---- audit --------------------------------------------------------------------------------------
    def audit(self) -> dict[str, int] | None:
        """Check every database's rollup copies in `history` and mark what they lack (ingest/audit.py): {table:
        buckets marked}; None when InfluxDB 3 is not written to (INGEST_INFLUXDB3=false, --lp-out)."""
        readers = {}

        def reader(database: str):
            if database not in readers:
                readers[database] = self.outputs.stored_rows(database)
            return readers[database]

        marked: dict[str, int] = {}
        try:
            first = reader(self.config.bucket)
            if first is None:
                return None
            try:
                databases = sorted(first.databases())
            except (RuntimeError, requests.RequestException) as exc:
                raise SourceError(f"InfluxDB 3 could not list its databases: {exc}") from None
            for database in databases:
                marked.update(HistoryAudit(reader(database), reader).run())
        finally:
            for each in readers.values():
                if each is not None:
                    each.close()
        return marked

    # ---- weather ------------------------------------------------------------------------------------
    def weather(self, *, provider: str | None = None) -> RunSummary:
        """Current conditions for every configured location; a location that fails is logged and skipped."""
        source = self._provider(provider)
        failures: list[str] = []

        def chunks() -> Iterator[Chunk]:
            for location in self.config.weather_locations:
                try:
                    yield source.current(location)
                except SourceError as exc:
                    log.error("weather: %s", exc)
                    failures.append(str(exc))

        summary = self._load("weather", chunks(), skip_stored=False)
        if failures and len(failures) == len(self.config.weather_locations):
            raise SourceError(f"weather: no location could be fetched ({failures[0]})")
        return summary

    def _provider(self, provider: str | None) -> OpenMeteo | OpenWeatherMap:
        chosen = provider or ("openweathermap" if self.config.openweathermap_api_key else "open-meteo")
        if chosen == "openweathermap":
            if not self.config.openweathermap_api_key:
                raise SourceError("OpenWeatherMap needs an API key: set OPENWEATHERMAP_API_KEY (or _FILE)")
            return OpenWeatherMap(self.http, self.config.openweathermap_api_key, url=self.config.openweathermap_url)
        return OpenMeteo(self.http, forecast_url=self.config.open_meteo_url,
                         archive_url=self.config.open_meteo_archive_url)

    def weather_backfill(self, start: date, end: date) -> RunSummary:
        """Hourly history from Open-Meteo's archive for every configured location."""
        archive = OpenMeteo(self.http, forecast_url=self.config.open_meteo_url,
                            archive_url=self.config.open_meteo_archive_url)

        def chunks() -> Iterator[Chunk]:
            for location in self.config.weather_locations:
                yield from archive.archive(location, start, end)

        hours = ((end - start).days + 1) * 24 * len(self.config.weather_locations)
        return self._load("weather", chunks(), self._progress("weather backfill", total=hours))

    def weather_file(self, path: Path, location: str | None = None) -> RunSummary:
        """A saved Open-Meteo (current or hourly) or OpenWeatherMap current response."""
        try:
            doc: Any = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise SourceError(f"{path}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise SourceError(f"{path}: not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise SourceError(f"{path}: expected a JSON object (one provider response)")
        name = location or doc.get("name") or f"{doc.get('latitude')},{doc.get('longitude')}"
        known = {item.name: item for item in self.config.weather_locations}
        place = known.get(name) or Location(str(name), float(doc.get("latitude") or 0), float(doc.get("longitude")
                                                                                          or 0))
        if "current" in doc:
            table = open_meteo_current(doc, place)
        elif "hourly" in doc:
            table = open_meteo_hourly(doc, place)
        elif "main" in doc and "dt" in doc:
            table = openweathermap_current(doc, place)
        else:
            raise SourceError(f"{path}: not an Open-Meteo (current/hourly) or OpenWeatherMap current response")
        return self._load("weather", [chunk(table, str(path))])

    # ---- sensors ------------------------------------------------------------------------------------
    def fleet(self) -> Fleet:
        return Fleet(self.config.sensors_devices, self.config.sensors_seed, self.config.sensors_locations)

    def sensors_span(self, start_ns: int, end_ns: int, *, skip_stored: bool = True) -> RunSummary:
        """Simulated readings for [start, end); a backfill checks what is already stored, ticks do not."""
        interval = self.config.sensors_interval
        expected = max(0, (end_ns - start_ns) // (interval * NS)) * self.config.sensors_devices
        return self._load("sensors", self.fleet().chunks(start_ns, end_ns, interval),
                          self._progress("sensors", total=expected or None, bar=None if expected > 100_000 else False),
                          skip_stored=skip_stored)

    def sensors_tick(self, cursors: Cursors | None, now_ns: int | None = None) -> RunSummary:
        """The readings due up to now: the current tick, plus any missed since the cursor (at most the catch-up
        window), so a restarted service fills its gap with exactly the values it would have written."""
        now = time.time_ns() if now_ns is None else now_ns
        step = self.config.sensors_interval * NS
        current = now // step * step
        last = cursors.get("sensors.last_tick") if cursors is not None else None
        oldest = current - int(self.config.sensors_catchup * NS) // step * step
        start = current if last is None else max(int(last) + step, oldest)
        summary = self.sensors_span(start, current + 1, skip_stored=False) if start <= current else None
        if cursors is not None and start <= current:
            cursors.set("sensors.last_tick", current)
        return summary or load("sensors", [], self.outputs, record_metrics=False, drain=self.drain)

    def sensors_replay(self, path: Path, *, device: str | None = None, device_column: str | None = None,
                       location: str | None = None, time_column: str | None = None, timezone: str | None = None,
                       shift_to_now: bool = False) -> RunSummary:
        replay = Replay(_csv(Path(path), str(path)), device=device, device_column=device_column, location=location,
                        time_column=time_column, timezone=timezone)
        if shift_to_now:
            latest = replay.last_time()
            if latest is None:
                raise SourceError(f"{path}: no row has a valid time; nothing to shift")
            replay.shift_ns = time.time_ns() - latest
        return self._load("sensors", in_time_order(replay.chunks()), self._progress(f"replay {Path(path).name}"))


def _csv(path: Path, label: str) -> CsvFile:
    try:
        return CsvFile(path, label=label)
    except OSError as exc:
        raise SourceError(f"{label}: {exc.strerror or exc}") from None
