"""Sensors per device: every field as a series with thresholds, latest values, device count, freshness."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.models import dashboard, units

from grafana import history
from grafana.alerting.settings import DEFAULTS, Settings
from grafana.datasources import SQL_TELEMETRY, stored
from grafana.names import field, tag, title
from grafana.panels import (
    DATE_BIN,
    Step,
    board,
    finish,
    override,
    sql_in,
    stat_panel,
    store_variable,
    table_panel,
    time_series,
    variable,
)
from grafana.queries import TIME_SERIES, SqlQuery
from grafana.units import grafana_unit
from ingest.schema import SENSORS, Field

UID = "sensors"
# Every query reads raw rows and rollups: from the live database, or `history` for ranges beyond it.
DS = stored(SQL_TELEMETRY)
TABLE_NAME = SENSORS.name
DEVICE, LOCATION = tag(SENSORS, "device"), tag(SENSORS, "location")
TAGS = (DEVICE, LOCATION)
PICKED = f"{sql_in(LOCATION, 'location')} AND {sql_in(DEVICE, 'device')}"  # the devices the variables select
STALE_AFTER = 300  # s without a reading: data freshness turns orange (red: ALERT_DEVICE_SILENT_AFTER)


def _up_to(red: float, *steps: Step) -> tuple[Step, ...]:
    """Comfort steps below an alert limit, then the limit in red (a lower limit drops the steps above it)."""
    return (*(step for step in steps if step[0] is None or step[0] < red), (red, "red"))


def thresholds_for(settings: Settings) -> dict[str, tuple[Step, ...]]:
    """Thresholds per field, drawn on its series: comfort limits, and red where the alert rules fire (ALERT_*)."""
    battery = settings.battery_min
    return {
        field(SENSORS, "temperature").name: _up_to(settings.temperature_max, (None, "blue"), (18, "green"),
                                                   (26, "orange")),
        field(SENSORS, "humidity").name: _up_to(settings.humidity_max, (None, "orange"), (30, "green"),
                                                (60, "orange")),
        field(SENSORS, "co2").name: _up_to(settings.co2_max, (None, "green"), (1000, "orange")),  # ventilate
        field(SENSORS, "co").name: ((None, "green"), (9, "orange"), (35, "red")),  # US EPA 8 h / 1 h limits
        field(SENSORS, "smoke").name: ((None, "green"), (1, "red")),
        field(SENSORS, "battery").name: ((None, "red"), (battery, "orange"),
                                         *(((40, "green"),) if battery < 40 else ())),
    }
# 0/1 fields: a bin's mean is the share of readings with motion; smoke shows whether it alarmed at all.
MOTION, SMOKE = field(SENSORS, "motion").name, field(SENSORS, "smoke").name
BATTERY = field(SENSORS, "battery").name


def readings(*fields: str, where: str = PICKED) -> str:
    """The selected devices' readings of `fields` over the range: raw, hourly, daily or weekly by its length."""
    return history.source(TABLE_NAME, TAGS, fields, where)


def latest_per_device(columns: str, *fields: str, having: str = "") -> str:
    """Each selected device's newest value of every field in the range (`columns` picks from device, location,
    time and the fields); `having` filters the devices."""
    values = ", ".join(f"{history.last(name)} AS {name}" for name in fields)
    inner = (f"SELECT {DEVICE}, last_value({LOCATION} ORDER BY time) AS {LOCATION}, max(time) AS time, {values}\n"
             f"FROM {readings(*fields)}\nGROUP BY {DEVICE}")
    return f"SELECT {columns} FROM ({inner}) AS latest{f' WHERE {having}' if having else ''}"


