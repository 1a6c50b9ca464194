"""The InfluxDB 2 calls influxdb2-init makes, through the official `influxdb-client`, with the server's semantics.

Read in the server's source (influxdata/influxdb v2.9.1, the pinned image; the same in v2.7.12):
- A token holds exactly the permissions it was created with (auth.go Authorization.PermissionSet); a
  permission names an action (read, write) and a resource (type `buckets`, the bucket id and org id; authz.go).
- POST /api/v2/authorizations takes orgID, description and permissions and answers the new token once
  (authorization/http_server.go); no request can name the token, and GET /api/v2/authorizations filters by user,
  org and id only, so tokens are found again by description here. v2.9 stores only a hash of each token
  (`--use-hashed-tokens`, on by default; authorization/storage_authorization.go) and lists them with an empty
  `token`; v2.7 lists them in clear. Nothing here reads a listed token, so both behave the same.
- A token's bucket list is filtered by its read permissions (authorizer/bucket.go FindBuckets): with read on the
  stack's buckets only, GET /api/v2/buckets answers exactly those; with write only, none.
- POST /api/v2/write checks the write permission before it reads the body (http/write_handler.go
  checkBucketWritePermissions): an empty body to a bucket it may write answers 204 and writes nothing; 403
  "insufficient permissions for write" otherwise; 401 for a token the server does not know.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, TypeVar

import urllib3.exceptions
from influxdb_client import (
    Authorization,
    BucketRetentionRules,
    InfluxDBClient,
    Permission,
    PermissionResource,
    PostBucketRequest,
)
from influxdb_client.rest import ApiException
from influxdb_client.service.authorizations_service import AuthorizationsService
from influxdb_client.service.buckets_service import BucketsService
from influxdb_client.service.organizations_service import OrganizationsService
from influxdb_client.service.write_service import WriteService

from common.retry import RETRY_STATUSES, RetryableError, RetryPolicy, call_with_retry

__all__ = ["InfluxDB2Setup", "InitError", "PermissionKey", "permission_keys"]

log = logging.getLogger("influxdb2-init")
T = TypeVar("T")
PermissionKey = tuple[str, str, str, str]  # action, resource type, id, org id

_AUTH_HINT = ("InfluxDB 2 rejected INFLUXDB2_TOKEN (HTTP {status}: {message}). The server keeps the operator token "
              "of its first setup: INFLUXDB2_ADMIN_TOKEN in .env must be that token (README, 'Troubleshooting').")


class InitError(RuntimeError):
    """Setup cannot go on; the message says what failed and what to do."""


def permission_keys(permissions: Sequence[Permission] | None) -> set[PermissionKey]:
    """A comparable form of a token's permissions (the server answers them with names added)."""
    return {(p.action, p.resource.type, p.resource.id or "", p.resource.org_id or "") for p in permissions or []}


def _message(exc: ApiException) -> str:
    body = exc.body.decode("utf-8", "replace") if isinstance(exc.body, bytes) else exc.body
    return str(getattr(exc, "message", None) or body or exc.reason or "")


