"""Writing each run's outcome (the `metrics` measurement) to InfluxDB 2 and 3, never failing the backup.

The `monitoring` bucket/database belongs to the ingest service (ingest/buckets.yaml: its retention and
description); this service never creates it. A point that cannot be written (server down, `monitoring` not
created yet, token refused) is appended to a spool file per target with the reason logged, and replayed
before the next run's points.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

import requests
from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

from backup import metrics
from backup.influxdb2 import describe

__all__ = ["MetricsReporter", "run_points"]

log = logging.getLogger("backup.metrics")

MAX_SPOOL_LINES = 20_000


def run_points(manifest_like: dict, *, trigger: str, moment: datetime) -> list[str]:
    """Line protocol for one run: one point per store and one for the whole run.

    `manifest_like` = {"set": name or "", "stores": {store: StoreResult-like}, "duration_seconds", "error"}.
    """
    timestamp = int(moment.timestamp() * 1e9)
    lines = []
    for store, result in manifest_like["stores"].items():
        point = (Point(metrics.MEASUREMENT).tag("store", store).tag("trigger", trigger)
                 .field("success", bool(result.ok)).field("duration_seconds", float(result.duration_seconds))
                 .field("bytes", int(result.bytes)).field("files", int(result.files))
                 .field("set", manifest_like["set"]).field("error", _one_line(result.error))
                 .time(timestamp, WritePrecision.NS))
        lines.append(point.to_line_protocol())
    stores = manifest_like["stores"].values()
    overall = (Point(metrics.MEASUREMENT).tag("store", metrics.STORE_ALL).tag("trigger", trigger)
               .field("success", bool(manifest_like.get("success")))
               .field("duration_seconds", float(manifest_like["duration_seconds"]))
               .field("bytes", int(sum(result.bytes for result in stores)))
               .field("files", int(sum(result.files for result in stores)))
               .field("set", manifest_like["set"]).field("error", _one_line(manifest_like.get("error")))
               .time(timestamp, WritePrecision.NS))
    lines.append(overall.to_line_protocol())
    return lines


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split())[:500]


class _Spool:
    def __init__(self, folder: Path, target: str):
        self.path = folder / f"{target}.lp"

    def read(self) -> list[str]:
        if not self.path.is_file():
            return []
        return [line for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def save(self, lines: list[str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = lines[-MAX_SPOOL_LINES:]
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text("\n".join(kept) + "\n", encoding="utf-8")
        temporary.replace(self.path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


class MetricsReporter:
    """Writes run points to both databases; `record()` never raises."""

    def __init__(self, *, spool_dir: Path, influxdb2_url: str, influxdb2_token: str | None, org: str,
                 influxdb3_url: str, influxdb3_token: str | None, target: str = metrics.TARGET,
                 timeout: float = 30.0, session: requests.Session | None = None):
        self.spool_dir, self.target, self.timeout = spool_dir, target, timeout
        self.influxdb2 = (influxdb2_url, influxdb2_token, org)
        self.influxdb3 = (influxdb3_url, influxdb3_token)
        self.session = session or requests.Session()

    def record(self, lines: Iterable[str]) -> dict[str, str]:
        """Write `lines` (after anything spooled) to each target; spool what fails. Returns status per target."""
        lines = list(lines)
        outcome = {}
        for name, writer in (("influxdb2", self._write_v2), ("influxdb3", self._write_v3)):
            spool = _Spool(self.spool_dir, name)
            pending = spool.read() + lines
            try:
                writer(pending)
            except Exception as exc:
                reason = describe(exc) if isinstance(exc, ApiException) else str(exc)
                log.warning("could not write %d backup metric line(s) to %s (%s); spooled for the next run",
                            len(pending), name, reason)
                spool.save(pending)
                outcome[name] = f"spooled: {reason}"
                continue
            spool.clear()
            outcome[name] = f"written {len(pending)}"
        return outcome

    def _write_v2(self, lines: list[str]) -> None:
        url, token, org = self.influxdb2
        if not token:
            raise RuntimeError("INFLUXDB2_TOKEN is not set")
        with InfluxDBClient(url=url, token=token, org=org, timeout=int(self.timeout * 1000)) as client:
            try:
                client.write_api(write_options=SYNCHRONOUS).write(bucket=self.target, org=org, record=lines,
                                                                  write_precision=WritePrecision.NS)
            except ApiException as exc:
                if exc.status == 404:
                    raise RuntimeError(f"bucket {self.target!r} does not exist yet (the ingest service creates "
                                       "it)") from exc
                raise

    def _write_v3(self, lines: list[str]) -> None:
        url, token = self.influxdb3
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        # InfluxDB 3 creates a database on first write; do not: its retention is the ingest service's call.
        listed = self.session.get(f"{url}/api/v3/configure/database", params={"format": "json"}, headers=headers,
                                  timeout=self.timeout)
        if listed.status_code != 200:
            raise RuntimeError(f"HTTP {listed.status_code} listing databases: {listed.text[:200]}")
        names = {row.get("iox::database") for row in listed.json() if isinstance(row, dict)}
        if self.target not in names:
            raise RuntimeError(f"database {self.target!r} does not exist yet (the ingest service creates it)")
        response = self.session.post(f"{url}/api/v3/write_lp", params={"db": self.target, "precision": "nanosecond"},
                                     data="\n".join(lines).encode("utf-8"),
                                     headers={**headers, "Content-Type": "text/plain; charset=utf-8"},
                                     timeout=self.timeout)
        if response.status_code >= 300:
            raise RuntimeError(f"HTTP {response.status_code} from /api/v3/write_lp: {response.text[:200]}")
