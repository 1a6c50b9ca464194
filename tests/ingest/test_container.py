"""The ingest container as Compose starts it: its image rules, and an environment the app accepts in full."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from ingest.config import IngestConfig
from tests.support.compose import resolved_config
from tests.support.paths import REPO
from tests.support.stackcli import stack_module

DOCKERFILE = REPO / "ingest" / "Dockerfile"


class Reads(Mapping[str, str]):
    """An environment that remembers which variables the app asked for."""

    def __init__(self, values: Mapping[str, str]):
        self.values, self.asked = dict(values), set()

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        return self.values[key]

    def get(self, key, default=None):
        self.asked.add(key)
        return self.values.get(key, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)


@pytest.fixture(scope="module")
def ingest_service(tmp_path_factory: pytest.TempPathFactory) -> dict:
    env = tmp_path_factory.mktemp("compose") / ".env"
    stack_module().ensure_env(REPO / ".env.example", env)
    return resolved_config(env)["services"]["ingest"]


def test_the_image_is_pinned_slim_non_root_with_a_healthcheck():
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11\.16-slim-bookworm$", text, re.MULTILINE)
    user = re.search(r"^USER (\S+)$", text, re.MULTILINE)
    assert user and user.group(1).split(":")[0] not in ("root", "0")
    assert 'HEALTHCHECK' in text and '"ingest", "health"' in text
    assert 'ENTRYPOINT ["python", "-m", "ingest"]' in text and 'CMD ["run"]' in text
    assert "COPY common/ /app/common/" in text and "COPY ingest/ /app/ingest/" in text
    for line in (REPO / "ingest" / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            assert re.fullmatch(r"[A-Za-z0-9_.\[\]-]+==[^\s=]+", line.strip()), f"not pinned: {line}"


def test_compose_gives_the_service_a_configuration_it_accepts_and_everything_it_reads(ingest_service: dict,
                                                                                     tmp_path: Path):
    values = dict(ingest_service["environment"])
    # influxdb2-init writes this file in the container (tests/stack/test_compose.py checks the mount).
    assert values["INFLUXDB2_TOKEN_FILE"] == "/run/secrets/influxdb2/token" and "INFLUXDB2_TOKEN" not in values
    token_file = tmp_path / "token"
    token_file.write_text("ingest-token\n")
    values["INFLUXDB2_TOKEN_FILE"] = str(token_file)
    environment = Reads(values)
    config = IngestConfig.from_env(environment)
    assert config.influxdb2 is not None and config.influxdb2.url == "http://influxdb2:8086"
    assert config.influxdb2.token == "ingest-token" and config.influxdb2.create_buckets is False
    assert config.influxdb3 is not None and config.influxdb3.url == "http://influxdb3:8181"
    assert config.run_jobs == ("birds", "weather", "sensors", "audit") and config.audit_interval == 3600
    documented = {name for name, _, _ in stack_module().parse_template((REPO / ".env.example").read_text())}
    read = {name for name in environment.asked if not name.endswith("_FILE")}
    fixed = {"INFLUXDB2_URL", "INFLUXDB2_TOKEN", "INFLUXDB3_URL", "INFLUXDB3_TOKEN", "INGEST_STATE_DIR",
             "INGEST_BUCKETS_FILE", "INGEST_INFLUXDB2_CREATE_BUCKETS"}
    assert read - fixed <= set(ingest_service["environment"]), "a variable the app reads is not passed by compose"
    assert read - fixed <= documented, "a variable the app reads is not documented in .env.example"


def test_state_is_the_named_volume_and_the_service_waits_for_provisioning(ingest_service: dict):
    [mount] = [volume for volume in ingest_service["volumes"] if volume["target"] == "/var/lib/ingest"]
    assert mount["type"] == "volume" and mount["source"] == "ingest-state"
    assert ingest_service["depends_on"]["influxdb3-init"]["condition"] == "service_completed_successfully"
    assert ingest_service["healthcheck"]["test"][-4:] == ["ingest", "health", "--max-age", "300"]
    assert Path(ingest_service["build"]["context"]) == REPO
