"""The backup service's one configuration object, built from the environment (`_FILE` secrets allowed)."""

from __future__ import annotations

import base64
import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from backup.remote import RemoteConfig
from backup.schedule import Schedule, ScheduleError
from common.config import Env

__all__ = ["STORES", "BackupConfig", "RetentionPolicy", "RunAs", "load_config"]

STORES = ("influxdb2", "influxdb3", "grafana")
COMPRESSIONS = ("gzip", "zstd", "none")
MIN_KEY_LENGTH = 16
# S3's bucket naming rules (3-63 lowercase letters, digits, dots and hyphens, a letter or digit at each end).
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
ADDRESSING_STYLES = ("auto", "path", "virtual")


@dataclass(frozen=True)
class RetentionPolicy:
    """How many sets to keep per calendar day, ISO week and month (newest in each), like borg/restic, and how
    many partial or failed-verification sets newer than every good one."""

    daily: int = 7
    weekly: int = 4
    monthly: int = 6
    keep_partial: int = 2


@dataclass(frozen=True)
class RunAs:
    """The unprivileged identity the work runs under when the container starts as root."""

    uid: int
    gid: int
    groups: tuple[int, ...]


@dataclass(frozen=True)
class BackupConfig:
    backup_dir: Path
    schedule: Schedule
    timezone: ZoneInfo
    stores: tuple[str, ...]
    retention: RetentionPolicy
    compression: str
    compression_level: int
    encryption_key: bytes | None
    health_grace: timedelta
    influxdb2_url: str
    influxdb2_org: str
    influxdb2_token: str | None
    influxdb3_url: str
    influxdb3_token: str | None
    influxdb3_token_name: str
    influxdb3_data_dir: Path
    influxdb3_node_id: str
    grafana_url: str
    grafana_user: str | None
    grafana_password: str | None
    grafana_db: Path
    metrics_enabled: bool
    http_timeout: float
    run_as: RunAs | None
    remote: RemoteConfig | None = None  # an off-host copy of every set (BACKUP_S3_*), or none
    # InfluxDB 3 on object storage (INFLUXDB3_OBJECT_STORE=s3): its bucket, prefix = the node id; None: files.
    influxdb3_s3: RemoteConfig | None = None

    @property
    def encrypted(self) -> bool:
        return self.encryption_key is not None


def _parse_run_as(env: Env, name: str) -> RunAs | None:
    raw = env.str(name, None)
    if raw is None:
        return None
    try:
        ids, _, extra = raw.partition(",")
        uid_text, _, gid_text = ids.partition(":")
        uid = int(uid_text)
        gid = int(gid_text) if gid_text else uid
        groups = tuple(int(item) for item in extra.split(",") if item.strip()) if extra else ()
    except ValueError:
        env.problems.append(f"{name}: {raw!r} is not UID[:GID][,EXTRA_GID...] such as 1500:1500,0")
        return None
    if uid == 0:
        env.problems.append(f"{name}: refusing to run the backup work as root (uid 0)")
        return None
    return RunAs(uid, gid, groups)


def _parse_key(env: Env, name: str) -> bytes | None:
    raw = env.secret(name, None)
    if raw is None:
        return None
    if len(raw) < MIN_KEY_LENGTH:
        env.problems.append(f"{name}: the key is too short (at least {MIN_KEY_LENGTH} characters; "
                            "`make up`-style keys are 32 random bytes in base64)")
        return None
    try:
        decoded = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    except ValueError:
        decoded = b""
    # A 32-byte base64 key is used as-is; anything else is treated as a passphrase (both go through scrypt).
    return decoded if len(decoded) == 32 else raw.encode("utf-8")


