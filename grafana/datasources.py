"""The provisioned datasources the dashboards query, by pinned uid (grafana/provisioning/datasources/).

Grafana's InfluxDB datasource in SQL mode sends one database per datasource (the Flight `database` header comes
from the datasource's `dbName`; a query cannot pick another one), so every InfluxDB 3 database a dashboard
reads needs its own provisioned SQL datasource. Flux names its bucket in the query, so one InfluxDB 2
datasource reads every bucket it may: its token reads FLUX_BUCKETS and nothing else (influxdb2-init).
"""

from __future__ import annotations

from dataclasses import dataclass

from grafana_foundation_sdk.models.dashboard import DataSourceRef

from ingest.schema import HISTORY, MONITORING, TELEMETRY
from plugins.stacklib.tables import FORECAST_DATABASE, HOST_DATABASE

__all__ = ["ALL", "FLUX", "FLUX_BUCKETS", "FLUX_LANGUAGE", "LIVE", "SQL_FORECAST", "SQL_HISTORY", "SQL_LANGUAGE",
           "SQL_MONITORING", "SQL_TELEMETRY", "STORED", "Datasource", "stored"]

# jsonData.version of the provisioned datasource: the query language it speaks.
SQL_LANGUAGE, FLUX_LANGUAGE = "SQL", "Flux"
PLUGIN_TYPE = "influxdb"


@dataclass(frozen=True)
class Datasource:
    """One provisioned datasource: its uid, query language and (for SQL) the one database it reads."""

    uid: str
    language: str
    database: str | None = None

    def ref(self) -> DataSourceRef:
        return DataSourceRef(type_val=PLUGIN_TYPE, uid=self.uid)

    @property
    def variable(self) -> str | None:
        """For a `stored()` datasource, the hidden variable that names the real one."""
        return self.uid[2:-1] if self.uid.startswith("${") else None


# InfluxDB 3 Core over Flight SQL, database `telemetry` (dbName ${INFLUXDB3_DATABASE}, telemetry in .env).
SQL_TELEMETRY = Datasource("influxdb3-sql", SQL_LANGUAGE, TELEMETRY)
# InfluxDB 3 Core over Flight SQL, database `forecast`: the tables the Processing Engine plugins write.
SQL_FORECAST = Datasource("influxdb3-sql-forecast", SQL_LANGUAGE, FORECAST_DATABASE)
# InfluxDB 3 Core over Flight SQL, database `monitoring`: the host metrics (community system_metrics plugin).
SQL_MONITORING = Datasource("influxdb3-sql-monitoring", SQL_LANGUAGE, HOST_DATABASE)
# InfluxDB 3 Core over Flight SQL, database `history`: the live databases' rollups beyond their raw retention
# (common/retention.py) and history loaded from the past (the bird study).
SQL_HISTORY = Datasource("influxdb3-sql-history", SQL_LANGUAGE, HISTORY)
# InfluxDB 2 over Flux; buckets are named in each query.
FLUX = Datasource("influxdb2-flux", FLUX_LANGUAGE)
# The InfluxDB 2 buckets the dashboards and alert rules read: Grafana's token may read these and nothing else
# (docker-compose.yml gives them to influxdb2-init as GRAFANA_INFLUXDB2_BUCKETS; tests/grafana/test_influxdb2_access.py
# keeps the three equal). A query of another bucket is refused by InfluxDB 2: add the bucket here and there first.
FLUX_BUCKETS = (TELEMETRY, MONITORING)

ALL = (SQL_TELEMETRY, SQL_FORECAST, SQL_MONITORING, SQL_HISTORY, FLUX)
# The live databases: raw rows only for RAW_RETENTION (common/retention.py), their rollups copied to `history`.
LIVE = (SQL_TELEMETRY, SQL_MONITORING)


def stored(live: Datasource) -> Datasource:
    """What a panel over a live database names: `${<database>_store}`, a hidden variable of its dashboard that is
    `live`'s uid for ranges up to LIVE_RANGE and SQL_HISTORY's beyond (grafana/panels.py `store_variable`).
    Grafana interpolates a `$` uid before it looks the datasource up (public/app/features/plugins/
    datasource_srv.ts `getInstanceSettings` and `get`). `database` is the live one: the SQL is the same on both."""
    if live not in LIVE:
        raise ValueError(f"{live.uid} is not a live database's datasource")
    return Datasource(f"${{{live.database}_store}}", SQL_LANGUAGE, live.database)


STORED = tuple(stored(live) for live in LIVE)
