"""Raw retention on the running stack: the live databases and buckets keep raw rows RAW_RETENTION, `history` keeps
everything, and a retention set on a live database hides its older rows at once while the rollups copied to
`history` stay (common/retention.py).

influxdb3-init's own client (compose/influxdb3-init) reads and sets the retention here, against the real server:
`_internal`'s system.databases, PUT /api/v3/configure/database and the look for rows before a cutoff.
"""

from __future__ import annotations

import time
import uuid

import pytest
import requests

from common.retention import DEFAULT_RAW_RETENTION, raw_retention
from influxdb3_init.client import InfluxDB3Admin
from tests.integration.conftest import wait_for

pytestmark = pytest.mark.integration

DAY_NS = 86_400 * 10**9
SCRATCH = "it-retention"  # a live database of the test's own (Core allows 5: the stack's four and this one)


def _admin(stack) -> InfluxDB3Admin:
    return InfluxDB3Admin(stack.influxdb3_url, stack.influxdb3_headers["Authorization"].split()[-1], timeout=60)


def test_the_live_databases_and_buckets_keep_raw_rows_for_the_raw_retention_and_history_keeps_everything(stack):
    raw = raw_retention(stack.env.get("RAW_RETENTION") or DEFAULT_RAW_RETENTION)
    raw_ns = None if raw is None else int(raw.total_seconds()) * 10**9
    retentions = _admin(stack).retentions()
    assert {name: retentions.get(name) for name in ("telemetry", "monitoring", "history", "forecast")} == {
        "telemetry": raw_ns, "monitoring": raw_ns, "history": None, "forecast": None}
    buckets = requests.get(f"{stack.influxdb2_url}/api/v2/buckets", headers=stack.influxdb2_headers,
                           params={"limit": 100}, timeout=30).json()["buckets"]
    expire = {bucket["name"]: next((rule["everySeconds"] for rule in bucket.get("retentionRules") or []
                                    if rule.get("type") == "expire"), 0) for bucket in buckets}
    assert expire["telemetry"] == expire["monitoring"] == (0 if raw is None else int(raw.total_seconds()))
    assert expire["history"] == 0


def test_a_retention_hides_older_raw_rows_at_once_and_the_rollups_copied_to_history_stay(stack, temporary_triggers):
    """Forty days of hourly readings in a live database of its own, rolled up with `copy_to: history` by the
    stack's plugin; then influxdb3-init's client finds rows before a 32-day cutoff, sets the retention, and the
    server leaves the older raw rows and rollups out of every query of that database, while `history` answers
    every day with the same sums."""
    admin = _admin(stack)
    table = f"ret_{uuid.uuid4().hex[:8]}"
    now = time.time_ns() // DAY_NS * DAY_NS
    start = now - 40 * DAY_NS
    lines = [f"{table},device=d{hour % 2} v={hour % 7}.5 {start + hour * 3_600 * 10**9}" for hour in range(40 * 24)]
    try:
        assert admin.create_database(SCRATCH).value in ("created", "exists")
        response = requests.post(f"{stack.influxdb3_url}/api/v3/write_lp", headers=stack.influxdb3_headers,
                                 params={"db": SCRATCH, "precision": "nanosecond"}, data="\n".join(lines), timeout=60)
        assert response.status_code in (200, 204), response.text
        arguments = {"tables": table, "levels": "1h 1d", "copy_to": "history"}
        temporary_triggers("it-retention-rollups", SCRATCH, "history/rollups", "every:5s", arguments)

        def days(database: str) -> list[dict]:
            try:
                return stack.sql(database, f"SELECT time, device, v_count, v_sum FROM {table}_1d "
                                           "WHERE time >= '2000-01-01T00:00:00Z' ORDER BY time, device")
            except requests.HTTPError:
                return []  # not written yet

        def older(database: str, name: str, before: int) -> int:
            return int(stack.sql(database, f"SELECT count(*) AS n FROM {name} WHERE time >= '2000-01-01T00:00:00Z' "
                                           f"AND time < to_timestamp_nanos({before})")[0]["n"])

        copied = wait_for("every completed day of both devices in both databases", lambda: (
            lambda live, kept: kept if len(kept) == 2 * 40 and live == kept else None)(days(SCRATCH), days("history")),
            timeout=240)
        assert sum(row["v_count"] for row in copied) == 40 * 24

        cutoff = now - 32 * DAY_NS
        hidden = cutoff - DAY_NS  # the cutoff moves on while the test runs: a day before it stays hidden
        assert admin.holds_rows_before(SCRATCH, table, cutoff)
        assert not admin.holds_rows_before(SCRATCH, table, start)
        assert older(SCRATCH, table, hidden) == 7 * 24 and older(SCRATCH, f"{table}_1d", hidden) == 2 * 7
        assert admin.set_retention(SCRATCH, "32d").value == "created"
        assert admin.retentions()[SCRATCH] == 32 * DAY_NS

        assert older(SCRATCH, table, hidden) == 0 and older(SCRATCH, f"{table}_1d", hidden) == 0
        assert not admin.holds_rows_before(SCRATCH, table, hidden)
        assert older("history", f"{table}_1d", hidden) == 2 * 7, "history keeps the days the retention hides"
        assert days("history") == copied
    finally:
        requests.delete(f"{stack.influxdb3_url}/api/v3/configure/database", params={"db": SCRATCH},
                        headers=stack.influxdb3_headers, timeout=60)
