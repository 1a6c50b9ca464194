"""Grafana: SQLite online backup and restore on a real SQLite file, and the JSON export over HTTP."""

from __future__ import annotations

import base64
import json
import os
import shutil
import sqlite3
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest

from backup import grafana
from backup.archive import Codec
from backup.credentials import grafana_encode_password
from backup.setfiles import StoreReader, StoreWriter
from tests.support.recorder import Recorded, RecordingServer, Reply

ADMIN_SALT = "F3FAxVm33R"  # pkg/services/user/userimpl: util.GetRandomString(10)


def grafana_db(path: Path, dashboards: int = 50, *, admin: str = "admin", admin_password: str = "pw") -> None:
    """A database with Grafana's own table shapes (dashboard, data_source, user with Grafana's password hash and
    salt), sizeable enough that the online backup takes several steps."""
    connection = sqlite3.connect(path)
    connection.executescript("""
        CREATE TABLE dashboard (id INTEGER PRIMARY KEY AUTOINCREMENT, version INTEGER NOT NULL, slug TEXT,
            title TEXT NOT NULL, data TEXT NOT NULL, org_id INTEGER NOT NULL, uid TEXT, folder_uid TEXT);
        CREATE TABLE data_source (id INTEGER PRIMARY KEY AUTOINCREMENT, org_id INTEGER, name TEXT, type TEXT,
            url TEXT, uid TEXT, secure_json_data TEXT);
        CREATE TABLE user (id INTEGER PRIMARY KEY AUTOINCREMENT, login TEXT, email TEXT, password TEXT, salt TEXT,
            is_admin INTEGER);
    """)
    for index in range(dashboards):
        panels = json.dumps({"title": f"d{index}", "panels": [{"id": p, "type": "timeseries"} for p in range(40)]})
        connection.execute("INSERT INTO dashboard (version, slug, title, data, org_id, uid) VALUES (1,?,?,?,1,?)",
                           (f"d{index}", f"Dashboard {index}", panels, f"uid{index:03d}"))
    connection.execute("INSERT INTO data_source (org_id, name, type, url, uid) VALUES "
                       "(1, 'InfluxDB 3 SQL', 'influxdb', 'http://influxdb3:8181', 'influxdb3-sql')")
    connection.execute("INSERT INTO user (login, email, password, salt, is_admin) VALUES (?, ?, ?, ?, 1)",
                       (admin, f"{admin}@localhost", grafana_encode_password(admin_password, ADMIN_SALT), ADMIN_SALT))
    connection.commit()
    connection.close()


def titles(path: Path) -> list[str]:
    connection = sqlite3.connect(path)
    try:
        return [row[0] for row in connection.execute("SELECT title FROM dashboard ORDER BY id")]
    finally:
        connection.close()


def test_online_backup_is_consistent_while_grafana_keeps_writing(tmp_path: Path):
    live = tmp_path / "grafana.db"
    grafana_db(live, dashboards=300)
    stop = threading.Event()
    written = []

    def writer():
        connection = sqlite3.connect(live, timeout=10)
        index = 0
        while not stop.is_set():
            connection.execute("INSERT INTO dashboard (version, title, data, org_id) VALUES (1, ?, '{}', 1)",
                               (f"live {index}",))
            connection.commit()
            written.append(index)
            index += 1
            time.sleep(0.001)
        connection.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        time.sleep(0.05)
        details = grafana.snapshot_database(live, tmp_path / "copy.db")
    finally:
        stop.set()
        thread.join()
    assert written, "the writer ran during the backup"
    copied = titles(tmp_path / "copy.db")
    assert copied[:300] == [f"Dashboard {index}" for index in range(300)]
    live_rows = copied[300:]
    assert live_rows == [f"live {index}" for index in range(len(live_rows))], "a prefix of the writes, no tears"
    assert details["tables"] == 4 and details["dashboards_in_db"] == len(copied)  # 3 + sqlite_sequence


