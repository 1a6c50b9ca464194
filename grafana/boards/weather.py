"""Weather per location: the latest value of every weather field, and their history (weather)."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.models import dashboard

from grafana.alerting.settings import DEFAULTS, Settings
from grafana.datasources import SQL_TELEMETRY
from grafana.names import field, tag, title
from grafana.panels import DATE_BIN, TIME_FILTER, board, finish, sql_in, stat_panel, time_series, variable
from grafana.queries import TABLE, TIME_SERIES, SqlQuery
from grafana.units import grafana_unit
from ingest.schema import WEATHER, Field

UID = "weather"
DS = SQL_TELEMETRY
TABLE_NAME = WEATHER.name
LOCATION = tag(WEATHER, "location")
SELECTED = f"{TIME_FILTER} AND {sql_in(LOCATION, 'location')}"
PRECIPITATION = field(WEATHER, "precipitation").name
WIND_DIRECTION = field(WEATHER, "wind_direction").name


def aggregate(item: Field) -> tuple[str, bool]:
    """How a field is summarised per time bin, and whether bars suit it. Every point of precipitation is the
    last hour's amount, so its mean per bin is mm per hour whatever the polling interval (a sum would count an
    hour once per poll); a direction is averaged on the circle (the mean of 350° and 10° is 0°, not 180°)."""
    name = item.name
    if name == PRECIPITATION:
        return f"avg({name})", True
    if name == WIND_DIRECTION:
        return (f"(degrees(atan2(avg(sin(radians({name}))), avg(cos(radians({name}))))) + 360) % 360", False)
    return f"avg({name})", False


def now_stat(item: Field):
    sql = (f"SELECT time, {item.name} FROM {TABLE_NAME}\nWHERE {SELECTED} AND {item.name} IS NOT NULL\n"
           "ORDER BY time DESC LIMIT 1")
    return stat_panel(title(item.name), f"Latest {item.description} in the range.", grafana_unit(item.unit), DS,
                      [SqlQuery(DS, sql, fmt=TABLE)], field=item.name, width=3, height=4)


def history(item: Field):
    expression, bars = aggregate(item)
    sql = (f"SELECT {DATE_BIN} AS time, {LOCATION}, {expression} AS {item.name}\nFROM {TABLE_NAME}\n"
           f"WHERE {SELECTED}\nGROUP BY 1, {LOCATION}\nORDER BY 1, {LOCATION}")
    return time_series(title(item.name), f"{item.description[:1].upper()}{item.description[1:]}, per location.",
                       grafana_unit(item.unit), DS, [SqlQuery(DS, sql, fmt=TIME_SERIES)], bars=bars,
                       min_interval="1h" if bars else "15m")


def build(settings: Settings = DEFAULTS) -> dashboard.Dashboard:
    built = (board(UID, "Weather", "Current conditions and history per location (InfluxDB 3, weather): one row of "
                   "latest values per selected location, then the history of every weather field.",
                   time=("now-7d", "now"), refresh="5m", tags=["weather"])
             .with_variable(variable("location", "Location", DS,
                                     f"SELECT DISTINCT {LOCATION} FROM {TABLE_NAME} WHERE {TIME_FILTER} "
                                     f"ORDER BY {LOCATION}")))
    built = built.with_row(dashboard_builders.Row("Now in ${location}").repeat("location"))
    for item in WEATHER.fields:
        built = built.with_panel(now_stat(item))
    built = built.with_row(dashboard_builders.Row("History"))
    for item in WEATHER.fields:
        built = built.with_panel(history(item))
    return finish(built.build())
