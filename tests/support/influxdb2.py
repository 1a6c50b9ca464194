"""A loopback stand-in for the InfluxDB 2 HTTP API our services use, answering as the server's source does.

Source read: influxdata/influxdb tag v2.7.12, checked against v2.9.1 (the pinned image) where noted; each
behaviour names the file it mirrors. Errors are `{"code": ..., "message": ...}` JSON with the status
`kit/transport/http/error_handler.go` maps the code to (invalid → 400, unprocessable entity and conflict →
422, not found → 404, unauthorized → 401, forbidden → 403).

Use an `InfluxDB2` as a RecordingServer responder. Tests script outages with `fail_next` and read what was
written from `points`. Backup and restore endpoints are added by tests/backup/influxdb2_api.py. What was written
can be read back with the Flux and InfluxQL queries `python -m ingest migrate` sends (tests/support/
influxdb2_query.py), from a store that keeps field types per shard group as the server does.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from tests.support.influxdb2_query import (
    FIELD_TYPE_NAMES,
    FluxError,
    NotModelled,
    Storage,
    encode_csv,
    influxql_json,
    run_flux,
    run_influxql,
    shard_duration,
)
from tests.support.lineprotocol import LineProtocolError, ParsedPoint, parse_line
from tests.support.recorder import Recorded, Reply

__all__ = ["InfluxDB2", "error"]

_PRECISION_NS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}


def error(status: int, code: str, message: str, *, indented: bool = False) -> Reply:
    """kit/transport/http/error_handler.go WriteErrorResponse: JSON body and the X-Platform-Error-Code header.
    The tenant handlers (buckets, orgs) answer through kit/transport/http/api.go, which indents with a tab;
    the write handler's errors are compact (both seen from a real v2.7.12 server)."""
    body = json.dumps({"code": code, "message": message}, indent="\t" if indented else None,
                      separators=None if indented else (",", ":"))
    return Reply(status, body.encode(), {"Content-Type": "application/json; charset=utf-8",
                                          "X-Platform-Error-Code": code})


def _bucket_json(bucket: dict[str, Any]) -> dict[str, Any]:
    return {"id": bucket["id"], "orgID": bucket["orgID"], "type": "user", "name": bucket["name"],
            "description": bucket.get("description", ""), "retentionRules": bucket.get("retentionRules", []),
            "labels": [], "links": {"self": f"/api/v2/buckets/{bucket['id']}"}}