def _parse_remote(env: Env, timeout: float) -> RemoteConfig | None:
    """BACKUP_S3_*: an S3-compatible bucket every set is copied to, or None when BACKUP_S3_BUCKET is empty."""
    bucket = env.str("BACKUP_S3_BUCKET", None)
    endpoint = env.url("BACKUP_S3_ENDPOINT", None)
    access_key = env.secret("BACKUP_S3_ACCESS_KEY_ID", None)
    secret_key = env.secret("BACKUP_S3_SECRET_ACCESS_KEY", None)
    prefix = (env.str("BACKUP_S3_PREFIX", "influx-stack") or "influx-stack").strip("/")
    region = env.str("BACKUP_S3_REGION", "us-east-1") or "us-east-1"
    style = env.choice("BACKUP_S3_ADDRESSING_STYLE", ADDRESSING_STYLES, "auto") or "auto"
    if bucket is None:
        if endpoint or access_key or secret_key:
            env.problems.append("BACKUP_S3_BUCKET: is required when BACKUP_S3_ENDPOINT or the BACKUP_S3_ keys are "
                                "set (empty: no off-host copy)")
        return None
    if not BUCKET_NAME.match(bucket):
        env.problems.append(f"BACKUP_S3_BUCKET: {bucket!r} is not an S3 bucket name (3-63 lowercase letters, "
                            "digits, dots and hyphens)")
    if not prefix or ".." in prefix.split("/") or "//" in prefix:
        env.problems.append(f"BACKUP_S3_PREFIX: {prefix!r} is not a folder such as influx-stack or backups/site-a")
    if (access_key is None) != (secret_key is None):
        env.problems.append("BACKUP_S3_ACCESS_KEY_ID/BACKUP_S3_SECRET_ACCESS_KEY: set both (or their _FILE), or "
                            "neither to use the machine's AWS credentials (instance role, ~/.aws)")
    return RemoteConfig(bucket=bucket, prefix=prefix, endpoint=endpoint, region=region, access_key_id=access_key,
                        secret_access_key=secret_key, addressing_style=style, timeout=min(timeout, 600.0))


def _parse_influxdb3_s3(env: Env, node_id: str, timeout: float) -> RemoteConfig | None:
    """Core's own bucket (the variables compose gives the server as --bucket and --aws-*) when it runs on S3."""
    store = env.choice("INFLUXDB3_OBJECT_STORE", ("file", "s3"), "file")
    if store != "s3":
        return None
    bucket = env.str("INFLUXDB3_BUCKET", None)
    if bucket is None or not BUCKET_NAME.match(bucket):
        env.problems.append(f"INFLUXDB3_BUCKET: {bucket!r} is not an S3 bucket name (INFLUXDB3_OBJECT_STORE=s3 "
                            "needs the bucket InfluxDB 3 keeps its data in)")
        return None
    return RemoteConfig(bucket=bucket, prefix=node_id, endpoint=env.url("INFLUXDB3_S3_ENDPOINT", None),
                        region=env.str("INFLUXDB3_S3_REGION", "us-east-1") or "us-east-1",
                        access_key_id=env.secret("INFLUXDB3_S3_ACCESS_KEY_ID", None),
                        secret_access_key=env.secret("INFLUXDB3_S3_SECRET_ACCESS_KEY", None),
                        timeout=min(timeout, 600.0))