class InfluxDB2Setup:
    """The operator's view of one InfluxDB 2 org: buckets and authorizations."""

    def __init__(self, url: str, token: str, org: str, *, timeout: float = 30.0, attempts: int = 6,
                 sleep: Callable[[float], None] | None = None):
        self.url, self.org, self.timeout = url, org, timeout
        self.policy = RetryPolicy(attempts=attempts, base=1.0, cap=20.0)
        self._sleep = sleep
        self.client = self._client(token)
        self._orgs = OrganizationsService(self.client.api_client)
        self._buckets = BucketsService(self.client.api_client)
        self._auths = AuthorizationsService(self.client.api_client)

    def _client(self, token: str) -> InfluxDBClient:
        return InfluxDBClient(url=self.url, token=token, org=self.org, timeout=int(self.timeout * 1000))

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """`fn`, retried while the server is starting or overloaded; a refusal raises InitError naming `what`."""
        def attempt() -> T:
            try:
                return fn()
            except ApiException as exc:
                if exc.status in RETRY_STATUSES:
                    raise RetryableError(f"{what}: HTTP {exc.status} {_message(exc)}", status=exc.status) from None
                if exc.status in (401, 403) and what.startswith("operator"):
                    raise InitError(_AUTH_HINT.format(status=exc.status, message=_message(exc))) from None
                raise
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise RetryableError(f"{what}: cannot reach InfluxDB 2 at {self.url} ({exc})") from None

        def on_retry(number: int, exc: RetryableError, delay: float) -> None:
            log.warning("%s; retrying in %.1fs", exc, delay)

        extra: dict[str, Any] = {"sleep": self._sleep} if self._sleep else {}
        try:
            return call_with_retry(attempt, self.policy, on_retry=on_retry, **extra)
        except RetryableError as exc:
            raise InitError(str(exc)) from None

    # ---- org and buckets -------------------------------------------------------------------------------
    def org_id(self) -> str:
        """The org's id; an unknown name is 404 (tenant/service_org.go FindOrganization, OrgNotFoundByName)."""
        try:
            orgs = self._call("operator: look up the org", lambda: self._orgs.get_orgs(org=self.org)).orgs or []
        except ApiException as exc:
            if exc.status == 404:
                raise InitError(f"InfluxDB 2 has no organization {self.org!r}; set INFLUXDB2_ORG to the org the "
                                "server was set up with") from None
            raise InitError(f"cannot look up organization {self.org!r}: HTTP {exc.status} {_message(exc)}") from None
        if not orgs:
            raise InitError(f"InfluxDB 2 has no organization {self.org!r}")
        return orgs[0].id

    def bucket_id(self, org_id: str, name: str) -> str | None:
        """A bucket's id, None when it does not exist (a by-name lookup that finds nothing is 404:
        tenant/service_bucket.go FindBuckets → ErrBucketNotFoundByName)."""
        try:
            found = self._call(f"operator: look up bucket {name}",
                               lambda: self._buckets.get_buckets(name=name, org_id=org_id)).buckets or []
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise InitError(f"cannot look up bucket {name!r}: HTTP {exc.status} {_message(exc)}") from None
        return found[0].id if found else None

    def ensure_bucket(self, org_id: str, name: str, description: str, retention: timedelta | None) -> tuple[str, str]:
        """(id, "created" | "exists"). An existing bucket is left as it is; a differing retention is reported."""
        try:
            found = self._call(f"operator: look up bucket {name}",
                               lambda: self._buckets.get_buckets(name=name, org_id=org_id)).buckets or []
        except ApiException as exc:
            if exc.status != 404:
                raise InitError(f"cannot look up bucket {name!r}: HTTP {exc.status} {_message(exc)}") from None
            found = []
        wanted = int(retention.total_seconds()) if retention else 0
        if found:
            current = next((rule.every_seconds for rule in found[0].retention_rules or [] if rule.type == "expire"),
                           0) or 0
            if current != wanted:
                log.warning("bucket %r keeps its retention of %s (the buckets file asks for %s)", name,
                            f"{current}s" if current else "forever", f"{wanted}s" if wanted else "forever")
            return found[0].id, "exists"
        rules = [BucketRetentionRules(type="expire", every_seconds=wanted)] if wanted else []
        request = PostBucketRequest(org_id=org_id, name=name, description=description, retention_rules=rules)
        try:
            created = self._call(f"operator: create bucket {name}", lambda: self._buckets.post_buckets(request))
        except ApiException as exc:
            if exc.status == 422 and "already exists" in _message(exc):  # created meanwhile (EConflict is 422)
                bucket_id = self.bucket_id(org_id, name)
                if bucket_id:
                    return bucket_id, "exists"
            raise InitError(f"cannot create bucket {name!r}: HTTP {exc.status} {_message(exc)}") from None
        return created.id, "created"

    # ---- authorizations --------------------------------------------------------------------------------
    def authorizations(self, org_id: str, description: str) -> list[Authorization]:
        """The org's authorizations with this exact description (the server cannot filter by it)."""
        try:
            found = self._call("operator: list authorizations",
                               lambda: self._auths.get_authorizations(org_id=org_id)).authorizations or []
        except ApiException as exc:
            raise InitError(f"cannot list authorizations: HTTP {exc.status} {_message(exc)}") from None
        return [auth for auth in found if auth.description == description]

    def create(self, org_id: str, description: str, permissions: list[Permission]) -> Authorization:
        """A new active token; its `token` is in this answer only."""
        body = Authorization(org_id=org_id, description=description, permissions=permissions, status="active")
        try:
            created = self._call(f"operator: create the token {description!r}",
                                 lambda: self._auths.post_authorizations(authorization_post_request=body))
        except ApiException as exc:
            raise InitError(f"cannot create the token {description!r}: HTTP {exc.status} {_message(exc)}") from None
        if not created.token:
            raise InitError(f"InfluxDB 2 created the token {description!r} but did not answer it")
        return created

    def delete(self, auth_id: str) -> bool:
        """Revoke an authorization; False when it is already gone."""
        try:
            self._call(f"operator: delete authorization {auth_id}",
                       lambda: self._auths.delete_authorizations_id(auth_id=auth_id))
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise InitError(f"cannot delete authorization {auth_id}: HTTP {exc.status} {_message(exc)}") from None
        return True

    # ---- a service's token, from the service's side ----------------------------------------------------
    def probe(self, token: str, org_id: str, read: Sequence[str], write: Sequence[str]) -> str | None:
        """None when `token` authenticates and answers as read/write say; else why not (never the token).

        Read: the buckets it lists must be exactly `read`. Write: an empty write to each bucket of `write` must
        be accepted (204, nothing written)."""
        client = self._client(token)
        try:
            buckets = BucketsService(client.api_client)
            try:
                listed = self._call("probe: list buckets",
                                    lambda: buckets.get_buckets(org_id=org_id, limit=100)).buckets or []
            except ApiException as exc:
                if exc.status == 401:
                    return "the server does not know its token (or it is inactive)"
                return f"listing buckets with it answered HTTP {exc.status} {_message(exc)}"
            names = sorted(bucket.name for bucket in listed)
            if names != sorted(read):
                return f"it reads the buckets {names}, not {sorted(read)}"
            writes = WriteService(client.api_client)
            for name in write:
                try:
                    self._call(f"probe: write to {name}",
                               lambda name=name: writes.post_write(org=self.org, bucket=name, body=b""))
                except ApiException as exc:
                    return f"an empty write to {name} answered HTTP {exc.status} {_message(exc)}"
            return None
        finally:
            client.close()

    def close(self) -> None:
        self.client.close()


def bucket_permissions(org_id: str, action: str, bucket_ids: Sequence[str]) -> list[Permission]:
    return [Permission(action=action, resource=PermissionResource(type="buckets", id=bucket_id, org_id=org_id))
            for bucket_id in bucket_ids]
