"""The generated dashboards: committed as generated, valid for the pinned Grafana, wired to provisioned datasources."""

from __future__ import annotations

import importlib.metadata
import json
import re
from pathlib import Path

import pytest
import yaml
from grafana_foundation_sdk.cog import plugins as sdk_plugins
from grafana_foundation_sdk.cog import runtime as sdk_runtime
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as sdk_dashboard
from grafana_foundation_sdk.models import units as sdk_units

from backup import metrics as backup_metrics
from grafana import datasources, generate, queries
from grafana.boards import BOARDS as BOARD_MODULES
from grafana.panels import store_query
from grafana.units import BY_DECLARED
from ingest.schema import MEASUREMENTS
from tests.grafana.dashboards import boards, datasource, panels, variables
from tests.grafana.dashboards import queries as board_queries
from tests.grafana.expand import references, resolve_time
from tests.support.paths import REPO
from tests.support.stackcli import stack_module

BOARDS = boards()
PROVISIONING = REPO / "grafana" / "provisioning"
UNIT_IDS = {value for name, value in vars(sdk_units).items() if not name.startswith("_") and isinstance(value, str)}


def test_committed_json_is_what_the_code_generates():
    problems = generate.check()
    assert not problems, ("grafana/dashboards/ or grafana/provisioning/alerting/ is stale; run `make dashboards`:\n"
                          + "\n".join(problems))
    assert not (generate.OUTPUT / ".gitkeep").exists()


def test_check_reports_stale_missing_and_orphaned_files(tmp_path: Path, capsys):
    folders = ["--output", str(tmp_path / "dashboards"), "--alerting-output", str(tmp_path / "alerting")]
    assert generate.main(folders) == 0
    assert generate.main(["--check", *folders]) == 0
    (tmp_path / "dashboards" / "birds.json").write_text("{}")
    (tmp_path / "dashboards" / "weather.json").unlink()
    (tmp_path / "dashboards" / "old.json").write_text("{}")
    (tmp_path / "alerting" / "rules.yaml").write_text("apiVersion: 1\n")
    assert generate.main(["--check", *folders]) == 1
    err = capsys.readouterr().err
    assert "birds.json: differs" in err and "weather.json: missing" in err and "old.json: nothing generates" in err
    assert "alerting/rules.yaml: differs" in err
    generate.main(folders)
    assert sorted(p.name for p in (tmp_path / "dashboards").glob("*.json")) == sorted(generate.generated())


def test_uids_are_unique_stable_and_name_the_files():
    again = generate.generated()
    assert again == generate.generated(), "generating twice must give the same bytes"
    uids = [module.UID for module in BOARD_MODULES]
    assert len(set(uids)) == len(uids) == 7
    assert sorted(BOARDS) == sorted(uids)
    for uid, board in BOARDS.items():
        assert board["uid"] == uid and re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", uid), uid
        ids = [panel["id"] for panel in panels(board)]
        assert len(set(ids)) == len(ids), f"{uid}: panel ids must be unique"


def test_schema_version_is_what_the_pinned_grafana_writes():
    """The SDK pinned (0.0.21) writes the classic dashboard of Grafana 12.3's schema (schemaVersion 42), which the
    12.4 line compose pins provisions as it is (12.x reads schemaVersion up to 42)."""
    assert importlib.metadata.version("grafana-foundation-sdk").lstrip("v") == "0.0.21"
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert re.fullmatch(r"grafana/grafana:12\.4\.\d+", compose["services"]["grafana"]["image"])
    expected = sdk_dashboard.Dashboard().schema_version
    assert expected == 42
    assert {board["schemaVersion"] for board in BOARDS.values()} == {expected}


def test_every_dashboard_round_trips_through_the_sdk_models():
    """Decoding with the SDK's own models and encoding again loses or changes nothing: every key is one the
    pinned schema knows (our InfluxDB targets decode through the variant grafana.queries registers)."""
    sdk_plugins.register_default_plugins()
    queries.register()
    for uid, board in BOARDS.items():
        decoded = json.loads(json.dumps(sdk_dashboard.Dashboard.from_json(board), cls=JSONEncoder))
        for link in decoded.get("links", []):  # 0.0.21's DashboardLink() always sets it; grafana.panels.finish drops it
            assert link.pop("placement") == "inControlsMenu"
        assert decoded == board, uid


def test_panel_types_exist_in_the_pinned_grafana():
    known = set(sdk_runtime.Runtime().panelcfg_variants) | {"row"}
    sdk_plugins.register_default_plugins()
    known |= set(sdk_runtime.Runtime().panelcfg_variants)
    for uid, board in BOARDS.items():
        for panel in panels(board):
            assert panel["type"] in known, f"{uid}: {panel['type']} is not a Grafana panel the SDK knows"