def load_config(environ: Mapping[str, str] | None = None) -> BackupConfig:
    """Read every BACKUP_* and store variable; raise one ConfigError naming all that are wrong."""
    env = Env(os.environ if environ is None else environ)
    tz_name = env.str("TZ", "UTC")
    try:
        timezone = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        env.problems.append(f"TZ: {tz_name!r} is not an IANA time zone such as Europe/Berlin or UTC")
        timezone = ZoneInfo("UTC")
    expression = env.str("BACKUP_SCHEDULE", "59 23 * * *")
    schedule = None
    try:
        schedule = Schedule(expression, timezone)
    except ScheduleError as exc:
        env.problems.append(f"BACKUP_SCHEDULE: {exc}")
    stores = env.list("BACKUP_STORES", list(STORES)) or []
    unknown = [store for store in stores if store not in STORES]
    if unknown:
        env.problems.append(f"BACKUP_STORES: unknown store(s) {', '.join(unknown)}; choose from {', '.join(STORES)}")
    if not stores:
        env.problems.append("BACKUP_STORES: list at least one store")
    retention = RetentionPolicy(
        daily=env.int("BACKUP_KEEP_DAILY", 7, min=0) or 0,
        weekly=env.int("BACKUP_KEEP_WEEKLY", 4, min=0) or 0,
        monthly=env.int("BACKUP_KEEP_MONTHLY", 6, min=0) or 0,
        keep_partial=env.int("BACKUP_KEEP_PARTIAL", 2, min=0) or 0)
    compression = env.choice("BACKUP_COMPRESSION", COMPRESSIONS, "zstd") or "zstd"
    level_default = 3 if compression == "zstd" else 6
    level = env.int("BACKUP_COMPRESSION_LEVEL", level_default, min=1, max=19 if compression == "zstd" else 9)
    node_id = env.str("INFLUXDB3_NODE_ID", "stack-node0")
    config = BackupConfig(
        backup_dir=env.path("BACKUP_DIR", "/backups"),
        schedule=schedule,  # type: ignore[arg-type]
        timezone=timezone,
        stores=tuple(stores),
        retention=retention,
        compression=compression,
        compression_level=level or level_default,
        encryption_key=_parse_key(env, "BACKUP_ENCRYPTION_KEY"),
        health_grace=env.duration("BACKUP_HEALTH_GRACE", "2h"),  # type: ignore[arg-type]
        influxdb2_url=env.url("INFLUXDB2_URL", "http://influxdb2:8086"),  # type: ignore[arg-type]
        influxdb2_org=env.str("INFLUXDB2_ORG", "stack"),  # type: ignore[arg-type]
        influxdb2_token=env.secret("INFLUXDB2_TOKEN", None),
        influxdb3_url=env.url("INFLUXDB3_URL", "http://influxdb3:8181"),  # type: ignore[arg-type]
        influxdb3_token=env.secret("INFLUXDB3_TOKEN", None),
        # The name influxdb3-prepare gives .env's token in the server's token file (INFLUXDB3_ADMIN_TOKEN_NAME).
        influxdb3_token_name=env.str("INFLUXDB3_TOKEN_NAME", "_admin"),  # type: ignore[arg-type]
        influxdb3_data_dir=env.path("INFLUXDB3_DATA_DIR", "/var/lib/influxdb3/data"),  # type: ignore[arg-type]
        influxdb3_node_id=node_id,  # type: ignore[arg-type]
        grafana_url=env.url("GRAFANA_URL", "http://grafana:3000"),  # type: ignore[arg-type]
        grafana_user=env.str("GRAFANA_USER", None),
        grafana_password=env.secret("GRAFANA_PASSWORD", None),
        grafana_db=env.path("GRAFANA_DB", "/var/lib/grafana/grafana.db"),  # type: ignore[arg-type]
        metrics_enabled=bool(env.bool("BACKUP_METRICS", True)),
        http_timeout=env.float("BACKUP_HTTP_TIMEOUT", 600.0, min=1.0),  # type: ignore[arg-type]
        run_as=_parse_run_as(env, "BACKUP_RUN_AS"),
    )
    config = dataclasses.replace(config, remote=_parse_remote(env, config.http_timeout or 600.0),
                                 influxdb3_s3=_parse_influxdb3_s3(env, node_id or "stack-node0",
                                                                  config.http_timeout or 600.0))
    if "influxdb2" in stores and not config.influxdb2_token:
        env.problems.append("INFLUXDB2_TOKEN: is required to back up InfluxDB 2 (set it or INFLUXDB2_TOKEN_FILE)")
    if "grafana" in stores and not (config.grafana_user and config.grafana_password):
        env.problems.append("GRAFANA_USER/GRAFANA_PASSWORD: are required to export Grafana dashboards")
    if node_id and ("/" in node_id or node_id in (".", "..")):
        env.problems.append(f"INFLUXDB3_NODE_ID: {node_id!r} is not a single path component")
    env.finish()
    return config
