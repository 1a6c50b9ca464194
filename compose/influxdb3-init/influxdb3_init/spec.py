"""The provisioning file: what the plugins need in InfluxDB 3, validated before anything is sent.

Every mistake is reported with the file, the entry and the problem, all at once, so a broken
plugins/provision.yaml stops `make up` with a readable list instead of half-provisioning a server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from common.names import database_name_problem
from common.retention import RAW, RAW_RETENTION_VARIABLE

__all__ = ["COMMUNITY_PREFIX", "CORE_DATABASE_LIMIT", "DEFAULT_PLUGIN_REPO", "Bootstrap", "Database", "Provision",
           "SpecError", "Table", "Trigger", "load_provision", "plugin_url"]

# InfluxDB 3 Core refuses a sixth database (HTTP 422).
CORE_DATABASE_LIMIT = 5
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TRIGGER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_REQUEST_PATH = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_/-]*$")
_EVERY = re.compile(r"^\d+[smhdwMy]$")
_DURATION = re.compile(r"^(\d+(ns|us|ms|s|m|h|d|w))+$")
_PINNED = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._-]+\])?==[A-Za-z0-9.+!_-]+$")
FIELD_TYPES = ("utf8", "int64", "uint64", "float64", "bool")
ERROR_BEHAVIORS = ("log", "retry", "disable")
# The rollups plugin (plugins/history/rollups): what its scheduled trigger writes beside each table it names.
ROLLUP_PLUGIN = "history/rollups"
ROLLUP_DEFAULT_LEVELS = "1h 1d"
ROLLUP_NUMERIC = ("float64", "int64", "uint64")
ROLLUP_AGGREGATES = (("count", "int64"), ("sum", "float64"), ("min", "float64"), ("max", "float64"),
                     ("last", "float64"), ("mean", "float64"))
# `kind: tracks` (plugins/stacklib/tracks.py TRACK_COLUMNS; a test checks they are the same): a summary per bucket of
# the tags named by `by` (default every tag), whatever the raw table's fields.
TRACK_COLUMNS = (("fixes", "int64"), ("outliers", "int64"), ("good", "int64"), ("placed", "int64"),
                 ("km", "float64"), ("hours", "float64"), ("newest_ns", "int64"), ("first_ns", "int64"),
                 ("first_lat", "float64"), ("first_lon", "float64"), ("last_ns", "int64"), ("last_lat", "float64"),
                 ("last_lon", "float64"), ("outlier_ns", "int64"), ("outlier_lat", "float64"),
                 ("outlier_lon", "float64"))
_LEVEL = re.compile(r"^\d+[mhdw]$")
# `plugin: gh:<path>`: a plugin the server itself downloads when the trigger is created (and at every start) from
# --plugin-repo, by default InfluxData's community repository (influxdb3_processing_engine/src/lib.rs
# `read_plugin_code`, v3.10.1): the URL is the repository, a "/" unless it ends with one, and the path.
COMMUNITY_PREFIX = "gh:"
DEFAULT_PLUGIN_REPO = "https://raw.githubusercontent.com/influxdata/influxdb3_plugins/main/"
_COMMUNITY_PATH = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*\.py$")


class SpecError(ValueError):
    def __init__(self, path: Path, problems: list[str]):
        self.problems = problems
        super().__init__(f"{path}: {len(problems)} problem(s):\n  - " + "\n  - ".join(problems))


@dataclass(frozen=True)
class Database:
    name: str
    retention: str | None = None


@dataclass(frozen=True)
class Table:
    database: str
    name: str
    tags: tuple[str, ...]
    fields: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Trigger:
    name: str
    database: str
    plugin: str
    spec: str
    arguments: dict[str, str] = field(default_factory=dict)
    run_async: bool = False
    error_behavior: str = "log"
    disabled: bool = False
    packages: tuple[str, ...] = ()

    @property
    def community(self) -> bool:
        """A `gh:` plugin, fetched by the server from the plugin repository rather than read from plugins/."""
        return self.plugin.startswith(COMMUNITY_PREFIX)

    def request_body(self) -> dict:
        """The body of POST /api/v3/configure/processing_engine_trigger for this trigger."""
        body = {
            "db": self.database,
            "plugin_filename": self.plugin,
            "trigger_name": self.name,
            "trigger_specification": self.spec,
            # The server requires both settings, lowercase, even though the API description has defaults.
            "trigger_settings": {"run_async": self.run_async, "error_behavior": self.error_behavior},
            "disabled": self.disabled,
        }
        if self.arguments:
            body["trigger_arguments"] = dict(self.arguments)
        return body


@dataclass(frozen=True)
class Bootstrap:
    """A request to a provisioned request trigger, sent once while `unless_rows_in` is still empty."""

    request: str
    database: str
    unless_rows_in: str | None = None


@dataclass(frozen=True)
class Provision:
    databases: tuple[Database, ...]
    tables: tuple[Table, ...]
    packages: tuple[str, ...]
    triggers: tuple[Trigger, ...]
    source: Path
    bootstrap: tuple[Bootstrap, ...] = ()
    # The request trigger that proves, inside the engine, that every package imports at its pinned version.
    packages_check: Trigger | None = None
    # The rollup tables derived from the rollups triggers (also in `tables`, which influxdb3-init creates).
    rollups: tuple[Table, ...] = ()
    # The raw tables a rollups trigger's `copy_to` database has beside the rollups (empty unless history is loaded).
    copies: tuple[Table, ...] = ()


def _spec_problem(spec: str) -> str | None:
    """Why a trigger specification is invalid, or None."""
    if spec == "all_tables":
        return None
    kind, _, value = spec.partition(":")
    if kind == "table":
        return None if _IDENTIFIER.match(value) else f"table name {value!r} is not an identifier"
    if kind == "every":
        return None if _EVERY.match(value) else f"interval {value!r} is not like 30s, 5m, 1h, 1d, 1w, 1M or 1y"
    if kind == "cron":
        count = len(value.split())
        return None if count == 6 else (f"cron expression {value!r} has {count} fields; InfluxDB 3 needs 6 "
                                         "(seconds first, e.g. '0 0 6 * * *')")
    if kind == "request":
        return None if _REQUEST_PATH.match(value) else f"request path {value!r} must be letters, digits, _ - /"
    return f"unknown trigger specification {spec!r} (table:, all_tables, every:, cron: or request:)"


def _read_packages(path: Path, problems: list[str]) -> tuple[str, ...]:
    if not path.is_file():
        problems.append(f"packages_file {path.name!r} does not exist next to the provisioning file")
        return ()
    packages = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if not _PINNED.match(line):
            problems.append(f"{path.name} line {number}: {line!r} is not pinned as name==version")
            continue
        packages.append(line)
    return tuple(packages)


def _as_list(raw: dict, key: str, problems: list[str]) -> list:
    value = raw.get(key) or []
    if not isinstance(value, list):
        problems.append(f"'{key}' must be a list")
        return []
    return value


def load_provision(path: Path, plugin_dir: Path | None = None) -> Provision:
    """Parse and validate the provisioning file; plugin files are looked up under `plugin_dir`."""
    plugin_dir = plugin_dir or path.parent
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise SpecError(path, [f"cannot read it: {exc.strerror or exc}"]) from exc
    except yaml.YAMLError as exc:
        raise SpecError(path, [f"not valid YAML: {exc}"]) from exc
    if not isinstance(raw, dict):
        raise SpecError(path, ["the top level must be a mapping"])
    problems: list[str] = []
    unknown = set(raw) - {"databases", "tables", "packages_file", "packages_check", "triggers", "bootstrap"}
    if unknown:
        problems.append(f"unknown top-level keys: {', '.join(sorted(unknown))}")

    databases: list[Database] = []
    for index, entry in enumerate(_as_list(raw, "databases", problems)):
        entry = entry if isinstance(entry, dict) else {}
        name = str(entry.get("name", ""))
        where = f"databases[{index}] {name!r}"
        problem = database_name_problem(name)
        if problem:
            problems.append(f"{where}: the database name {problem}")
        retention = entry.get("retention")
        if retention is not None and retention != RAW and not _DURATION.match(str(retention)):
            problems.append(f"{where}: retention {retention!r} is not a duration like 30d or 12h, nor {RAW!r} "
                            f"(the raw retention, {RAW_RETENTION_VARIABLE})")
        if any(db.name == name for db in databases):
            problems.append(f"{where}: listed twice")
        databases.append(Database(name, None if retention is None else str(retention)))
    if len(databases) > CORE_DATABASE_LIMIT:
        problems.append(f"{len(databases)} databases listed; InfluxDB 3 Core allows {CORE_DATABASE_LIMIT}")
    known_dbs = {db.name for db in databases}

    tables: list[Table] = []
    for index, entry in enumerate(_as_list(raw, "tables", problems)):
        entry = entry if isinstance(entry, dict) else {}
        name, database = str(entry.get("name", "")), str(entry.get("database", ""))
        where = f"tables[{index}] {database}.{name}"
        if database not in known_dbs:
            problems.append(f"{where}: database {database!r} is not listed under databases")
        if not _IDENTIFIER.match(name):
            problems.append(f"{where}: table name is not an identifier")
        tags = entry.get("tags") or []
        fields = entry.get("fields") or {}
        if not isinstance(tags, list) or not all(isinstance(t, str) and _IDENTIFIER.match(t) for t in tags):
            problems.append(f"{where}: tags must be a list of identifiers")
            tags = []
        if not isinstance(fields, dict) or not fields:
            problems.append(f"{where}: fields must be a non-empty mapping of name: type")
            fields = {}
        for field_name, field_type in fields.items():
            if not _IDENTIFIER.match(str(field_name)):
                problems.append(f"{where}: field {field_name!r} is not an identifier")
            if field_type not in FIELD_TYPES:
                problems.append(f"{where}: field {field_name!r} has type {field_type!r}; use one of "
                                f"{', '.join(FIELD_TYPES)}")
        clash = set(tags) & set(map(str, fields))
        if clash:
            problems.append(f"{where}: {', '.join(sorted(clash))} cannot be both tag and field")
        if any(t.database == database and t.name == name for t in tables):
            problems.append(f"{where}: listed twice")
        tables.append(Table(database, name, tuple(tags), tuple((str(k), str(v)) for k, v in fields.items())))
    known_tables = {(t.database, t.name) for t in tables}

    packages: tuple[str, ...] = ()
    if raw.get("packages_file"):
        packages = _read_packages(path.parent / str(raw["packages_file"]), problems)

    triggers: list[Trigger] = []
    for index, entry in enumerate(_as_list(raw, "triggers", problems)):
        entry = entry if isinstance(entry, dict) else {}
        name = str(entry.get("name", ""))
        where = f"triggers[{index}] {name!r}"
        database, plugin, spec = (str(entry.get(key, "")) for key in ("database", "plugin", "spec"))
        if not _TRIGGER_NAME.match(name):
            problems.append(f"{where}: trigger names are letters, digits, _ and -")
        if any(t.name == name and t.database == database for t in triggers):
            problems.append(f"{where}: listed twice in database {database!r}")
        if database not in known_dbs:
            problems.append(f"{where}: database {database!r} is not listed under databases")
        plugin_path = plugin_dir / plugin
        if plugin.startswith(COMMUNITY_PREFIX):
            # Checked for form only: the server downloads it (a single .py file: the code runs as one module).
            path = plugin.removeprefix(COMMUNITY_PREFIX)
            if not _COMMUNITY_PATH.match(path) or ".." in path.split("/"):
                problems.append(f"{where}: plugin {plugin!r} must be gh:<path to a .py file in the plugin "
                                "repository>, e.g. gh:influxdata/system_metrics/system_metrics.py")
        elif not plugin or plugin.startswith("/") or ".." in Path(plugin).parts:
            problems.append(f"{where}: plugin must be a path relative to the plugin directory")
        elif not ((plugin_path.is_file() and plugin_path.suffix == ".py")
                  or (plugin_path / "__init__.py").is_file()):
            # The engine runs a single .py file, or a multi-file plugin: a directory with __init__.py.
            problems.append(f"{where}: plugin {plugin!r} is neither a .py file nor a directory with __init__.py "
                            f"in {plugin_dir}")
        needs = _trigger_packages(entry.get("packages"), where, problems)
        spec_problem = _spec_problem(spec)
        if spec_problem:
            problems.append(f"{where}: {spec_problem}")
        elif spec.startswith("table:") and (database, spec[6:]) not in known_tables:
            # A WAL trigger created before its table exists never fires: the table must be provisioned first.
            problems.append(f"{where}: table {spec[6:]!r} must be listed under tables (database {database!r}) "
                            "so it exists before its trigger")
        arguments = entry.get("arguments") or {}
        if not isinstance(arguments, dict):
            problems.append(f"{where}: arguments must be a mapping")
            arguments = {}
        behavior = str(entry.get("error_behavior", "log"))
        if behavior not in ERROR_BEHAVIORS:
            problems.append(f"{where}: error_behavior {behavior!r} is not one of {', '.join(ERROR_BEHAVIORS)}")
        triggers.append(Trigger(
            name=name, database=database, plugin=plugin, spec=spec,
            arguments={str(k): _argument_text(v) for k, v in arguments.items()},
            run_async=bool(entry.get("run_async", False)), error_behavior=behavior,
            disabled=bool(entry.get("disabled", False)), packages=needs))
    rollups, copies = _rollup_tables(triggers, tables, databases, problems)
    listed = {(table.database, table.name) for table in tables}
    tables += rollups + [table for table in copies if (table.database, table.name) not in listed]
    packages = _merge_packages(packages, triggers, problems)
    bootstrap = _bootstraps(raw, triggers, known_tables, problems)
    check = _packages_check(raw, triggers, packages, problems)
    if problems:
        raise SpecError(path, problems)
    return Provision(tuple(databases), tuple(tables), packages, tuple(triggers), path, bootstrap, check,
                     tuple(rollups), tuple(copies))


def _rollup_tables(triggers: list[Trigger], tables: list[Table], databases: list[Database],
                   problems: list[str]) -> tuple[list[Table], list[Table]]:
    """`<table>_<level>` for every table and level a scheduled rollups trigger names, with the columns the plugin
    writes (plugins/history/rollups/queries.py `points`: per numeric field an int64 count and float64 sum, min,
    max, last and mean), so that a new stack's range-aware panels find every tier before the first run. A trigger
    with `copy_to` gets them in that database too, with the raw table (which stays empty there): a panel's query,
    raw tier included, then runs on either database. Returns (rollup tables, those raw copies)."""
    declared = {(t.database, t.name): t for t in tables}
    kept = {db.name: db.retention for db in databases}
    derived: dict[tuple[str, str], Table] = {}
    copies: dict[tuple[str, str], Table] = {}
    for trigger in triggers:
        if trigger.plugin != ROLLUP_PLUGIN or trigger.spec == "all_tables" or trigger.spec.startswith("table:"):
            continue
        names = trigger.arguments.get("tables", "").replace(",", " ").split()
        levels = trigger.arguments.get("levels", ROLLUP_DEFAULT_LEVELS).replace(",", " ").split()
        for level in levels:
            if not _LEVEL.match(level):
                problems.append(f"trigger {trigger.name!r}: level {level!r} is not like 1h or 1d")
        copy_to = trigger.arguments.get("copy_to")
        if copy_to is not None and copy_to not in kept:
            problems.append(f"trigger {trigger.name!r}: copy_to {copy_to!r} is not listed under databases")
        elif copy_to is not None and kept[copy_to] is not None:
            problems.append(f"trigger {trigger.name!r}: copy_to {copy_to!r} has a retention ({kept[copy_to]}): the "
                            "copy is what outlives the retention of the trigger's database")
        homes = (trigger.database, *((copy_to,) if copy_to in kept else ()))
        for name in names:
            raw = declared.get((trigger.database, name))
            if raw is None:
                problems.append(f"trigger {trigger.name!r}: table {name!r} must be listed under tables (database "
                                f"{trigger.database!r}) so that its rollup tables can be created up front")
                continue
            tags = raw.tags
            if trigger.arguments.get("kind", "numeric") == "tracks":
                fields = TRACK_COLUMNS
                tags = tuple(trigger.arguments.get("by", "").replace(",", " ").split()) or raw.tags
                unknown = [tag for tag in tags if tag not in raw.tags]
                if unknown:
                    problems.append(f"trigger {trigger.name!r}: by names {', '.join(unknown)}, not a tag of {name}")
            else:
                fields = tuple((f"{field_name}_{what}", kind) for field_name, field_type in raw.fields
                               if field_type in ROLLUP_NUMERIC for what, kind in ROLLUP_AGGREGATES)
            for home in homes:
                if home != trigger.database:
                    copies[(home, name)] = declared.get((home, name)) or Table(home, name, raw.tags, raw.fields)
                for level in filter(_LEVEL.match, levels):
                    key = (home, f"{name}_{level}")
                    if key in declared:
                        problems.append(f"trigger {trigger.name!r}: {key[1]} is written by the rollups; do not list "
                                        "it under tables")
                    else:
                        derived[key] = Table(home, key[1], tags, fields)
    return list(derived.values()), list(copies.values())


def _trigger_packages(raw: object, where: str, problems: list[str]) -> tuple[str, ...]:
    """A trigger's own `packages:` (what a community plugin imports), pinned like packages_file."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        problems.append(f"{where}: packages must be a list of name==version pins")
        return ()
    bad = [item for item in raw if not _PINNED.match(item.strip())]
    if bad:
        problems.append(f"{where}: packages {', '.join(map(repr, bad))} are not pinned as name==version")
    return tuple(item.strip() for item in raw if item not in bad)


