"""Grafana's InfluxDB 2 token reads exactly the buckets the dashboards and alert rules read (README, "Security").

influxdb2-init gives the `influxdb2-flux` datasource a token with read permission on GRAFANA_INFLUXDB2_BUCKETS only;
this keeps that list, grafana.datasources.FLUX_BUCKETS and the buckets every Flux query names equal, so a new panel
on another bucket fails here rather than with "could not find bucket" in the browser.
"""

from __future__ import annotations

import re

import yaml

from grafana import datasources
from tests.grafana import alerts
from tests.grafana.dashboards import boards, queries, variables
from tests.support.paths import REPO

# from(bucket: "x"), schema.tagValues(bucket: "x", ...), buckets() |> filter(fn: (r) => r.name == "x")
_BUCKET = re.compile(r'\bbucket:\s*"([^"]+)"|\br\.name\s*==\s*"([^"]+)"')


def _flux_texts() -> list[tuple[str, str]]:
    found = []
    for uid, board in boards().items():
        found += [(query.label, query.text) for query in queries(board, uid)
                  if query.datasource.language == datasources.FLUX_LANGUAGE]
        found += [(f"{uid}: variable {variable.name}", variable.query) for variable in variables(board)
                  if variable.datasource.language == datasources.FLUX_LANGUAGE]
    for uid, rule in alerts.rules().items():
        if not alerts.is_sql(rule):
            found += [(f"alert {uid}", item["model"]["query"]) for item in rule["data"]
                      if item.get("datasourceUid") == datasources.FLUX.uid]
    return found


def test_every_flux_query_reads_only_the_buckets_grafanas_token_may_read():
    texts = _flux_texts()
    assert len(texts) >= 5  # stack health's panels and variable, the InfluxDB 2 reachability rule
    read: set[str] = set()
    for label, text in texts:
        names = {a or b for a, b in _BUCKET.findall(text)}
        assert names, f"{label}: no bucket found in {text!r}"
        assert names <= set(datasources.FLUX_BUCKETS), f"{label} reads {sorted(names)}"
        read |= names
    assert read == set(datasources.FLUX_BUCKETS), "a bucket Grafana may read is read by no query: drop it"


def test_influxdb2_init_is_given_the_same_buckets():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    given = compose["services"]["influxdb2-init"]["environment"]["GRAFANA_INFLUXDB2_BUCKETS"]
    assert given.split(",") == list(datasources.FLUX_BUCKETS)
    from common.config import Env
    from influxdb2_init.config import InitConfig  # its default, for a run outside the stack

    assert InitConfig.from_env(Env({"INFLUXDB2_TOKEN": "x"})).grafana.read == datasources.FLUX_BUCKETS
