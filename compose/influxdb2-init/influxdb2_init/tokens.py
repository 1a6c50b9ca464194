"""One service's token, made to match its spec: kept while it works, else created anew and the old one revoked.

A token can be read only when it is created (InfluxDB 2.9 keeps its hash), so the file is the only copy. Kept
when the file holds a token that the server still accepts and that answers exactly as the spec says, and exactly
one authorization carries the spec's description with the spec's permissions. Otherwise: a new token is created,
written to the file (atomically, 0600, the service's uid), and then every older authorization with that
description is deleted, so a lost or leaked file never leaves a working token behind.
"""

from __future__ import annotations

import logging
from enum import StrEnum

from influxdb2_init.config import TokenSpec
from influxdb2_init.secretfile import read_secret, write_secret
from influxdb2_init.server import InfluxDB2Setup, bucket_permissions, permission_keys

__all__ = ["Outcome", "ensure_token"]

log = logging.getLogger("influxdb2-init")


class Outcome(StrEnum):
    KEPT = "kept"
    CREATED = "created"  # there was none: no file and no authorization with its description
    REPLACED = "replaced"  # a new token took the place of one that existed (the service must restart)


def ensure_token(server: InfluxDB2Setup, spec: TokenSpec, org_id: str, bucket_ids: dict[str, str]) -> Outcome:
    """Make `spec`'s token exist and work; `bucket_ids` maps every bucket it names to its id."""
    wanted = (bucket_permissions(org_id, "read", [bucket_ids[name] for name in spec.read])
              + bucket_permissions(org_id, "write", [bucket_ids[name] for name in spec.write]))
    existing = server.authorizations(org_id, spec.description)
    current = read_secret(spec.file)
    reason = None
    if current is None:
        reason = f"{spec.file} is missing or empty"
    else:
        reason = server.probe(current, org_id, spec.read, spec.write)
        if reason is None and len(existing) != 1:
            reason = f"{len(existing)} authorizations are described {spec.description!r}, expected 1"
        elif reason is None and permission_keys(existing[0].permissions) != permission_keys(wanted):
            reason = "its permissions differ from what it needs now"
    if reason is None:
        log.info("%s token kept (%s): it works and has only the access it needs", spec.service, spec.description)
        return Outcome.KEPT
    outcome = Outcome.CREATED if current is None and not existing else Outcome.REPLACED
    created = server.create(org_id, spec.description, wanted)
    write_secret(spec.file, created.token, spec.owner)
    revoked = sum(server.delete(old.id) for old in existing)
    if outcome is Outcome.CREATED:
        log.info("%s token created (%s), written to %s (mode 0600)", spec.service, spec.description, spec.file)
    else:
        log.warning("%s token replaced because %s: a new one is in %s (mode 0600), %d old authorization(s) with its "
                    "description deleted", spec.service, reason, spec.file, revoked)
        if current is not None and not existing:
            log.warning("the token that was in %s was not found by its description; if it still works, delete it "
                        "with `influx auth list` / `influx auth delete --id ...`", spec.file)
    return outcome
