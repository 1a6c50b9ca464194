"""Where alerts go: contact points configured from Grafana's environment, and a policy that routes by severity.

Secrets never reach these files: every address is a `${VAR}` that Grafana replaces from its environment when it
provisions them (contact point settings and the whole policy tree are interpolated:
pkg/services/provisioning/alerting/contact_point_types.go uses `Settings.Value()`, notification_policy_types.go
marshals `Policy.Value()`). docker-compose.yml gives the Grafana service those variables from .env.

A contact point must be valid even when nobody configured it (an empty webhook URL or address list stops
Grafana at start), so docker-compose.yml fills an unconfigured one with an `.invalid` placeholder (RFC 2606: it
never resolves) and switches its routes off: each route matches `alertname =~ ${ALERT_<KIND>_ROUTE}`, which
compose sets to `.+` (every alert) only when the address is set, and to an empty pattern (no alert) otherwise.
Alerts no route takes go to Grafana's own default contact point and stay visible in Grafana's alert list.
"""

from __future__ import annotations

from dataclasses import dataclass

from grafana_foundation_sdk.builders import alerting as alerting_builders
from grafana_foundation_sdk.models import alerting

from grafana.alerting.rules import CRITICAL, WARNING
from grafana.alerting.settings import Settings, duration_text

__all__ = ["CONTACTS", "DEFAULT_RECEIVER", "Contact", "contact_points", "policy"]

# Grafana's built-in contact point (every fresh install has it): an e-mail to a placeholder address, sent only once
# SMTP is configured.
DEFAULT_RECEIVER = "grafana-default-email"


@dataclass(frozen=True)
class Contact:
    """One contact point: its integration type and settings, and the variable that turns its routes on."""

    uid: str
    name: str
    type: str
    settings: dict[str, object]
    route_variable: str


# The webhook's token goes in `authorization_credentials`, a secure setting of Grafana's webhook integration
# (pkg/services/ngalert/notifier/channels_config/available_channels.go: `Secure: true`, with `password`; `url` is
# not): Grafana stores it encrypted and its contact point API and UI show it redacted, where a token in the URL
# is shown to anyone who can read contact points. Sent as `Authorization: <scheme> <token>`, Bearer when no scheme
# is set, and not at all when the token is empty (grafana/alerting receivers/webhook config.go).
CONTACTS = (
    Contact("influx-stack-webhook", "influx-stack webhook", "webhook",
            {"url": "${ALERT_WEBHOOK_URL}", "httpMethod": "POST",
             "authorization_scheme": "${ALERT_WEBHOOK_AUTH_SCHEME}",
             "authorization_credentials": "${ALERT_WEBHOOK_TOKEN}"}, "ALERT_WEBHOOK_ROUTE"),
    Contact("influx-stack-email", "influx-stack email", "email",
            {"addresses": "${ALERT_EMAIL_TO}", "singleEmail": False}, "ALERT_EMAIL_ROUTE"),
)


def contact_points() -> list[alerting.ContactPoint]:
    return [alerting_builders.ContactPoint().uid(item.uid).name(item.name).type(item.type)  # type: ignore[arg-type]
            .settings(dict(item.settings)).disable_resolve_message(False).build() for item in CONTACTS]


def _destinations() -> list[alerting_builders.NotificationPolicy]:
    """One route per contact point, on only when its variable says so; `continue` lets every configured one get
    the alert."""
    return [alerting_builders.NotificationPolicy().receiver(item.name).continue_val(True)
            .object_matchers([["alertname", "=~", "${" + item.route_variable + "}"]]) for item in CONTACTS]


def policy(settings: Settings) -> alerting.NotificationPolicy:
    """Critical alerts are sent within seconds and repeated hourly; warnings are batched and repeated twice a day
    (ALERT_CRITICAL_REPEAT, ALERT_WARNING_REPEAT)."""
    severities = [
        (CRITICAL, "10s", settings.critical_repeat),
        (WARNING, "1m", settings.warning_repeat),
    ]
    routes = [alerting_builders.NotificationPolicy().object_matchers([["severity", "=", severity]])
              .group_wait(wait).repeat_interval(duration_text(int(repeat))).routes(_destinations())
              for severity, wait, repeat in severities]
    return (alerting_builders.NotificationPolicy().receiver(DEFAULT_RECEIVER)
            .group_by(["grafana_folder", "alertname"]).group_wait("30s").group_interval("5m")
            .repeat_interval("4h").routes(routes).build())
