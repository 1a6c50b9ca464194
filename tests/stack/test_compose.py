"""docker-compose.yml, validated offline by the real Compose v2 binary with a generated .env."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.stack.conftest import make_env
from tests.support.compose import COMPOSE_FILE, resolved_config, run_compose
from tests.support.paths import REPO
from tests.support.stackcli import stack_module

PINNED_TAG = re.compile(r"^[a-z0-9][a-z0-9._/-]*:\d+\.\d+\.\d+(-[a-z0-9]+)*$")
ONE_SHOTS = {"influxdb3-prepare", "influxdb3-init", "influxdb2-init"}


@pytest.fixture
def config(env_file: Path) -> dict:
    return resolved_config(env_file)


def test_compose_file_is_valid(env_file: Path):
    result = run_compose(env_file, "config", "--quiet")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


@pytest.mark.parametrize("secret", ["INFLUXDB2_ADMIN_PASSWORD", "INFLUXDB2_ADMIN_TOKEN", "INFLUXDB3_ADMIN_TOKEN",
                                    "GRAFANA_ADMIN_PASSWORD"])
def test_an_empty_secret_stops_compose_with_its_name(tmp_path: Path, secret: str):
    env_file = make_env(tmp_path, **{secret: ""})
    result = run_compose(env_file, "config", "--quiet")
    assert result.returncode != 0
    assert secret in result.stderr and "make up" in result.stderr


def test_the_stack_has_the_expected_services(config: dict):
    assert set(config["services"]) == {"influxdb2", "influxdb2-init", "influxdb3-prepare", "influxdb3",
                                       "influxdb3-init", "grafana", "ingest", "backup"}


def test_every_pulled_image_is_pinned_to_a_full_version(config: dict):
    for name, service in config["services"].items():
        if "build" in service:
            continue
        assert PINNED_TAG.match(service["image"]), f"{name}: {service['image']} is not pinned to x.y.z"


def test_every_dockerfile_base_image_is_pinned():
    dockerfiles = [path for path in REPO.rglob("Dockerfile") if ".venv" not in path.parts]
    assert {p.relative_to(REPO).as_posix() for p in dockerfiles} >= {"compose/influxdb3-init/Dockerfile"}
    for path in dockerfiles:
        stages: set[str] = set()
        for line in path.read_text().splitlines():
            match = re.match(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line.strip(), re.IGNORECASE)
            if not match:
                continue
            image = match.group(1)
            if image not in stages:
                assert PINNED_TAG.match(image.split("@")[0]), f"{path}: base image {image} is not pinned"
            if match.group(2):
                stages.add(match.group(2))


def test_services_built_here_exist(config: dict):
    for name, service in config["services"].items():
        if "build" in service:
            dockerfile = Path(service["build"]["context"]) / service["build"]["dockerfile"]
            assert dockerfile.is_file(), f"{name}: {dockerfile} is missing"


def test_long_running_services_restart_and_have_a_healthcheck(config: dict):
    for name, service in config["services"].items():
        if name in ONE_SHOTS:
            assert service.get("restart") == "no", f"{name} is a one-shot and must not restart"
            continue
        assert service.get("restart") == "unless-stopped", name
        if "build" in service:
            dockerfile = Path(service["build"]["context"]) / service["build"]["dockerfile"]
            has_check = "healthcheck" in service or "HEALTHCHECK" in dockerfile.read_text()
        else:
            has_check = bool(service.get("healthcheck", {}).get("test"))
        assert has_check, f"{name} has no healthcheck"


def test_dependencies_wait_for_health_or_completion(config: dict):
    expected = {
        # seaweedfs-init only exists with COMPOSE_PROFILES=seaweedfs (required: false, checked below).
        "influxdb3": {"influxdb3-prepare": "service_completed_successfully",
                      "seaweedfs-init": "service_completed_successfully"},
        "influxdb3-init": {"influxdb3": "service_healthy"},
        "influxdb2-init": {"influxdb2": "service_healthy"},
        # Grafana and the ingest read the token files influxdb2-init writes.
        "grafana": {"influxdb2-init": "service_completed_successfully", "influxdb3": "service_healthy"},
        "ingest": {"influxdb2": "service_healthy", "influxdb3": "service_healthy",
                   "influxdb3-init": "service_completed_successfully",
                   "influxdb2-init": "service_completed_successfully"},
        "backup": {"influxdb2": "service_healthy", "influxdb3": "service_healthy", "grafana": "service_healthy"},
    }
    for name, wants in expected.items():
        depends = config["services"][name].get("depends_on", {})
        assert {dep: spec["condition"] for dep, spec in depends.items()} == wants, name
    assert config["services"]["influxdb3"]["depends_on"]["seaweedfs-init"]["required"] is False


def test_the_optional_s3_server_is_off_by_default_and_on_with_its_profile(tmp_path: Path):
    """SeaweedFS (README, "InfluxDB 3 on object storage"): absent unless COMPOSE_PROFILES=seaweedfs; then pinned,
    with the keys make up generated (never a default), its S3 port on loopback only, and a one-shot that creates
    its buckets before InfluxDB 3 starts."""
    env_file = make_env(tmp_path, COMPOSE_PROFILES="seaweedfs", INFLUXDB3_OBJECT_STORE="s3",
                        INFLUXDB3_BUCKET="influxdb3", INFLUXDB3_S3_ENDPOINT="http://seaweedfs:8333",
                        INFLUXDB3_S3_ALLOW_HTTP="true")
    env = stack_module().read_env(env_file)
    assert len(env["SEAWEEDFS_ACCESS_KEY_ID"]) == 20 and len(env["SEAWEEDFS_SECRET_ACCESS_KEY"]) == 32
    services = resolved_config(env_file)["services"]
    weed, init, core = services["seaweedfs"], services["seaweedfs-init"], services["influxdb3"]
    assert PINNED_TAG.match(weed["image"]) or re.fullmatch(r"chrislusf/seaweedfs:\d+\.\d+", weed["image"])
    assert weed["environment"] == {"AWS_ACCESS_KEY_ID": env["SEAWEEDFS_ACCESS_KEY_ID"],
                                   "AWS_SECRET_ACCESS_KEY": env["SEAWEEDFS_SECRET_ACCESS_KEY"]}
    assert [(p["target"], p["host_ip"]) for p in weed["ports"]] == [(8333, "127.0.0.1")]
    assert init["depends_on"] == {"seaweedfs": {"condition": "service_healthy", "required": True, "restart": False}} \
        or init["depends_on"]["seaweedfs"]["condition"] == "service_healthy"
    assert init["environment"]["S3_BUCKETS"] == "influxdb3,backups"
    assert "--object-store=s3" in core["command"]
    assert core["environment"]["INFLUXDB3_BUCKET"] == "influxdb3"
    assert core["environment"]["AWS_ENDPOINT"] == "http://seaweedfs:8333"
    assert core["environment"]["AWS_ALLOW_HTTP"] == "true"
    # Core refuses an empty --aws-endpoint even on the file store: the default is AWS's own, for the region.
    (tmp_path / "aws").mkdir()
    default = resolved_config(make_env(tmp_path / "aws", INFLUXDB3_S3_REGION="eu-central-1"))["services"]
    assert default["influxdb3"]["environment"]["AWS_ENDPOINT"] == "https://s3.eu-central-1.amazonaws.com"
    for name in ("SEAWEEDFS_ACCESS_KEY_ID", "SEAWEEDFS_SECRET_ACCESS_KEY"):
        (tmp_path / name).mkdir()
        blank = make_env(tmp_path / name, COMPOSE_PROFILES="seaweedfs", **{name: ""})
        result = run_compose(blank, "config", "--quiet")
        assert result.returncode != 0 and name in result.stderr


def test_influxdb3_runs_the_engine_with_read_only_plugins(config: dict):
    service = config["services"]["influxdb3"]
    mounts = {volume["target"]: volume for volume in service["volumes"]}
    plugins = mounts["/plugins"]
    assert plugins["type"] == "bind" and Path(plugins["source"]) == REPO / "plugins"
    assert plugins.get("read_only") is True
    command = service["command"]
    assert "--plugin-dir=/plugins" in command
    assert "--disable-authz=health,ping" in command
    assert "--object-store=file" in command
    # Every query the stack makes reads at most ~1,000 files (tests/grafana/test_history.py, windowed plugin reads):
    # the limit only keeps one wide ad-hoc query from taking the server's memory.
    assert "--query-file-limit=2000" in command
    # Core indexes only the last lookback/10min snapshots at start: 10 years, so a restart never hides history.
    assert "--gen1-lookback-duration=10y" in command
    # The rollups wide panels read are older than Core's 5 hours: cached in memory all the same.
    assert "--parquet-mem-cache-query-path-duration=10y" in command
    assert "--disable-telemetry-upload" in command  # no usage reports leave the machine
    # The engine's virtual environment, the object store and the token file live on named volumes.
    for flag, volume in [("--virtual-env-location", "influxdb3-venv"), ("--data-dir", "influxdb3-data"),
                         ("--admin-token-file", "influxdb3-secrets")]:
        value = next(arg.split("=", 1)[1] for arg in command if arg.startswith(flag + "="))
        owner = next(m for target, m in mounts.items() if value == target or value.startswith(target + "/"))
        assert owner["type"] == "volume" and owner["source"] == volume, flag
    assert mounts["/var/lib/influxdb3/secrets"].get("read_only") is True
    assert service["healthcheck"]["test"][-1] == "http://127.0.0.1:8181/health"


def test_the_prepare_step_writes_into_the_volumes_the_server_reads(config: dict):
    prepare = config["services"]["influxdb3-prepare"]
    server = config["services"]["influxdb3"]
    prepared = {v["source"]: v["target"] for v in prepare["volumes"] if v["type"] == "volume"}
    served = {v["source"]: v["target"] for v in server["volumes"] if v["type"] == "volume"}
    assert prepared == served
    assert prepare["user"] == "0:0"
    assert prepare["image"] == server["image"]


def test_data_lives_in_named_volumes(config: dict):
    expected = {"influxdb2": {"/var/lib/influxdb2": "influxdb2-data", "/etc/influxdb2": "influxdb2-config"},
                "grafana": {"/var/lib/grafana": "grafana-data"}}
    for name, wants in expected.items():
        mounts = {v["target"]: v for v in config["services"][name]["volumes"]}
        for target, volume in wants.items():
            assert mounts[target]["type"] == "volume" and mounts[target]["source"] == volume
    assert set(config["volumes"]) >= {"influxdb2-data", "influxdb2-config", "influxdb3-data", "influxdb3-venv",
                                      "influxdb3-secrets", "grafana-data"}


def test_only_the_three_user_ports_are_published_on_loopback(config: dict):
    published = {name: service["ports"] for name, service in config["services"].items() if service.get("ports")}
    assert {name: [(p["target"], p["published"], p["host_ip"]) for p in ports]
            for name, ports in published.items()} == {
        "influxdb2": [(8086, "8086", "127.0.0.1")],
        "influxdb3": [(8181, "8181", "127.0.0.1")],
        "grafana": [(3000, "3000", "127.0.0.1")],
    }


def test_an_env_switch_publishes_on_all_interfaces_and_moves_ports(tmp_path: Path):
    env_file = make_env(tmp_path, BIND_ADDRESS="0.0.0.0", GRAFANA_PORT="3300")
    config = resolved_config(env_file)
    ports = {name: s["ports"][0] for name, s in config["services"].items() if s.get("ports")}
    assert {p["host_ip"] for p in ports.values()} == {"0.0.0.0"}
    assert ports["grafana"]["published"] == "3300"


def test_no_secret_is_written_in_the_compose_file():
    raw = yaml.safe_load(COMPOSE_FILE.read_text())
    sensitive = re.compile(r"PASSWORD|TOKEN|SECRET|_KEY$")
    for name, service in raw["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if sensitive.search(key) and not key.endswith(("_FILE", "_USER", "_NAME", "_OWNER")):
                assert re.fullmatch(r"\$\{[A-Z0-9_]+(:\?[^}]*)?\}", str(value)), (
                    f"{name}.{key} must come from .env as ${{VAR:?...}}, not {value!r}")


def test_grafana_anonymous_access_and_sign_up_are_off_by_default(config: dict, tmp_path: Path):
    environment = config["services"]["grafana"]["environment"]
    assert environment["GF_USERS_ALLOW_SIGN_UP"] == "false"
    assert environment["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    anonymous = resolved_config(make_env(tmp_path, GRAFANA_ANONYMOUS_ENABLED="true"))
    assert anonymous["services"]["grafana"]["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert anonymous["services"]["grafana"]["environment"]["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"


def test_secrets_reach_the_services_that_need_them(config: dict, env_file: Path):
    env = stack_module().read_env(env_file)
    services = config["services"]
    assert services["influxdb2"]["environment"]["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"] == env["INFLUXDB2_ADMIN_TOKEN"]
    assert services["influxdb3-prepare"]["environment"]["INFLUXDB3_ADMIN_TOKEN"] == env["INFLUXDB3_ADMIN_TOKEN"]
    assert services["influxdb3-init"]["environment"]["INFLUXDB3_TOKEN"] == env["INFLUXDB3_ADMIN_TOKEN"]
    assert services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == env["GRAFANA_ADMIN_PASSWORD"]
    # The server itself gets the token only through the prepared file, not its environment.
    assert env["INFLUXDB3_ADMIN_TOKEN"] not in str(services["influxdb3"])


def test_each_secret_reaches_only_the_services_that_need_it(config: dict, env_file: Path):
    """Least privilege (README, "Security"): the InfluxDB 2 operator token only where buckets and tokens are made
    and where backups are taken and restored; InfluxDB 3 Core has admin tokens only, so its one token goes to every
    service that talks to InfluxDB 3, and to nothing else."""
    env = stack_module().read_env(env_file)
    # (the `restore` service, in its own profile, is the backup service's copy: tests/backup checks it.)
    holders = {secret: {name for name, service in config["services"].items() if env[secret] in str(service)}
               for secret in ("INFLUXDB2_ADMIN_TOKEN", "INFLUXDB2_ADMIN_PASSWORD", "INFLUXDB3_ADMIN_TOKEN",
                              "GRAFANA_ADMIN_PASSWORD")}
    assert holders == {
        "INFLUXDB2_ADMIN_TOKEN": {"influxdb2", "influxdb2-init", "backup"},
        "INFLUXDB2_ADMIN_PASSWORD": {"influxdb2"},
        "INFLUXDB3_ADMIN_TOKEN": {"influxdb3-prepare", "influxdb3-init", "grafana", "ingest", "backup"},
        "GRAFANA_ADMIN_PASSWORD": {"grafana", "backup"},
    }


def test_each_influxdb2_service_token_is_mounted_only_into_its_service(config: dict):
    """influxdb2-init writes each token into a volume of its own; only that service mounts it, read-only, and finds
    its token where its configuration reads it."""
    mounts = {name: {v["source"]: (v["target"], bool(v.get("read_only"))) for v in service.get("volumes") or []
                     if v["type"] == "volume"} for name, service in config["services"].items()}
    init = config["services"]["influxdb2-init"]["environment"]
    for service, volume, variable in (("grafana", "influxdb2-grafana-token", "GRAFANA_TOKEN_FILE"),
                                      ("ingest", "influxdb2-ingest-token", "INGEST_TOKEN_FILE")):
        assert {name for name, volumes in mounts.items() if volume in volumes} == {"influxdb2-init", service}
        target, read_only = mounts[service][volume]
        assert read_only and target == "/run/secrets/influxdb2"
        written, _ = mounts["influxdb2-init"][volume]
        assert init[variable] == f"{written}/token"
    assert config["services"]["ingest"]["environment"]["INFLUXDB2_TOKEN_FILE"] == "/run/secrets/influxdb2/token"
    assert config["services"]["ingest"]["environment"]["INGEST_INFLUXDB2_CREATE_BUCKETS"] == "false"
    datasources = (REPO / "grafana/provisioning/datasources/influxdb.yaml").read_text()
    assert "$__file{/run/secrets/influxdb2/token}" in datasources
    # The owners are the uids the images run as: Grafana's 472 (group 0), the ingest's Dockerfile USER.
    assert init["GRAFANA_TOKEN_OWNER"] == "472:0"
    assert "USER 10001:10001" in (REPO / "ingest/Dockerfile").read_text()
    assert init["INGEST_TOKEN_OWNER"] == "10001:10001"


def test_influxdb2_init_is_root_only_for_the_token_files(config: dict):
    init = config["services"]["influxdb2-init"]
    assert init["user"] == "0:0"
    assert init["cap_drop"] == ["ALL"] and sorted(init["cap_add"]) == ["CHOWN", "DAC_OVERRIDE", "FOWNER"]
    assert init["security_opt"] == ["no-new-privileges:true"]
    assert "ports" not in init


def test_every_variable_the_compose_file_reads_is_documented():
    code = "\n".join(line for line in COMPOSE_FILE.read_text().splitlines() if not line.lstrip().startswith("#"))
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", code))
    assert {"INFLUXDB2_ADMIN_TOKEN", "BIND_ADDRESS", "BACKUP_DIR"} <= used
    documented = {name for name, _, _ in stack_module().parse_template((REPO / ".env.example").read_text())}
    assert used - documented == set()


def test_dot_env_is_never_committed():
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=REPO)
    assert ignored.returncode == 0, ".env must be listed in .gitignore"
