"""influxdb3-init: idempotent provisioning of InfluxDB 3 Core over its HTTP API.

Reads the plugins' declarative file (plugins/provision.yaml) and makes the server match it: databases,
then tables, then the plugins' Python packages, then triggers (created, then enabled).
"""
