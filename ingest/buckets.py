"""Buckets (InfluxDB 2) and databases (InfluxDB 3) from a declarative file, created at start, idempotently.

The file (`ingest/buckets.yaml`) lists name, description and retention. Names are the same in both databases,
so they follow InfluxDB 3's rule (common/names.py). Existing ones are left as they are.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Protocol

import yaml

from common.config import parse_duration
from common.names import database_name_problem
from common.retention import RAW, RAW_RETENTION_VARIABLE
from common.retry import RetryableError, RetryPolicy, call_with_retry

__all__ = ["BucketSpec", "ensure_buckets", "load_buckets"]

log = logging.getLogger("ingest.buckets")
FOREVER = {"", "none", "infinite", "forever", "0"}


@dataclass(frozen=True)
class BucketSpec:
    name: str
    description: str
    retention: timedelta | None


class Creator(Protocol):
    name: str

    def ensure_database(self, name: str, description: str, retention: timedelta | None) -> str: ...


def load_buckets(path: Path, raw_retention: timedelta | None) -> list[BucketSpec]:
    """Read and check the file; ValueError names the file, the entry and the problem. `retention: raw` is
    `raw_retention` (RAW_RETENTION, common/retention.py)."""
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read buckets file {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"buckets file {path} is not valid YAML: {exc}") from None
    entries = document.get("buckets") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"buckets file {path}: expected a non-empty `buckets:` list")
    specs: list[BucketSpec] = []
    for position, entry in enumerate(entries, start=1):
        where = f"buckets file {path}, entry {position}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected name, description and retention")
        unknown = set(entry) - {"name", "description", "retention"}
        if unknown:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
        name = str(entry.get("name") or "")
        problem = database_name_problem(name)
        if problem:
            raise ValueError(f"{where}: name {name!r} {problem}")
        if any(spec.name == name for spec in specs):
            raise ValueError(f"{where}: {name!r} is listed twice")
        raw = str(entry.get("retention") if entry.get("retention") is not None else "").strip().lower()
        if raw == RAW:
            specs.append(BucketSpec(name, str(entry.get("description") or ""), raw_retention))
            continue
        try:
            retention = None if raw in FOREVER else parse_duration(raw)
        except ValueError as exc:
            raise ValueError(f"{where}: retention: {exc} (or {RAW!r}: {RAW_RETENTION_VARIABLE})") from None
        specs.append(BucketSpec(name, str(entry.get("description") or ""), retention))
    return specs


def ensure_buckets(specs: Iterable[BucketSpec], creators: Iterable[Creator], policy: RetryPolicy, *,
                   sleep: Callable[[float], None] | None = None) -> dict[str, dict[str, str]]:
    """Create what is missing in every database; retries while a database is still starting.

    Returns {database kind: {bucket: "created" | "exists"}}. FatalSinkError (wrong token, no permission)
    propagates with the database's message.
    """
    done: dict[str, dict[str, str]] = {}
    extra = {"sleep": sleep} if sleep else {}
    for creator in creators:
        for spec in specs:
            def attempt(spec: BucketSpec = spec, creator: Creator = creator) -> str:
                return creator.ensure_database(spec.name, spec.description, spec.retention)

            def on_retry(number: int, exc: RetryableError, delay: float, kind: str = creator.name) -> None:
                log.warning("%s not ready (%s); retrying in %.1fs", kind, exc, delay)

            outcome = call_with_retry(attempt, policy, on_retry=on_retry, **extra)
            done.setdefault(creator.name, {})[spec.name] = outcome
            log.info("%s: %s %s", creator.name, "bucket" if creator.name == "influxdb2" else "database",
                     f"{spec.name} {outcome}")
    return done
