"""A loopback stand-in for the InfluxDB 2 HTTP API our services use, answering as the server's source does.

Source read: influxdata/influxdb tag v2.7.12, checked against v2.9.1 (the pinned image) where noted; each
behaviour names the file it mirrors. Errors are `{"code": ..., "message": ...}` JSON with the status
`kit/transport/http/error_handler.go` maps the code to (invalid → 400, unprocessable entity and conflict →
422, not found → 404, unauthorized → 401, forbidden → 403).

Tokens and permissions (the stack gives each service its own token: compose/influxdb2-init): besides the operator
token, `POST/GET /api/v2/authorizations` and `DELETE /api/v2/authorizations/{id}` make, list and revoke tokens whose
permissions are checked as the server checks them — authz.go Permission.Matches (an action on a resource type, in an
org, at an id or at all ids), auth.go Authorization.PermissionSet (exactly the token's permissions, none when it is
inactive). Each refusal is the server's own answer, named where it is made: the tenant handlers answer 401
"<action>:orgs/<org>/buckets[/<id>] is unauthorized" (authorizer/authorize.go, tab-indented JSON); a by-name bucket or
org lookup finds nothing it may not read (authorizer/bucket.go, org.go filter FindBuckets/FindOrganizations); a write
or delete without write is 403 (http/write_handler.go, http/delete_handler.go, checked before the body is read); Flux
cannot find a bucket it may not read and refuses to() without write (query/stdlib/influxdata/influxdb/operators.go,
provider.go). v2.9 lists tokens with an empty `token` (hashed, --use-hashed-tokens); v2.7 lists them in clear.

Use an `InfluxDB2` as a RecordingServer responder. Tests script outages with `fail_next` and read what was
written from `points`. Backup and restore endpoints are added by tests/backup/influxdb2_api.py. What was written
can be read back with the Flux and InfluxQL queries `python -m ingest migrate` sends (tests/support/
influxdb2_query.py), from a store that keeps field types per shard group as the server does.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
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
    # token -> authorization (id, description, orgID, userID, status, permissions) of every non-operator token
    authorizations: dict[str, dict[str, Any]] = field(default_factory=dict)
    user: str = "admin"
    user_id: str = "0a0a0a0a0a0a0a0a"
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
        """The token is the operator's or an active one of `authorizations` (auth.go: an inactive token has no
        permission set, so every request with it is 401)."""
        if request.header("authorization") == f"Token {self.token}":
            return True
        auth = self.authorizations.get(_token_of(request))
        return auth is not None and auth["status"] == "active"

    def permissions(self, request: Recorded) -> list[dict[str, Any]] | None:
        """The request's permissions: None for the operator token (every permission), else its authorization's."""
        auth = self.authorizations.get(_token_of(request))
        return None if auth is None else auth["permissions"]

    def allowed(self, request: Recorded, action: str, kind: str, resource_id: str | None) -> bool:
        """authz.go Permission.Matches: same action and type; a permission without org and id matches every one,
        with an org only every resource of that org, with an id that resource."""
        held = self.permissions(request)
        if held is None:
            return True
        for permission in held:
            resource = permission["resource"]
            if permission["action"] != action or resource.get("type") != kind:
                continue
            if resource.get("id") is None and resource.get("orgID") in (None, self.org_id):
                return True
            if resource.get("id") is not None and resource_id is not None and resource["id"] == resource_id:
                return True
        return False

    def add_authorization(self, description: str, permissions: list[dict[str, Any]], *,
                          org_id: str | None = None) -> dict[str, Any]:
        """A token as POST /api/v2/authorizations makes it (authorization/service.go: 64 random bytes, base64)."""
        auth_id = f"{0xA000000000000000 + self._next_id:016x}"
        self._next_id += 1
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")
        auth = {"id": auth_id, "token": secrets.token_urlsafe(64), "status": "active", "description": description,
                "orgID": org_id or self.org_id, "userID": self.user_id, "permissions": permissions,
                "createdAt": now, "updatedAt": now}
        self.authorizations[auth["token"]] = auth
        return auth

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
        if handler is None and request.method == "DELETE" and request.path.startswith("/api/v2/authorizations/"):
            handler = self._delete_authorization
        if handler is None and request.method == "DELETE" and request.path.startswith("/api/v2/buckets/"):
            handler = self._delete_bucket
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
            ("POST", "/api/v2/delete"): self._delete,
            ("GET", "/api/v2/authorizations"): self._get_authorizations,
            ("POST", "/api/v2/authorizations"): self._post_authorization,
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
        # authorizer/org.go FindOrganizations: only the orgs the token may read (a bucket token reads none).
        orgs = [{"id": self.org_id, "name": self.org, "description": ""}] \
            if self.allowed(request, "read", "orgs", self.org_id) else []
        return Reply(200, {"links": {"self": "/api/v2/orgs"}, "orgs": orgs})

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
        # authorizer/bucket.go FindBuckets: only what the token may read (by name too: an empty list, not 404).
        found = [bucket for bucket in found if self.allowed(request, "read", "buckets", bucket["id"])]
        return Reply(200, {"links": {"self": "/api/v2/buckets"}, "buckets": [_bucket_json(b) for b in found]})

    def _post_bucket(self, request: Recorded) -> Reply:
        """tenant/http_server_bucket.go handlePostBucket: 201 with the bucket; an existing name is EConflict,
        which error_handler.go maps to 422 (tenant/error_bucket.go BucketAlreadyExistsError)."""
        body = request.json()
        if body.get("orgID") != self.org_id:
            return error(400, "invalid", "organization id must be provided", indented=True)
        if not self.allowed(request, "write", "buckets", None):  # authorizer/bucket.go CreateBucket
            return error(401, "unauthorized", f"write:orgs/{self.org_id}/buckets is unauthorized", indented=True)
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
        if not self.allowed(request, "write", "buckets", self.buckets[bucket]["id"]):
            return error(403, "forbidden", "insufficient permissions for write")  # checkBucketWritePermissions
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
        refused = self._flux_access(request, query)
        if refused is not None:
            return refused
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

    def _flux_access(self, request: Recorded, query: str) -> Reply | None:
        """Flux reads a bucket only through a lookup the token may read (query/stdlib/influxdata/influxdb/operators.go:
        `could not find bucket` otherwise, 404), and to() needs that lookup too, then write (provider.go: 403 "user not
        authorized to write"); both fail when the execute state is initialized, before any row. A to() that is
        allowed is not modelled (501)."""
        state = "failed to initialize execute state: "
        for name in _FROM.findall(query) + _TO.findall(query):
            bucket = self.buckets.get(name)
            if bucket is None or not self.allowed(request, "read", "buckets", bucket["id"]):
                return error(404, "not found", f'{state}could not find bucket "{name}"')
        for name in _TO.findall(query):
            if not self.allowed(request, "write", "buckets", self.buckets[name]["id"]):
                return error(403, "forbidden", state + "user not authorized to write")
        if _TO.findall(query):
            return Reply(501, "not modelled by the stand-in: Flux to()")
        return None

    # ---- deletes -------------------------------------------------------------------------------------------
    def _delete(self, request: Recorded) -> Reply:
        """http/delete_handler.go: the bucket by name (404), then write permission on it (403 "insufficient
        permissions to delete"), then the range; a range that holds points is not modelled (501)."""
        bucket = request.param("bucket") or ""
        if bucket not in self.buckets:
            return error(404, "not found", f'bucket "{bucket}" not found')
        if not self.allowed(request, "write", "buckets", self.buckets[bucket]["id"]):
            return error(403, "forbidden", "insufficient permissions to delete")
        body = request.json()
        start, stop = (int(datetime.fromisoformat(body[key].replace("Z", "+00:00")).timestamp() * 10**9)
                       for key in ("start", "stop"))
        if any(start <= (point.timestamp or 0) < stop for point in self.points.get(bucket, [])):
            return Reply(501, "not modelled by the stand-in: deleting points")
        return Reply(204)

    def _delete_bucket(self, request: Recorded) -> Reply:
        """tenant/http_server_bucket.go through authorizer/bucket.go DeleteBucket: write on the bucket (write on a
        bucket is also the right to delete it: InfluxDB 2 has nothing finer)."""
        bucket_id = request.path.rsplit("/", 1)[-1]
        name = next((name for name, bucket in self.buckets.items() if bucket["id"] == bucket_id), None)
        if name is None:
            return error(404, "not found", "bucket not found", indented=True)
        if not self.allowed(request, "write", "buckets", bucket_id):
            return error(401, "unauthorized", f"write:orgs/{self.org_id}/buckets/{bucket_id} is unauthorized",
                         indented=True)
        with self.lock:
            del self.buckets[name]
            self.storage.pop(name, None)
        return Reply(204)

    # ---- authorizations ------------------------------------------------------------------------------------
    def _auth_json(self, auth: dict[str, Any], *, listed: bool) -> dict[str, Any]:
        """authorization/http_server.go newAuthResponse: names added to each permission's resource; a listed token
        is empty when the server keeps hashes (v2.9) and in clear before (v2.7)."""
        permissions = []
        for permission in auth["permissions"]:
            resource = dict(permission["resource"])
            bucket = next((b for b in self.buckets.values() if b["id"] == resource.get("id")), None)
            if resource.get("type") == "buckets" and bucket is not None:
                resource["name"] = bucket["name"]
            if resource.get("orgID") == self.org_id and (bucket is not None or resource.get("id") is None):
                resource["org"] = self.org
            permissions.append({"action": permission["action"], "resource": resource})
        hashed = listed and not self.version.startswith("v2.7")
        return {"id": auth["id"], "token": "" if hashed else auth["token"], "status": auth["status"],
                "description": auth["description"], "orgID": auth["orgID"], "org": self.org,
                "userID": auth["userID"], "user": self.user, "permissions": permissions,
                "links": {"self": f"/api/v2/authorizations/{auth['id']}", "user": f"/api/v2/users/{auth['userID']}"},
                "createdAt": auth["createdAt"], "updatedAt": auth["updatedAt"]}

    def _post_authorization(self, request: Recorded) -> Reply:
        """handlePostAuthorization: decodePostAuthorizationRequest's Validate (permissions first, then the org id),
        then the authorizer's own rights: only the operator token is modelled as a creator (a bucket token may not
        write authorizations: 401, authorizer/authorize.go)."""
        body = request.json()
        permissions = body.get("permissions") or []
        if not permissions:
            return error(400, "invalid", "authorization must include permissions", indented=True)
        if not body.get("orgID"):
            return error(400, "invalid", "org id required", indented=True)
        if self.permissions(request) is not None:
            return error(401, "unauthorized", f"write:orgs/{body['orgID']}/authorizations is unauthorized",
                         indented=True)
        clean = [{"action": p["action"], "resource": {k: v for k, v in p["resource"].items()
                                                      if k in ("type", "id", "orgID")}} for p in permissions]
        with self.lock:
            auth = self.add_authorization(body.get("description", ""), clean, org_id=body["orgID"])
            auth["status"] = body.get("status") or "active"
        return Reply(201, self._auth_json(auth, listed=False), {"Content-Type": "application/json; charset=utf-8"})

    def _get_authorizations(self, request: Recorded) -> Reply:
        """handleGetAuthorizations with `orgID`: every authorization the token may read (authorizer/auth.go), the
        operator's own included; a bucket token reads none. Only the stand-in's own tokens are listed."""
        org_id = request.param("orgID")
        found = [] if self.permissions(request) is not None else [
            self._auth_json(auth, listed=True) for auth in self.authorizations.values()
            if org_id in (None, "", auth["orgID"])]
        return Reply(200, {"links": {"self": "/api/v2/authorizations"}, "authorizations": found})

    def _delete_authorization(self, request: Recorded) -> Reply:
        """handleDeleteAuthorization: 204; an unknown id is 404 "authorization not found" (authorization/error.go)."""
        auth_id = request.path.rsplit("/", 1)[-1]
        if self.permissions(request) is not None:
            return error(401, "unauthorized", f"write:authorizations/{auth_id} is unauthorized", indented=True)
        with self.lock:
            token = next((token for token, auth in self.authorizations.items() if auth["id"] == auth_id), None)
            if token is None:
                return error(404, "not found", "authorization not found", indented=True)
            del self.authorizations[token]
        return Reply(204)


_FROM = re.compile(r'\bfrom\(\s*bucket:\s*"([^"]+)"')
_TO = re.compile(r'\bto\(\s*bucket:\s*"([^"]+)"')


def _token_of(request: Recorded) -> str:
    header = request.header("authorization") or ""
    return header[len("Token "):] if header.startswith("Token ") else ""
