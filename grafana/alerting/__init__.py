"""Alerting as code: the rules, contact points and notification policy Grafana provisions from
grafana/provisioning/alerting/, generated with the dashboards by `make dashboards` (python -m grafana.generate).

- settings.py: every threshold and duration (ALERT_* in .env), shared with the dashboards' threshold colours;
- rules.py: what fires, on which data, linked to the dashboard panel that shows it;
- notifications.py: where alerts go (webhook and e-mail from Grafana's environment) and the severity routing;
- files.py: the SDK's models written in Grafana's file provisioning format;
- build.py: every file's text, which grafana/generate.py writes or compares.
"""