def _merge_packages(packages: tuple[str, ...], triggers: list[Trigger], problems: list[str]) -> tuple[str, ...]:
    """packages_file and every trigger's packages, each once; two pins of one package are a problem."""
    merged: dict[str, str] = {}
    for pin in [*packages, *(pin for trigger in triggers for pin in trigger.packages)]:
        name = re.split(r"[\[=]", pin, maxsplit=1)[0].lower().replace("_", "-")
        if name in merged and merged[name] != pin:
            problems.append(f"package {name} is pinned twice: {merged[name]} and {pin}")
            continue
        merged.setdefault(name, pin)
    return tuple(merged.values())


def _packages_check(raw: dict, triggers: list[Trigger], packages: tuple[str, ...],
                    problems: list[str]) -> Trigger | None:
    """`packages_check: <trigger name>`: an enabled request trigger of the file, created right after the install."""
    name = raw.get("packages_check")
    if name is None:
        return None
    found = [t for t in triggers if t.name == str(name)]
    if len(found) != 1 or not found[0].spec.startswith("request:") or found[0].disabled:
        problems.append(f"packages_check {name!r}: must name one enabled request trigger listed under triggers")
        return None
    if not packages:
        problems.append("packages_check is set but no packages_file lists packages to check")
    return found[0]


