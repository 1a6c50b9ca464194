"""`python -m backup.buckets`: create the buckets the stack's optional S3 server holds (the `seaweedfs-init`
one-shot), so InfluxDB 3 (INFLUXDB3_BUCKET) and the off-host backups (BACKUP_S3_BUCKET) find them on first start.

Idempotent: a bucket that exists (BucketAlreadyOwnedByYou) is left as it is. Settings: S3_ENDPOINT, S3_BUCKETS
(comma-separated), S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY (or their _FILE), S3_REGION. Exit 0 when every
bucket exists, 1 (with the setting named) when not, 2 on bad settings.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Mapping

from backup.config import BUCKET_NAME
from backup.remote import Remote, RemoteConfig, RemoteError
from common.config import ConfigError, Env
from common.logs import setup_logging

log = logging.getLogger("backup.buckets")


def ensure_buckets(environ: Mapping[str, str], *, wait: float = 120.0) -> list[str]:
    """Create each bucket of S3_BUCKETS that is missing (waiting up to `wait` s for the server); returns those
    created."""
    env = Env(environ)
    endpoint = env.url("S3_ENDPOINT")
    names = env.list("S3_BUCKETS") or []
    access, secret = env.secret("S3_ACCESS_KEY_ID"), env.secret("S3_SECRET_ACCESS_KEY")
    region = env.str("S3_REGION", "us-east-1")
    for name in names:
        if not BUCKET_NAME.match(name):
            env.problems.append(f"S3_BUCKETS: {name!r} is not an S3 bucket name")
    env.finish()
    created = []
    for name in names:
        remote = Remote(RemoteConfig(bucket=name, endpoint=endpoint, region=region or "us-east-1",
                                     access_key_id=access, secret_access_key=secret))
        deadline = time.monotonic() + wait
        while True:
            try:
                if remote.create_bucket():
                    created.append(name)
                break
            except RemoteError as exc:
                if "cannot reach" not in str(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(2)
    return created


def main() -> int:
    setup_logging("seaweedfs-init")
    try:
        created = ensure_buckets(os.environ)
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    except RemoteError as exc:
        log.error("%s", str(exc).replace("BACKUP_S3_", "S3_"))
        return 1
    log.info("buckets ready (created: %s)", ", ".join(created) or "none, all existed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
