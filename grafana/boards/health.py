"""Stack health: ingest write rates, rejects and spools, backup age and size, and both sinks side by side.

The service metrics are read with Flux from InfluxDB 2's `monitoring` bucket. Both services write the same
points to InfluxDB 2 and 3, and every ingest point carries its `sink` tag, so one database shows both sinks;
InfluxDB 2 is the one that stays readable when InfluxDB 3 (which also runs the plugins) is the one in trouble.
The last row counts the telemetry points in each database over the same range, with each database's own
language, so a sink that falls behind shows up as a shorter bar.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.models import common, dashboard, units

from backup import metrics as backup_metrics
from grafana import history
from grafana.alerting.settings import DEFAULTS, Settings
from grafana.datasources import FLUX, SQL_TELEMETRY, stored
from grafana.names import backup_field, backup_tag, field, tag
from grafana.panels import (
    TIME_FILTER,
    bar_gauge,
    board,
    finish,
    override,
    stat_panel,
    store_variable,
    table_panel,
    time_series,
)
from grafana.panels import variable as query_variable
from grafana.queries import TABLE, FluxQuery, SqlQuery
from grafana.units import grafana_unit
from ingest.schema import INGEST_RUNS, MEASUREMENTS, TELEMETRY

UID = "stack-health"
# The telemetry counts read raw rows and rollups: from telemetry, or `history` for ranges beyond it.
TELEMETRY_STORE = stored(SQL_TELEMETRY)
RANGE = "|> range(start: v.timeRangeStart, stop: v.timeRangeStop)"
SOURCE, SINK = tag(INGEST_RUNS, "source"), tag(INGEST_RUNS, "sink")
STORE = backup_tag("store")
DAY = 86_400
MEBIBYTE = 1_048_576


def ingest(field_name: str) -> str:
    """The ingest service's points of one field for the selected sources."""
    item = field(INGEST_RUNS, field_name)
    return (f'from(bucket: "{INGEST_RUNS.database}")\n  {RANGE}\n'
            f'  |> filter(fn: (r) => r._measurement == "{INGEST_RUNS.name}" and r._field == "{item.name}")\n'
            f"  |> filter(fn: (r) => r.{SOURCE} =~ /^${{source:regex}}$/)")


def backups(field_name: str, store: str | None = None) -> str:
    """The backup service's points of one field, of one store (`all` is the run as a whole) or of each store."""
    where = f' and r.{STORE} == "{store}"' if store else f' and r.{STORE} != "{backup_metrics.STORE_ALL}"'
    return (f'from(bucket: "{backup_metrics.TARGET}")\n  {RANGE}\n'
            f'  |> filter(fn: (r) => r._measurement == "{backup_metrics.MEASUREMENT}" and '
            f'r._field == "{backup_field(field_name)}"{where})')


def age_seconds() -> str:
    """Seconds between now and the newest point of the input (a one-row table)."""
    return ('  |> group()\n  |> last()\n'
            '  |> map(fn: (r) => ({_time: r._time, _value: float(v: int(v: now()) - int(v: r._time)) / 1000000000.0}))')


def per_source_once(field_name: str) -> str:
    """A per-source count that each run writes once per sink (read and rejected rows), counted once per run."""
    return (f"{ingest(field_name)}\n  |> group(columns: [\"{SOURCE}\"])\n  |> sort(columns: [\"_time\"])\n"
            '  |> unique(column: "_time")')


def flux(text: str, ref_id: str = "A") -> FluxQuery:
    return FluxQuery(FLUX, text, ref_id=ref_id)


def rows_in_influxdb2() -> str:
    pairs = " or ".join(f'(r._measurement == "{item.name}" and r._field == "{item.fields[0].name}")'
                        for item in MEASUREMENTS if item.database == TELEMETRY)
    return (f'from(bucket: "{TELEMETRY}")\n  {RANGE}\n  |> filter(fn: (r) => {pairs})\n'
            '  |> group(columns: ["_measurement"])\n  |> count()')


def rows_in_influxdb3() -> str:
    """Points per telemetry measurement in the range; a measurement with rollups or track summaries counts through
    its tiers (the sum of the rollups' counts and the newest raw rows), so a wide range opens a few hundred files,
    not years."""
    parts = []
    for item in MEASUREMENTS:
        if item.database != TELEMETRY:
            continue
        first = item.fields[0].name
        if item.name in history.rolled_up():
            parts.append(f"SELECT '{item.name}' AS measurement, {history.count(first)} AS points "
                         f"FROM {history.source(item.name, (), (first,))}")
        elif item.name in history.rolled_up("tracks"):  # fixes with a position (the first fields: lat, lon)
            parts.append(f"SELECT '{item.name}' AS measurement, sum(good) + sum(placed) AS points "
                         f"FROM {history.track_source(item.name, ())}")
        else:
            parts.append(f"SELECT '{item.name}' AS measurement, count({first}) AS points FROM {item.name} "
                         f"WHERE {TIME_FILTER}")
    return "\nUNION ALL\n".join(parts) + "\nORDER BY measurement"


