"""The alert rules in the running stack.

Without Grafana (any provider): every rule's query goes straight to the real database it reads (InfluxDB 3 SQL
expanded as Grafana's FlightSQL backend expands it, InfluxDB 2 Flux) after the ingest service has reported and
written sensor readings and a backup has run; each answer must have the shape Grafana alerts on and give the
state the stack is in (a healthy stack fires none of the ingest, backup, database or sensor-range rules).
With Grafana: it lists the provisioned rules, contact points and policy (through grafana-client), and when the
stack's ingest is stopped its webhook contact point, pointed at a loopback receiver, gets the notification.
"""

from __future__ import annotations

import dataclasses
import math
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from grafana.alerting.notifications import CONTACTS
from ingest.schema import INGEST_RUNS, SENSORS
from plugins.stacklib.tables import EVALUATION, FORECAST_DATABASE
from tests.grafana import flight_types
from tests.grafana.alerts import PREDICATES, is_sql, numbers, rules, seen_from, sql_of, time_range
from tests.grafana.expand import expand_flux
from tests.integration.conftest import ALERT_SETTINGS, WEBHOOK_TOKEN, wait_for

pytestmark = pytest.mark.integration

QUIET_ON_A_HEALTHY_STACK = ("influx-stack-ingest-not-reporting", "influx-stack-ingest-no-writes",
                            "influx-stack-backup-failed", "influx-stack-backup-stale",
                            "influx-stack-influxdb3-unreachable", "influx-stack-influxdb2-unreachable",
                            "influx-stack-sensor-co2", "influx-stack-sensor-temperature",
                            "influx-stack-sensor-humidity", "influx-stack-sensor-silent")


@pytest.fixture(scope="module")
def running(stack) -> datetime:
    """The stack after its ingest service has reported twice and written sensor readings, and a backup ran."""
    wait_for("two ingest reports in InfluxDB 3", lambda: stack.sql(
        INGEST_RUNS.database, f"SELECT count(DISTINCT time) AS n FROM {INGEST_RUNS.name}")[0]["n"] >= 2, timeout=240)
    wait_for("sensor readings", lambda: stack.sql(
        SENSORS.database, f"SELECT count(*) AS n FROM {SENSORS.name} WHERE time > now() - INTERVAL '5 minutes'")[0]
        ["n"] > 0, timeout=120)
    backup = stack.backup("now")
    assert backup.returncode == 0, f"backup now failed:\n{backup.stdout}\n{backup.stderr}"
    stamped = wait_for("the backup's run point", lambda: stack.sql(
        "monitoring", "SELECT max(time) AS t FROM backup_run WHERE store = 'all' AND success = true")[0]["t"])
    # Grafana's range ends at a whole second: the run's point is in it from the second after the one it was stamped
    # in (evaluating earlier once saw no backup at all). The answer's nanoseconds are cut to microseconds: one more
    # microsecond rounds up.
    ready = seen_from(datetime.fromisoformat(stamped).replace(tzinfo=UTC) + timedelta(microseconds=1))
    time.sleep(max(0.0, (ready - datetime.now(UTC)).total_seconds()))
    return datetime.now(UTC)


def answer(stack, item: dict[str, Any], at: datetime) -> list[tuple[dict[str, str], float]]:
    """The rule's numbers from the real database: SQL as Grafana sends it, over Flight SQL (numbers() refuses a
    frame Grafana would not alert on: label columns that are not strings, not exactly one number), Flux reduced to
    its last point."""
    if is_sql(item):
        database, sql = sql_of(item, at)
        table = stack.flight(database, sql)  # the Arrow types Grafana's expression engine gets
        problems = flight_types.check(f"alert {item['uid']}", table)
        assert not problems, problems
        return numbers(table) if table.num_rows else []
    flux = expand_flux(item["data"][0]["model"]["query"], time_range(item, at), 1000,
                       default_bucket=stack.env["INFLUXDB2_BUCKET"], organization=stack.env["INFLUXDB2_ORG"])
    rows = stack.flux_table(flux)
    return [({}, float(rows[-1]["_value"]))] if rows else []


