"""The whole-stack tier's Docker provider is pytest-docker, given this stack's Compose command, file, project and its
setup and cleanup commands (tests/integration/conftest.py). No engine runs here, so what it would run is taken
from a `docker` on PATH that records its arguments, and the global part of that command line is checked with the
real Compose binary; the plugin itself is loaded in a pytest run that then skips with the engine's own reason,
and neither that run nor the native provider's runs a Compose command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pytest_docker.plugin import get_docker_services

from tests.integration.stacks import docker as provider
from tests.support.compose import compose_binary, resolved_config
from tests.support.paths import REPO
from tests.support.stackcli import stack_module

FAKE_DOCKER = """#!{python}
import json, os, sys
with open(os.environ["DOCKER_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
if sys.argv[1:2] == ["info"]:
    print("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?",
          file=sys.stderr)
    sys.exit(1)
"""


@pytest.fixture
def docker_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `docker` first on PATH that records every call (one JSON list a line) and has no engine behind it."""
    folder = tmp_path / "bin"
    folder.mkdir()
    fake = folder / "docker"
    fake.write_text(FAKE_DOCKER.format(python=sys.executable))
    fake.chmod(0o755)
    log = tmp_path / "docker.log"
    log.touch()
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("DOCKER_LOG", str(log))
    return log


def calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.fixture
def env_file(tmp_path: Path) -> Path:
    """An .env as `make up` generates it, in a folder whose name needs quoting in a shell."""
    target = tmp_path / "the stack's env" / ".env"
    target.parent.mkdir()
    stack_module().ensure_env(REPO / ".env.example", target)
    return target


def test_pytest_docker_brings_up_and_takes_down_this_project_with_its_own_env(docker_log, env_file, monkeypatch):
    monkeypatch.delenv("KEEP_STACK", raising=False)
    head = ["compose", "--env-file", str(env_file), "-f", str(REPO / "docker-compose.yml"), "-p", "influx-stack-it"]
    with get_docker_services(provider.compose_command(env_file), str(provider.COMPOSE_FILE), provider.PROJECT,
                             provider.setup_commands(), provider.cleanup_commands()):
        assert calls(docker_log) == [[*head, "up", "--build", "--detach", "--remove-orphans"]]
    assert calls(docker_log)[1:] == [[*head, "down", "--volumes", "--remove-orphans"]]
    # The tests' own Compose calls (exec, logs, restore) use the same project and .env as pytest-docker's.
    assert ["docker", *head] == provider.DockerStack(env={}, env_file=env_file).compose_cmd
    # That command line names a valid project for the real Compose binary.
    checked = subprocess.run([str(compose_binary()), *head[1:], "config", "--quiet"], capture_output=True,
                             text=True, timeout=60, cwd=REPO, env={"PATH": os.environ["PATH"], "HOME": "/tmp"})
    assert checked.returncode == 0, checked.stderr


def test_keep_stack_leaves_the_stack_running(docker_log, env_file, monkeypatch):
    monkeypatch.setenv("KEEP_STACK", "1")
    with get_docker_services(provider.compose_command(env_file), str(provider.COMPOSE_FILE), provider.PROJECT,
                             provider.setup_commands(), provider.cleanup_commands()):
        pass
    assert [call[-4:] for call in calls(docker_log)] == [["up", "--build", "--detach", "--remove-orphans"]]


def _whole_stack_run(provider_name: str) -> subprocess.CompletedProcess:
    """pytest over one whole-stack module with a chosen provider, no server binaries and no engine."""
    env = {key: value for key, value in os.environ.items() if key not in ("GRAFANA_BIN", "KEEP_STACK")}
    # Binaries named but missing: found neither there nor on PATH, even where influxd is installed.
    missing = str(Path(os.environ["DOCKER_LOG"]).parent / "not-installed")
    env.update(STACK_PROVIDER=provider_name, INFLUXD_BIN=missing, INFLUXDB3_BIN=missing)  # PATH: docker_log's
    return subprocess.run([sys.executable, "-m", "pytest", "tests/integration/test_stack.py", "-rs",
                           "-p", "no:cacheprovider"], capture_output=True, text=True, timeout=300, cwd=REPO, env=env)


def test_the_plugin_is_loaded_and_skips_with_the_engines_reason(docker_log):
    run = _whole_stack_run("docker")
    assert run.returncode == 0, run.stdout[-3000:]
    assert "plugins:" in run.stdout and "docker-3.2.6" in run.stdout, run.stdout[:1500]
    assert "STACK_PROVIDER=docker, but no Docker engine is reachable: Cannot connect to the Docker daemon" \
        in run.stdout
    assert " passed" not in run.stdout and " skipped" in run.stdout
    assert [call for call in calls(docker_log) if call[:1] == ["compose"]] == []


def test_the_native_provider_runs_no_compose_command(docker_log):
    run = _whole_stack_run("native")
    assert run.returncode == 0, run.stdout[-3000:]
    assert "STACK_PROVIDER=native, but no server binaries" in run.stdout
    assert [call for call in calls(docker_log) if call[:1] == ["compose"]] == []


@pytest.mark.parametrize("kind", ["docker", "native"])
def test_the_bucket_switch_puts_the_test_stacks_core_on_the_seaweedfs_bucket(kind, tmp_path, monkeypatch):
    """STACK_INFLUXDB3_OBJECT_STORE=s3: the test .env, resolved by the real Compose binary, starts the S3 server and
    its bucket one-shot, and gives Core and the backup service that server's bucket and generated keys, as a user's
    .env would (README, "No bucket at hand?"). Only the native stack also copies its backups there."""
    from tests.integration import conftest

    monkeypatch.setenv("STACK_INFLUXDB3_OBJECT_STORE", "s3")
    port = conftest.DOCKER_SEAWEEDFS_PORT if kind == "docker" else "40333"
    overrides = conftest.seaweedfs_overrides(tmp_path, dict(conftest.DOCKER_PORTS), port, backups=kind == "native")
    env_file, env = conftest.write_env(tmp_path, overrides)
    services = resolved_config(env_file)["services"]
    assert {"seaweedfs", "seaweedfs-init"} <= set(services)
    assert int(services["seaweedfs"]["ports"][0]["published"]) == int(port)
    keys = (env["SEAWEEDFS_ACCESS_KEY_ID"], env["SEAWEEDFS_SECRET_ACCESS_KEY"])
    core = services["influxdb3"]
    bucket = core["environment"]["INFLUXDB3_BUCKET"]
    assert "--object-store=s3" in core["command"]
    assert core["environment"]["AWS_ENDPOINT"] == "http://seaweedfs:8333"
    assert core["environment"]["AWS_ALLOW_HTTP"] == "true"
    assert (core["environment"]["AWS_ACCESS_KEY_ID"], core["environment"]["AWS_SECRET_ACCESS_KEY"]) == keys
    assert bucket in services["seaweedfs-init"]["environment"]["S3_BUCKETS"].split(",")
    backup = services["backup"]["environment"]
    assert (backup["INFLUXDB3_OBJECT_STORE"], backup["INFLUXDB3_BUCKET"]) == ("s3", bucket)
    assert (backup["INFLUXDB3_S3_ACCESS_KEY_ID"], backup["INFLUXDB3_S3_SECRET_ACCESS_KEY"]) == keys
    assert backup["INFLUXDB3_S3_ENDPOINT"] == "http://seaweedfs:8333"
    assert bool(backup["BACKUP_S3_BUCKET"]) is (kind == "native")


def test_without_the_switch_the_test_stacks_core_keeps_its_files(tmp_path, monkeypatch):
    from tests.integration import conftest

    monkeypatch.delenv("STACK_INFLUXDB3_OBJECT_STORE", raising=False)
    env_file, _ = conftest.write_env(tmp_path, dict(conftest.DOCKER_PORTS))
    services = resolved_config(env_file)["services"]
    assert "seaweedfs" not in services and "--object-store=file" in services["influxdb3"]["command"]
    assert services["backup"]["environment"]["INFLUXDB3_OBJECT_STORE"] == "file"


@pytest.mark.parametrize(("store", "weed", "reason"), [
    ("s3", False, "STACK_INFLUXDB3_OBJECT_STORE=s3 needs the optional S3 server: set WEED_BIN"),
    ("gcs", True, "STACK_INFLUXDB3_OBJECT_STORE='gcs': choose one of file, s3"),
    ("s3", True, ""),
    ("", False, ""),
])
def test_the_bucket_switch_names_what_is_missing(store, weed, reason, tmp_path, monkeypatch):
    """The native stack on the bucket needs a `weed`: without one every whole-stack test is skipped saying so."""
    from tests.integration import conftest

    fake = tmp_path / "server"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    for name in ("INFLUXD_BIN", "INFLUXDB3_BIN"):
        monkeypatch.setenv(name, str(fake))
    monkeypatch.setenv("WEED_BIN", str(fake if weed else tmp_path / "not-installed"))
    monkeypatch.setenv("STACK_PROVIDER", "native")
    monkeypatch.setenv("STACK_INFLUXDB3_OBJECT_STORE", store)
    kind, why = conftest.choose_provider()
    assert (kind, why[:len(reason)]) == ((None, reason) if reason else ("native", ""))
