"""A plugin repository on loopback for the native whole-stack provider: InfluxDB 3 downloads `gh:` plugins from
INFLUXDB3_PLUGIN_REPO, and this machine cannot reach GitHub.

It serves, at the path of the community system_metrics plugin, a plugin of the test's own: every table of
plugins/stacklib/tables.py HOST_TABLES with its tags and typed fields (counters that grow with the clock), so the
trigger provisioned from plugins/provision.yaml runs and the Host dashboard's queries find rows on the real
database. No line of the community plugin is used. Every other path answers 404, as raw.githubusercontent.com.
"""

from __future__ import annotations

from plugins.stacklib.tables import HOST_TABLES, UINT
from tests.support.recorder import Recorded, RecordingServer, Reply

__all__ = ["HOST_METRICS_PATH", "PluginRepository", "host_metrics_plugin"]

HOST_METRICS_PATH = "influxdata/system_metrics/system_metrics.py"
TAG_VALUES = {"cpu": "total", "core": "0", "device": "sda", "mountpoint": "/", "fstype": "ext4", "interface": "eth0"}


def host_metrics_plugin() -> str:
    """A scheduled plugin writing one row to every host table per call."""
    tables = [[spec.name, list(spec.tags), [[name, kind == UINT] for name, kind in spec.fields]]
              for spec in HOST_TABLES]
    return f'''"""Host-shaped rows for the whole-stack tests (tests/integration/plugin_repo.py)."""
import time

TABLES = {tables!r}
TAG_VALUES = {TAG_VALUES!r}


def process_scheduled_call(influxdb3_local, call_time, args=None):
    host = (args or {{}}).get("hostname", "localhost")
    counter = time.time_ns() // 1000
    for name, tags, fields in TABLES:
        line = LineBuilder(name)
        for tag in tags:
            line.tag(tag, host if tag == "host" else TAG_VALUES[tag])
        for field, unsigned in fields:
            if unsigned:
                line.uint64_field(field, counter)
            else:
                line.float64_field(field, 42.5)
        influxdb3_local.write(line)
'''


class PluginRepository:
    """The responder of a RecordingServer; `url` is what INFLUXDB3_PLUGIN_REPO points at."""

    def __init__(self) -> None:
        self.files = {HOST_METRICS_PATH: host_metrics_plugin()}
        self.server = RecordingServer(self)

    def __call__(self, request: Recorded) -> Reply:
        text = self.files.get(request.path.lstrip("/")) if request.method == "GET" else None
        if text is None:
            return Reply(404, b"404: Not Found", {"Content-Type": "text/plain; charset=utf-8"})
        return Reply(200, text.encode(), {"Content-Type": "text/plain; charset=utf-8"})

    @property
    def url(self) -> str:
        return self.server.url + "/"

    def downloads(self, path: str = HOST_METRICS_PATH) -> int:
        return len(self.server.matching("GET", "/" + path))

    def __enter__(self) -> PluginRepository:
        self.server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__(*exc)