@dataclass
class InfluxDB2:
    """One set-up server: an org, an operator token, buckets, and the points written to them."""

    token: str = "operator-token"
    org: str = "stack"
    org_id: str = "0123456789abcdef"
    version: str = "v2.9.1"
    buckets: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> bucket JSON
    points: dict[str, list[ParsedPoint]] = field(default_factory=dict)  # bucket -> points, in write order
    log: list[tuple[str, ParsedPoint]] = field(default_factory=list)  # (bucket, point) across buckets, in order
    written: list[tuple[str, str]] = field(default_factory=list)  # (bucket, body) of each write that landed
    # (bucket, measurement, field) -> a type the field has in every shard (a test's "it already exists as int")
    field_kinds: dict[tuple[str, str, str], str] = field(default_factory=dict)
    storage: dict[str, Storage] = field(default_factory=dict)  # bucket -> what a query reads
    fail_next: dict[str, int] = field(default_factory=dict)  # path prefix -> number of 503s to answer first
    lock: threading.Lock = field(default_factory=threading.Lock)
    _next_id: int = 1

    def add_bucket(self, name: str, retention_seconds: int = 0) -> dict[str, Any]:
        bucket_id = f"{0xB000000000000000 + self._next_id:016x}"
        self._next_id += 1
        rules = [{"type": "expire", "everySeconds": retention_seconds}] if retention_seconds else []
        self.buckets[name] = {"id": bucket_id, "orgID": self.org_id, "name": name, "retentionRules": rules}
        self.storage[name] = Storage(shard_duration(retention_seconds))
        return self.buckets[name]

    def store(self, bucket: str) -> Storage:
        """The bucket's store, with the test's preset field types."""
        storage = self.storage[bucket]
        storage.preset = {(m, key): kind for (name, m, key), kind in self.field_kinds.items() if name == bucket}
        return storage

    def authorized(self, request: Recorded) -> bool:
        return request.header("authorization") == f"Token {self.token}"

    def __call__(self, request: Recorded) -> Reply:
        return self.respond(request)

    def respond(self, request: Recorded) -> Reply:
        for prefix, count in list(self.fail_next.items()):
            if request.path.startswith(prefix) and count > 0:
                self.fail_next[prefix] = count - 1
                return error(503, "unavailable", "service unavailable")
        if request.path == "/ping":  # http/ping.go: no auth, 204 with version headers
            return Reply(204, None, {"X-Influxdb-Version": self.version, "X-Influxdb-Build": "OSS"})
        if request.path == "/health":  # http/health.go: no auth
            return Reply(200, {"name": "influxdb", "message": "ready for queries and writes", "status": "pass",
                               "checks": [], "version": self.version, "commit": "0000000000"})
        if request.path == "/api/v2/setup" and request.method == "GET":  # tenant/http_server_onboarding.go
            return Reply(200, {"allowed": False})
        if not self.authorized(request):  # authorizer/... : unknown token
            if request.path == "/query":  # the v1 query handler's own words (seen from a real v2.9.1)
                return error(401, "unauthorized", "Unauthorized")
            return error(401, "unauthorized", "unauthorized access")
        handler = self.route(request)
        if handler is None:
            return error(404, "not found", "path not found")
        return handler(request)

    def route(self, request: Recorded):
        """The handler for a request, or None (subclasses add endpoints)."""
        return {
            ("GET", "/api/v2/orgs"): self._get_orgs,
            ("GET", "/api/v2/buckets"): self._get_buckets,
            ("POST", "/api/v2/buckets"): self._post_bucket,
            ("POST", "/api/v2/write"): self._write,
            ("POST", "/api/v2/query"): self._flux,
            ("GET", "/query"): self._influxql,
            ("POST", "/query"): self._influxql,
        }.get((request.method, request.path))

    # ---- tenant ----------------------------------------------------------------------------------------
    def _org_by_name(self, name: str) -> Reply | None:
        """tenant/service_org.go FindOrganization → tenant/error_org.go OrgNotFoundByName: 404 for an unknown name."""
        if name != self.org:
            return error(404, "not found", f'organization name "{name}" not found', indented=True)
        return None

    def _get_orgs(self, request: Recorded) -> Reply:
        """tenant/http_server_org.go handleGetOrgs: `?org=` → FindOrganizations by name, which is 404, not an
        empty list, when the name is unknown (tenant/service_org.go)."""
        name = request.param("org")
        if name:
            missing = self._org_by_name(name)
            if missing is not None:
                return missing
        return Reply(200, {"links": {"self": "/api/v2/orgs"},
                           "orgs": [{"id": self.org_id, "name": self.org, "description": ""}]})

    def _get_buckets(self, request: Recorded) -> Reply:
        """tenant/service_bucket.go FindBuckets: an org name that is unknown is 404; a name with an org goes
        through GetBucketByName, which is 404 `bucket "<name>" not found` (tenant/error_bucket.go
        ErrBucketNotFoundByName) when absent — never an empty list (also upstream issue #21134)."""
        org, org_id, name = request.param("org"), request.param("orgID"), request.param("name")
        if org_id and org_id != self.org_id:  # an unknown org id finds no bucket by that name either
            return error(404, "not found", f'bucket "{name}" not found', indented=True) if name else Reply(
                200, {"links": {"self": "/api/v2/buckets"}, "buckets": []})
        if org and not org_id:
            missing = self._org_by_name(org)
            if missing is not None:
                return missing
        with self.lock:
            if name:
                if name not in self.buckets:
                    return error(404, "not found", f'bucket "{name}" not found', indented=True)
                found = [self.buckets[name]]
            else:
                found = list(self.buckets.values())
        return Reply(200, {"links": {"self": "/api/v2/buckets"}, "buckets": [_bucket_json(b) for b in found]})

    def _post_bucket(self, request: Recorded) -> Reply:
        """tenant/http_server_bucket.go handlePostBucket: 201 with the bucket; an existing name is EConflict,
        which error_handler.go maps to 422 (tenant/error_bucket.go BucketAlreadyExistsError)."""
        body = request.json()
        if body.get("orgID") != self.org_id:
            return error(400, "invalid", "organization id must be provided", indented=True)
        with self.lock:
            if body["name"] in self.buckets:
                return error(422, "conflict", f"bucket with name {body['name']} already exists", indented=True)
            seconds = next((rule.get("everySeconds", 0) for rule in body.get("retentionRules") or []), 0)
            bucket = self.add_bucket(body["name"], seconds)
            bucket["description"] = body.get("description", "")
        return Reply(201, _bucket_json(bucket))

    # ---- write -----------------------------------------------------------------------------------------
    def _write(self, request: Recorded) -> Reply:
        """http/write_handler.go: unknown bucket → 404; a line that does not parse → 400 and NOTHING is written
        (points.Parser parses the whole body first); a field whose type differs from the stored one →
        tsdb.PartialWriteError → 422 "failure writing points to database: partial write: ... dropped=N", and
        the other points ARE written; all written → 204."""
        bucket = request.param("bucket") or ""
        org = request.param("org") or ""
        if org and org != self.org:
            return error(404, "not found", f'organization name "{org}" not found')
        if bucket not in self.buckets:
            return error(404, "not found", f'bucket "{bucket}" not found')
        scale = _PRECISION_NS.get(request.param("precision") or "ns")
        if scale is None:
            return error(400, "invalid", "invalid precision; valid precision units are ns, us, ms, and s")
        points, failed = [], []
        for number, line in enumerate(request.text().split("\n"), start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                point = parse_line(line, number)
            except LineProtocolError as exc:
                # models/points.go ParsePointsWithPrecision: every bad line, each in full, joined by "\n".
                failed.append(f"unable to parse '{line.strip()}': {exc.reason}")
                continue
            point.timestamp = point.timestamp * scale if point.timestamp is not None else time.time_ns()
            points.append(point)
        if failed:
            return error(400, "invalid", "\n".join(failed))
        conflicts: list[str] = []
        with self.lock:
            storage = self.store(bucket)
            for point in points:
                conflict = self._conflict(storage, point)
                if conflict:
                    conflicts.append(conflict)
                    continue
                for key, kind in point.field_types.items():
                    storage.store(point.measurement, point.tags, key, point.timestamp, kind, point.fields[key])
                self.points.setdefault(bucket, []).append(point)
                self.log.append((bucket, point))
        if len(conflicts) < len(points):
            self.written.append((bucket, request.text()))
        if conflicts:
            return error(422, "unprocessable entity", "failure writing points to database: partial write: "
                                                      f"{conflicts[0]} dropped={len(conflicts)}")
        return Reply(204)

    @staticmethod
    def _conflict(storage: Storage, point: ParsedPoint) -> str | None:
        """tsdb/field_validator.go against the point's shard (field types are kept per shard group: another type
        in another shard group is accepted, as a real server does)."""
        for key, kind in point.field_types.items():
            known = storage.kind(point.timestamp or 0, point.measurement, key)
            if known is not None and known != kind:
                return (f'field type conflict: input field "{key}" on measurement "{point.measurement}" is type '
                        f"{FIELD_TYPE_NAMES[kind]}, already exists as type {FIELD_TYPE_NAMES[known]}")
        return None

    # ---- queries ---------------------------------------------------------------------------------------
    def _flux(self, request: Recorded) -> Reply:
        """http/query_handler.go handleQuery + http/query.go: a JSON QueryRequest (or a raw application/vnd.flux
        body), its dialect's annotations (none unless asked for) and header; the answer is text/csv with
        flux csv/result.go's encoding. An error before any output is JSON with the error's status."""
        org = request.param("org")
        if org and org != self.org:
            return error(404, "not found", f'organization name "{org}" not found')
        if (request.header("content-type") or "").startswith("application/vnd.flux"):
            query, dialect = request.text(), {}
        else:
            body = request.json()
            query, dialect = body.get("query") or "", body.get("dialect") or {}
        annotations = dialect.get("annotations") or []
        unknown = [item for item in annotations if item not in ("group", "datatype", "default")]
        if unknown:
            return error(400, "invalid", "failed to decode request body: unknown dialect annotation type: "
                                         f"{unknown[0]}")
        try:
            with self.lock:
                tables = run_flux(query, {name: self.store(name) for name in self.storage})
        except NotModelled as exc:
            return Reply(501, f"not modelled by the stand-in: {exc}")
        except FluxError as exc:
            return error(exc.status, exc.code, str(exc))
        return Reply(200, encode_csv(tables, annotations, header=dialect.get("header", True) is not False),
                     {"Content-Type": "text/csv; charset=utf-8"})

    def _influxql(self, request: Recorded) -> Reply:
        """The v1 `/query` endpoint: `db` (and `rp`) name a bucket through its virtual DBRP mapping
        (dbrp/service.go bucketToMapping: database = the name before '/', retention policy after it or
        "autogen"); `q` from the query string or a form body; times as ns with epoch=ns."""
        params = {key: values[0] for key, values in request.query.items()}
        if "form" in (request.header("content-type") or ""):
            params.update({key: values[0] for key, values in parse_qs(request.text()).items()})
        if params.get("epoch") != "ns":
            return Reply(501, "not modelled by the stand-in: InfluxQL without epoch=ns")
        database, policy = params.get("db", ""), params.get("rp", "")
        bucket = database if policy in ("", "autogen") else f"{database}/{policy}"
        try:
            with self.lock:
                body = run_influxql(params.get("q", ""), self.store(bucket) if bucket in self.storage else None)
        except NotModelled as exc:
            return Reply(501, f"not modelled by the stand-in: {exc}")
        return Reply(200, influxql_json(body), {"Content-Type": "application/json"})
