"""influxdb2-init: idempotent least-privilege setup of InfluxDB 2 for the stack's services.

Creates the buckets the ingest declares (ingest/buckets.yaml), so the ingest needs no right to create buckets, then
one token per service with only the access it needs — Grafana reads the buckets its dashboards and alerts read,
the ingest writes its own buckets — each kept in a 0600 file owned by that service's uid. InfluxDB 2.9 stores
tokens hashed: a token can be read only in the answer that creates it, so a lost file means a new token, and the
old authorization is deleted.
"""
