"""Whole stack: back up the running stack, wipe every volume, restore, and find the same data.

Needs a Docker engine (skipped with the reason otherwise). This test deletes the stack's volumes and restores
them from the set it took, so the stack ends where it was at the backup.
"""

from __future__ import annotations

import time
import uuid

import pytest
import requests

pytestmark = pytest.mark.integration

MEASUREMENT = "backup_it"


def _influxdb2_write(stack, lines: str) -> None:
    response = requests.post(f"{stack.influxdb2_url}/api/v2/write",
                             params={"org": stack.env["INFLUXDB2_ORG"], "bucket": stack.env["INFLUXDB2_BUCKET"],
                                     "precision": "s"},
                             data=lines, headers=stack.influxdb2_headers, timeout=30)
    assert response.status_code == 204, response.text


def _influxdb2_values(stack, marker: str) -> list[str]:
    flux = (f'from(bucket: "{stack.env["INFLUXDB2_BUCKET"]}") |> range(start: -30d) '
            f'|> filter(fn: (r) => r._measurement == "{MEASUREMENT}" and r.marker == "{marker}") '
            '|> keep(columns: ["_value"])')
    response = requests.post(f"{stack.influxdb2_url}/api/v2/query", params={"org": stack.env["INFLUXDB2_ORG"]},
                             json={"query": flux, "type": "flux"},
                             headers={**stack.influxdb2_headers, "Accept": "application/csv"}, timeout=60)
    assert response.status_code == 200, response.text
    rows = [line.split(",") for line in response.text.splitlines() if line.strip() and not line.startswith(",result")]
    return sorted(row[-1].strip() for row in rows if len(row) > 3)


def _influxdb3_write(stack, lines: str) -> None:
    response = requests.post(f"{stack.influxdb3_url}/api/v3/write_lp",
                             params={"db": stack.env["INFLUXDB3_DATABASE"], "precision": "second"},
                             data=lines, headers=stack.influxdb3_headers, timeout=30)
    assert response.status_code in (200, 204), response.text


def _influxdb3_values(stack, marker: str) -> list[float]:
    response = requests.get(f"{stack.influxdb3_url}/api/v3/query_sql",
                            params={"db": stack.env["INFLUXDB3_DATABASE"], "format": "json",
                                    "q": f"SELECT value FROM {MEASUREMENT} WHERE marker = '{marker}' ORDER BY time"},
                            headers=stack.influxdb3_headers, timeout=60)
    if response.status_code != 200:  # table not found after the wipe
        return []
    return [row["value"] for row in response.json()]


def _grafana_dashboard(stack, uid: str) -> int:
    return requests.get(f"{stack.grafana_url}/api/dashboards/uid/{uid}", auth=stack.grafana_auth,
                        timeout=30).status_code


def _compose_ok(stack, *args: str, timeout: float = 900) -> str:
    result = stack.compose(*args, timeout=timeout, check=False)
    assert result.returncode == 0, f"docker compose {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_backup_wipe_restore_finds_the_same_data(stack):
    marker = uuid.uuid4().hex[:12]
    now = int(time.time())
    _influxdb2_write(stack, "\n".join(f"{MEASUREMENT},marker={marker} value={i}.5 {now - i}" for i in range(5)))
    _influxdb3_write(stack, "\n".join(f"{MEASUREMENT},marker={marker} value={i}.25 {now - i}" for i in range(5)))
    dashboard_uid = f"backup-it-{marker}"
    created = requests.post(f"{stack.grafana_url}/api/dashboards/db", auth=stack.grafana_auth, timeout=30,
                            json={"dashboard": {"uid": dashboard_uid, "title": f"Backup IT {marker}", "panels": []},
                                  "overwrite": True})
    assert created.status_code == 200, created.text
    time.sleep(3)  # InfluxDB 3 flushes its WAL to the object store every second by default
    before_v2, before_v3 = _influxdb2_values(stack, marker), _influxdb3_values(stack, marker)
    assert len(before_v2) == 5 and len(before_v3) == 5

    set_name = _compose_ok(stack, "exec", "-T", "backup", "backup", "now").strip().splitlines()[-1]
    _compose_ok(stack, "exec", "-T", "backup", "backup", "verify", set_name)
    listing = _compose_ok(stack, "exec", "-T", "backup", "backup", "list")
    assert set_name in listing and "complete" in listing

    # Lose everything but the backup directory (a bind mount on the host).
    _compose_ok(stack, "down", "--volumes")
    _compose_ok(stack, "up", "--detach", "--build")
    stack.wait_healthy()
    assert _influxdb2_values(stack, marker) == [] and _influxdb3_values(stack, marker) == []
    assert _grafana_dashboard(stack, dashboard_uid) == 404

    # What `make restore SET=...` runs.
    _compose_ok(stack, "run", "--rm", "--no-deps", "backup", "verify", set_name)
    _compose_ok(stack, "stop", "ingest", "influxdb3", "grafana")
    _compose_ok(stack, "up", "--detach", "--wait", "influxdb2")
    _compose_ok(stack, "run", "--rm", "--no-deps", "backup", "restore", set_name, "--skip-verify")
    _compose_ok(stack, "up", "--detach")
    stack.wait_healthy()

    assert _influxdb2_values(stack, marker) == before_v2
    assert _influxdb3_values(stack, marker) == before_v3
    assert _grafana_dashboard(stack, dashboard_uid) == 200
    health = stack.compose("exec", "-T", "backup", "backup", "health", check=False)
    assert health.returncode == 0, health.stdout + health.stderr
