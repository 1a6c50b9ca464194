"""Whole-stack fixtures: the stack under Docker, or as processes from server binaries (tests/integration/stacks).

The Docker provider is pytest-docker's `docker_services`, given this stack's Compose command, file, project and
setup and cleanup commands by the fixtures of the same names below; it is requested only when Docker is the
provider, so the native provider and a machine without an engine never run a Compose command.
Without either provider, every test here is skipped with both reasons. The stack under test is separate from a user's
stack: its own generated .env, its own ports (Docker: 18086, 18181, 13000; native: free ports), its own backup
folder. Set KEEP_STACK=1 to leave it running after the tests for a look around; STACK_PROVIDER=docker|native
picks the provider when both are available. STACK_INFLUXDB3_OBJECT_STORE=s3 runs InfluxDB 3 Core on the optional
SeaweedFS server's bucket (its `seaweedfs` profile; native: WEED_BIN), set in the test .env as a user's .env sets it
(README, "InfluxDB 3 on object storage"), so every whole-stack test runs against Core on a bucket.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from grafana.alerting import build as alerting_files
from grafana.alerting.settings import Settings
from tests.ingest.formats import movebank_csv, movebank_row
from tests.integration.plugin_repo import PluginRepository
from tests.integration.stacks import Stack, wait_for
from tests.integration.stacks import docker as docker_provider
from tests.integration.stacks.docker import DockerStack, docker_problem
from tests.integration.stacks.native import NativeStack, find_binaries, free_port, weed_port
from tests.integration.stacks.settings import StackSettings
from tests.integration.webhook import WebhookReceiver
from tests.support.paths import REPO
from tests.support.stackcli import stack_module

__all__ = ["wait_for"]

# Modules that wipe and restore the stack's stores run after every other whole-stack test.
DESTRUCTIVE_LAST = ("test_backup.py",)
DOCKER_PORTS = {"INFLUXDB2_PORT": "18086", "INFLUXDB3_PORT": "18181", "GRAFANA_PORT": "13000"}
# The default bird study the service loads is downloaded from GitHub; a native test stack here has no internet,
# so its run loop loads a generated export in the real Movebank format instead (and no weather job: Open-Meteo).
NATIVE_BIRDS = "native-default"
# The test stack's alert rules: the stack's own, with durations short enough to fire within a test (evaluated every
# 10 s, firing at once, ingest silent after 90 s: more than its 1-minute metrics interval).
ALERT_SETTINGS = Settings(evaluation_interval=10, pending_period=0, ingest_silent_after=90)
# The webhook's token, which Grafana must send as `Authorization: Bearer <token>` (ALERT_WEBHOOK_TOKEN).
WEBHOOK_TOKEN = secrets.token_urlsafe(24)
# Where the test stack's InfluxDB 3 keeps its data (STACK_INFLUXDB3_OBJECT_STORE): the volume, or the bucket below.
OBJECT_STORES = ("file", "s3")
# The bucket seaweedfs-init creates for Core (SEAWEEDFS_BUCKETS' default) and the one every backup is copied to.
CORE_BUCKET, BACKUP_BUCKET = "influxdb3", "backups"
# The S3 server's host port in the Docker test project (its own, like DOCKER_PORTS).
DOCKER_SEAWEEDFS_PORT = "18333"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    items.sort(key=lambda item: item.path.parent == here and item.path.name in DESTRUCTIVE_LAST)


def object_store() -> str:
    """The object store the test stack's InfluxDB 3 runs on: STACK_INFLUXDB3_OBJECT_STORE, `file` when unset."""
    return os.environ.get("STACK_INFLUXDB3_OBJECT_STORE", "").strip().lower() or "file"


def choose_provider() -> tuple[str | None, str]:
    """("docker" | "native", "") or (None, why neither can run here)."""
    kind, reason = _provider()
    store = object_store()
    if store not in OBJECT_STORES:
        return None, f"STACK_INFLUXDB3_OBJECT_STORE={store!r}: choose one of {', '.join(OBJECT_STORES)}"
    binaries, _ = find_binaries()
    if kind == "native" and store == "s3" and binaries is not None and binaries.weed is None:
        return None, ("STACK_INFLUXDB3_OBJECT_STORE=s3 needs the optional S3 server: set WEED_BIN (a SeaweedFS "
                      "`weed` 4.x) or put `weed` on PATH")
    return kind, reason


def _provider() -> tuple[str | None, str]:
    wanted = os.environ.get("STACK_PROVIDER", "").strip().lower()
    docker = docker_problem()
    binaries, missing = find_binaries()
    if wanted == "docker":
        return ("docker", "") if docker is None else (None, f"STACK_PROVIDER=docker, but {docker}")
    if wanted == "native":
        return ("native", "") if binaries else (None, f"STACK_PROVIDER=native, but {missing}")
    if docker is None:
        return "docker", ""
    if binaries:
        return "native", ""
    return None, f"whole-stack tests need Docker ({docker}) or server binaries ({missing})"