def provisioned() -> dict[str, dict]:
    sources = {}
    for path in sorted((PROVISIONING / "datasources").glob("*.yaml")):
        for item in yaml.safe_load(path.read_text())["datasources"]:
            sources[item["uid"]] = item
    return sources


def test_every_datasource_the_dashboards_use_is_provisioned_with_the_right_database():
    """One provisioned SQL datasource per InfluxDB 3 database (Grafana sends one database per datasource)."""
    sources = provisioned()
    env = stack_module().read_env(REPO / ".env.example")
    missing = []
    for declared in datasources.ALL:
        item = sources.get(declared.uid)
        if item is None:
            block = (f"  - name: InfluxDB 3 (SQL, {declared.database})\n    uid: {declared.uid}\n    type: influxdb\n"
                     "    access: proxy\n    url: http://influxdb3:8181\n    editable: false\n    jsonData:\n"
                     f"      version: SQL\n      dbName: {declared.database}\n"
                     "      insecureGrpc: true\n    secureJsonData:\n      token: ${INFLUXDB3_TOKEN}")
            missing.append(f"{declared.uid} is not provisioned; grafana/provisioning/datasources/ needs:\n{block}")
            continue
        assert item["type"] == datasources.PLUGIN_TYPE and item["jsonData"]["version"] == declared.language
        if declared.language == datasources.SQL_LANGUAGE:
            name = re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), ""), str(item["jsonData"]["dbName"]))
            assert name == declared.database, f"{declared.uid} reads {name!r}, dashboards expect {declared.database}"
            assert "httpMode" not in item["jsonData"], f"{declared.uid}: Flight SQL (gRPC) has no HTTP method"
    assert not missing, "\n".join(missing)


def refs(board: dict) -> list[dict]:
    """Every datasource ref of the dashboard's panels, their targets and its variables."""
    found = [panel["datasource"] for panel in panels(board) if panel["type"] != "row"]
    found += [target["datasource"] for panel in panels(board) for target in panel.get("targets", [])]
    return found + [item.raw["datasource"] for item in variables(board)]


def test_every_panel_and_variable_names_a_declared_datasource_by_uid():
    for uid, board in BOARDS.items():
        text = json.dumps(board)
        assert "${DS_" not in text and "__inputs" not in board, uid
        for panel in panels(board):
            if panel["type"] == "row":
                continue
            assert panel["datasource"]["type"] == datasources.PLUGIN_TYPE
            for target in panel.get("targets", []):
                assert target["datasource"] in ({"type": "influxdb", "uid": d.uid}
                                                for d in (*datasources.ALL, *datasources.STORED)), uid
        found = {item.name: item for item in variables(board)}
        assert all(item.datasource in (*datasources.ALL, *datasources.STORED) for item in found.values())
        # A stored datasource is named by a hidden variable the dashboard defines before any variable that uses it,
        # which asks the live database which store the range reads (the uid of a provisioned datasource).
        used = {d.variable: d for d in (datasource(ref) for ref in refs(board)) if d.variable}
        order = list(found)
        for name, source in used.items():
            live = next(d for d in datasources.LIVE if d.database == source.database)
            store = found.get(name)
            assert store is not None, f"{uid}: ${{{name}}} has no variable"
            assert store.raw["hide"] == 2 and not store.multi and not store.include_all and store.datasource == live
            assert store.query == store_query(live) and store.current == [live.uid]
            assert all(order.index(name) < order.index(item.name) for item in found.values()
                       if item.datasource == source), f"{uid}: a variable reads ${{{name}}} before it is set"


def test_every_panel_has_a_unit_grafana_knows():
    for uid, board in BOARDS.items():
        for panel in panels(board):
            if panel["type"] == "row":
                continue
            unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
            assert unit in UNIT_IDS, f"{uid}: panel {panel['title']!r} has unit {unit!r}"
            for item in panel["fieldConfig"].get("overrides", []):
                for prop in item["properties"]:
                    assert prop["id"] != "unit" or prop["value"] in UNIT_IDS, (uid, panel["title"], prop)


def test_every_declared_unit_has_a_grafana_unit():
    declared = {item.unit for measurement in MEASUREMENTS for item in measurement.fields}
    declared |= {unit for _, unit, _ in backup_metrics.FIELDS.values()}
    assert declared <= set(BY_DECLARED), f"add to grafana/units.py: {sorted(declared - set(BY_DECLARED))}"
    assert set(BY_DECLARED.values()) <= UNIT_IDS


def test_thresholds_ascend_from_a_base_colour():
    for uid, board in BOARDS.items():
        for panel in panels(board):
            steps = panel.get("fieldConfig", {}).get("defaults", {}).get("thresholds", {}).get("steps")
            if steps:
                assert steps[0]["value"] is None, (uid, panel["title"])
                values = [step["value"] for step in steps[1:]]
                assert values == sorted(values), (uid, panel["title"])


