"""The machine the stack runs on: CPU, memory, disk and network, from the community system_metrics plugin.

The plugin (InfluxData's plugin repository, trigger `system-metrics` in plugins/provision.yaml) runs inside
InfluxDB 3's engine every 30 s and writes the `system_*` tables of the `monitoring` database; their columns are
declared in plugins/stacklib/tables.py HOST_TABLES from its README. Inside a container it sees the host's CPU
and memory, the container's mounts and its network interfaces. Counters (bytes sent, I/O) are cumulative; the
panels turn them into rates between consecutive samples, dropping the negative step a counter reset makes.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.models import dashboard, units

from grafana.alerting.settings import DEFAULTS, Settings
from grafana.datasources import SQL_MONITORING
from grafana.names import column
from grafana.panels import DATE_BIN, TIME_FILTER, bar_gauge, board, finish, sql_in, stat_panel, time_series, variable
from grafana.queries import TIME_SERIES, SqlQuery
from plugins.stacklib.tables import host_table

UID = "host"
DS = SQL_MONITORING
CPU, CORES, MEMORY, SWAP = (host_table(name) for name in ("system_cpu", "system_cpu_cores", "system_memory",
                                                          "system_swap"))
DISK_USAGE, DISK_RATES, NETWORK = (host_table(name) for name in ("system_disk_usage", "system_disk_performance",
                                                                 "system_network"))
HOST = column(CPU, "host")
BUSY = ((None, "green"), (70, "orange"), (90, "red"))  # % CPU, memory or disk in use
SELECTED = f"{TIME_FILTER} AND {sql_in(HOST, 'host')}"  # the dashboard's time range and its selected hosts


def binned(table: str, tag: str | None, expressions: dict[str, str]) -> str:
    """Per time bin (and per `tag` value): the mean of each expression over the selected hosts."""
    group = f", {tag}" if tag else ""
    columns = ", ".join(f"avg({expression}) AS {name}" for name, expression in expressions.items())
    return (f"SELECT {DATE_BIN} AS time{group}, {columns}\nFROM {table}\nWHERE {SELECTED}\n"
            f"GROUP BY 1{group}\nORDER BY 1{group}")


def rates(table: str, tag: str, counters: dict[str, str]) -> str:
    """Per second between consecutive samples of each (host, tag) series, then the mean per time bin; a counter
    that went back (reset, interface re-created) gives no rate for that step."""
    window = f"OVER (PARTITION BY {HOST}, {tag} ORDER BY time)"
    steps = ", ".join(
        f"(CAST({counter} AS DOUBLE) - lag(CAST({counter} AS DOUBLE)) {window}) / "
        f"(date_part('epoch', time) - date_part('epoch', lag(time) {window})) AS {name}"
        for name, counter in counters.items())
    inner = f"SELECT time, {tag}, {steps}\nFROM {table}\nWHERE {SELECTED}"
    averages = ", ".join(f"avg(CASE WHEN {name} >= 0 THEN {name} END) AS {name}" for name in counters)
    return (f"SELECT {DATE_BIN} AS time, {tag}, {averages}\nFROM ({inner}) AS steps\n"
            f"GROUP BY 1, {tag}\nORDER BY 1, {tag}")


def latest(table: str, expression: str, name: str, partition: str = HOST) -> str:
    """The newest value of an expression per `partition` over the selected hosts."""
    return (f"SELECT {partition}, {expression} AS {name} FROM (SELECT *, row_number() OVER (PARTITION BY {partition} "
            f"ORDER BY time DESC) AS rn FROM {table} WHERE {SELECTED}) AS ranked WHERE rn = 1 ORDER BY {partition}")


def build(settings: Settings = DEFAULTS) -> dashboard.Dashboard:
    idle, iowait = column(CPU, "idle"), column(CPU, "iowait")
    core, usage = column(CORES, "core"), column(CORES, "usage")
    mountpoint, used_percent = column(DISK_USAGE, "mountpoint"), column(DISK_USAGE, "percent")
    device, interface = column(DISK_RATES, "device"), column(NETWORK, "interface")
    built = (board(UID, "Host", "The machine the stack runs on, measured from inside InfluxDB 3 by the community "
                   "system_metrics plugin every 30 s: CPU, memory, disks and network. Empty when the plugin could not "
                   "be downloaded (influxdb3-init says why).", time=("now-6h", "now"), refresh="1m", tags=["host"])
             .with_variable(variable("host", "Host", DS, f"SELECT DISTINCT {HOST} FROM {CPU.name} WHERE "
                                     f"{TIME_FILTER} ORDER BY {HOST}"))
             .with_row(dashboard_builders.Row("Now"))
             .with_panel(stat_panel("CPU busy", "Share of CPU time not idle and not waiting for I/O, latest sample.",
                                    units.Percent, DS, [SqlQuery(DS, latest(
                                        CPU.name, f"100 - {idle} - {iowait}", "busy"))], field="busy", steps=BUSY,
                                    width=6))
             .with_panel(stat_panel("Memory used", "Share of memory in use, latest sample.", units.Percent, DS,
                                    [SqlQuery(DS, latest(MEMORY.name, column(MEMORY, "percent"), "used"))],
                                    field="used", steps=BUSY, width=6))
             .with_panel(stat_panel("Load (1 min)", "Run-queue length averaged over a minute, latest sample.",
                                    units.Short, DS, [SqlQuery(DS, latest(CPU.name, column(CPU, "load1"), "load"))],
                                    field="load", width=6))
             .with_panel(stat_panel("Swap used", "Share of swap in use, latest sample.", units.Percent, DS,
                                    [SqlQuery(DS, latest(SWAP.name, column(SWAP, "percent"), "used"))],
                                    field="used", steps=BUSY, width=6))
             .with_row(dashboard_builders.Row("CPU"))
             .with_panel(time_series("CPU by state", "Share of CPU time per state between samples.", units.Percent, DS,
                                     [SqlQuery(DS, binned(CPU.name, None, {
                                         name: column(CPU, name) for name in ("user", "system", "iowait", "steal")}),
                                               fmt=TIME_SERIES)], min_interval="30s"))
             .with_panel(time_series("Busy per core", "Share of each core's time not idle and not waiting for I/O.",
                                     units.Percent, DS, [SqlQuery(DS, binned(CORES.name, core, {"busy": usage}),
                                                                  fmt=TIME_SERIES)], min_interval="30s"))
             .with_panel(time_series("Load average", "Run-queue length over 1, 5 and 15 minutes.", units.Short, DS,
                                     [SqlQuery(DS, binned(CPU.name, None, {
                                         name: column(CPU, name) for name in ("load1", "load5", "load15")}),
                                               fmt=TIME_SERIES)], min_interval="30s", width=24))
             .with_row(dashboard_builders.Row("Memory and disks"))
             .with_panel(time_series("Memory", "Bytes in use and available.", units.BytesIEC, DS,
                                     [SqlQuery(DS, binned(MEMORY.name, None, {
                                         name: column(MEMORY, name) for name in ("used", "available", "cached")}),
                                               fmt=TIME_SERIES)], min_interval="30s"))
             .with_panel(bar_gauge("Disk space used", "Share used per mounted file system, latest sample.",
                                   units.Percent, DS, [SqlQuery(DS, latest(DISK_USAGE.name, used_percent, "used",
                                                                           partition=mountpoint))], rows=True))
             .with_panel(time_series("Disk throughput", "Bytes read and written per second per device.",
                                     units.BytesPerSecondIEC, DS,
                                     [SqlQuery(DS, binned(DISK_RATES.name, device, {
                                         "read": column(DISK_RATES, "read_bytes_per_sec"),
                                         "written": column(DISK_RATES, "write_bytes_per_sec")}), fmt=TIME_SERIES)],
                                     min_interval="30s"))
             .with_panel(time_series("Disk busy", "Share of time each device was busy with I/O.", units.Percent, DS,
                                     [SqlQuery(DS, binned(DISK_RATES.name, device, {
                                         "busy": column(DISK_RATES, "util_percent")}), fmt=TIME_SERIES)],
                                     min_interval="30s", steps=BUSY))
             .with_row(dashboard_builders.Row("Network"))
             .with_panel(time_series("Network traffic", "Bytes received and sent per second per interface.",
                                     units.BytesPerSecondIEC, DS,
                                     [SqlQuery(DS, rates(NETWORK.name, interface, {
                                         "received": column(NETWORK, "bytes_recv"),
                                         "sent": column(NETWORK, "bytes_sent")}), fmt=TIME_SERIES)],
                                     min_interval="30s"))
             .with_panel(time_series("Network errors and drops", "Packets per second in error or dropped, per "
                                     "interface.", units.Short, DS,
                                     [SqlQuery(DS, rates(NETWORK.name, interface, {
                                         name: column(NETWORK, name) for name in ("errin", "errout", "dropin",
                                                                                  "dropout")}), fmt=TIME_SERIES)],
                                     min_interval="30s")))
    return finish(built.build())
