"""One module per dashboard; each has `UID` and `build(settings) -> Dashboard` (settings: the ALERT_* thresholds its
colours share with the alert rules, grafana/alerting/settings.py). Add a module here to add a dashboard."""

from __future__ import annotations

from grafana.boards import birds, forecast, health, host, sensors, statistics, weather

__all__ = ["BOARDS"]

# In the order the README lists them.
BOARDS = (birds, weather, sensors, forecast, statistics, health, host)
