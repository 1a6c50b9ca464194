"""Run dashboard SQL on Apache DataFusion the way Grafana receives it from InfluxDB 3 over Flight SQL.

Two catalogs:
- `run(database, sql)`: the local engine's table store (tests/engine, the plugins' harness) with its data. The
  harness's `Database.query` converts results for the plugin API (lists of dicts); Grafana gets Arrow, so this
  adapter registers the same tables (`Table.arrow()`) in a DataFusion session of the same configuration and
  returns Arrow, with dictionary (tag) columns hydrated to strings as InfluxDB 3's Flight service sends them.
- `declared(database)`: empty tables with exactly the columns and types the writers declare (ingest.schema,
  plugins/stacklib/tables.py, backup.metrics), so planning a query fails when it names anything else.
"""

from __future__ import annotations

from functools import cache

import pyarrow as pa
import yaml
from datafusion import SessionConfig, SessionContext

from backup import metrics as backup_metrics
from influxdb3_init.spec import Provision, Table, load_provision
from ingest.schema import HISTORY, MEASUREMENTS, MONITORING, TELEMETRY
from plugins.stacklib.tables import (
    EVALUATION,
    FORECAST,
    FORECAST_DATABASE,
    HOST_DATABASE,
    HOST_TABLES,
    SERIES,
    TableSpec,
    analytics_table,
)
from tests.engine import PLUGIN_DIR
from tests.engine.store import Database

__all__ = ["copied_tables", "declared", "declared_schemas", "grafana_reads", "grafana_type_problems", "hydrate",
           "provision", "rollup_tables", "run", "statistics_sources"]

TAG = pa.dictionary(pa.int32(), pa.utf8())
TIME = pa.timestamp("ns")
COLUMN_TYPES = {"float64": pa.float64(), "int64": pa.int64(), "uint64": pa.uint64(), "bool": pa.bool_(),
                "utf8": pa.utf8(), "float": pa.float64(), "int": pa.int64(), "string": pa.utf8()}
STATISTICS_PLUGIN = "statistics/table_stats"


def grafana_reads(kind: pa.DataType) -> bool:
    """Arrow types Grafana 12.4's FlightSQL reader converts (pkg/tsdb/influxdb/fsql/arrow.go, newField/copyData,
    read at grafana/grafana@4e4d9221, after #107812 of July 2025, which 12.4 (cut February 2026) contains):
    STRING and STRING_VIEW (11.6 dropped STRING_VIEW: #104957), not LARGE_STRING; FLOAT32/64, the INTs and UINTs,
    BOOL, DURATION, and TIMESTAMP in nanoseconds (copyData reads every timestamp as nanoseconds, whatever its unit).
    Any other type's column arrives empty ("datatype ... is unhandled" in Grafana's log, no error)."""
    return (pa.types.is_string(kind) or pa.types.is_string_view(kind) or pa.types.is_float32(kind)
            or pa.types.is_float64(kind)
            or pa.types.is_integer(kind) or pa.types.is_boolean(kind) or pa.types.is_duration(kind)
            or (pa.types.is_timestamp(kind) and kind.unit == "ns"))


def grafana_type_problems(table: pa.Table) -> list[str]:
    return [f"column {field.name!r} is {field.type}, which Grafana's FlightSQL reader drops"
            for field in table.schema if not grafana_reads(field.type)]


def _context() -> SessionContext:
    """Configured like the harness's Database (information_schema, catalog `public`, schema `iox`)."""
    config = (SessionConfig().with_information_schema(True).with_default_catalog_and_schema("public", "iox")
              .with_create_default_catalog_and_schema(True))
    return SessionContext(config)


def hydrate(table: pa.Table) -> pa.Table:
    columns, fields = [], []
    for field, column in zip(table.schema, table.columns, strict=True):
        if pa.types.is_dictionary(field.type):
            column = column.cast(field.type.value_type)
            field = pa.field(field.name, field.type.value_type, field.nullable)
        columns.append(column)
        fields.append(field)
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def run(database: Database, sql: str) -> pa.Table:
    """`sql` over the engine's tables as they are now; Arrow as Grafana gets it."""
    ctx = _context()
    for name, table in database.tables.items():
        arrow = table.arrow()
        ctx.register_record_batches(name, [arrow.to_batches() or [pa.RecordBatch.from_pylist([], schema=arrow.schema)]])
    return hydrate(ctx.sql(sql).to_arrow_table())


# ---- the declared catalog ------------------------------------------------------------------------------
def statistics_sources() -> list[str]:
    """The tables the provisioned statistics triggers watch (plugins/provision.yaml, `table:<name>` specs)."""
    provision = yaml.safe_load((PLUGIN_DIR / "provision.yaml").read_text())
    return [trigger["spec"].split(":", 1)[1] for trigger in provision["triggers"]
            if trigger["plugin"].rstrip("/").removesuffix(".py") == STATISTICS_PLUGIN
            and trigger["spec"].startswith("table:")]


def _schema(tags: tuple[str, ...], fields: dict[str, str]) -> pa.Schema:
    return pa.schema([("time", TIME), *((tag, TAG) for tag in tags),
                      *((name, COLUMN_TYPES[kind]) for name, kind in fields.items())])


def _declared_tables() -> dict[str, dict[str, pa.Schema]]:
    tables: dict[str, dict[str, pa.Schema]] = {TELEMETRY: {}, MONITORING: {}, FORECAST_DATABASE: {}, HISTORY: {}}
    for item in MEASUREMENTS:
        tables[item.database][item.name] = _schema(item.tags, item.field_types)
    tables[backup_metrics.TARGET][backup_metrics.MEASUREMENT] = _schema(
        tuple(backup_metrics.TAGS), {name: spec[0] for name, spec in backup_metrics.FIELDS.items()})
    specs: list[TableSpec] = [SERIES, FORECAST, EVALUATION, *(analytics_table(name) for name in statistics_sources())]
    for spec in specs:
        tables[FORECAST_DATABASE][spec.name] = _schema(spec.tags, spec.field_types)
    for spec in HOST_TABLES:  # the community system_metrics plugin's tables, as its README declares them
        tables.setdefault(HOST_DATABASE, {})[spec.name] = _schema(spec.tags, spec.field_types)
    for table in (*rollup_tables(), *copied_tables()):
        tables[table.database][table.name] = _schema(table.tags, dict(table.fields))
    return tables


@cache
def provision() -> Provision:
    """plugins/provision.yaml as influxdb3-init reads it."""
    return load_provision(PLUGIN_DIR / "provision.yaml", PLUGIN_DIR)


def rollup_tables() -> tuple[Table, ...]:
    """The rollup tables influxdb3-init creates from the rollup triggers of plugins/provision.yaml."""
    return provision().rollups


def copied_tables() -> tuple[Table, ...]:
    """The raw tables influxdb3-init creates, empty, where the rollup triggers copy their rows (`copy_to`)."""
    return provision().copies


@cache
def declared_schemas() -> dict[str, dict[str, pa.Schema]]:
    """database -> table -> the schema its writers declare."""
    return _declared_tables()


def declared(database: str) -> SessionContext:
    """A session whose tables are empty and have exactly the declared columns of `database`."""
    ctx = _context()
    for name, schema in declared_schemas()[database].items():
        ctx.register_record_batches(name, [[pa.RecordBatch.from_pylist([], schema=schema)]])
    return ctx
