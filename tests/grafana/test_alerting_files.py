"""The alerting provisioning files load in Grafana 12.4: only keys its file provisioning reads, valid values, unique
uids, provisioned datasources, panels that exist, and `$` only where Grafana's interpolation expects it.

Grafana reads these files into Go structs that ignore unknown keys, so a misspelt key would be dropped without a
word: every key is checked against the structs of pkg/services/provisioning/alerting (file_v1.go AlertingFileV1,
rules_types.go AlertRuleGroupV1/AlertRuleV1/QueryV1, contact_point_types.go ContactPointV1/ReceiverV1) and
Alertmanager's route (pkg/services/ngalert/api/tooling/definitions, `Route`, as notification_policy_types.go
unmarshals it), as of rules_types.go @0085cf86 (12.x: keepFiringFor and missing_series_evals_to_resolve were added
after 11.6; nothing was removed).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from grafana import datasources, generate
from grafana.alerting import build, rules
from grafana.alerting.settings import DEFAULTS, Settings, from_env_file, parse_duration, resolve, specs
from tests.grafana.dashboards import boards, panels
from tests.support.paths import REPO
from tests.support.stackcli import stack_module

ALERTING = REPO / "grafana" / "provisioning" / "alerting"
DATASOURCES = REPO / "grafana" / "provisioning" / "datasources"

FILE_KEYS = {"apiVersion", "groups", "deleteRules", "contactPoints", "deleteContactPoints", "policies",
             "resetPolicies", "muteTimes", "deleteMuteTimes", "templates", "deleteTemplates"}
GROUP_KEYS = {"orgId", "name", "folder", "interval", "rules"}
RULE_KEYS = {"uid", "title", "condition", "data", "dashboardUid", "panelId", "noDataState", "execErrState", "for",
             "annotations", "labels", "isPaused", "notification_settings", "record", "keepFiringFor",
             "missing_series_evals_to_resolve"}
QUERY_KEYS = {"refId", "queryType", "relativeTimeRange", "datasourceUid", "model"}
CONTACT_POINT_KEYS = {"orgId", "name", "receivers"}
RECEIVER_KEYS = {"uid", "type", "settings", "disableResolveMessage"}
ROUTE_KEYS = {"receiver", "group_by", "continue", "object_matchers", "matchers", "match", "match_re",
              "mute_time_intervals", "active_time_intervals", "group_wait", "group_interval", "repeat_interval",
              "routes", "provenance"}
# models.NoDataStateFromString / ErrStateFromString, as far as the pinned SDK's rule model names them.
NO_DATA_STATES, ERROR_STATES = {"Alerting", "NoData", "OK"}, {"Alerting", "Error", "OK"}
THRESHOLD_ARGUMENTS = {"gt": 1, "lt": 1, "eq": 1, "ne": 1, "gte": 1, "lte": 1, "within_range": 2,
                       "outside_range": 2, "within_range_included": 2, "outside_range_included": 2}
UID = re.compile(r"[a-zA-Z0-9_-]{1,40}")
ENV_REFERENCE = re.compile(r"\$\{(ALERT_[A-Z_]+)\}")


def load(name: str) -> dict[str, Any]:
    document = yaml.safe_load((ALERTING / name).read_text())
    assert set(document) <= FILE_KEYS, f"{name}: keys Grafana does not read: {set(document) - FILE_KEYS}"
    assert document["apiVersion"] == 1
    return document


def groups() -> list[dict[str, Any]]:
    return load(build.RULES_FILE)["groups"]


def all_rules() -> list[dict[str, Any]]:
    return [item for group in groups() for item in group["rules"]]


def strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [text for item in value.values() for text in strings(item)]
    if isinstance(value, list):
        return [text for item in value for text in strings(item)]
    return [value] if isinstance(value, str) else []


def test_the_files_are_what_make_dashboards_generates_with_the_defaults():
    assert sorted(path.name for path in ALERTING.glob("*.yaml")) == sorted(build.FILES)
    assert generate.check() == [], "run `make dashboards` (with no ALERT_* overrides) and commit"


def test_every_key_is_one_grafana_reads():
    problems = []
    for group in groups():
        problems += [f"group {group.get('name')}: {key}" for key in set(group) - GROUP_KEYS]
        for item in group["rules"]:
            problems += [f"{item['uid']}: {key}" for key in set(item) - RULE_KEYS]
            for query in item["data"]:
                problems += [f"{item['uid']}/{query['refId']}: {key}" for key in set(query) - QUERY_KEYS]
                problems += [f"{item['uid']}/{query['refId']}: relativeTimeRange.{key}"
                             for key in set(query["relativeTimeRange"]) - {"from", "to"}]
    for point in load(build.CONTACT_POINTS_FILE)["contactPoints"]:
        problems += [f"contact point {point['name']}: {key}" for key in set(point) - CONTACT_POINT_KEYS]
        for receiver in point["receivers"]:
            problems += [f"receiver {receiver['uid']}: {key}" for key in set(receiver) - RECEIVER_KEYS]

    def walk(route: dict[str, Any], path: str) -> None:
        problems.extend(f"policy {path}: {key}" for key in set(route) - ROUTE_KEYS - {"orgId"})
        for number, child in enumerate(route.get("routes", [])):
            walk(child, f"{path}.routes[{number}]")

    for policy in load(build.POLICIES_FILE)["policies"]:
        walk(policy, "root")
    assert not problems, "keys Grafana 12.4 would silently drop:\n" + "\n".join(problems)


def test_groups_name_a_folder_and_an_interval_grafana_accepts():
    names = [group["name"] for group in groups()]
    assert sorted(names) == sorted(rules.GROUPS) and len(set(names)) == len(names)
    for group in groups():
        assert group["orgId"] == 1 and group["folder"] == rules.FOLDER and group["rules"]
        seconds = parse_duration(group["interval"])
        assert seconds >= 10 and seconds % 10 == 0, f"{group['name']}: Grafana evaluates in steps of 10 s"


def test_rules_have_unique_uids_states_durations_labels_and_a_summary():
    found = all_rules()
    uids = [item["uid"] for item in found]
    assert len(set(uids)) == len(uids) and all(UID.fullmatch(uid) for uid in uids), uids
    assert len({item["title"] for item in found}) == len(found)
    for item in found:
        assert item["noDataState"] in NO_DATA_STATES and item["execErrState"] in ERROR_STATES, item["uid"]
        assert parse_duration(item["for"]) >= 0 and item["isPaused"] is False
        assert item["labels"]["severity"] in (rules.CRITICAL, rules.WARNING), item["uid"]
        assert item["labels"]["service"], item["uid"]
        assert item["annotations"]["summary"] and item["annotations"]["description"], item["uid"]


def test_every_rule_links_to_a_panel_of_a_generated_dashboard():
    generated = boards()
    for item in all_rules():
        board = generated.get(item["dashboardUid"])
        assert board is not None, f"{item['uid']}: no dashboard {item['dashboardUid']!r}"
        ids = {panel["id"] for panel in panels(board)}
        assert item["panelId"] in ids, f"{item['uid']}: {item['dashboardUid']} has no panel {item['panelId']}"


def provisioned_datasources() -> dict[str, dict[str, Any]]:
    return {source["uid"]: source for path in DATASOURCES.glob("*.yaml")
            for source in yaml.safe_load(path.read_text())["datasources"]}


def test_queries_name_provisioned_datasources_and_chain_into_the_condition():
    sources = provisioned_datasources()
    for item in all_rules():
        refs = {query["refId"]: query for query in item["data"]}
        assert item["condition"] in refs, item["uid"]
        query = refs["A"]
        assert query["datasourceUid"] in sources, f"{item['uid']}: {query['datasourceUid']} is not provisioned"
        assert query["model"]["datasource"] == {"type": datasources.PLUGIN_TYPE, "uid": query["datasourceUid"]}
        assert query["relativeTimeRange"]["from"] > query["relativeTimeRange"]["to"] == 0, (
            f"{item['uid']}: a data query's range must end now and start before (alert_query.go isValid)")
        assert all(isinstance(value, int) for value in query["relativeTimeRange"].values()), (
            "the file format reads the range as whole seconds (models.Duration.UnmarshalYAML takes an int)")
        language = sources[query["datasourceUid"]]["jsonData"]["version"]
        if language == datasources.SQL_LANGUAGE:
            assert query["model"]["format"] == "table" and query["model"]["rawSql"], item["uid"]
        else:
            assert query["model"]["query"], item["uid"]
        for ref, expression in refs.items():
            if ref == "A":
                continue
            model = expression["model"]
            assert expression["datasourceUid"] == rules.EXPRESSION_UID, item["uid"]
            assert model["datasource"] == {"type": rules.EXPRESSION_UID, "uid": rules.EXPRESSION_UID}
            assert model["expression"] in refs and model["expression"] != ref, f"{item['uid']}/{ref}"
            if model["type"] == "reduce":
                assert model["reducer"] == "last"
            else:
                assert model["type"] == "threshold" and len(model["conditions"]) == 1, (
                    "threshold.go: exactly one condition")
                evaluator = model["conditions"][0]["evaluator"]
                assert len(evaluator["params"]) == THRESHOLD_ARGUMENTS[evaluator["type"]], item["uid"]


def test_nothing_grafana_interpolates_holds_a_dollar():
    """Grafana runs os.ExpandEnv over rule fields (values.StringValue: uid, title, labels, `for`, datasourceUid,
    ...), so a `$` there would be replaced by an empty variable; the query model is taken raw (rules_types.go,
    QueryV1.mapToModel), and annotations get only braced `${}` replaced from the environment (12.x): their templates
    may use `$labels`/`$values` but never `${`."""
    for group in groups():
        for key in ("name", "folder", "interval"):
            assert "$" not in group[key]
        for item in group["rules"]:
            interpolated = {key: value for key, value in item.items() if key not in ("data", "annotations")}
            interpolated["data"] = [{key: value for key, value in query.items() if key != "model"}
                                    for query in item["data"]]
            assert not [text for text in strings(interpolated) if "$" in text], item["uid"]
            assert not [text for text in strings(item["annotations"]) if "${" in text], item["uid"]


def test_contact_points_take_every_address_from_the_environment():
    """No secret in a file: webhook URLs and e-mail addresses are `${ALERT_...}` only (interpolated by Grafana:
    contact_point_types.go, `Settings.Value()`)."""
    points = load(build.CONTACT_POINTS_FILE)["contactPoints"]
    receivers = [receiver for point in points for receiver in point["receivers"]]
    uids = [receiver["uid"] for receiver in receivers]
    assert len(set(uids)) == len(uids) and all(UID.fullmatch(uid) for uid in uids)
    assert {receiver["type"] for receiver in receivers} == {"webhook", "email"}
    for receiver in receivers:
        address = receiver["settings"]["url" if receiver["type"] == "webhook" else "addresses"]
        assert ENV_REFERENCE.fullmatch(address), f"{receiver['uid']}: {address!r} must be a ${{ALERT_...}} reference"
        for text in strings(receiver["settings"]):
            assert "$" not in ENV_REFERENCE.sub("", text), f"{receiver['uid']}: a stray $ in {text!r}"


def test_policy_receivers_are_provisioned_contact_points_or_grafanas_default():
    names = {point["name"] for point in load(build.CONTACT_POINTS_FILE)["contactPoints"]}

    def receivers(route: dict[str, Any]) -> set[str]:
        return {route.get("receiver")} - {None} | {name for child in route.get("routes", []) for name in
                                                     receivers(child)}

    (policy,) = load(build.POLICIES_FILE)["policies"]
    assert policy["receiver"] == "grafana-default-email", "the root needs a receiver that always exists"
    assert receivers(policy) <= names | {"grafana-default-email"}
    assert {"grafana_folder", "alertname"} <= set(policy["group_by"])
    severities = {child["object_matchers"][0][2] for child in policy["routes"]}
    assert severities == {rules.CRITICAL, rules.WARNING}
    for text in strings(policy):
        assert "$" not in ENV_REFERENCE.sub("", text), f"a stray $ in the policy: {text!r}"


def test_every_setting_is_documented_in_env_example_with_its_default():
    documented = {name: value for name, value, _ in
                  stack_module().parse_template((REPO / ".env.example").read_text())}
    for item in specs():
        env = item.metadata["env"]
        assert documented.get(env) == item.metadata["text"], f".env.example must list {env}={item.metadata['text']}"
    assert resolve(from_env_file(REPO / ".env.example")) == DEFAULTS


def test_settings_from_env_change_the_rules_and_the_dashboards_together(tmp_path):
    env = tmp_path / ".env"
    env.write_text("ALERT_CO2_MAX=1200\nALERT_INGEST_SILENT_AFTER=20m\nOTHER=1\n")
    settings = resolve(from_env_file(env, {"ALERT_PENDING_PERIOD": "2m"}))
    assert settings.overrides() == {"ALERT_CO2_MAX": "1200", "ALERT_INGEST_SILENT_AFTER": "20m",
                                    "ALERT_PENDING_PERIOD": "2m"}
    text = build.generated(settings)[build.RULES_FILE]
    co2 = next(item for group in yaml.safe_load(text)["groups"] for item in group["rules"]
               if item["uid"] == "influx-stack-sensor-co2")
    assert co2["data"][2]["model"]["conditions"][0]["evaluator"]["params"] == [1200]
    assert co2["for"] == "2m"
    assert '"value": 1200' in generate.generated(settings)["sensors.json"]
    assert generate.main(["--env-file", str(env), "--output", str(tmp_path / "d"),
                          "--alerting-output", str(tmp_path / "a")]) == 0
    assert (tmp_path / "a" / build.RULES_FILE).read_text() != (ALERTING / build.RULES_FILE).read_text()


@pytest.mark.parametrize(("environ", "problem"), [
    ({"ALERT_CO2_MAX": "lots"}, "ALERT_CO2_MAX='lots' is not a number"),
    ({"ALERT_PENDING_PERIOD": "5 minutes"}, "is not a duration"),
    ({"ALERT_TEMPERATURE_MIN": "35"}, "ALERT_TEMPERATURE_MIN must be below ALERT_TEMPERATURE_MAX"),
    ({"ALERT_EVALUATION_INTERVAL": "15s"}, "multiple of 10s"),
])
def test_a_bad_setting_stops_generation_naming_it(environ, problem, capsys, tmp_path):
    with pytest.raises(ValueError, match=re.escape(problem)):
        resolve(environ)
    env = tmp_path / ".env"
    env.write_text("".join(f"{key}={value}\n" for key, value in environ.items()))
    assert generate.main(["--check", "--env-file", str(env)]) == 2
    assert problem in capsys.readouterr().err


def test_a_renamed_panel_or_field_breaks_generation(monkeypatch):
    from grafana.alerting import rules as rule_module

    monkeypatch.setattr(rule_module, "_sensor_range", _renamed_panel(rule_module._sensor_range))
    with pytest.raises(KeyError, match=re.escape("has no panel 'CO2 (renamed)'")):
        build.generated()
    from grafana import names

    with pytest.raises(KeyError, match="has no field 'co2_ppm'"):
        names.field(rule_module.SENSORS, "co2_ppm")


def _renamed_panel(original):
    def renamed(settings: Settings, name: str, title: str, threshold: str, params, unit: str, panel: str):
        renamed_panel = f"{panel} (renamed)" if name == "co2" else panel
        return original(settings, name, title, threshold, params, unit, renamed_panel)

    return renamed
