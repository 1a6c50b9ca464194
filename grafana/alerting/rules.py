"""The alert rules: what fires, on which data, with which labels, and which dashboard panel shows it.

Every rule is the same three steps, as Grafana's rule editor builds them: A, the query (table format, so each row
is one alert instance); B, `reduce(last)` of A (a no-op on rows that are already single numbers, pkg/expr
ReduceCommand, and a series' last point for Flux); C, a threshold on B, the rule's condition. A SQL answer is one
row per instance with exactly one numeric column and string columns that become the instance's labels (no time
column): Grafana's FlightSQL reader hands table-format answers over as they are (pkg/tsdb/influxdb/fsql/arrow.go)
and the expression engine turns such a frame into one number per row labelled by its string columns
(pkg/expr/converter.go, isNumberTable / extractNumberSet). Zero rows is "no data".

Which database each rule reads, and why:
- ingest, backups: InfluxDB 3's `monitoring` database in SQL, where both services also write their points (they
  write every point to both databases, with a `sink` tag). SQL runs in the tests on the real writers' points; and
  when InfluxDB 3 is the database that is down, these rules go to Error while the reachability rules below fire.
- databases: one probe per database through its own datasource, each firing on error or no data, so an
  unreachable InfluxDB 3 is reported through InfluxDB 3's datasource failing and never depends on InfluxDB 3
  answering; InfluxDB 2 is probed with Flux, its only language here.
- sensors (`telemetry`) and forecast (`forecast`): the databases the dashboards read them from.

Names come from the writers' declarations (grafana/names.py), panel ids from the generated dashboards: renaming a
field, a table or a panel fails `make dashboards` here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

from grafana_foundation_sdk.builders import alerting as alerting_builders
from grafana_foundation_sdk.builders import expr as expr_builders
from grafana_foundation_sdk.models import alerting, dashboard

from backup import metrics as backup_metrics
from grafana.alerting.settings import Settings, duration_text
from grafana.boards import forecast as forecast_board
from grafana.boards import health as health_board
from grafana.boards import sensors as sensors_board
from grafana.datasources import FLUX, SQL_FORECAST, SQL_MONITORING, SQL_TELEMETRY, Datasource
from grafana.names import backup_field, backup_tag, column, field, tag
from grafana.queries import TABLE, FluxQuery, SqlQuery
from ingest.schema import INGEST_RUNS, SENSORS
from plugins.stacklib.tables import EVALUATION, FORECAST_DATABASE
from plugins.stacklib.windows import over

__all__ = ["CRITICAL", "EXPRESSION_UID", "FOLDER", "GROUPS", "WARNING", "Rule", "rules", "sdk_rule"]

# The alert rules' folder. Not the dashboards' `influx-stack`: alerting is provisioned before the dashboards
# (pkg/services/provisioning/provisioning.go, RunInitProvisioners) and would create that folder under a random uid,
# which the dashboard provider (folderUid influx-stack) could then not create.
FOLDER = "influx-stack alerts"
CRITICAL, WARNING = "critical", "warning"
# Server-side expressions' datasource (pkg/expr: IsDataSource accepts "__expr__").
EXPRESSION_UID = "__expr__"
EXPRESSION = dashboard.DataSourceRef(type_val=EXPRESSION_UID, uid=EXPRESSION_UID)
QUERY, REDUCED, CONDITION = "A", "B", "C"
# The writers' `time` column, and Grafana's macros for the rule's query range (fsql macros).
NOW, FROM = "$__timeTo()", "$__timeFrom()"
IN_RANGE = "$__timeFilter(time)"
# A device quiet for longer than this drops out of the silent-device rule (its last reading leaves the range).
DEVICE_LOOKBACK = 86_400
PROBE_RANGE = 600

# Group name -> evaluation interval as a multiple of ALERT_EVALUATION_INTERVAL: backups and forecasts change
# daily, so they are looked at less often.
GROUPS: dict[str, int] = {"databases": 1, "ingest": 1, "sensors": 1, "backups": 5, "forecast": 5}


@dataclass(frozen=True)
class Rule:
    """One rule and everything needed to build it, test it and link it to its panel."""

    uid: str
    title: str
    group: str
    service: str
    severity: str
    datasource: Datasource
    query: str
    range_seconds: int
    threshold: str  # Grafana's threshold type: gt, lt, outside_range
    params: tuple[float, ...]
    no_data: str  # noDataState: what zero rows means
    exec_err: str  # execErrState: what a failed query means
    summary: str
    description: str
    board: ModuleType
    panel: str


def _label(name: str) -> str:
    """A string column that labels each instance. Never null: extractNumberSet (pkg/expr/converter.go) asserts
    every label value is a string, and a tag a line left out is null in InfluxDB 3."""
    return f"coalesce({name}, '') AS {name}"


def _seconds_since(expression: str) -> str:
    return f"date_part('epoch', {NOW}) - date_part('epoch', {expression})"


def _age(table: str, where: str, name: str) -> str:
    """Seconds from the newest matching row to the end of the range; the whole range when there is none (so the
    answer always has one row and "nothing at all" fires like "nothing lately")."""
    return (f"SELECT coalesce(\n    {_seconds_since('max(time)')},\n    {_seconds_since(FROM)}) AS {name}\n"
            f"FROM {table}\nWHERE {where}{IN_RANGE}")


def _per_device(value: str, name: str, where: str = "") -> str:
    """One row per device (labelled by device and location) over the rule's range."""
    device, location = tag(SENSORS, "device"), tag(SENSORS, "location")
    return (f"SELECT {_label(device)}, {_label(location)}, {value} AS {name}\nFROM {SENSORS.name}\n"
            f"WHERE {IN_RANGE}{where}\nGROUP BY {device}, {location}\nORDER BY {device}")


