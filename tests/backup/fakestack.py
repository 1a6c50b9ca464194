"""The three stores side by side for whole-run tests: InfluxDB 2 and 3 as the loopback stand-ins that answer as
their servers' source does (tests/support), Grafana serving the real API shapes, InfluxDB 3's object store on disk
and a real grafana.db. `env` is what the backup container's environment would be."""

from __future__ import annotations

import base64
from contextlib import ExitStack
from pathlib import Path

from tests.backup.influxdb2_api import FakeInfluxDB2
from tests.backup.test_grafana import FakeGrafana, grafana_db
from tests.backup.test_influxdb3 import NODE, server_tree
from tests.engine.engine import LocalEngine
from tests.support.influxdb3 import InfluxDB3
from tests.support.recorder import Recorded, RecordingServer, Reply

INFLUXDB3_TOKEN = "apiv3_" + "A" * 43


class FakeInfluxDB3:
    """InfluxDB 3 Core's HTTP API (tests/support/influxdb3.py, as v3.10.1's source answers) with `monitoring` and
    `telemetry`, plus what the tests script: `accept_writes = False` answers writes 503 (a server in trouble)."""

    def __init__(self, token: str = INFLUXDB3_TOKEN) -> None:
        self.core = InfluxDB3(LocalEngine(), token=token, version="3.10.5")
        for name in ("telemetry", "monitoring"):
            self.core.engine.create_database(name)
        self.accept_writes = True
        self.written: list[tuple[str, str]] = []

    @property
    def databases(self) -> set[str]:
        return set(self.core.engine.databases)

    def drop_database(self, name: str) -> None:
        self.core.engine.delete_database(name)

    def add_database(self, name: str) -> None:
        self.core.engine.create_database(name)

    def respond(self, request: Recorded) -> Reply:
        if request.path == "/api/v3/write_lp" and not self.accept_writes:
            return Reply(503, {"error": "server is shutting down"})
        reply = self.core(request)
        if request.path == "/api/v3/write_lp" and reply.status == 204:
            self.written.append((request.param("db") or "", request.text()))
        return reply


class FakeStack:
    """Set up with the credentials an .env gives (`make up` generates new ones on every new host)."""

    def __init__(self, root: Path, *, influxdb2_token: str = "operator-token",
                 influxdb3_token: str = INFLUXDB3_TOKEN, grafana_password: str = "pw"):
        self.root = root
        self.influxdb2 = FakeInfluxDB2.with_data()
        self.influxdb2.token = influxdb2_token
        self.influxdb3 = FakeInfluxDB3(influxdb3_token)
        self.grafana = FakeGrafana(dashboards=3, password=grafana_password)
        self.grafana_password = grafana_password
        self.data_dir = root / "influxdb3-data"
        self.influxdb3_files = server_tree(self.data_dir)
        self.grafana_db = root / "grafana" / "grafana.db"
        self.grafana_db.parent.mkdir(parents=True)
        grafana_db(self.grafana_db, dashboards=5, admin_password=grafana_password)
        self.backup_dir = root / "backups"
        self._stack = ExitStack()

    def __enter__(self) -> FakeStack:
        self.servers = {name: self._stack.enter_context(RecordingServer(fake.respond)) for name, fake in
                        (("influxdb2", self.influxdb2), ("influxdb3", self.influxdb3), ("grafana", self.grafana))}
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def env(self, **overrides: str) -> dict[str, str]:
        values = {
            "BACKUP_DIR": str(self.backup_dir), "TZ": "Europe/Berlin", "BACKUP_SCHEDULE": "59 23 * * *",
            "INFLUXDB2_URL": self.servers["influxdb2"].url, "INFLUXDB2_ORG": "stack",
            "INFLUXDB2_TOKEN": self.influxdb2.token,
            "INFLUXDB3_URL": self.servers["influxdb3"].url, "INFLUXDB3_TOKEN": self.influxdb3.core.token,
            "INFLUXDB3_DATA_DIR": str(self.data_dir), "INFLUXDB3_NODE_ID": NODE,
            "GRAFANA_URL": self.servers["grafana"].url, "GRAFANA_USER": "admin",
            "GRAFANA_PASSWORD": self.grafana_password,
            "GRAFANA_DB": str(self.grafana_db), "BACKUP_HTTP_TIMEOUT": "10",
        }
        values.update(overrides)
        return values


def key_text() -> str:
    return base64.urlsafe_b64encode(bytes(range(32))).decode()
