"""The backup sidecar: scheduled, verified, restorable backups of InfluxDB 2, InfluxDB 3 Core and Grafana.

Each store has its own module (`influxdb2`, `influxdb3`, `grafana`) that knows how the vendor wants it
copied; `sets` owns the on-disk layout of a backup set, `job` runs one backup, `verify` and `restore` read
sets back. Everything is importable without a server, so tests drive it against loopback HTTP servers and
real files.
"""