def _mean_per_device(name: str) -> str:
    item = field(SENSORS, name).name
    return _per_device(f"avg({item})", item, f" AND {item} IS NOT NULL")


def _same_database(*pairs: tuple[str, str]) -> None:
    """Each (what the writer declares, what the datasource reads) must agree, or the rule reads the wrong place."""
    for declared, read in pairs:
        if declared != read:
            raise ValueError(f"a writer declares database {declared!r}, but the rule's datasource reads {read!r}")


def rules(settings: Settings) -> list[Rule]:
    """Every rule, in the order the groups and the README list them."""
    _same_database((INGEST_RUNS.database, str(SQL_MONITORING.database)),
                   (backup_metrics.TARGET, str(SQL_MONITORING.database)),
                   (SENSORS.database, str(SQL_TELEMETRY.database)),
                   (FORECAST_DATABASE, str(SQL_FORECAST.database)))
    silent = int(settings.ingest_silent_after)
    rows_written, sink = field(INGEST_RUNS, "rows_written").name, tag(INGEST_RUNS, "sink")
    store, success, error = backup_tag("store"), backup_field("success"), backup_field("error")
    all_stores = f"{store} = '{backup_metrics.STORE_ALL}' AND "
    series, mape = column(EVALUATION, "series"), column(EVALUATION, "mape")
    return [
        # ---- ingest -----------------------------------------------------------------------------------------
        Rule("influx-stack-ingest-not-reporting", "Ingest is not reporting", "ingest", "ingest", CRITICAL,
             SQL_MONITORING, _age(INGEST_RUNS.name, "", "seconds_since_report"), max(2 * silent, 3600),
             "gt", (silent,), "Alerting", "Error",
             "The ingest service has written no run metrics for {{ humanizeDuration $values.B.Value }}.",
             f"It writes them every INGEST_METRICS_INTERVAL while it runs; nothing for "
             f"{duration_text(silent)} means it is stopped or stuck. Check `docker compose ps ingest` and "
             "`docker compose logs ingest`.", health_board, "Last ingest report"),
        Rule("influx-stack-ingest-no-writes", "Ingest writes nothing", "ingest", "ingest", CRITICAL,
             SQL_MONITORING, f"SELECT {_label(sink)}, sum({rows_written}) AS {rows_written}\nFROM {INGEST_RUNS.name}\n"
                             f"WHERE {IN_RANGE}\nGROUP BY {sink}\nORDER BY {sink}", silent,
             "lt", (1,), "OK", "Error",
             "Ingest is running but wrote no rows to {{ $labels.sink }} in the last " + duration_text(silent) + ".",
             "Its run metrics arrive, so the service is up: the database behind this sink refuses or cannot take "
             "the writes (they wait in its spool), or every source is failing. See the spool and refused rows on "
             "the Stack health dashboard and `docker compose logs ingest`. (No metrics at all is the "
             "'Ingest is not reporting' alert.)", health_board, "Rows written"),
        # ---- backups ----------------------------------------------------------------------------------------
        Rule("influx-stack-backup-failed", "Backup failed", "backups", "backup", WARNING, SQL_MONITORING,
             f"SELECT CASE WHEN {success} THEN 0 ELSE 1 END AS failed, {_label(error)}\n"
             f"FROM {backup_metrics.MEASUREMENT}\n"
             f"WHERE {all_stores}{IN_RANGE}\nORDER BY time DESC\nLIMIT 1", int(settings.backup_max_age),
             "gt", (0,), "OK", "Error",
             "The last backup run failed: {{ $labels.error }}",
             "The newest backup run did not back up and verify every store. `docker compose exec backup backup "
             "list` shows the sets, `docker compose logs backup` why; `make backup` runs one now.",
             health_board, "Last backup"),
        Rule("influx-stack-backup-stale", "No recent verified backup", "backups", "backup", CRITICAL,
             SQL_MONITORING, _age(backup_metrics.MEASUREMENT, f"{all_stores}{success} = true AND ",
                                  "seconds_since_success"), 2 * int(settings.backup_max_age),
             "gt", (settings.backup_max_age,), "Alerting", "Error",
             "The newest verified backup is {{ humanizeDuration $values.B.Value }} old.",
             f"No backup run has backed up and verified every store for more than "
             f"{duration_text(int(settings.backup_max_age))} (BACKUP_SCHEDULE runs daily by default). With "
             "BACKUP_METRICS=false no run reports here and this alert stays on.", health_board,
             "Last successful backup"),
        # ---- databases --------------------------------------------------------------------------------------
        Rule("influx-stack-influxdb3-unreachable", "InfluxDB 3 is unreachable", "databases", "influxdb3", CRITICAL,
             SQL_MONITORING, "SELECT count(*) AS tables\nFROM information_schema.tables", PROBE_RANGE,
             "lt", (1,), "Alerting", "Alerting",
             "Grafana cannot query InfluxDB 3 (database monitoring).",
             "The query through the influxdb3-sql-monitoring datasource failed or answered nothing: the server is "
             "down, restarting or refuses the token. Dashboards and the other InfluxDB 3 alerts show errors "
             "until it answers. `docker compose ps influxdb3`, `docker compose logs influxdb3`.", health_board,
             "Telemetry points in InfluxDB 3 (SQL)"),
        Rule("influx-stack-influxdb2-unreachable", "InfluxDB 2 is unreachable", "databases", "influxdb2", CRITICAL,
             FLUX, f'buckets()\n  |> filter(fn: (r) => r.name == "{backup_metrics.TARGET}")\n'
                   f'  |> map(fn: (r) => ({{_time: now(), _measurement: "{backup_metrics.TARGET}", '
                   '_field: "reachable", _value: 1}))', PROBE_RANGE,
             "lt", (1,), "Alerting", "Alerting",
             "Grafana cannot query InfluxDB 2 (bucket " + backup_metrics.TARGET + ").",
             "The Flux query through the influxdb2-flux datasource failed or found no monitoring bucket: the "
             "server is down or refuses the token. `docker compose ps influxdb2`, `docker compose logs "
             "influxdb2`.", health_board, "Telemetry points in InfluxDB 2 (Flux)"),
        # ---- sensors ----------------------------------------------------------------------------------------
        _sensor_range(settings, "co2", "CO2 too high", "gt", (settings.co2_max,), "ppm", "CO2"),
        _sensor_range(settings, "temperature", "Temperature out of range", "outside_range",
                      (settings.temperature_min, settings.temperature_max), "°C", "Temperature"),
        _sensor_range(settings, "humidity", "Humidity out of range", "outside_range",
                      (settings.humidity_min, settings.humidity_max), "%", "Humidity"),
        _sensor_range(settings, "battery", "Battery low", "lt", (settings.battery_min,), "%", "Low battery"),
        Rule("influx-stack-sensor-silent", "Sensor device silent", "sensors", "sensors", WARNING, SQL_TELEMETRY,
             _per_device(_seconds_since("max(time)"), "seconds_since_reading"), DEVICE_LOOKBACK,
             "gt", (settings.device_silent_after,), "OK", "Error",
             "{{ $labels.device }} ({{ $labels.location }}) has sent nothing for "
             "{{ humanizeDuration $values.B.Value }}.",
             f"No reading for more than {duration_text(int(settings.device_silent_after))}: the device is off, out "
             f"of range or out of battery. A device silent for over {duration_text(DEVICE_LOOKBACK)} drops out of "
             "this rule.", sensors_board, "Data freshness"),
        # ---- forecast ---------------------------------------------------------------------------------------
        Rule("influx-stack-forecast-inaccurate", "Forecast error high", "forecast", "forecast", WARNING,
             SQL_FORECAST, f"SELECT {_label(series)}, {mape}\nFROM (SELECT {series}, {mape}, row_number() "
                           f"{over(series, order='time DESC')} AS newest\n      FROM {EVALUATION.name}\n"
                           f"      WHERE {IN_RANGE}) AS runs\nWHERE newest = 1\nORDER BY {series}",
             int(settings.forecast_max_age), "gt", (settings.forecast_mape_max,), "OK", "Error",
             "The latest forecast of {{ $labels.series }} missed its held-out days by "
             "{{ printf \"%.1f\" $values.B.Value }} % (MAPE).",
             f"Above {settings.forecast_mape_max:g} %: the series changed its behaviour or has gaps. The Forecast "
             "dashboard shows the run against the actual values.", forecast_board, "MAPE"),
        Rule("influx-stack-forecast-stale", "No recent forecast", "forecast", "forecast", WARNING, SQL_FORECAST,
             _age(EVALUATION.name, "", "seconds_since_run"), 2 * int(settings.forecast_max_age),
             "gt", (settings.forecast_max_age,), "Alerting", "Error",
             "No forecast has run for {{ humanizeDuration $values.B.Value }}.",
             f"The daily forecast trigger has not written an evaluation for more than "
             f"{duration_text(int(settings.forecast_max_age))}: the trigger is disabled, the series was never "
             "loaded, or the plugin fails (`docker compose logs influxdb3`).", forecast_board, "Runs"),
    ]