def _bootstraps(raw: dict, triggers: list[Trigger], known_tables: set[tuple[str, str]],
                problems: list[str]) -> tuple[Bootstrap, ...]:
    endpoints = {(t.database, t.spec[8:]) for t in triggers if t.spec.startswith("request:") and not t.disabled}
    found = []
    for index, entry in enumerate(_as_list(raw, "bootstrap", problems)):
        entry = entry if isinstance(entry, dict) else {}
        request, database = str(entry.get("request", "")), str(entry.get("database", ""))
        where = f"bootstrap[{index}] {request!r}"
        if (database, request) not in endpoints:
            problems.append(f"{where}: no enabled request trigger 'request:{request}' in database {database!r}")
        table = entry.get("unless_rows_in")
        if table is not None and (database, str(table)) not in known_tables:
            problems.append(f"{where}: unless_rows_in {table!r} must be a table listed under tables in {database!r}")
        found.append(Bootstrap(request, database, None if table is None else str(table)))
    return tuple(found)


def _argument_text(value: object) -> str:
    """Trigger arguments reach plugins as strings; spell booleans the way Python plugins parse them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def plugin_url(plugin: str, repo: str | None) -> str:
    """The URL the server fetches a `gh:` plugin from, joined as lib.rs `read_plugin_code` joins it."""
    base = repo or DEFAULT_PLUGIN_REPO
    path = plugin.removeprefix(COMMUNITY_PREFIX)
    return f"{base}{path}" if base.endswith("/") else f"{base}/{path}"
