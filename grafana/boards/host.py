"""The machine the stack runs on: CPU, memory, disk and network, from the community system_metrics plugin.

The plugin (InfluxData's plugin repository, trigger `system-metrics` in plugins/provision.yaml) runs inside
InfluxDB 3's engine every 30 s and writes the `system_*` tables of the `monitoring` database; their columns are
declared in plugins/stacklib/tables.py HOST_TABLES from its README. Inside a container it sees the host's CPU
and memory, the container's mounts and its network interfaces. Counters (bytes sent, I/O) are cumulative; the
panels turn them into rates between consecutive samples, dropping the negative step a counter reset makes.
"""

from __future__ import annotations

from collections.abc import Iterable

from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.models import dashboard, units

from grafana import history
from grafana.alerting.settings import DEFAULTS, Settings
from grafana.datasources import SQL_MONITORING, stored
from grafana.names import column
from grafana.panels import DATE_BIN, bar_gauge, board, finish, sql_in, stat_panel, store_variable, time_series, variable
from grafana.queries import TIME_SERIES, SqlQuery
from plugins.stacklib.tables import TableSpec, host_table
from plugins.stacklib.windows import over

UID = "host"
# Every query reads raw rows and rollups: from the live database, or `history` for ranges beyond it.
DS = stored(SQL_MONITORING)
CPU, CORES, MEMORY, SWAP = (host_table(name) for name in ("system_cpu", "system_cpu_cores", "system_memory",
                                                          "system_swap"))
DISK_USAGE, DISK_RATES, NETWORK = (host_table(name) for name in ("system_disk_usage", "system_disk_performance",
                                                                 "system_network"))
HOST = column(CPU, "host")
BUSY = ((None, "green"), (70, "orange"), (90, "red"))  # % CPU, memory or disk in use
PICKED = sql_in(HOST, "host")  # the hosts the variable selects


def samples(table: TableSpec, tag: str | None, fields: Iterable[str], where: str = PICKED) -> str:
    """The selected hosts' samples of `fields` over the range: raw, hourly, daily or weekly by its length."""
    tags = (HOST, tag) if tag and tag != HOST else (HOST,)
    return history.source(table.name, tags, tuple(fields), where)


def binned(table: TableSpec, tag: str | None, fields: dict[str, str]) -> str:
    """Per time bin (and per `tag` value): the mean of each field over the selected hosts, named by its key."""
    group = f", {tag}" if tag else ""
    columns = ", ".join(f"{history.mean(item)} AS {name}" for name, item in fields.items())
    return (f"SELECT {DATE_BIN} AS time{group}, {columns}\nFROM {samples(table, tag, fields.values())}\n"
            f"GROUP BY 1{group}\nORDER BY 1{group}")


def rates(table: TableSpec, tag: str, counters: dict[str, str]) -> str:
    """Per second between consecutive points of each (host, tag) series (samples, or a rollup's last value per
    bucket), then the mean per time bin; a counter that went back (reset, interface re-created) gives no rate for
    that step."""
    window = over(HOST, tag)
    steps = ", ".join(
        f"({counter}_last - lag({counter}_last) {window}) / "
        f"(date_part('epoch', time) - date_part('epoch', lag(time) {window})) AS {name}"
        for name, counter in counters.items())
    inner = f"SELECT time, {tag}, {steps}\nFROM {samples(table, tag, counters.values())}"
    averages = ", ".join(f"avg(CASE WHEN {name} >= 0 THEN {name} END) AS {name}" for name in counters)
    return (f"SELECT {DATE_BIN} AS time, {tag}, {averages}\nFROM ({inner}) AS steps\n"
            f"GROUP BY 1, {tag}\nORDER BY 1, {tag}")


def latest(table: TableSpec, expression: str, name: str, fields: Iterable[str], partition: str = HOST) -> str:
    """An expression of the newest value of each of `fields` per `partition` over the selected hosts."""
    fields = tuple(fields)
    values = ", ".join(f"{history.last(item)} AS {item}" for item in fields)
    inner = f"SELECT {partition}, {values} FROM {samples(table, partition, fields)} GROUP BY {partition}"
    return f"SELECT {partition}, {expression} AS {name} FROM ({inner}) AS newest ORDER BY {partition}"