def _sensor_range(settings: Settings, name: str, title: str, threshold: str, params: tuple[float, ...], unit: str,
                  panel: str) -> Rule:
    window = int(settings.sensor_window)
    limits = " to ".join(f"{value:g}" for value in params)
    return Rule(f"influx-stack-sensor-{name}", title, "sensors", "sensors", WARNING, SQL_TELEMETRY,
                _mean_per_device(name), window, threshold, params, "OK", "Error",
                "{{ $labels.device }} ({{ $labels.location }}): " + field(SENSORS, name).name + " "
                "{{ printf \"%.1f\" $values.B.Value }} " + unit + " on average over the last "
                + duration_text(window) + ".",
                f"The mean of the last {duration_text(window)} is outside {limits} {unit} (ALERT_* in .env).",
                sensors_board, panel)


def sdk_rule(rule: Rule, settings: Settings, panel_id: Callable[[ModuleType, str], int]) -> alerting_builders.Rule:
    """The rule as grafana-foundation-sdk's alerting builders make it (the HTTP API's model). The panel link is
    carried as Grafana's `__dashboardUid__`/`__panelId__` annotations, as the API carries them; grafana/alerting/
    files.py moves them to the file format's `dashboardUid`/`panelId`."""
    if rule.datasource.language == FLUX.language:
        model = FluxQuery(rule.datasource, rule.query, ref_id=QUERY)
    else:
        model = SqlQuery(rule.datasource, rule.query, ref_id=QUERY, fmt=TABLE)
    query = (alerting_builders.Query(QUERY).datasource_uid(rule.datasource.uid).model(model)
             .relative_time_range(alerting.RelativeTimeRange(from_val=rule.range_seconds, to=0)))
    reduce = (alerting_builders.Query(REDUCED).datasource_uid(EXPRESSION_UID)
              .relative_time_range(alerting.RelativeTimeRange(from_val=0, to=0))
              .model(expr_builders.TypeReduce().ref_id(REDUCED).datasource(EXPRESSION).expression(QUERY)
                     .reducer("last")))
    condition = (alerting_builders.Query(CONDITION).datasource_uid(EXPRESSION_UID)
                 .relative_time_range(alerting.RelativeTimeRange(from_val=0, to=0))
                 .model(expr_builders.TypeThreshold().ref_id(CONDITION).datasource(EXPRESSION).expression(REDUCED)
                        .conditions([expr_builders.ExprTypeThresholdConditions().evaluator(
                            expr_builders.ExprTypeThresholdConditionsEvaluator().type(rule.threshold)
                            .params(list(rule.params)))])))
    built = (alerting_builders.Rule(rule.title).uid(rule.uid).condition(CONDITION)
             .queries([query, reduce, condition]).for_val(duration_text(int(settings.pending_period)))
             .no_data_state(rule.no_data).exec_err_state(rule.exec_err).is_paused(False)
             .labels({"severity": rule.severity, "service": rule.service})
             .annotations({"summary": rule.summary, "description": rule.description,
                           "__dashboardUid__": rule.board.UID,
                           "__panelId__": str(panel_id(rule.board, rule.panel))})
             .rule_group(rule.group).org_id(1))
    return built
