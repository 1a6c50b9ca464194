"""The whole stack under Docker: up, provisioned, wired together, and unchanged by a second `up`."""

from __future__ import annotations

import pytest
import requests

from influxdb3_init.spec import load_provision
from tests.integration.conftest import Stack
from tests.support.paths import REPO

pytestmark = pytest.mark.integration


def test_influxdb2_has_the_org_and_bucket(stack: Stack):
    org, bucket = stack.env["INFLUXDB2_ORG"], stack.env["INFLUXDB2_BUCKET"]
    orgs = requests.get(f"{stack.influxdb2_url}/api/v2/orgs", params={"org": org},
                        headers=stack.influxdb2_headers, timeout=10)
    assert orgs.status_code == 200 and [o["name"] for o in orgs.json()["orgs"]] == [org]
    buckets = requests.get(f"{stack.influxdb2_url}/api/v2/buckets", params={"org": org, "name": bucket},
                           headers=stack.influxdb2_headers, timeout=10)
    assert buckets.status_code == 200 and [b["name"] for b in buckets.json()["buckets"]] == [bucket]
    setup = requests.get(f"{stack.influxdb2_url}/api/v2/setup", timeout=10)
    assert setup.json()["allowed"] is False


def test_influxdb3_health_is_open_and_everything_else_needs_the_token(stack: Stack):
    assert requests.get(f"{stack.influxdb3_url}/health", timeout=10).status_code == 200
    refused = requests.get(f"{stack.influxdb3_url}/api/v3/configure/database", params={"format": "json"},
                           timeout=10)
    assert refused.status_code == 401
    wrong = requests.get(f"{stack.influxdb3_url}/api/v3/configure/database", params={"format": "json"},
                         headers={"Authorization": "Bearer apiv3_wrong"}, timeout=10)
    assert wrong.status_code == 401


def test_influxdb3_has_the_databases_and_enabled_triggers(stack: Stack):
    spec = load_provision(REPO / "plugins" / "provision.yaml")
    listed = requests.get(f"{stack.influxdb3_url}/api/v3/configure/database", params={"format": "json"},
                          headers=stack.influxdb3_headers, timeout=10)
    assert listed.status_code == 200
    names = {row["iox::database"] for row in listed.json()}
    assert {db.name for db in spec.databases} <= names
    for database in {t.database for t in spec.triggers}:
        rows = requests.get(f"{stack.influxdb3_url}/api/v3/query_sql", headers=stack.influxdb3_headers, params={
            "db": database, "format": "json",
            "q": "SELECT trigger_name, disabled FROM system.processing_engine_triggers"}, timeout=30).json()
        state = {row["trigger_name"]: row["disabled"] for row in rows}
        for trigger in (t for t in spec.triggers if t.database == database):
            assert state.get(trigger.name) is trigger.disabled, f"{database}/{trigger.name}: {state}"


def test_the_token_file_is_private_to_the_server(stack: Stack):
    result = stack.compose("exec", "-T", "influxdb3", "stat", "-c", "%a %u",
                           "/var/lib/influxdb3/secrets/admin-token.json")
    assert result.stdout.split() == ["600", "1500"]


def test_grafana_reports_every_datasource_healthy(stack: Stack):
    for uid in ("influxdb2-flux", "influxdb3-sql", "influxdb3-sql-forecast", "influxdb3-influxql"):
        health = requests.get(f"{stack.grafana_url}/api/datasources/uid/{uid}/health", auth=stack.grafana_auth,
                              timeout=60)
        assert health.status_code == 200, f"{uid}: {health.text}"
        assert health.json()["status"] == "OK", f"{uid}: {health.json()}"


def test_grafana_needs_a_login(stack: Stack):
    assert requests.get(f"{stack.grafana_url}/api/health", timeout=10).status_code == 200
    assert requests.get(f"{stack.grafana_url}/api/search", timeout=10).status_code == 401
    signup = requests.post(f"{stack.grafana_url}/api/user/signup", json={"email": "x@example.com"}, timeout=10)
    assert signup.status_code in (401, 403)


def test_a_second_up_changes_nothing(stack: Stack):
    before = stack.compose("ps", "--all", "--format", "{{.Name}} {{.CreatedAt}}").stdout
    stack.compose("up", "--detach")
    stack.wait_healthy()
    after = stack.compose("ps", "--all", "--format", "{{.Name}} {{.CreatedAt}}").stdout
    assert sorted(before.splitlines()) == sorted(after.splitlines())  # no container was recreated
    logs = stack.compose("logs", "--no-color", "influxdb3-init").stdout
    assert "exists" in logs and "provisioning finished" in logs
