"""compose/stack.py: preflight checks and waiting for the stack, on real Compose output shapes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.compose import compose_binary, run_compose
from tests.support.paths import REPO
from tests.support.stackcli import stack_module

SERVICES = {"influxdb2": False, "influxdb3-prepare": True, "influxdb3": False, "influxdb3-init": True,
            "grafana": False}


def row(service: str, state: str, health: str = "", code: int = 0) -> dict:
    # The fields `docker compose ps --format json` prints (one object per line since Compose 2.21).
    return {"Service": service, "State": state, "Health": health, "ExitCode": code, "Name": f"influx-stack-{service}-1"}


def test_one_shots_are_read_from_the_real_config(env_file: Path):
    result = run_compose(env_file, "config", "--format", "json")
    services = stack_module().compose_services(result.stdout)
    one_shots = {name for name, one_shot in services.items() if one_shot}
    assert one_shots == {"influxdb3-prepare", "influxdb3-init", "influxdb2-init"}
    assert len(services) == 8


def test_ps_output_is_parsed_in_both_formats():
    cli = stack_module()
    rows = [row("grafana", "running", "healthy"), row("influxdb3-init", "exited")]
    assert cli.parse_ps("\n".join(json.dumps(r) for r in rows) + "\n") == rows
    assert cli.parse_ps(json.dumps(rows)) == rows
    assert cli.parse_ps("") == []


def test_ready_when_healthy_and_one_shots_succeeded():
    rows = [row("influxdb2", "running", "healthy"), row("influxdb3-prepare", "exited"),
            row("influxdb3", "running", "healthy"), row("influxdb3-init", "exited"),
            row("grafana", "running", "healthy")]
    assert stack_module().assess(rows, SERVICES) == ([], [])


def test_failures_and_waits_are_named():
    rows = [row("influxdb2", "running", "starting"), row("influxdb3-prepare", "exited", code=1),
            row("influxdb3", "running", "unhealthy"), row("influxdb3-init", "running")]
    failures, waiting = stack_module().assess(rows, SERVICES)
    assert failures == ["influxdb3-prepare: exited with code 1", "influxdb3: unhealthy"]
    assert waiting == ["influxdb2: starting", "influxdb3-init: running", "grafana: not created yet"]


def test_a_crashed_long_running_service_is_a_failure():
    rows = [row("grafana", "exited", code=137)]
    failures, _ = stack_module().assess(rows, {"grafana": False})
    assert failures == ["grafana: exited with code 137"]


class Replay:
    """Answers `compose config` and successive `compose ps` calls like Compose does."""

    def __init__(self, config: str, snapshots: list[list[dict]]):
        self.config, self.snapshots, self.calls = config, snapshots, []

    def __call__(self, cmd):
        self.calls.append(list(cmd))
        if "config" in cmd:
            return subprocess.CompletedProcess(cmd, 0, self.config, "")
        snapshot = self.snapshots.pop(0) if len(self.snapshots) > 1 else self.snapshots[0]
        return subprocess.CompletedProcess(cmd, 0, "\n".join(json.dumps(r) for r in snapshot), "")


def config_json(services: dict[str, bool]) -> str:
    return json.dumps({"services": {name: {"restart": "no" if one else "unless-stopped"}
                                    for name, one in services.items()}})


def test_wait_polls_until_ready(capsys):
    starting = [row("influxdb3-prepare", "exited"), row("influxdb3", "running", "starting")]
    ready = [row("influxdb3-prepare", "exited"), row("influxdb3", "running", "healthy")]
    replay = Replay(config_json({"influxdb3-prepare": True, "influxdb3": False}), [starting, starting, ready])
    sleeps: list[float] = []
    stack_module().wait(["docker", "compose"], timeout=60, interval=2, sleep=sleeps.append, run=replay)
    assert sleeps == [2, 2]
    assert "waiting for: influxdb3: starting" in capsys.readouterr().out
    assert replay.calls[0] == ["docker", "compose", "config", "--format", "json"]
    assert replay.calls[1] == ["docker", "compose", "ps", "--all", "--format", "json"]


def test_wait_stops_at_the_first_failure_with_the_logs_command():
    replay = Replay(config_json({"influxdb3-init": True}), [[row("influxdb3-init", "exited", code=1)]])
    try:
        stack_module().wait(["docker", "compose"], timeout=60, sleep=lambda s: None, run=replay)
    except stack_module().StackError as exc:
        assert "influxdb3-init: exited with code 1" in str(exc)
        assert "docker compose logs influxdb3-init" in str(exc)
    else:
        raise AssertionError("a failed one-shot must stop the wait")


def test_wait_times_out_naming_what_is_still_starting():
    now = [0.0]

    def clock() -> float:
        return now[0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    replay = Replay(config_json({"grafana": False}), [[row("grafana", "running", "starting")]])
    try:
        stack_module().wait(["docker", "compose"], timeout=10, interval=3, clock=clock, sleep=sleep, run=replay)
    except stack_module().StackError as exc:
        assert "timed out after 10 s waiting for: grafana: starting" in str(exc)
    else:
        raise AssertionError("wait must time out")


def test_doctor_names_a_missing_docker():
    problems = stack_module().doctor(["definitely-not-docker-xyz", "compose"])
    assert problems and "is not installed" in problems[0]


def test_doctor_accepts_compose_v2():
    assert stack_module().doctor([str(compose_binary())]) == []


def test_doctor_refuses_compose_v1(tmp_path: Path):
    fake_v1 = tmp_path / "docker-compose"
    fake_v1.write_text("#!/bin/sh\necho 1.29.2\n")
    fake_v1.chmod(0o755)
    problems = stack_module().doctor([str(fake_v1)])
    assert problems == ["Docker Compose v2 or newer is required, found 1.29.2"]


def test_make_help_documents_every_target():
    result = subprocess.run(["make", "-s", "help"], cwd=REPO, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    for target in ("up", "down", "clean", "logs", "ps", "test", "test-integration", "backup", "restore", "bench",
                   "dashboards"):
        assert f"  {target} " in result.stdout.replace("\x1b[36m", "  ").replace("\x1b[0m", " "), target


def test_chart_saves_the_page_with_the_token_because_a_browser_gets_a_bare_401(tmp_path: Path):
    """InfluxDB 3 answers every /api/v3/engine/ path 401 without a token and sends no WWW-Authenticate
    challenge (influxdb3_server/src/http.rs), so `make chart` fetches the page with the token and saves it."""
    from tests.support.recorder import RecordingServer, Reply

    token = "apiv3_" + "t" * 43

    def core(request) -> Reply:
        if request.header("authorization") != f"Bearer {token}":
            return Reply(401, b"")
        return Reply(200, "<!doctype html><title>chart</title>", {"Content-Type": "text/html; charset=utf-8"})

    cli = stack_module()
    with RecordingServer(core) as server:
        env = {"INFLUXDB3_ADMIN_TOKEN": token, "INFLUXDB3_PORT": str(server.port), "BIND_ADDRESS": "127.0.0.1"}
        saved = cli.save_chart(env, tmp_path / "chart.html", series="peyton_manning")
        assert saved.read_text() == "<!doctype html><title>chart</title>"
        assert saved.stat().st_mode & 0o777 == 0o600
        [request] = server.requests
        assert request.path == "/api/v3/engine/peyton-chart" and request.param("series") == "peyton_manning"
        try:
            cli.save_chart({**env, "INFLUXDB3_ADMIN_TOKEN": "apiv3_wrong"}, tmp_path / "other.html")
        except cli.StackError as exc:
            assert "answered 401" in str(exc) and "apiv3_wrong" not in str(exc)
        else:
            raise AssertionError("a refused token must stop with the server's answer")
    assert not (tmp_path / "other.html").exists()


class ComposeLog:
    """Compose as `make restore` calls it: every command in order; `backup restore --prepare` prints the set it
    resolved, the restore itself exits with `restore_code`."""

    def __init__(self, resolved: str = "20250107T225900Z", prepare_code: int = 0, restore_code: int = 0):
        self.calls: list[list[str]] = []
        self.resolved, self.prepare_code, self.restore_code = resolved, prepare_code, restore_code
        self.waited = False

    def call(self, cmd) -> int:
        self.calls.append(list(cmd))
        return self.restore_code if "restore" in cmd[4:6] else 0

    def capture(self, cmd) -> subprocess.CompletedProcess:
        self.calls.append(list(cmd))
        return subprocess.CompletedProcess(cmd, self.prepare_code, stdout=self.resolved + "\n" if not
                                           self.prepare_code else "")

    def wait(self, compose, timeout) -> None:
        self.waited = True

    def restore(self, set_name: str = "latest", **options) -> str:
        return stack_module().restore(["docker", "compose"], set_name, call=self.call, capture=self.capture,
                                      wait_for=self.wait, **options)

    def commands(self) -> list[str]:
        return [" ".join(cmd[2:]) for cmd in self.calls]


def test_make_restore_pauses_the_scheduled_backups_and_resolves_the_set_once():
    """`latest` is resolved by the first step alone, while the scheduled backups cannot add a newer set, and the
    name it printed is what the restore restores; the stack starts again only after it."""
    compose = ComposeLog()
    assert compose.restore("latest") == "20250107T225900Z"
    assert compose.commands() == [
        "stop backup ingest",
        "run --rm --no-deps -T restore restore latest --prepare",
        "stop influxdb3 grafana",
        "up --detach --wait influxdb2",
        "run --rm --no-deps restore restore 20250107T225900Z --skip-verify",
        "up --detach",
        "logs --no-color --no-log-prefix influxdb2-init"]
    assert compose.waited


def test_a_service_whose_influxdb2_token_was_replaced_is_restarted():
    """influxdb2-init's last run names each token's fate; only the replaced ones need their service restarted
    (Grafana reads its token file only at start), after a restore as after `make up`."""
    cli = stack_module()
    runs = ("[influxdb2-init] 2026-01-01T00:00:00.000Z INFO    run=a tokens: grafana created, ingest created\n"
            '{"ts": "x", "service": "influxdb2-init", "msg": "tokens: grafana replaced, ingest kept"}\n')
    assert cli.replaced_tokens(runs) == ["grafana"]
    assert cli.replaced_tokens(runs.splitlines()[0]) == [] and cli.replaced_tokens("") == []
    calls, waited = [], []
    logs = subprocess.CompletedProcess([], 0, stdout=runs)
    assert cli.restart_replaced(["docker", "compose"], 60, capture=lambda cmd: logs,
                                call=lambda cmd: calls.append(list(cmd)) or 0,
                                wait_for=lambda compose, timeout: waited.append(timeout)) == ["grafana"]
    assert calls == [["docker", "compose", "restart", "grafana"]] and waited == [60]


def test_make_restore_stops_only_what_it_replaces_and_passes_the_choices_on():
    compose = ComposeLog()
    compose.restore("20250101T000000Z", only="grafana", accept_credential_mismatch=True, pre_restore_backup=False)
    assert "stop grafana" in compose.commands() and "stop influxdb3 grafana" not in compose.commands()
    assert compose.commands()[-3] == ("run --rm --no-deps restore restore 20250107T225900Z --skip-verify --only "
                                      "grafana --accept-credential-mismatch --no-pre-restore-backup")
    bucket = ComposeLog()
    bucket.restore("latest", bucket="telemetry", new_bucket="telemetry-old")
    assert not [command for command in bucket.commands() if command.startswith("stop influxdb3")]
    assert bucket.commands()[1].endswith("--prepare --bucket telemetry --new-bucket telemetry-old")


def test_a_refused_restore_changes_nothing_and_resumes_the_backups():
    compose = ComposeLog(prepare_code=1)
    with pytest.raises(stack_module().StackError, match="nothing was restored"):
        compose.restore("latest")
    assert compose.commands() == ["stop backup ingest", "run --rm --no-deps -T restore restore latest --prepare",
                                  "up --detach backup ingest"]


def test_a_restore_that_stops_half_way_leaves_the_writers_stopped_and_points_at_the_readme():
    compose = ComposeLog(restore_code=1)
    with pytest.raises(stack_module().StackError, match="When a restore stops half-way"):
        compose.restore("latest")
    assert compose.commands()[-1].startswith("run --rm --no-deps restore restore") and not compose.waited


def test_only_the_restore_service_may_write_the_data_volumes(env_file: Path):
    """The always-running backup service reads the stores; the one-off `restore` service, which `up` never starts,
    is the one that writes them."""
    plain = json.loads(run_compose(env_file, "config", "--format", "json").stdout)["services"]
    assert "restore" not in plain
    resolved = run_compose(env_file, "--profile", "restore", "config", "--format", "json")
    services = json.loads(resolved.stdout)["services"]
    for name, writable in (("backup", False), ("restore", True)):
        mounts = {volume["target"]: volume for volume in services[name]["volumes"]}
        for target in ("/var/lib/influxdb3/data", "/var/lib/grafana"):
            assert bool(mounts[target].get("read_only")) is not writable, (name, target)
        assert mounts["/backups"].get("read_only") is None
    assert services["restore"]["environment"] == services["backup"]["environment"]
    assert services["restore"]["cap_add"] == services["backup"]["cap_add"]
    assert services["restore"]["image"] == services["backup"]["image"]
