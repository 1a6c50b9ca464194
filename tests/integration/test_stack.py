"""The whole stack: up, provisioned, wired together, and unchanged by provisioning it again."""

from __future__ import annotations

import pytest
import requests
from grafana_client.client import GrafanaClientError, GrafanaUnauthorizedError

from influxdb3_init.spec import load_provision
from tests.integration.stacks.docker import DockerStack
from tests.support.paths import REPO

pytestmark = pytest.mark.integration


def test_influxdb2_has_the_org_and_bucket(stack):
    org, bucket = stack.env["INFLUXDB2_ORG"], stack.env["INFLUXDB2_BUCKET"]
    orgs = requests.get(f"{stack.influxdb2_url}/api/v2/orgs", params={"org": org},
                        headers=stack.influxdb2_headers, timeout=10)
    assert orgs.status_code == 200 and [o["name"] for o in orgs.json()["orgs"]] == [org]
    buckets = requests.get(f"{stack.influxdb2_url}/api/v2/buckets", params={"org": org, "name": bucket},
                           headers=stack.influxdb2_headers, timeout=10)
    assert buckets.status_code == 200 and [b["name"] for b in buckets.json()["buckets"]] == [bucket]
    setup = requests.get(f"{stack.influxdb2_url}/api/v2/setup", timeout=10)
    assert setup.json()["allowed"] is False


def test_influxdb2_answers_404_to_a_bucket_lookup_that_finds_nothing(stack):
    """What our ingest sink relies on (tenant/service_bucket.go): a missing bucket is a 404, not an empty list."""
    missing = requests.get(f"{stack.influxdb2_url}/api/v2/buckets", headers=stack.influxdb2_headers, timeout=10,
                           params={"org": stack.env["INFLUXDB2_ORG"], "name": "no-such-bucket"})
    assert missing.status_code == 404 and missing.json() == {"code": "not found",
                                                             "message": 'bucket "no-such-bucket" not found'}
    org = requests.get(f"{stack.influxdb2_url}/api/v2/orgs", params={"org": "no-such-org"},
                       headers=stack.influxdb2_headers, timeout=10)
    assert org.status_code == 404 and org.json()["code"] == "not found"


def test_influxdb3_health_is_open_and_everything_else_needs_the_token(stack):
    assert requests.get(f"{stack.influxdb3_url}/health", timeout=10).status_code == 200
    refused = requests.get(f"{stack.influxdb3_url}/api/v3/configure/database", params={"format": "json"},
                           timeout=10)
    assert refused.status_code == 401
    wrong = requests.get(f"{stack.influxdb3_url}/api/v3/configure/database", params={"format": "json"},
                         headers={"Authorization": "Bearer apiv3_wrong"}, timeout=10)
    assert wrong.status_code == 401


def test_influxdb3_has_the_databases_and_enabled_triggers(stack):
    spec = load_provision(REPO / "plugins" / "provision.yaml")
    listed = requests.get(f"{stack.influxdb3_url}/api/v3/configure/database", params={"format": "json"},
                          headers=stack.influxdb3_headers, timeout=10)
    assert listed.status_code == 200
    names = {row["iox::database"] for row in listed.json()}
    assert {db.name for db in spec.databases} <= names
    for database in {t.database for t in spec.triggers}:
        rows = stack.sql(database, "SELECT trigger_name, disabled FROM system.processing_engine_triggers")
        state = {row["trigger_name"]: row["disabled"] for row in rows}
        for trigger in (t for t in spec.triggers if t.database == database):
            assert state.get(trigger.name) is trigger.disabled, f"{database}/{trigger.name}: {state}"


def test_the_plugin_packages_import_inside_the_engine(stack):
    spec = load_provision(REPO / "plugins" / "provision.yaml")
    answer = requests.post(f"{stack.influxdb3_url}/api/v3/engine/packages-check", headers=stack.influxdb3_headers,
                           json={"packages": list(spec.packages)}, timeout=300)
    assert answer.status_code == 200, answer.text
    assert answer.json()["ok"] is True, answer.json()


def test_the_token_file_is_private_to_the_server(stack):
    assert stack.token_file() == (0o600, stack.server_uid)


def test_grafana_reports_every_datasource_healthy(grafana):
    api = grafana.grafana_api()
    for uid in ("influxdb2-flux", "influxdb3-sql", "influxdb3-sql-forecast", "influxdb3-influxql"):
        health = api.datasource.health(uid)
        assert health["status"] == "OK", f"{uid}: {health}"


def test_grafana_needs_a_login(grafana):
    anonymous = grafana.grafana_api(None)
    assert anonymous.client.GET("/health")["database"] == "ok"
    with pytest.raises(GrafanaUnauthorizedError):
        anonymous.search.search_dashboards()
    with pytest.raises(GrafanaClientError) as refused:
        anonymous.client.POST("/user/signup", json={"email": "x@example.com"})
    assert refused.value.status_code in (401, 403)


def test_provisioning_again_changes_nothing(stack):
    before = stack.containers() if isinstance(stack, DockerStack) else []
    log = stack.rerun_init()
    summary = [line for line in log.splitlines() if "provisioning finished" in line][-1]
    assert "exists" in summary
    for kind in ("databases", "tables", "triggers"):
        assert f"{kind} created" not in summary, summary
    if isinstance(stack, DockerStack):
        assert stack.containers() == before  # a second `up` recreated no container