def build(settings: Settings = DEFAULTS) -> dashboard.Dashboard:
    spooled = ((None, "green"), (1, "orange"), (100 * MEBIBYTE, "red"))
    ok_failed = [dashboard.ValueMap(options={
        "true": dashboard.ValueMappingResult(text="OK", color="green", index=0),
        "false": dashboard.ValueMappingResult(text="FAILED", color="red", index=1)})]
    bytes_unit, seconds = grafana_unit(backup_metrics.FIELDS["bytes"][1]), grafana_unit("s")
    # Red where the alert rules fire (ALERT_INGEST_SILENT_AFTER, ALERT_BACKUP_MAX_AGE).
    silent, backup_limit = int(settings.ingest_silent_after), int(settings.backup_max_age)
    built = (board(UID, "Stack health",
                   "What the ingest and backup services report about themselves (InfluxDB 2, bucket monitoring, "
                   "Flux), and the telemetry each database holds. Metrics are written once a minute by ingest "
                   "and after every backup run.", time=("now-24h", "now"), refresh="1m", tags=["health"])
             .with_variable(store_variable(SQL_TELEMETRY))
             .with_variable(query_variable(
                 "source", "Ingest source", FLUX,
                 f'import "influxdata/influxdb/schema"\n\nschema.tagValues(bucket: "{INGEST_RUNS.database}", '
                 f'tag: "{SOURCE}", predicate: (r) => r._measurement == "{INGEST_RUNS.name}", '
                 "start: v.timeRangeStart, stop: v.timeRangeStop)"))
             .with_row(dashboard_builders.Row("Ingest"))
             .with_panel(stat_panel("Last ingest report", "Seconds since the ingest service last wrote its metrics "
                                    "(once a minute while it runs).", seconds, FLUX,
                                    [flux(ingest("rows_written") + "\n" + age_seconds())],
                                    steps=((None, "green"), (min(180, silent - 1), "orange"), (silent, "red")),
                                    width=4))
             .with_panel(stat_panel("Rows rejected", "Input rows quarantined to the rejects file (bad input) in "
                                    "the range.", units.Short, FLUX,
                                    [flux(per_source_once("rows_rejected") + "\n  |> group()\n  |> sum()")],
                                    steps=((None, "green"), (1, "orange")), width=4))
             .with_panel(stat_panel("Rows refused", "Rows a database refused (4xx) in the range, per sink; they wait "
                                    "in the rejects folder.", units.Short, FLUX,
                                    [flux(ingest("rows_refused") + f'\n  |> group(columns: ["{SINK}"])\n  |> sum()')],
                                    steps=((None, "green"), (1, "red")), width=4))
             .with_panel(stat_panel("Spooled now", "Bytes waiting in each sink's spool after the latest run: more "
                                    "than zero means that database could not take the writes.", bytes_unit, FLUX,
                                    [flux(ingest("spool_bytes") + f'\n  |> group(columns: ["{SINK}"])\n'
                                          '  |> sort(columns: ["_time"])\n  |> last()')], steps=spooled, width=4))
             .with_panel(stat_panel("Batches in spool", "Write batches waiting in each sink's spool.", units.Short,
                                    FLUX, [flux(ingest("spool_files") + f'\n  |> group(columns: ["{SINK}"])\n'
                                                '  |> sort(columns: ["_time"])\n  |> last()')],
                                    steps=((None, "green"), (1, "orange")), width=4))
             .with_panel(stat_panel("Retries", "Write attempts retried in the range, per sink.", units.Short, FLUX,
                                    [flux(ingest("retries") + f'\n  |> group(columns: ["{SINK}"])\n  |> sum()')],
                                    steps=((None, "green"), (1, "orange")), width=4))
             .with_panel(time_series("Write rate", "Rows written per second of each run, per source and sink.",
                                     grafana_unit(field(INGEST_RUNS, "write_rate").unit), FLUX,
                                     [flux(ingest("write_rate") + f'\n  |> group(columns: ["{SOURCE}", "{SINK}"])\n'
                                           "  |> aggregateWindow(every: v.windowPeriod, fn: mean, "
                                           "createEmpty: false)")]))
             .with_panel(time_series("Rows written", "Rows each database acknowledged, per sink.", units.Short, FLUX,
                                     [flux(ingest("rows_written") + f'\n  |> group(columns: ["{SINK}"])\n'
                                           "  |> aggregateWindow(every: v.windowPeriod, fn: sum, createEmpty: false)")],
                                     bars=True))
             .with_panel(time_series("Rejected and refused rows", "Bad input rows per source, and rows a database "
                                     "refused per sink.", units.Short, FLUX, [
                                         flux(per_source_once("rows_rejected")
                                              + "\n  |> aggregateWindow(every: v.windowPeriod, fn: sum, "
                                                "createEmpty: false)", "A"),
                                         flux(ingest("rows_refused") + f'\n  |> group(columns: ["{SINK}"])\n'
                                              "  |> aggregateWindow(every: v.windowPeriod, fn: sum, "
                                              "createEmpty: false)", "B")], bars=True))
             .with_panel(time_series("Spool size", "Bytes waiting in each sink's spool after every run.", bytes_unit,
                                     FLUX, [flux(ingest("spool_bytes") + f'\n  |> group(columns: ["{SINK}"])\n'
                                                 "  |> aggregateWindow(every: v.windowPeriod, fn: max, "
                                                 "createEmpty: false)")], steps=spooled))
             .with_row(dashboard_builders.Row("Backups"))
             .with_panel(stat_panel("Last successful backup", "Time since the newest run in which every store was "
                                    "backed up and the set verified. The schedule is daily by default; red "
                                    "where the backup alert fires.", seconds,
                                    FLUX, [flux(backups("success", backup_metrics.STORE_ALL)
                                                + "\n  |> filter(fn: (r) => r._value == true)\n" + age_seconds())],
                                    steps=((None, "green"), (min(DAY, backup_limit - 1), "orange"),
                                           (backup_limit, "red")), width=6))
             .with_panel(stat_panel("Last backup", "Outcome of the newest backup run.", units.Bool, FLUX,
                                    [flux(backups("success", backup_metrics.STORE_ALL)
                                          + "\n  |> group()\n  |> last()")],
                                    mappings=ok_failed, width=6, color_mode=common.BigValueColorMode.BACKGROUND))
             .with_panel(stat_panel("Last backup size", "Bytes the newest run added (compressed, encrypted).",
                                    bytes_unit, FLUX, [flux(backups("bytes", backup_metrics.STORE_ALL)
                                                            + "\n  |> group()\n  |> last()")], width=6))
             .with_panel(stat_panel("Last backup duration", "Wall-clock time of the newest run.", seconds, FLUX,
                                    [flux(backups("duration_seconds", backup_metrics.STORE_ALL)
                                          + "\n  |> group()\n  |> last()")], width=6))
             .with_panel(time_series("Backup size per store", "Bytes each store added to each set.", bytes_unit, FLUX,
                                     [flux(backups("bytes") + f'\n  |> group(columns: ["{STORE}"])')], bars=True))
             .with_panel(time_series("Backup duration per store", "How long each store took.", seconds, FLUX,
                                     [flux(backups("duration_seconds") + f'\n  |> group(columns: ["{STORE}"])')],
                                     bars=True))
             .with_panel(table_panel(
                 "Recent backup runs", "Every store of the 50 newest runs; store=all is the run as a whole.",
                 units.NoUnit, FLUX, [flux(
                     f'from(bucket: "{backup_metrics.TARGET}")\n  {RANGE}\n'
                     f'  |> filter(fn: (r) => r._measurement == "{backup_metrics.MEASUREMENT}")\n'
                     '  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")\n'
                     '  |> drop(columns: ["_start", "_stop", "_measurement"])\n  |> group()\n'
                     '  |> sort(columns: ["_time"], desc: true)\n  |> limit(n: 200)')],
                 overrides=[override(backup_field("bytes"), unit=bytes_unit),
                            override(backup_field("duration_seconds"), unit=seconds)]))
             .with_row(dashboard_builders.Row("Both sinks"))
             .with_panel(bar_gauge("Telemetry points in InfluxDB 2 (Flux)", "Points per measurement in the range, "
                                   "counting each measurement's first declared field.", units.Short, FLUX,
                                   [flux(rows_in_influxdb2())], rows=False,
                                   display_name="${__field.labels._measurement}"))
             .with_panel(bar_gauge("Telemetry points in InfluxDB 3 (SQL)", "The same count in InfluxDB 3.",
                                   units.Short, TELEMETRY_STORE,
                                   [SqlQuery(TELEMETRY_STORE, rows_in_influxdb3(), fmt=TABLE)], rows=True)))
    return finish(built.build())