def write_env(folder: Path, overrides: dict[str, str]) -> tuple[Path, dict[str, str]]:
    """A .env generated as `make up` generates it, with the test stack's own ports, folders and sources."""
    cli = stack_module()
    target = folder / ".env"
    cli.ensure_env(REPO / ".env.example", target)
    lines, left = [], dict(overrides)
    for line in target.read_text().splitlines():
        key = line.split("=", 1)[0]
        lines.append(f"{key}={left.pop(key)}" if key in left and "=" in line else line)
    lines += [f"{key}={value}" for key, value in left.items()]
    target.write_text("\n".join(lines) + "\n")
    return target, cli.read_env(target)


def seaweedfs_overrides(folder: Path, overrides: dict[str, str], port: str, *, backups: bool) -> dict[str, str]:
    """`overrides` with the optional S3 server turned on (COMPOSE_PROFILES=seaweedfs, its host port) and its keys,
    which `make up` generates, given to what uses it: with `backups`, every backup is copied to its bucket (README,
    "Off-host backups"); with STACK_INFLUXDB3_OBJECT_STORE=s3, Core keeps its data in its bucket, set as README,
    "No bucket at hand?", tells a user to set it."""
    added = {"COMPOSE_PROFILES": "seaweedfs", "SEAWEEDFS_S3_PORT": port}
    if backups:
        added.update({"BACKUP_S3_BUCKET": BACKUP_BUCKET, "BACKUP_S3_ENDPOINT": "http://seaweedfs:8333",
                      "BACKUP_S3_PREFIX": "it"})
    if object_store() == "s3":
        added.update({"INFLUXDB3_OBJECT_STORE": "s3", "INFLUXDB3_BUCKET": CORE_BUCKET,
                      "INFLUXDB3_S3_ENDPOINT": "http://seaweedfs:8333", "INFLUXDB3_S3_ALLOW_HTTP": "true"})
    _, generated = write_env(folder, {**overrides, **added})
    keys = {"ACCESS_KEY_ID": generated["SEAWEEDFS_ACCESS_KEY_ID"],
            "SECRET_ACCESS_KEY": generated["SEAWEEDFS_SECRET_ACCESS_KEY"]}
    for prefix in ("BACKUP_S3_", "INFLUXDB3_S3_"):
        if f"{prefix}ENDPOINT" in added:
            added.update({prefix + name: value for name, value in keys.items()})
    return {**overrides, **added}


@pytest.fixture(scope="session")
def plugin_repository() -> Iterator[PluginRepository | None]:
    """The `gh:` plugin repository of a native stack (loopback: no GitHub here); None under Docker, whose
    InfluxDB 3 downloads from the pinned community repository as a user's does."""
    kind, _ = choose_provider()
    if kind != "native":
        yield None
        return
    with PluginRepository() as repository:
        yield repository


@pytest.fixture(scope="session")
def alert_webhook() -> Iterator[WebhookReceiver]:
    """Where the test stack's Grafana sends its notifications (ALERT_WEBHOOK_URL). Under Docker it listens on every
    interface, as Grafana's container reaches this machine at host.docker.internal (docker-compose.yml)."""
    kind, _ = choose_provider()
    with WebhookReceiver("0.0.0.0" if kind == "docker" else "127.0.0.1") as receiver:
        yield receiver


def alerting_overrides(folder: Path, kind: str, webhook: WebhookReceiver) -> dict[str, str]:
    """The stack's alerting files generated with ALERT_SETTINGS into their own folder (GRAFANA_ALERTING_DIR), and
    the webhook contact point pointed at the loopback receiver."""
    target = folder / "alerting"
    target.mkdir()
    for name, text in alerting_files.generated(ALERT_SETTINGS).items():
        (target / name).write_text(text)
    target.chmod(0o755)
    host = "host.docker.internal" if kind == "docker" else "127.0.0.1"
    return {"GRAFANA_ALERTING_DIR": str(target), "ALERT_WEBHOOK_URL": f"http://{host}:{webhook.port}/alerts",
            "ALERT_WEBHOOK_TOKEN": WEBHOOK_TOKEN}


@pytest.fixture(scope="session")
def stack_folder(tmp_path_factory: pytest.TempPathFactory,
                 alert_webhook: WebhookReceiver) -> tuple[Path, dict[str, str]]:
    """The test stack's own folder (backups, alerting files) and the .env settings every provider shares."""
    kind, reason = choose_provider()
    if kind is None:
        pytest.skip(f"whole-stack test: {reason}")
    folder = tmp_path_factory.mktemp("stack")
    (folder / "backups").mkdir()
    return folder, {"BACKUP_DIR": str(folder / "backups"), **alerting_overrides(folder, kind, alert_webhook)}


