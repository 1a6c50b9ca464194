"""influxdb3-init's configuration, from the environment (secrets also from `_FILE`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from common.config import Env
from common.retention import RAW_RETENTION_VARIABLE
from common.retention import from_env as raw_retention_from_env


@dataclass(frozen=True)
class InitConfig:
    url: str
    token: str
    provision_file: Path
    plugin_dir: Path
    http_timeout: float
    install_timeout: float
    retry_attempts: int
    bootstrap_timeout: float
    recreate_triggers: bool
    plugin_repo: str | None = None
    raw_retention: timedelta | None = None  # what `retention: raw` in the provisioning file stands for
    force_retention: bool = False  # set it on a live database that holds older rows (they are hidden at once)

    @classmethod
    def from_env(cls, env: Env, *, need_token: bool = True) -> InitConfig:
        """Read every setting, then raise one ConfigError listing all problems."""
        provision_file = env.path("PROVISION_FILE", "/plugins/provision.yaml")
        raw = raw_retention_from_env(env)
        config = cls(
            url=env.url("INFLUXDB3_URL", "http://influxdb3:8181") or "",
            token=(env.secret("INFLUXDB3_TOKEN") if need_token else env.secret("INFLUXDB3_TOKEN", "")) or "",
            provision_file=provision_file or Path("/plugins/provision.yaml"),
            plugin_dir=env.path("PLUGIN_DIR", str((provision_file or Path("/plugins/x")).parent)) or Path("/plugins"),
            http_timeout=(env.duration("INFLUXDB3_HTTP_TIMEOUT", "30s") or timedelta(seconds=30)).total_seconds(),
            install_timeout=(env.duration("PACKAGE_INSTALL_TIMEOUT", "30m") or timedelta(minutes=30)).total_seconds(),
            bootstrap_timeout=(env.duration("BOOTSTRAP_TIMEOUT", "10m") or timedelta(minutes=10)).total_seconds(),
            retry_attempts=env.int("INFLUXDB3_RETRY_ATTEMPTS", 6, min=1, max=100) or 6,
            recreate_triggers=bool(env.bool("PROVISION_RECREATE_TRIGGERS", False)),
            # The server's own --plugin-repo variable: init only names the URL a gh: plugin is fetched from.
            plugin_repo=env.str("INFLUXDB3_PLUGIN_REPO", None) or None,
            raw_retention=raw,
            force_retention=bool(env.bool(f"{RAW_RETENTION_VARIABLE}_FORCE", False)),
        )
        env.finish()
        return config