def build(settings: Settings = DEFAULTS) -> dashboard.Dashboard:
    idle, iowait = column(CPU, "idle"), column(CPU, "iowait")
    core, usage = column(CORES, "core"), column(CORES, "usage")
    mountpoint, used_percent = column(DISK_USAGE, "mountpoint"), column(DISK_USAGE, "percent")
    device, interface = column(DISK_RATES, "device"), column(NETWORK, "interface")
    built = (board(UID, "Host", "The machine the stack runs on, measured from inside InfluxDB 3 by the community "
                   "system_metrics plugin every 30 s: CPU, memory, disks and network. Empty when the plugin could not "
                   "be downloaded (influxdb3-init says why).", time=("now-6h", "now"), refresh="1m", tags=["host"])
             .with_variable(store_variable(SQL_MONITORING))
             .with_variable(variable("host", "Host", DS,
                                     f"SELECT DISTINCT {HOST} FROM {samples(CPU, None, (), where='')} ORDER BY {HOST}"))
             .with_row(dashboard_builders.Row("Now"))
             .with_panel(stat_panel("CPU busy", "Share of CPU time not idle and not waiting for I/O, latest sample.",
                                    units.Percent, DS, [SqlQuery(DS, latest(
                                        CPU, f"100 - {idle} - {iowait}", "busy", (idle, iowait)))], field="busy",
                                    steps=BUSY, width=6))
             .with_panel(stat_panel("Memory used", "Share of memory in use, latest sample.", units.Percent, DS,
                                    [SqlQuery(DS, latest(MEMORY, "percent", "used", [column(MEMORY, "percent")]))],
                                    field="used", steps=BUSY, width=6))
             .with_panel(stat_panel("Load (1 min)", "Run-queue length averaged over a minute, latest sample.",
                                    units.Short, DS,
                                    [SqlQuery(DS, latest(CPU, "load1", "load", [column(CPU, "load1")]))],
                                    field="load", width=6))
             .with_panel(stat_panel("Swap used", "Share of swap in use, latest sample.", units.Percent, DS,
                                    [SqlQuery(DS, latest(SWAP, "percent", "used", [column(SWAP, "percent")]))],
                                    field="used", steps=BUSY, width=6))
             .with_row(dashboard_builders.Row("CPU"))
             .with_panel(time_series("CPU by state", "Share of CPU time per state between samples.", units.Percent, DS,
                                     [SqlQuery(DS, binned(CPU, None, {
                                         name: column(CPU, name) for name in ("user", "system", "iowait", "steal")}),
                                               fmt=TIME_SERIES)], min_interval="30s"))
             .with_panel(time_series("Busy per core", "Share of each core's time not idle and not waiting for I/O.",
                                     units.Percent, DS, [SqlQuery(DS, binned(CORES, core, {"busy": usage}),
                                                                  fmt=TIME_SERIES)], min_interval="30s"))
             .with_panel(time_series("Load average", "Run-queue length over 1, 5 and 15 minutes.", units.Short, DS,
                                     [SqlQuery(DS, binned(CPU, None, {
                                         name: column(CPU, name) for name in ("load1", "load5", "load15")}),
                                               fmt=TIME_SERIES)], min_interval="30s", width=24))
             .with_row(dashboard_builders.Row("Memory and disks"))
             .with_panel(time_series("Memory", "Bytes in use and available.", units.BytesIEC, DS,
                                     [SqlQuery(DS, binned(MEMORY, None, {
                                         name: column(MEMORY, name) for name in ("used", "available", "cached")}),
                                               fmt=TIME_SERIES)], min_interval="30s"))
             .with_panel(bar_gauge("Disk space used", "Share used per mounted file system, latest sample.",
                                   units.Percent, DS, [SqlQuery(DS, latest(DISK_USAGE, used_percent, "used",
                                                                           [used_percent], partition=mountpoint))],
                                   rows=True))
             .with_panel(time_series("Disk throughput", "Bytes read and written per second per device.",
                                     units.BytesPerSecondIEC, DS,
                                     [SqlQuery(DS, binned(DISK_RATES, device, {
                                         "read": column(DISK_RATES, "read_bytes_per_sec"),
                                         "written": column(DISK_RATES, "write_bytes_per_sec")}), fmt=TIME_SERIES)],
                                     min_interval="30s"))
             .with_panel(time_series("Disk busy", "Share of time each device was busy with I/O.", units.Percent, DS,
                                     [SqlQuery(DS, binned(DISK_RATES, device, {
                                         "busy": column(DISK_RATES, "util_percent")}), fmt=TIME_SERIES)],
                                     min_interval="30s", steps=BUSY))
             .with_row(dashboard_builders.Row("Network"))
             .with_panel(time_series("Network traffic", "Bytes received and sent per second per interface.",
                                     units.BytesPerSecondIEC, DS,
                                     [SqlQuery(DS, rates(NETWORK, interface, {
                                         "received": column(NETWORK, "bytes_recv"),
                                         "sent": column(NETWORK, "bytes_sent")}), fmt=TIME_SERIES)],
                                     min_interval="30s"))
             .with_panel(time_series("Network errors and drops", "Packets per second in error or dropped, per "
                                     "interface.", units.Short, DS,
                                     [SqlQuery(DS, rates(NETWORK, interface, {
                                         name: column(NETWORK, name) for name in ("errin", "errout", "dropin",
                                                                                  "dropout")}), fmt=TIME_SERIES)],
                                     min_interval="30s")))
    return finish(built.build())
