"""Grafana dashboards as code for this stack.

`python -m grafana.generate` (`make dashboards`) builds every dashboard in `grafana.boards` with
grafana-foundation-sdk and writes `grafana/dashboards/<uid>.json`, which the provisioned file provider loads.
Queries are built from the schema declarations of the services that write the data (`ingest.schema`,
`plugins.stacklib.tables`, `backup.metrics`), so renaming a field there changes the dashboards on the next
`make dashboards`, and the tests fail until the committed JSON is regenerated.
"""
