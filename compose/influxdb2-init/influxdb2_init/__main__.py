"""`python -m influxdb2_init`: the ingest's buckets and every service's InfluxDB 2 token (idempotent).

Exit codes: 0 done; 1 the server refused or failed; 2 the configuration or the buckets file is invalid.
The last line names what happened to each token (`tokens: grafana kept, ingest replaced`); `make up` restarts a
service whose token was replaced (compose/stack.py).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from common.config import ConfigError, Env
from common.logs import setup_logging
from influxdb2_init.config import InitConfig
from influxdb2_init.server import InfluxDB2Setup, InitError
from influxdb2_init.tokens import ensure_token
from ingest.buckets import load_buckets


def main(argv: Sequence[str] | None = None, environ: dict[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="influxdb2-init", description=__doc__)
    parser.parse_args(argv)
    log = setup_logging("influxdb2-init")
    try:
        config = InitConfig.from_env(Env(environ))
    except ConfigError as exc:
        for problem in exc.problems:
            log.error("configuration: %s", problem)
        return 2
    try:
        specs = load_buckets(config.buckets_file, config.raw_retention)
    except ValueError as exc:
        log.error("INGEST_BUCKETS_FILE: %s", exc)
        return 2

    server = InfluxDB2Setup(config.url, config.token, config.org, timeout=config.http_timeout,
                            attempts=config.retry_attempts)
    try:
        org_id = server.org_id()
        bucket_ids: dict[str, str] = {}
        done = []
        for spec in specs:
            bucket_ids[spec.name], outcome = server.ensure_bucket(org_id, spec.name, spec.description, spec.retention)
            done.append(f"{spec.name} {outcome}")
            log.info("bucket %s %s", spec.name, outcome)
        for name in config.grafana.read:
            if name not in bucket_ids:
                found = server.bucket_id(org_id, name)
                if found is None:
                    raise InitError(f"GRAFANA_INFLUXDB2_BUCKETS names bucket {name!r}, which InfluxDB 2 does not have "
                                    f"(the buckets file {config.buckets_file} creates "
                                    f"{', '.join(s.name for s in specs)})")
                bucket_ids[name] = found
        tokens = [config.grafana, config.ingest(tuple(spec.name for spec in specs))]
        outcomes = [f"{spec.service} {ensure_token(server, spec, org_id, bucket_ids)}" for spec in tokens]
    except InitError as exc:
        log.error("%s", exc)
        return 1
    finally:
        server.close()
    log.info("buckets: %s", ", ".join(done))
    log.info("tokens: %s", ", ".join(outcomes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
