"""The alerting files as the Grafana container reads them: every `${VAR}` given by docker-compose.yml, the contact
points valid with nothing configured, and the policy routing each severity to the configured destinations only.

Interpolation is Grafana's (pkg/services/provisioning/values/values.go interpolateValue: `$$` is a literal `$`,
the rest goes through Go's os.ExpandEnv, so an unset variable becomes empty) over the environment the real
Compose binary resolves for a generated .env.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from grafana.alerting import build
from grafana.alerting.notifications import CONTACTS, DEFAULT_RECEIVER
from tests.stack.conftest import make_env
from tests.support.compose import resolved_config
from tests.support.paths import REPO

ALERTING = REPO / "grafana" / "provisioning" / "alerting"
EXPAND = re.compile(r"\$\{([^}]*)\}|\$([A-Za-z0-9_]+)")


def expand_env(text: str, environment: dict[str, str]) -> str:
    """values.go interpolateValue: split on `$$`, os.ExpandEnv each part, join with `$`."""
    return "$".join(EXPAND.sub(lambda m: environment.get(m.group(1) or m.group(2), ""), part)
                    for part in text.split("$$"))


def interpolated(value: Any, environment: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {key: interpolated(item, environment) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolated(item, environment) for item in value]
    return expand_env(value, environment) if isinstance(value, str) else value


def grafana_reads(env_file: Path) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
    """(Grafana's environment, contact points file, policy) as the container interpolates them."""
    grafana = resolved_config(env_file)["services"]["grafana"]
    environment = {key: "" if value is None else str(value) for key, value in grafana["environment"].items()}
    points = interpolated(yaml.safe_load((ALERTING / build.CONTACT_POINTS_FILE).read_text()), environment)
    (policy,) = interpolated(yaml.safe_load((ALERTING / build.POLICIES_FILE).read_text()), environment)["policies"]
    return environment, points, policy


def _matches(route: dict[str, Any], labels: dict[str, str]) -> bool:
    for name, op, value in route.get("object_matchers", []):
        actual = labels.get(name, "")
        hit = {"=": actual == value, "!=": actual != value,
               "=~": re.fullmatch(value, actual) is not None, "!~": re.fullmatch(value, actual) is None}[op]
        if not hit:
            return False
    return True


def receivers(route: dict[str, Any], labels: dict[str, str], inherited: str = "") -> list[str]:
    """Alertmanager's routing: the first matching child (and the next while `continue`), the node's own receiver
    (inherited when unset) when no child matches."""
    receiver = route.get("receiver") or inherited
    found: list[str] = []
    for child in route.get("routes", []):
        if _matches(child, labels):
            found += receivers(child, labels, receiver)
            if not child.get("continue"):
                break
    return found or [receiver]


WEBHOOK, EMAIL = (contact.name for contact in CONTACTS)


@pytest.mark.parametrize(("settings", "critical"), [
    ({}, [DEFAULT_RECEIVER]),
    ({"ALERT_WEBHOOK_URL": "https://hooks.example.org/T0K3N"}, [WEBHOOK]),
    ({"ALERT_EMAIL_TO": "ops@example.org", "ALERT_SMTP_HOST": "smtp.example.org:587"}, [EMAIL]),
    ({"ALERT_WEBHOOK_URL": "https://hooks.example.org/T0K3N", "ALERT_EMAIL_TO": "ops@example.org"},
     [WEBHOOK, EMAIL]),
])
def test_alerts_reach_exactly_the_configured_destinations(tmp_path: Path, settings: dict[str, str],
                                                          critical: list[str]):
    environment, points, policy = grafana_reads(make_env(tmp_path, **settings))
    for severity in ("critical", "warning"):
        labels = {"alertname": "Ingest is not reporting", "grafana_folder": "influx-stack alerts",
                  "severity": severity}
        assert receivers(policy, labels) == critical, severity
    severities = {child["object_matchers"][0][2]: child for child in policy["routes"]}
    assert severities["critical"]["repeat_interval"] == "1h" and severities["warning"]["repeat_interval"] == "12h"
    # Every contact point is valid whether or not it is configured (an empty address stops Grafana at start).
    settings_by_type = {receiver["type"]: receiver["settings"] for point in points["contactPoints"]
                        for receiver in point["receivers"]}
    url, addresses = settings_by_type["webhook"]["url"], settings_by_type["email"]["addresses"]
    assert url == settings.get("ALERT_WEBHOOK_URL", "http://webhook.not-configured.invalid/")
    assert addresses == settings.get("ALERT_EMAIL_TO", "nobody@not-configured.invalid")
    assert environment["GF_SMTP_ENABLED"] == ("true" if "ALERT_EMAIL_TO" in settings else "")


def test_every_variable_the_alerting_files_name_is_in_grafanas_environment(env_file: Path):
    environment = resolved_config(env_file)["services"]["grafana"]["environment"]
    for name in build.FILES:
        for variable in re.findall(r"\$\{([A-Z_]+)\}", (ALERTING / name).read_text()):
            assert variable in environment, f"{name} reads ${{{variable}}}, which the grafana service does not get"


def test_the_smtp_password_and_webhook_token_stay_in_the_environment(tmp_path: Path):
    secret, token = "s3cr3t-smtp-password", "T0K3N-in-a-header"
    env_file = make_env(tmp_path, ALERT_SMTP_PASSWORD=secret, ALERT_WEBHOOK_URL="https://hooks.example.org/alerts",
                        ALERT_WEBHOOK_TOKEN=token)
    environment = resolved_config(env_file)["services"]["grafana"]["environment"]
    assert environment["GF_SMTP_PASSWORD"] == secret and environment["ALERT_WEBHOOK_TOKEN"] == token
    for path in [*ALERTING.glob("*.yaml"), REPO / "docker-compose.yml"]:
        text = path.read_text()
        assert secret not in text and token not in text, path


@pytest.mark.parametrize("settings", [
    {"ALERT_WEBHOOK_URL": "https://hooks.example.org/alerts"},
    {"ALERT_WEBHOOK_URL": "https://hooks.example.org/alerts", "ALERT_WEBHOOK_TOKEN": "T0K3N"},
    {"ALERT_WEBHOOK_URL": "https://hooks.example.org/alerts", "ALERT_WEBHOOK_TOKEN": "T0K3N",
     "ALERT_WEBHOOK_AUTH_SCHEME": "Token"},
])
def test_the_webhook_token_is_in_grafanas_secure_setting_and_never_in_the_url(tmp_path: Path,
                                                                               settings: dict[str, str]):
    """What Grafana's webhook integration is given, after interpolation: the token in `authorization_credentials`
    (one of its secure settings, stored encrypted and shown redacted; `url` is shown as it is), which it sends as
    `Authorization: <scheme> <token>`, Bearer when no scheme is set and no header when there is no token."""
    _, points, _ = grafana_reads(make_env(tmp_path, **settings))
    [webhook] = [receiver["settings"] for point in points["contactPoints"] for receiver in point["receivers"]
                 if receiver["type"] == "webhook"]
    assert webhook["url"] == settings["ALERT_WEBHOOK_URL"]
    assert webhook["authorization_credentials"] == settings.get("ALERT_WEBHOOK_TOKEN", "")
    assert webhook["authorization_scheme"] == settings.get("ALERT_WEBHOOK_AUTH_SCHEME", "")
    # grafana/alerting receivers/webhook config.go: Bearer when a token has no scheme; no header without a token.
    sent = (f"{webhook['authorization_scheme'] or 'Bearer'} {webhook['authorization_credentials']}"
            if webhook["authorization_credentials"] else None)
    token = settings.get("ALERT_WEBHOOK_TOKEN")
    assert sent == (f"{settings.get('ALERT_WEBHOOK_AUTH_SCHEME', 'Bearer')} {token}" if token else None)


def test_grafana_mounts_the_alerting_folder_read_only_and_another_can_replace_it(tmp_path: Path):
    def alerting_mount(env_file: Path) -> dict[str, Any]:
        mounts = {v["target"]: v for v in resolved_config(env_file)["services"]["grafana"]["volumes"]}
        return mounts["/etc/grafana/provisioning/alerting"]

    default = alerting_mount(make_env(tmp_path))
    assert Path(default["source"]) == ALERTING and default["read_only"] is True
    other = tmp_path / "short-alerts"
    other.mkdir()
    assert Path(alerting_mount(make_env(tmp_path, GRAFANA_ALERTING_DIR=str(other)))["source"]) == other