def firing(item: dict[str, Any], values: list[tuple[dict[str, str], float]]) -> list[dict[str, str]]:
    evaluator = next(q for q in item["data"] if q["refId"] == item["condition"])["model"]["conditions"][0]["evaluator"]
    if not values:
        return [{}] if item["noDataState"] == "Alerting" else []
    test = PREDICATES[evaluator["type"]]
    return [labels for labels, value in values if not math.isnan(value) and test(value, evaluator["params"])]


def test_every_rule_query_answers_on_the_real_databases_as_the_stack_is(stack, running):
    at = datetime.now(UTC)
    problems = []
    devices = {row["device"] for row in stack.sql(
        SENSORS.database, f"SELECT DISTINCT device FROM {SENSORS.name} WHERE time > now() - INTERVAL '10 minutes'")}
    for uid, item in rules().items():
        try:
            values = answer(stack, item, at)
        except Exception as exc:  # the database's own error for the query
            problems.append(f"{uid}: {exc}")
            continue
        fired = firing(item, values)
        if uid in QUIET_ON_A_HEALTHY_STACK and fired:
            problems.append(f"{uid} fires on a healthy stack: {fired} (values {values})")
        if uid.startswith("influx-stack-sensor-") and {labels["device"] for labels, _ in values} != devices:
            problems.append(f"{uid}: instances {[labels for labels, _ in values]}, devices reporting {devices}")
    # The same queries twenty minutes on (the range is what moves): no report since, so the ingest rule fires.
    later = at + timedelta(minutes=20)
    silent = rules()["influx-stack-ingest-not-reporting"]
    if not firing(silent, answer(stack, silent, later)):
        problems.append("ingest-not-reporting stays quiet twenty minutes after the last report")
    runs = stack.sql(FORECAST_DATABASE, f"SELECT count(*) AS n FROM {EVALUATION.name}")[0]["n"]
    stale = rules()["influx-stack-forecast-stale"]
    if bool(firing(stale, answer(stack, stale, at))) != (runs == 0):
        problems.append(f"forecast-stale: {runs} runs in the stack, the rule says otherwise")
    assert not problems, "\n".join(problems)


def test_the_influxdb2_probe_is_quiet_from_the_first_start_with_grafanas_own_token(stack):
    """The InfluxDB 2 reachability rule lists the monitoring bucket with the read-only token Grafana's Flux
    datasource holds. influxdb2-init creates that bucket before any service starts (the ingest service may not
    create buckets: INGEST_INFLUXDB2_CREATE_BUCKETS=false, its token only writes), so on a new stack the probe
    answers 1 and the rule stays quiet; with a token that cannot read the bucket it would fire."""
    item = rules()["influx-stack-influxdb2-unreachable"]
    at = datetime.now(UTC)
    flux = expand_flux(item["data"][0]["model"]["query"], time_range(item, at), 1000,
                       default_bucket=stack.env["INFLUXDB2_BUCKET"], organization=stack.env["INFLUXDB2_ORG"])
    rows = stack.flux_table(flux, token=stack.service_token("grafana"))
    values = [({}, float(rows[-1]["_value"]))] if rows else []
    assert values == [({}, 1.0)] and not firing(item, values)
    assert firing(item, []), "no bucket listed (a token without access, a server down): the rule fires"


def test_grafana_lists_the_provisioned_rules_contact_points_and_policy(grafana):
    api = grafana.grafana_api()
    expected = {uid: item["title"] for uid, item in rules(ALERT_SETTINGS).items()}

    def listed() -> dict[str, Any] | None:
        found = {rule["uid"]: rule for rule in api.alertingprovisioning.get_alertrules_all()}
        return found if set(found) >= set(expected) else None

    found = wait_for("every provisioned alert rule", listed, timeout=120)
    for uid, title in expected.items():
        assert found[uid]["title"] == title and found[uid]["provenance"] == "file", uid
    points = {point["uid"]: point for point in api.alertingprovisioning.get_contactpoints()}
    for contact in CONTACTS:
        assert points[contact.uid]["type"] == contact.type, contact.uid
    policy = api.alertingprovisioning.get_notification_policy_tree()
    assert {route["object_matchers"][0][2] for route in policy["routes"]} == {"critical", "warning"}


