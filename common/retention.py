"""How long raw live data is kept, in both stores, and what that must leave the dashboards.

InfluxDB 3 Core's retention is per database (3.6: influxdb3_catalog `set_retention_period_for_database`); from
the moment it is set, every query of the database leaves out rows older than the cutoff (influxdb3_query_executor
lib.rs, the retention time filter) and files wholly before it are deleted later. So the live databases
(`telemetry`, `monitoring`) hold raw rows and their rollups for `RAW_RETENTION`, and everything meant to outlive
that is written to `history` too, which has none: the rollups (the plugin's `copy_to`) and history loaded from
the past (the bird study). The dashboards read a live database for ranges of up to `LIVE_RANGE` and `history`
for longer ones, so the retention must cover that range and the rollups' lag: `MIN_RAW_RETENTION`.
"""

from __future__ import annotations

from datetime import timedelta

from common.config import Env, format_duration, parse_duration

__all__ = ["DEFAULT_RAW_RETENTION", "LIVE_RANGE", "MIN_RAW_RETENTION", "RAW", "RAW_RETENTION_VARIABLE",
           "from_env", "raw_retention", "spelled"]

RAW = "raw"  # `retention: raw` in ingest/buckets.yaml and plugins/provision.yaml: the configured raw retention
RAW_RETENTION_VARIABLE = "RAW_RETENTION"
DEFAULT_RAW_RETENTION = "90d"
FOREVER = {"none", "infinite", "forever", "0"}
# The longest range a dashboard reads from a live database (grafana/panels.py `store_query`); longer ones read
# `history`. The same as the hourly tier's longest range (grafana/history.py TIERS).
LIVE_RANGE = timedelta(days=31)
# A range of LIVE_RANGE reads from the hour it starts in, and the hourly rollup of a bucket follows it by minutes
# (a bulk catch-up by hours): a day more than the range keeps every row a live panel reads.
MIN_RAW_RETENTION = LIVE_RANGE + timedelta(days=1)


def raw_retention(text: str | None) -> timedelta | None:
    """The raw retention `RAW_RETENTION` names (None: kept forever). ValueError, naming the variable, when it is
    not a duration or shorter than MIN_RAW_RETENTION."""
    value = (DEFAULT_RAW_RETENTION if text is None or not text.strip() else text).strip().lower()
    if value in FOREVER:
        return None
    try:
        retention = parse_duration(value)
    except ValueError as exc:
        raise ValueError(f"{RAW_RETENTION_VARIABLE}: {exc} (or none to keep raw data forever)") from None
    if retention < MIN_RAW_RETENTION:
        raise ValueError(f"{RAW_RETENTION_VARIABLE}={text.strip()} is shorter than {MIN_RAW_RETENTION.days}d: the "
                         f"dashboards read raw rows and rollups from the live databases for ranges up to "
                         f"{LIVE_RANGE.days} days, and nothing raw may go before its rollup is written")
    return retention


def from_env(env: Env) -> timedelta | None:
    """RAW_RETENTION of a service's environment; a problem is collected like every other setting's."""
    try:
        return raw_retention(env.str(RAW_RETENTION_VARIABLE, None))
    except ValueError as exc:
        env.problems.append(str(exc))
        return None


def spelled(retention: timedelta | None) -> str:
    """A retention as people and Core's humantime parser read it: whole days as days (`90d`, not `12w6d`)."""
    if retention is None:
        return "none"
    seconds = int(retention.total_seconds())
    return f"{seconds // 86_400}d" if seconds % 86_400 == 0 else format_duration(retention)
