"""`python -m influxdb3_init [--check] [--file F]`: provision InfluxDB 3 from the plugins' file.

Exit codes: 0 provisioned (or, with --check, the file is valid); 1 the server refused or failed;
2 the configuration or the provisioning file is invalid.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from common.config import ConfigError, Env
from common.logs import setup_logging
from influxdb3_init.client import InfluxDB3Admin, ProvisionError
from influxdb3_init.config import InitConfig
from influxdb3_init.provision import provision
from influxdb3_init.spec import SpecError, load_provision


def main(argv: Sequence[str] | None = None, environ: dict[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="influxdb3-init", description=__doc__)
    parser.add_argument("--check", action="store_true", help="validate the provisioning file and exit")
    parser.add_argument("--file", type=Path, help="provisioning file (default: $PROVISION_FILE)")
    args = parser.parse_args(argv)
    log = setup_logging("influxdb3-init")

    try:
        config = InitConfig.from_env(Env(environ), need_token=not args.check)
    except ConfigError as exc:
        for problem in exc.problems:
            log.error("configuration: %s", problem)
        return 2
    source = args.file or config.provision_file
    plugin_dir = config.plugin_dir if args.file is None else args.file.parent
    try:
        spec = load_provision(source, plugin_dir)
    except SpecError as exc:
        log.error("%s is invalid:", source)
        for problem in exc.problems:
            log.error("  %s", problem)
        return 2
    log.info("%s: %d databases, %d tables, %d packages, %d triggers, %d bootstrap requests", source,
             len(spec.databases), len(spec.tables), len(spec.packages), len(spec.triggers), len(spec.bootstrap))
    if args.check:
        return 0

    admin = InfluxDB3Admin(config.url, config.token, timeout=config.http_timeout,
                           install_timeout=config.install_timeout, attempts=config.retry_attempts)
    try:
        summary = provision(spec, admin, recreate_triggers=config.recreate_triggers,
                            bootstrap_timeout=config.bootstrap_timeout, plugin_repo=config.plugin_repo,
                            raw_retention=config.raw_retention, force_retention=config.force_retention)
    except ProvisionError as exc:
        log.error("provisioning failed: %s", exc)
        return 1
    log.info("provisioning finished: %s", summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