def test_variables_are_defined_and_always_formatted_explicitly():
    for uid, board in BOARDS.items():
        defined = {item.name for item in variables(board)}
        texts = [(item.name, item.query, item.datasource) for item in variables(board)]
        texts += [(query.label, query.text, query.datasource) for query in board_queries(board, uid)]
        texts += [(f"title of {panel.get('title')}", panel.get("title", ""), None) for panel in panels(board)]
        for label, text, source in texts:
            for name, fmt in references(text):
                assert name in defined, f"{uid} {label}: ${name} is not a variable of the dashboard"
                if source is None:
                    continue
                if source.language == datasources.SQL_LANGUAGE:
                    assert fmt in ("sqlstring", "raw"), f"{uid} {label}: ${{{name}}} needs :sqlstring (or :raw)"
                    if fmt == "raw":
                        assert re.search(rf"FROM \$\{{{name}:raw\}}", text), f"{uid} {label}: raw only as a table"
        for panel in panels(board):
            if panel.get("repeat"):
                assert panel["repeat"] in defined


def test_default_time_ranges_and_refresh_are_sensible():
    from datetime import UTC, datetime

    now = datetime(2026, 1, 1, tzinfo=UTC)
    for uid, board in BOARDS.items():
        start, end = resolve_time(board["time"]["from"], now), resolve_time(board["time"]["to"], now)
        assert start < end, uid
        assert board.get("refresh", "1m") in ("1m", "5m", "15m"), uid
    assert BOARDS["birds"]["time"]["from"] == "now-10y", "the default Movebank study is from 2018-2019"
    assert BOARDS["sensors"]["time"] == {"from": "now-6h", "to": "now"}


def test_layout_fits_the_grid():
    for uid, board in BOARDS.items():
        for panel in panels(board):
            grid = panel["gridPos"]
            assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, (uid, panel.get("title"))


def kinds(uid: str) -> list[str]:
    return [panel["type"] for panel in panels(BOARDS[uid])]


def test_the_six_dashboards_show_what_the_issue_asks_for():
    birds = BOARDS["birds"]
    (track,) = [panel for panel in panels(birds) if panel["type"] == "geomap"]
    layers = {layer["type"]: layer for layer in track["options"]["layers"]}
    assert set(layers) == {"route", "markers"} and track["repeat"] == "individual"
    assert {item.name for item in variables(birds)} == {"species", "individual"}
    assert {"Distance per day", "Travel speed per day", "Fixes per individual", "Outlier fixes"} <= {
        panel["title"] for panel in panels(birds)}

    weather = BOARDS["weather"]
    (now_row,) = [panel for panel in panels(weather) if panel["type"] == "row" and panel.get("repeat")]
    assert now_row["repeat"] == "location"
    assert kinds("weather").count("stat") == kinds("weather").count("timeseries") >= 5

    sensors = BOARDS["sensors"]
    titles = {panel["title"] for panel in panels(sensors)}
    assert {"Devices reporting", "Data freshness", "Latest values per device"} <= titles
    assert sum(1 for panel in panels(sensors) if panel["type"] == "timeseries"
               and panel["fieldConfig"]["defaults"]["custom"].get("thresholdsStyle", {}).get("mode")
               == "line+area") >= 5

    forecast = BOARDS["forecast"]
    band = [item for panel in panels(forecast) for item in panel.get("fieldConfig", {}).get("overrides", [])
            if any(prop["id"] == "custom.fillBelowTo" for prop in item["properties"])]
    assert band, "the forecast chart fills the interval band"
    assert all(query.datasource == datasources.SQL_FORECAST for query in board_queries(forecast, "forecast"))

    statistics = BOARDS["statistics"]
    assert {item.name for item in variables(statistics)} == {"table", "bucket", "field"}

    health = [query for query in board_queries(BOARDS["stack-health"], "stack-health")]
    text = "\n".join(query.text for query in health)
    for name in ("write_rate", "rows_rejected", "spool_bytes", "success", "bytes"):
        assert f'"{name}"' in text
    assert {query.datasource for query in health} == {datasources.FLUX, datasources.stored(datasources.SQL_TELEMETRY)}


@pytest.mark.parametrize("uid", sorted(BOARDS))
def test_sql_time_series_select_a_time_column_and_tables_are_marked(uid):
    for query in board_queries(BOARDS[uid], uid):
        if query.is_sql:
            assert query.target["format"] in ("table", "time_series"), query.label
            assert query.target["rawQuery"] is True and query.target["editorMode"] == "code"
            if query.target["format"] == "time_series":
                assert re.search(r"\bAS time\b|SELECT time\b", query.text), query.label
