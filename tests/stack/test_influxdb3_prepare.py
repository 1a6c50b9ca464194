"""compose/influxdb3-prepare.sh: the offline admin token file and volume ownership, run for real with sh."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.support.paths import REPO
from tests.support.stackcli import stack_module

SCRIPT = REPO / "compose" / "influxdb3-prepare.sh"


def run_prepare(tmp_path: Path, token: str, uid: int | None = None, **extra: str) -> subprocess.CompletedProcess:
    owner = os.getuid() if uid is None else uid
    env = {"PATH": os.environ["PATH"], "INFLUXDB3_ADMIN_TOKEN": token,
           "SECRETS_DIR": str(tmp_path / "secrets"), "DATA_DIR": str(tmp_path / "data"),
           "VENV_DIR": str(tmp_path / "venv"), "SERVER_UID": str(owner), "SERVER_GID": str(owner), **extra}
    return subprocess.run(["sh", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30)


@pytest.fixture
def token() -> str:
    return stack_module()._influxdb3_token()


def test_writes_the_documented_offline_token_file(tmp_path: Path, token: str):
    result = run_prepare(tmp_path, token)
    assert result.returncode == 0, result.stderr
    token_file = tmp_path / "secrets" / "admin-token.json"
    assert json.loads(token_file.read_text()) == {"token": token, "name": "_admin"}
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "secrets").stat().st_mode) == 0o700
    assert token not in result.stdout + result.stderr
    assert result.stdout.startswith("[influxdb3-prepare] ")


def test_a_new_token_name_is_written_and_a_name_that_breaks_the_json_is_refused(tmp_path: Path, token: str):
    """INFLUXDB3_ADMIN_TOKEN_NAME reaches the file as TOKEN_NAME (docker-compose.yml): the server adds a token only
    under a name its catalog lacks, so a new name is how a new token reaches an existing catalog."""
    assert run_prepare(tmp_path, token, TOKEN_NAME="_admin-2").returncode == 0
    assert json.loads((tmp_path / "secrets" / "admin-token.json").read_text()) == {"token": token, "name": "_admin-2"}
    refused = run_prepare(tmp_path, token, TOKEN_NAME='x", "expiry_millis": 1')
    assert refused.returncode != 0 and "INFLUXDB3_ADMIN_TOKEN_NAME may contain only" in refused.stderr


def test_is_idempotent(tmp_path: Path, token: str):
    assert run_prepare(tmp_path, token).returncode == 0
    first = (tmp_path / "secrets" / "admin-token.json").read_bytes()
    again = run_prepare(tmp_path, token)
    assert again.returncode == 0
    assert (tmp_path / "secrets" / "admin-token.json").read_bytes() == first
    assert "gave" not in again.stdout  # nothing to chown the second time
    assert not list((tmp_path / "secrets").glob(".*.tmp"))


@pytest.mark.skipif(os.getuid() != 0, reason="handing files to uid 1500 needs root, as in the container")
def test_hands_the_volumes_to_the_server_uid(tmp_path: Path, token: str):
    (tmp_path / "venv" / "lib").mkdir(parents=True)
    (tmp_path / "venv" / "lib" / "x.py").write_text("")
    assert run_prepare(tmp_path, token, uid=1500).returncode == 0
    for path in ("secrets", "secrets/admin-token.json", "data", "venv", "venv/lib/x.py"):
        info = (tmp_path / path).stat()
        assert (info.st_uid, info.st_gid) == (1500, 1500), path


@pytest.mark.parametrize(("bad", "reason"), [
    ("", "is empty"),
    ("mytoken-" + "a" * 40, "must start with apiv3_"),
    ('apiv3_abc"def' + "a" * 30, "may contain only"),
    ("apiv3_short", "too short"),
])
def test_refuses_tokens_the_server_would_not_take(tmp_path: Path, bad: str, reason: str):
    result = run_prepare(tmp_path, bad)
    assert result.returncode != 0
    assert reason in result.stderr and "ERROR" in result.stderr
    assert not (tmp_path / "secrets" / "admin-token.json").exists()