def test_a_missing_or_broken_database_is_reported_by_path(tmp_path: Path):
    with pytest.raises(grafana.GrafanaError, match="not found"):
        grafana.snapshot_database(tmp_path / "absent.db", tmp_path / "copy.db")
    (tmp_path / "garbage.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(grafana.GrafanaError, match=r"garbage\.db"):
        grafana.snapshot_database(tmp_path / "garbage.db", tmp_path / "copy2.db")


@pytest.mark.parametrize("key", [None, b"0123456789abcdef0123"], ids=["plain", "encrypted"])
def test_database_round_trip_through_a_set(tmp_path: Path, key):
    live = tmp_path / "grafana.db"
    grafana_db(live)
    writer = StoreWriter(tmp_path / "set", "grafana", Codec("zstd", 3, key))
    grafana.snapshot_database(live, tmp_path / "snapshot.db")
    writer.add_file(grafana.DB_NAME, tmp_path / "snapshot.db")
    original = titles(live)
    # Someone deletes dashboards, and a stale journal from the damaged database is lying around.
    connection = sqlite3.connect(live)
    connection.execute("DELETE FROM dashboard WHERE id > 3")
    connection.commit()
    connection.close()
    (tmp_path / "grafana.db-journal").write_bytes(b"stale journal")
    live.chmod(0o640)
    reader = StoreReader(tmp_path / "set", "grafana", writer.entries, key)
    assert grafana.check(reader, tmp_path / "scratch") == []
    grafana.restore_database(reader, live, grafana_running=False)
    assert titles(live) == original
    assert not (tmp_path / "grafana.db-journal").exists()
    assert live.stat().st_mode & 0o777 == 0o660, "group read-write, so uid 472 can keep writing it"


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A folder other users can reach (pytest's own tmp folders are private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="grafana-restore-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as the backup (1500) and Grafana (472) users")
def test_a_restore_onto_a_wiped_volume_leaves_a_file_grafana_can_write(shared_tmp: Path):
    """No grafana.db on the volume (it was wiped): the backup service (uid 1500, groups 1500 and 0, umask 007)
    restores it, then Grafana (uid 472, group 0) must be able to open it read-write."""
    tmp_path = shared_tmp
    live = tmp_path / "volume" / "grafana.db"
    live.parent.mkdir()
    os.chown(live.parent, 472, 0)
    live.parent.chmod(0o777)  # the image's /var/lib/grafana
    source = tmp_path / "source.db"
    grafana_db(source, dashboards=2)
    writer = StoreWriter(tmp_path / "set", "grafana", Codec())
    writer.add_file(grafana.DB_NAME, source)
    reader = StoreReader(tmp_path / "set", "grafana", writer.entries, None)
    for path in tmp_path.rglob("*"):  # the set is readable by the backup user, as BACKUP_DIR is
        path.chmod(path.stat().st_mode | (0o755 if path.is_dir() else 0o644))

    def as_user(uid: int, groups: list[int], work) -> None:
        child = os.fork()
        if child == 0:
            code = 1
            try:
                os.setgroups(groups)
                os.setgid(groups[0])
                os.setuid(uid)
                os.umask(0o007)
                work()
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0, f"the work as uid {uid} failed"

    as_user(1500, [1500, 0], lambda: grafana.restore_database(reader, live, grafana_running=False))
    assert live.stat().st_gid == 0 and live.stat().st_mode & 0o660 == 0o660

    def grafana_writes() -> None:
        connection = sqlite3.connect(live)
        connection.execute("CREATE TABLE written_by_grafana (x INTEGER)")
        connection.commit()
        connection.close()

    as_user(472, [0], grafana_writes)
    assert titles(live) == titles(source)


def test_restore_refuses_while_grafana_runs(tmp_path: Path):
    live = tmp_path / "grafana.db"
    grafana_db(live, dashboards=2)
    writer = StoreWriter(tmp_path / "set", "grafana", Codec())
    writer.add_file(grafana.DB_NAME, live)
    reader = StoreReader(tmp_path / "set", "grafana", writer.entries, None)
    with pytest.raises(grafana.GrafanaError, match="stop it first"):
        grafana.restore_database(reader, live, grafana_running=True)


class FakeGrafana:
    def __init__(self, dashboards: int, user: str = "admin", password: str = "pw"):
        self.dashboards = {f"uid{index:04d}": {"dashboard": {"uid": f"uid{index:04d}", "title": f"D{index}"},
                                               "meta": {"folderUid": "", "version": 3}}
                           for index in range(dashboards)}
        self.auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def respond(self, request: Recorded) -> Reply:
        if request.header("authorization") != self.auth:
            return Reply(401, {"message": "Unauthorized"})
        if request.path == "/api/health":
            return Reply(200, {"database": "ok", "version": "12.4.11", "commit": "abc"})
        if request.path == "/api/search":
            uids = sorted(self.dashboards)
            limit, page = int(request.param("limit")), int(request.param("page"))
            chunk = uids[(page - 1) * limit: page * limit]
            return Reply(200, [{"uid": uid, "title": self.dashboards[uid]["dashboard"]["title"], "type": "dash-db"}
                               for uid in chunk])
        if request.path.startswith("/api/dashboards/uid/"):
            return Reply(200, self.dashboards[request.path.rsplit("/", 1)[1]])
        if request.path == "/api/datasources":
            return Reply(200, [{"uid": "influxdb3-sql", "name": "InfluxDB 3 SQL", "type": "influxdb"}])
        return Reply(404, {"message": "Not found"})


def test_export_pages_through_search_and_writes_every_dashboard(tmp_path: Path):
    fake = FakeGrafana(dashboards=5)
    with RecordingServer(fake.respond) as server:
        api = grafana.GrafanaAPI(server.url, "admin", "pw")
        writer = StoreWriter(tmp_path, "grafana", Codec("gzip", 6, None))
        api_uids = api.dashboard_uids(page_size=2)
        details = grafana.export_api(api, writer)
        searches = server.matching("GET", "/api/search")
        assert api.version() == "12.4.11"
    assert api_uids == sorted(fake.dashboards)
    assert [r.param("page") for r in searches[:3]] == ["1", "2", "3"]
    assert all(r.param("type") == "dash-db" for r in searches)
    # grafana-client sends what Grafana's routes take (pkg/api/api.go): GETs with basic auth, the search paged by
    # limit and page, each dashboard by uid, the datasource list; nothing else.
    requests_sent = server.matching()
    assert {r.method for r in requests_sent} == {"GET"}
    assert all(r.header("authorization") == fake.auth for r in requests_sent)
    assert all((r.header("user-agent") or "").startswith("grafana-client/") for r in requests_sent)
    assert [r.param("limit") for r in searches] == ["2", "2", "2", "1000"]  # the test's pages, then export's
    paths = [r.path for r in requests_sent]
    assert {p for p in paths if p.startswith("/api/dashboards/")} == {f"/api/dashboards/uid/{uid}" for uid in
                                                                     fake.dashboards}
    assert set(paths) - {p for p in paths if p.startswith("/api/dashboards/uid/")} == {
        "/api/search", "/api/datasources", "/api/health"}
    assert details == {"dashboards": 5, "datasources": 1}
    reader = StoreReader(tmp_path, "grafana", writer.entries, None)
    assert json.loads(reader.read_bytes("dashboards/uid0003.json")) == fake.dashboards["uid0003"]
    assert json.loads(reader.read_bytes("datasources.json"))[0]["uid"] == "influxdb3-sql"


def test_wrong_credentials_are_reported_with_the_status(tmp_path: Path):
    with RecordingServer(FakeGrafana(1).respond) as server:
        api = grafana.GrafanaAPI(server.url, "admin", "wrong")
        with pytest.raises(grafana.GrafanaError, match="GET /api/search answered HTTP 401"):
            api.dashboard_uids()


def test_server_errors_bodies_that_are_not_json_and_silence_are_grafana_errors():
    answers = {"/api/health": Reply(500, {"message": "database is locked"}),
               "/api/datasources": Reply(200, "<html>proxy login</html>", {"Content-Type": "application/json"})}
    with RecordingServer(lambda request: answers[request.path]) as server:
        api = grafana.GrafanaAPI(server.url, "admin", "pw")
        with pytest.raises(grafana.GrafanaError, match=r"GET /api/health answered HTTP 500: .*database is locked"):
            api.version()
        with pytest.raises(grafana.GrafanaError, match="GET /api/datasources did not answer JSON"):
            api.datasources()
        assert api.answers(), "a Grafana that answers an error is running"
        url = server.url
    stopped = grafana.GrafanaAPI(url, "admin", "pw")
    assert not stopped.answers()
    with pytest.raises(grafana.GrafanaError, match="GET /api/datasources failed"):
        stopped.datasources()
