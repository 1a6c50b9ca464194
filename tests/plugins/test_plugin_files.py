"""The plugin files themselves: metadata docstrings, declared arguments, module names, provisioning file."""

from __future__ import annotations

import ast
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import yaml

from backup import metrics as backup_metrics
from influxdb3_init import spec as init_spec
from ingest.schema import BIRD_FIXES, HISTORY, INGEST_RUNS, SENSORS, WEATHER
from tests.engine import PLUGIN_DIR
from tests.engine.loader import load_plugin, resolve_plugin

if str(PLUGIN_DIR) not in sys.path:
    sys.path.append(str(PLUGIN_DIR))

from stacklib import tables, tracks
from stacklib.args import ArgumentError, parse

PROVISION = yaml.safe_load((PLUGIN_DIR / "provision.yaml").read_text())
ENTRY_POINTS = {"onwrite": "process_writes", "scheduled": "process_scheduled_call", "http": "process_request"}
# Our own plugins; gh: ones are downloaded by the server (tests/stack/test_influxdb3_init.py checks those).
PLUGINS = sorted({trigger["plugin"] for trigger in PROVISION["triggers"] if not trigger["plugin"].startswith("gh:")})


def source_of(plugin: str) -> Path:
    path = resolve_plugin(PLUGIN_DIR, plugin)
    return path / "__init__.py" if path.is_dir() else path


def metadata(plugin: str) -> dict:
    docstring = ast.get_docstring(ast.parse(source_of(plugin).read_text()))
    assert docstring, f"{plugin} must open with the JSON metadata docstring"
    return json.loads(docstring)


@pytest.mark.parametrize("plugin", PLUGINS)
def test_metadata_docstring_declares_types_and_arguments(plugin):
    meta = metadata(plugin)
    functions = {node.name for node in ast.parse(source_of(plugin).read_text()).body
                 if isinstance(node, ast.FunctionDef)}
    assert meta["plugin_type"] and set(meta["plugin_type"]) <= set(ENTRY_POINTS)
    for kind in meta["plugin_type"]:
        assert ENTRY_POINTS[kind] in functions, f"{plugin} declares {kind} but has no {ENTRY_POINTS[kind]}()"
        for argument in meta[f"{kind}_args_config"]:
            assert set(argument) == {"name", "example", "description", "required"}
            assert argument["description"] and isinstance(argument["required"], bool)


@pytest.mark.parametrize("plugin", [p for p in PLUGINS if not p.endswith(".py")])
def test_declared_arguments_are_the_accepted_ones(plugin):
    module = load_plugin(resolve_plugin(PLUGIN_DIR, plugin))
    meta = metadata(plugin)
    declared = {arg["name"]: arg["required"] for kind in meta["plugin_type"] for arg in meta[f"{kind}_args_config"]}
    accepted = {param.name: param.required for param in module.PARAMS}
    assert declared == accepted
    for kind in meta["plugin_type"]:
        examples = {arg["name"]: arg["example"] for arg in meta[f"{kind}_args_config"]}
        parse(examples, module.PARAMS)  # every documented example is a valid value


def test_multi_file_plugin_names_are_unique_and_shadow_nothing():
    folders = [path.parent for path in PLUGIN_DIR.glob("*/*/__init__.py")]
    names = [folder.name for folder in folders]
    assert len(names) == len(set(names)), "the engine imports plugin folders by name: names must be unique"
    for name in [*names, "stacklib"]:
        spec = importlib.util.find_spec(name) if name not in sys.modules else sys.modules[name].__spec__
        origin = Path(spec.origin).resolve() if spec and spec.origin else None
        assert origin is None or origin.is_relative_to(PLUGIN_DIR.resolve()), f"{name} shadows {origin}"


def test_provisioned_tables_are_the_declared_ones():
    provisioned = {(t["database"], t["name"]): t for t in PROVISION["tables"]}
    declared = [tables.SERIES, tables.FORECAST, tables.EVALUATION, tables.analytics_table("sensors"),
                tables.analytics_table(tables.SERIES.name)]
    for spec in declared:
        table = provisioned.pop((tables.FORECAST_DATABASE, spec.name))
        assert tuple(table["tags"]) == spec.tags and table["fields"] == spec.field_types
    for measurement in (SENSORS, WEATHER, BIRD_FIXES, INGEST_RUNS):  # the plugins' input (rollups too); alerts
        table = provisioned.pop((measurement.database, measurement.name))
        assert tuple(table["tags"]) == measurement.tags and table["fields"] == measurement.field_types
    for measurement in (SENSORS, WEATHER):  # the same, in history: what is loaded there from the past
        table = provisioned.pop((HISTORY, measurement.name))
        assert tuple(table["tags"]) == measurement.tags and table["fields"] == measurement.field_types
    # The backup service's run points (backup/metrics.py), also read by the alert rules from the start.
    runs = provisioned.pop((backup_metrics.TARGET, backup_metrics.MEASUREMENT))
    kinds = {"bool": "bool", "float": "float64", "int": "int64", "string": "utf8"}
    assert tuple(runs["tags"]) == tuple(backup_metrics.TAGS)
    assert runs["fields"] == {name: kinds[kind] for name, (kind, _, _) in backup_metrics.FIELDS.items()}
    for spec in tables.HOST_TABLES:
        table = provisioned.pop((tables.HOST_DATABASE, spec.name))
        assert tuple(table["tags"]) == spec.tags and table["fields"] == spec.field_types
    assert not provisioned, f"tables not declared in stacklib.tables or ingest.schema: {sorted(provisioned)}"


def test_triggers_use_existing_plugins_valid_arguments_and_the_declared_endpoints():
    databases = {db["name"] for db in PROVISION["databases"]}
    for trigger in PROVISION["triggers"]:
        assert trigger["database"] in databases
        if trigger["plugin"].startswith("gh:"):
            continue  # downloaded by the server (tests/stack/test_influxdb3_init.py)
        path = resolve_plugin(PLUGIN_DIR, trigger["plugin"])
        kind, _, value = trigger["spec"].partition(":")
        if kind == "request":
            assert value in tables.ENDPOINTS.values()
        if path.is_dir():
            module = load_plugin(path)
            try:
                parse({k: str(v) for k, v in (trigger.get("arguments") or {}).items()}, module.PARAMS)
            except ArgumentError as exc:
                pytest.fail(f"trigger {trigger['name']}: {exc}")
    assert {t["spec"].partition(":")[2] for t in PROVISION["triggers"] if t["spec"].startswith("request:")} == set(
        tables.ENDPOINTS.values())


def test_packages_file_pins_every_import():
    pins = [line.split("#")[0].strip() for line in (PLUGIN_DIR / PROVISION["packages_file"]).read_text().splitlines()]
    pins = {line.split("==")[0].lower() for line in pins if line}
    assert {"prophet", "plotly", "pandas", "numpy"} <= pins


def test_influxdb3_init_creates_the_track_columns_the_plugin_writes():
    assert init_spec.TRACK_COLUMNS == tracks.TRACK_COLUMNS
