"""Weather per location: the latest value of every weather field, and their history (weather)."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.models import dashboard

from grafana import history
from grafana.alerting.settings import DEFAULTS, Settings
from grafana.datasources import SQL_TELEMETRY, stored
from grafana.names import field, tag, title
from grafana.panels import DATE_BIN, board, finish, sql_in, stat_panel, store_variable, time_series, variable
from grafana.queries import TABLE, TIME_SERIES, SqlQuery
from grafana.units import grafana_unit
from ingest.schema import WEATHER, Field

UID = "weather"
# Every query reads raw rows and rollups: from the live database, or `history` for ranges beyond it.
DS = stored(SQL_TELEMETRY)
TABLE_NAME = WEATHER.name
LOCATION = tag(WEATHER, "location")
PICKED = sql_in(LOCATION, "location")
PRECIPITATION = field(WEATHER, "precipitation").name
WIND_DIRECTION = field(WEATHER, "wind_direction").name


def conditions(*fields: str, where: str = PICKED) -> str:
    """The selected locations' readings over the range: raw, hourly, daily or weekly by its length."""
    return history.source(TABLE_NAME, (LOCATION,), fields, where)


def aggregate(item: Field) -> tuple[str, bool]:
    """How a field is summarised per time bin, and whether bars suit it. Every point of precipitation is the
    last hour's amount, so its mean per bin is mm per hour whatever the polling interval (a sum would count an
    hour once per poll). A mean direction needs every reading's sine and cosine, which the rollups do not keep
    (the mean of 350° and 10° is 0°, not 180°), so a direction bin shows its newest reading."""
    name = item.name
    if name == WIND_DIRECTION:
        return history.last(name), False
    return history.mean(name), name == PRECIPITATION


def now_stat(item: Field):
    sql = f"SELECT {history.last(item.name)} AS {item.name}\nFROM {conditions(item.name)}"
    return stat_panel(title(item.name), f"Latest {item.description} in the range.", grafana_unit(item.unit), DS,
                      [SqlQuery(DS, sql, fmt=TABLE)], field=item.name, width=3, height=4)


def history_panel(item: Field):
    expression, bars = aggregate(item)
    sql = (f"SELECT {DATE_BIN} AS time, {LOCATION}, {expression} AS {item.name}\nFROM {conditions(item.name)}\n"
           f"GROUP BY 1, {LOCATION}\nORDER BY 1, {LOCATION}")
    return time_series(title(item.name), f"{item.description[:1].upper()}{item.description[1:]}, per location.",
                       grafana_unit(item.unit), DS, [SqlQuery(DS, sql, fmt=TIME_SERIES)], bars=bars,
                       min_interval="1h" if bars else "15m")


def build(settings: Settings = DEFAULTS) -> dashboard.Dashboard:
    built = (board(UID, "Weather", "Current conditions and history per location (InfluxDB 3, weather): one row of "
                   "latest values per selected location, then the history of every weather field.",
                   time=("now-7d", "now"), refresh="5m", tags=["weather"])
             .with_variable(store_variable(SQL_TELEMETRY))
             .with_variable(variable("location", "Location", DS,
                                     f"SELECT DISTINCT {LOCATION} FROM {conditions(where='')} ORDER BY {LOCATION}")))
    built = built.with_row(dashboard_builders.Row("Now in ${location}").repeat("location"))
    for item in WEATHER.fields:
        built = built.with_panel(now_stat(item))
    built = built.with_row(dashboard_builders.Row("History"))
    for item in WEATHER.fields:
        built = built.with_panel(history_panel(item))
    return finish(built.build())
