"""influxdb2-init's configuration, from the environment (the operator token also from `INFLUXDB2_TOKEN_FILE`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from common.config import Env
from common.names import database_name_problem
from common.retention import from_env as raw_retention_from_env

__all__ = ["DESCRIPTION_PREFIX", "InitConfig", "TokenSpec"]

# Tokens are found again by their description (InfluxDB 2 cannot show a token after creating it, and has no
# filter by description: GET /api/v2/authorizations is filtered here).
DESCRIPTION_PREFIX = "influx-stack"


@dataclass(frozen=True)
class TokenSpec:
    """One service's token: what it may read and write, where its file is and whose it is."""

    service: str
    read: tuple[str, ...]
    write: tuple[str, ...]
    file: Path
    owner: tuple[int, int] | None  # (uid, gid) of the file; None keeps this process's

    @property
    def description(self) -> str:
        access = " ".join(kind for kind, names in (("read", self.read), ("write", self.write)) if names)
        return f"{DESCRIPTION_PREFIX} {self.service} ({access})"


@dataclass(frozen=True)
class InitConfig:
    url: str
    org: str
    token: str
    buckets_file: Path
    grafana: TokenSpec
    ingest_file: Path
    ingest_owner: tuple[int, int] | None
    http_timeout: float
    retry_attempts: int
    raw_retention: timedelta | None = None  # `retention: raw` in the buckets file (RAW_RETENTION)

    @classmethod
    def from_env(cls, env: Env) -> InitConfig:
        """Read every setting, then raise one ConfigError listing all problems."""
        grafana_buckets = tuple(env.list("GRAFANA_INFLUXDB2_BUCKETS", ["telemetry", "monitoring"]) or ())
        for name in grafana_buckets:
            problem = database_name_problem(name)
            if problem:
                env.problems.append(f"GRAFANA_INFLUXDB2_BUCKETS: bucket {name!r} {problem}")
        if not grafana_buckets:
            env.problems.append("GRAFANA_INFLUXDB2_BUCKETS: name at least one bucket")
        config = cls(
            url=env.url("INFLUXDB2_URL", "http://influxdb2:8086") or "",
            org=env.str("INFLUXDB2_ORG", "stack") or "",
            token=env.secret("INFLUXDB2_TOKEN") or "",
            buckets_file=env.path("INGEST_BUCKETS_FILE", "/app/ingest/buckets.yaml") or Path(),
            grafana=TokenSpec("grafana", grafana_buckets, (),
                              env.path("GRAFANA_TOKEN_FILE", "/secrets/grafana/token") or Path(),
                              _owner(env, "GRAFANA_TOKEN_OWNER", "472:0")),
            ingest_file=env.path("INGEST_TOKEN_FILE", "/secrets/ingest/token") or Path(),
            ingest_owner=_owner(env, "INGEST_TOKEN_OWNER", "10001:10001"),
            http_timeout=(env.duration("INFLUXDB2_HTTP_TIMEOUT", "30s") or timedelta(seconds=30)).total_seconds(),
            retry_attempts=env.int("INFLUXDB2_RETRY_ATTEMPTS", 6, min=1, max=100) or 6,
            raw_retention=raw_retention_from_env(env),
        )
        if config.grafana.file == config.ingest_file:
            env.problems.append("GRAFANA_TOKEN_FILE and INGEST_TOKEN_FILE: each service needs its own file")
        env.finish()
        return config

    def ingest(self, buckets: tuple[str, ...]) -> TokenSpec:
        """The ingest's token: write to every bucket of its buckets file, nothing else."""
        return TokenSpec("ingest", (), buckets, self.ingest_file, self.ingest_owner)


def _owner(env: Env, name: str, default: str) -> tuple[int, int] | None:
    """`UID:GID` of a token file; empty keeps the owner this process gives it."""
    raw = env.str(name, default)
    if raw is None or raw.strip() == "-":
        return None
    uid, _, gid = raw.partition(":")
    if not (uid.isdigit() and gid.isdigit()):
        env.problems.append(f"{name}: expected UID:GID (two numbers, e.g. 472:0), got {raw!r}")
        return None
    return int(uid), int(gid)

