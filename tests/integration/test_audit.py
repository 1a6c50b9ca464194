"""The audit of the rollups copied to `history` (ingest/audit.py) on the running stack: a copy the real Processing
Engine failed to write (history refused it: a field of another type) is left out for good by the trigger, found
by `python -m ingest audit`, and written again by the trigger's next runs."""

from __future__ import annotations

import time
import uuid

import pytest
import requests

from tests.integration.conftest import wait_for

pytestmark = pytest.mark.integration

HOUR_NS, DAY_NS = 3_600 * 10**9, 86_400 * 10**9
SCRATCH = "it-audit"  # a live database of the test's own (Core allows 5: the stack's four and this one)


def test_a_copy_history_refused_is_found_by_the_audit_and_written_again(stack, temporary_triggers):
    table = f"aud_{uuid.uuid4().hex[:8]}"
    start = (time.time_ns() // DAY_NS - 3) * DAY_NS
    lines = [f"{table},device=d{hour % 2} v={hour % 7}.5 {start + hour * HOUR_NS}" for hour in range(2 * 24)]
    headers, url = stack.influxdb3_headers, stack.influxdb3_url

    def write(database: str, body: str) -> None:
        response = requests.post(f"{url}/api/v3/write_lp", headers=headers, timeout=60,
                                 params={"db": database, "precision": "nanosecond"}, data=body)
        assert response.status_code in (200, 204), response.text

    def hours(database: str) -> list[dict]:
        try:
            return stack.sql(database, f"SELECT time, device, v_count, v_sum, v_mean FROM {table}_1h "
                                       "WHERE time >= '2000-01-01T00:00:00Z' AND v_count IS NOT NULL "
                                       "ORDER BY time, device")
        except requests.HTTPError:
            return []  # no such table (yet)

    try:
        requests.post(f"{url}/api/v3/configure/database", headers=headers, json={"db": SCRATCH}, timeout=60)
        write(SCRATCH, "\n".join(lines))
        write("history", f'{table}_1h,device=d0 v_mean="text" {start}')  # history refuses every copy of the hours
        temporary_triggers("it-audit-rollups", SCRATCH, "history/rollups", "every:5s",
                           {"tables": table, "levels": "1h 1d", "copy_to": "history"})
        live = wait_for("every hour of both devices rolled up in the live database",
                        lambda: (rows := hours(SCRATCH)) and len(rows) == 48 and rows, timeout=180)
        time.sleep(15)  # runs after the hours: the days, whose copy history takes
        assert hours("history") == [], "the refused copy is never written again by the trigger itself"
        response = requests.delete(f"{url}/api/v3/configure/table", headers=headers, timeout=60,
                                   params={"db": "history", "table": f"{table}_1h"})
        assert response.ok, response.text  # the cause is gone; the hours are still missing

        audit = stack.ingest("audit", "--skip-buckets", "--no-influxdb2")
        assert audit.returncode == 0, audit.stderr[-3000:]
        found = f"{SCRATCH}.{table}_1h: history lacks or differs in 48 buckets of it"
        assert found in audit.stderr, audit.stderr[-3000:]
        copied = wait_for("the marked hours written to history", lambda: hours("history") == live, timeout=180)
        assert copied
        again = stack.ingest("audit", "--skip-buckets", "--no-influxdb2")
        assert again.returncode == 0 and f"{table}_1h" not in again.stderr, again.stderr[-3000:]
    finally:
        requests.delete(f"{url}/api/v3/configure/database", params={"db": SCRATCH}, headers=headers, timeout=60)
        for name in (f"{table}_1h", f"{table}_1d"):
            requests.delete(f"{url}/api/v3/configure/table", params={"db": "history", "table": name},
                            headers=headers, timeout=60)