def test_stopped_ingest_reaches_the_webhook(grafana, running, alert_webhook):
    """The test stack's rules fire after 90 s without an ingest report (ALERT_SETTINGS); the notification reaches
    the receiver named by ALERT_WEBHOOK_URL through the critical route."""
    title = rules(ALERT_SETTINGS)["influx-stack-ingest-not-reporting"]["title"]
    # It may have fired once already, while the stack started and before ingest's first report.
    before = len(alert_webhook.firing(title))
    grafana.stop("ingest")
    try:
        alerts = wait_for(f"a firing {title!r} notification", lambda: alert_webhook.firing(title)[before:],
                          timeout=420, interval=5)
    finally:
        grafana.start("ingest")
    alert = alerts[0]
    assert set(alert_webhook.authorizations()) == {f"Bearer {WEBHOOK_TOKEN}"}, "the token from the secure setting"
    assert alert["labels"]["severity"] == "critical" and alert["labels"]["service"] == "ingest"
    assert "no run metrics" in alert["annotations"]["summary"]
    assert alert.get("dashboardURL") and "stack-health" in alert["dashboardURL"]


# On a stack that has just been provisioned, before any report, backup or forecast: these rules fire, as they must.
FIRING_ON_A_FRESH_STACK = {"influx-stack-ingest-not-reporting", "influx-stack-backup-stale",
                           "influx-stack-forecast-stale"}


def test_every_rule_answers_on_a_freshly_provisioned_empty_influxdb3(tmp_path):
    """A bare Core given only the databases and tables of plugins/provision.yaml, as influxdb3-init creates them
    first: every SQL rule's query answers over Flight SQL (no table missing, so no DatasourceError on a new stack),
    and only the rules meant to fire on an empty stack do ("no report yet", "no verified backup yet", "no
    forecast yet")."""
    from influxdb3_init.client import InfluxDB3Admin
    from influxdb3_init.provision import provision
    from influxdb3_init.spec import load_provision
    from tests.engine import PLUGIN_DIR
    from tests.integration.stacks import flightsql
    from tests.integration.stacks.native import binary, start_influxdb3

    server_binary = binary("INFLUXDB3_BIN", "influxdb3")
    if server_binary is None:
        pytest.skip("needs an InfluxDB 3 Core binary (INFLUXDB3_BIN or `influxdb3` on PATH)")
    token = "apiv3_" + "f" * 43
    process, url = start_influxdb3(server_binary, "influxdb3-fresh", tmp_path / "fresh.log", "--node-id", "fresh",
                                   "--object-store", "file", "--data-dir", str(tmp_path / "data"),
                                   admin_token=(tmp_path / "admin-token.json", token, "_admin"), home=tmp_path)
    try:
        spec = load_provision(PLUGIN_DIR / "provision.yaml", PLUGIN_DIR)
        tables_only = dataclasses.replace(spec, packages=(), triggers=(), bootstrap=(), packages_check=None)
        provision(tables_only, InfluxDB3Admin(url, token))
        at = datetime.now(UTC)
        fired, problems = set(), []
        for uid, item in rules().items():
            if not is_sql(item):
                continue
            database, sql = sql_of(item, at)
            try:
                table = flightsql.query(int(url.rsplit(":", 1)[1]), token, database, sql)
            except Exception as exc:  # the server's own error for the query: a DatasourceError in Grafana
                problems.append(f"{uid}: {exc}")
                continue
            if firing(item, numbers(table) if table.num_rows else []):
                fired.add(uid)
        assert not problems, "\n".join(problems)
        assert fired == FIRING_ON_A_FRESH_STACK
    finally:
        process.stop()