@pytest.fixture(scope="session")
def docker_env(stack_folder: tuple[Path, dict[str, str]]) -> tuple[Path, dict[str, str]]:
    """The Docker stack's generated .env (its fixed host ports) and its values."""
    folder, overrides = stack_folder
    overrides = {**overrides, **DOCKER_PORTS}
    if object_store() == "s3":
        # Backups stay local: `wipe` (down --volumes) loses the S3 server's volume with the rest.
        overrides = seaweedfs_overrides(folder, overrides, DOCKER_SEAWEEDFS_PORT, backups=False)
    return write_env(folder, overrides)


# ---- pytest-docker's fixtures, for this stack ----------------------------------------------------------------
@pytest.fixture(scope="session")
def docker_compose_command(docker_env: tuple[Path, dict[str, str]]) -> str:
    return docker_provider.compose_command(docker_env[0])


@pytest.fixture(scope="session")
def docker_compose_file() -> str:
    return str(docker_provider.COMPOSE_FILE)


@pytest.fixture(scope="session")
def docker_compose_project_name() -> str:
    return docker_provider.PROJECT


@pytest.fixture(scope="session")
def docker_setup() -> list[str]:
    return docker_provider.setup_commands()


@pytest.fixture(scope="session")
def docker_cleanup() -> list[str]:
    return docker_provider.cleanup_commands()


@pytest.fixture(scope="session")
def stack(request: pytest.FixtureRequest, stack_folder: tuple[Path, dict[str, str]],
          plugin_repository: PluginRepository | None) -> Iterator[Stack]:
    """The whole stack, up and healthy, with provisioning finished."""
    kind, _ = choose_provider()
    folder, overrides = stack_folder
    running: Stack
    if kind == "docker":
        env_file, env = request.getfixturevalue("docker_env")
        running = DockerStack(env=env, env_file=env_file, data_dir=folder / "data",
                              services=request.getfixturevalue("docker_services"))
    else:
        binaries, _ = find_binaries()
        assert binaries is not None
        birds = folder / "movebank-export.csv"
        birds.write_bytes(movebank_csv([movebank_row(index, individual=NATIVE_BIRDS) for index in range(120)]))
        overrides = {**overrides, "INFLUXDB2_PORT": str(free_port()), "INFLUXDB3_PORT": str(free_port()),
                     "GRAFANA_PORT": str(free_port()), "MOVEBANK_SOURCES": str(birds),
                     "INGEST_RUN_JOBS": "birds,sensors"}
        if plugin_repository is not None:
            overrides["INFLUXDB3_PLUGIN_REPO"] = plugin_repository.url
        if binaries.grafana is None:
            overrides["BACKUP_STORES"] = "influxdb2,influxdb3"
        if binaries.weed is not None:
            overrides = seaweedfs_overrides(folder, overrides, str(weed_port()), backups=True)
        env_file, env = write_env(folder, overrides)
        running = NativeStack(env=env, root=folder, binaries=binaries,
                              settings=StackSettings.load(env_file, folder / "volumes"))
        print(f"\n[stack] native provider: {binaries.describe()}")
    try:
        running.up()
    except BaseException:
        running.close()
        raise
    yield running
    running.close()


@pytest.fixture(scope="session")
def grafana(stack: Stack) -> Stack:
    """The stack, when it has a Grafana (the native provider runs without one unless GRAFANA_BIN is given)."""
    if not stack.has_grafana:
        pytest.skip("this stack runs without Grafana: set GRAFANA_BIN and GRAFANA_HOME (a Grafana 12.4 server) "
                    "for the native provider")
    return stack


@pytest.fixture(scope="module")
def temporary_triggers(stack: Stack) -> Iterator[Callable[..., None]]:
    """Create triggers for one test module; they are deleted (forced) afterwards."""
    created: list[tuple[str, str]] = []

    def create(name: str, database: str, plugin: str, spec: str, arguments: dict[str, str]) -> None:
        response = requests.post(
            f"{stack.influxdb3_url}/api/v3/configure/processing_engine_trigger", headers=stack.influxdb3_headers,
            json={"db": database, "plugin_filename": plugin, "trigger_name": name, "trigger_specification": spec,
                  "trigger_arguments": arguments, "disabled": False,
                  "trigger_settings": {"run_async": False, "error_behavior": "log"}}, timeout=60)
        assert response.status_code in (200, 201, 409), response.text
        created.append((database, name))

    yield create
    for database, name in created:
        requests.delete(f"{stack.influxdb3_url}/api/v3/configure/processing_engine_trigger",
                        headers=stack.influxdb3_headers,
                        params={"db": database, "trigger_name": name, "force": "true"}, timeout=60)
