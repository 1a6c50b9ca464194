"""InfluxDB 2 through the official `influxdb-client`: its generated write and bucket services as transport.

Only the client's batching `WriteApi` is bypassed (it drops a failed batch unless callbacks are wired, and
builds an object per row); requests go through `WriteService.post_write` with a body this app encoded and
gzip'd once: `POST /api/v2/write?org=&bucket=&precision=ns`, `Authorization: Token ...`,
`Content-Encoding: gzip`. Missing buckets are created with the client's buckets service.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import urllib3.exceptions
from influxdb_client import BucketRetentionRules, InfluxDBClient, PostBucketRequest
from influxdb_client.rest import ApiException
from influxdb_client.service.buckets_service import BucketsService
from influxdb_client.service.organizations_service import OrganizationsService
from influxdb_client.service.write_service import WriteService

from ingest.sinks import FatalSinkError
from ingest.sinks.errors import network_error, status_error

__all__ = ["InfluxDB2Transport"]

log = logging.getLogger("ingest.influxdb2")


class InfluxDB2Transport:
    name = "influxdb2"

    def __init__(self, url: str, token: str, org: str, *, timeout: float = 30.0):
        self.url, self.org = url, org
        self.client = InfluxDBClient(url=url, token=token, org=org, timeout=int(timeout * 1000), enable_gzip=False)
        self._writes = WriteService(self.client.api_client)
        self._buckets = BucketsService(self.client.api_client)
        self._orgs = OrganizationsService(self.client.api_client)
        self._org_id_found: str | None = None  # looked up once, by the first ensure_database
        self._hints = {
            401: "the token was refused; check INFLUXDB2_TOKEN",
            403: "the token may not write here; use a token with write access to the bucket",
            404: f"no such bucket in org {org!r} (or no such org); create it with `python -m ingest buckets` and a "
                 "token that may create buckets (in the stack, influxdb2-init creates those of ingest/buckets.yaml: "
                 "`docker compose up influxdb2-init`), or check INGEST_BUCKET and INFLUXDB2_ORG",
        }

    def send(self, payload: bytes, database: str) -> None:
        try:
            self._writes.post_write(org=self.org, bucket=database, body=payload, precision="ns",
                                    content_encoding="gzip", content_type="text/plain; charset=utf-8")
        except ApiException as exc:
            raise self._status(exc) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise network_error("InfluxDB 2", self.url, exc) from None

    def _status(self, exc: ApiException) -> Exception:
        # http/write_handler.go (v2.7.12, v2.9.1): a 400 (a line that does not parse) writes nothing of the
        # request; a 422 partial write writes the rest and says only `dropped=N`. Neither names the bad lines.
        return status_error("InfluxDB 2", int(exc.status or 0), _message(exc), retry_after=_header(exc, "Retry-After"),
                            fatal_hints=self._hints, isolate=True)

    def ensure_database(self, name: str, description: str, retention: timedelta | None) -> str:
        """Create the bucket when it is missing; an existing bucket is left as it is (its retention may be an
        operator's choice) and a differing retention is only reported. Returns "created" or "exists".

        InfluxDB 2 answers a by-name lookup that finds nothing with 404, not an empty list
        (tenant/service_bucket.go FindBuckets → GetBucketByName → ErrBucketNotFoundByName, v2.7.12 and
        v2.9.1; upstream issue influxdata/influxdb#21134), so 404 here means "create it"."""
        try:
            return self._ensure_database(name, description, retention)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise network_error("InfluxDB 2", self.url, exc) from None

    def _ensure_database(self, name: str, description: str, retention: timedelta | None) -> str:
        org_id = self._org_id()
        try:
            found = self._buckets.get_buckets(name=name, org_id=org_id).buckets or []
        except ApiException as exc:
            if exc.status != 404:
                raise FatalSinkError(f"cannot check bucket {name!r}: {self._status(exc)}") from None
            found = []
        if found:
            current = next((rule.every_seconds for rule in found[0].retention_rules or []
                            if rule.type == "expire"), 0) or 0
            wanted = int(retention.total_seconds()) if retention else 0
            if current != wanted:
                log.warning("bucket %r keeps its retention of %s (the buckets file asks for %s)", name,
                            f"{current}s" if current else "forever", f"{wanted}s" if wanted else "forever")
            return "exists"
        rules = [BucketRetentionRules(type="expire", every_seconds=int(retention.total_seconds()))] \
            if retention else []
        try:
            self._buckets.post_buckets(PostBucketRequest(org_id=org_id, name=name, description=description,
                                                         retention_rules=rules))
        except ApiException as exc:
            if exc.status == 422 and "already exists" in _message(exc):
                return "exists"  # created meanwhile by another process (EConflict is 422 in InfluxDB 2)
            raise FatalSinkError(f"cannot create bucket {name!r}: {self._status(exc)}") from None
        return "created"

    def _org_id(self) -> str:
        """The org's id, looked up on the first call (a failed lookup is tried again on the next). An unknown
        org name is 404 (tenant/service_org.go FindOrganization, OrgNotFoundByName)."""
        if self._org_id_found is not None:
            return self._org_id_found
        try:
            orgs = self._orgs.get_orgs(org=self.org).orgs or []
        except ApiException as exc:
            if exc.status == 404:
                raise FatalSinkError(f"InfluxDB 2 has no organization {self.org!r} ({_message(exc)}); set "
                                     "INFLUXDB2_ORG to the org the server was set up with") from None
            raise FatalSinkError(f"cannot look up organization {self.org!r}: {self._status(exc)}") from None
        if not orgs:
            raise FatalSinkError(f"InfluxDB 2 has no organization {self.org!r}; set INFLUXDB2_ORG to the org the "
                                 "server was set up with")
        self._org_id_found = orgs[0].id
        return self._org_id_found

    def close(self) -> None:
        self.client.close()


def _header(exc: ApiException, name: str) -> str | None:
    headers = exc.headers or {}
    value = headers.get(name) if hasattr(headers, "get") else None
    return value if value is not None else getattr(exc, "retry_after", None)


def _message(exc: ApiException) -> str:
    message = getattr(exc, "message", None)
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    if message:
        return str(message)
    body = exc.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    return str(body or exc.reason or "")