def series(item: Field, thresholds: dict[str, tuple[Step, ...]]):
    """The field over time, with its thresholds from `thresholds_for` if it has any."""
    name = item.name
    expression = history.maximum(name) if name == SMOKE else history.mean(name)
    unit = units.PercentUnit if name == MOTION else grafana_unit(item.unit)
    description = item.description or title(name)
    if name == MOTION:
        description = "Share of readings with motion per time bin."
    elif name == SMOKE:
        description = "1 when the smoke detector alarmed in the time bin."
    sql = (f"SELECT {DATE_BIN} AS time, {DEVICE}, {expression} AS {name}\nFROM {readings(name)}\n"
           f"GROUP BY 1, {DEVICE}\nORDER BY 1, {DEVICE}")
    return time_series(title(name), description, unit, DS, [SqlQuery(DS, sql, fmt=TIME_SERIES)],
                       steps=thresholds.get(name), min_interval="1m", width=8)


def build(settings: Settings = DEFAULTS) -> dashboard.Dashboard:
    names = ", ".join(SENSORS.field_names)
    low_battery, dead_after = settings.battery_min, int(settings.device_silent_after)
    fields_units = [override(item.name, unit=grafana_unit(item.unit)) for item in SENSORS.fields]
    built = (board(UID, "Sensors", "The sensor fleet in InfluxDB 3 (sensors): how many devices report, how fresh "
                   "their data is, every device's latest values, and each field over time with its thresholds.",
                   time=("now-6h", "now"), refresh="1m", tags=["sensors"])
             .with_variable(store_variable(SQL_TELEMETRY))
             .with_variable(variable("location", "Location", DS,
                                     f"SELECT DISTINCT {LOCATION} FROM {readings(where='')} ORDER BY {LOCATION}"))
             .with_variable(variable("device", "Device", DS,
                                     f"SELECT DISTINCT {DEVICE} FROM {readings(where=sql_in(LOCATION, 'location'))} "
                                     f"ORDER BY {DEVICE}",
                                     sort=dashboard.VariableSort.NATURAL_ASC))
             .with_row(dashboard_builders.Row("Fleet"))
             .with_panel(stat_panel("Devices reporting", "Devices with at least one reading in the range.",
                                    units.Short, DS, [SqlQuery(DS, f"SELECT count(DISTINCT {DEVICE}) AS devices "
                                                                   f"FROM {readings()}")],
                                    field="devices", width=6))
             .with_panel(stat_panel("Data freshness", "Seconds since the newest reading of the selected devices.",
                                    units.Seconds, DS, [SqlQuery(DS, "SELECT date_part('epoch', now()) - "
                                                                     "date_part('epoch', max(time)) AS age "
                                                                     f"FROM {readings()}")],
                                    field="age", steps=((None, "green"), (min(STALE_AFTER, dead_after - 1), "orange"),
                                           (dead_after, "red")),
                                    width=6))
             .with_panel(stat_panel("Low battery", f"Devices whose latest battery reading is below {low_battery:g} %.",
                                    units.Short, DS, [SqlQuery(DS, latest_per_device(
                                        "count(*) AS devices", BATTERY, having=f"{BATTERY} < {low_battery:g}"))],
                                    field="devices", steps=((None, "green"), (1, "red")), width=6))
             .with_panel(stat_panel("Smoke alarms", "Devices whose detector alarmed in the range.", units.Short, DS,
                                    [SqlQuery(DS, f"SELECT count(DISTINCT {DEVICE}) AS devices FROM "
                                                  f"{readings(SMOKE)} WHERE {SMOKE}_max >= 1")],
                                    field="devices", steps=((None, "green"), (1, "red")), width=6))
             .with_panel(table_panel("Latest values per device", "Each device's newest reading in the range, and "
                                     "how old it is.", units.NoUnit, DS, [SqlQuery(DS, latest_per_device(
                                         f"{DEVICE}, {LOCATION}, time, {names}, date_part('epoch', now()) - "
                                         "date_part('epoch', time) AS age", *SENSORS.field_names)
                                         + f"\nORDER BY {DEVICE}")],
                                     overrides=[*fields_units, override("age", unit=units.Seconds)]))
             .with_row(dashboard_builders.Row("Series")))
    thresholds = thresholds_for(settings)
    for item in SENSORS.fields:
        built = built.with_panel(series(item, thresholds))
    return finish(built.build())
