"""Secret generation for `make up`: formats the servers accept, mode 0600, idempotent, never overwriting."""

from __future__ import annotations

import base64
import re
import stat
from pathlib import Path

from tests.support.paths import REPO
from tests.support.stackcli import stack_module

EXAMPLE = REPO / ".env.example"
SECRETS = ("INFLUXDB2_ADMIN_PASSWORD", "INFLUXDB2_ADMIN_TOKEN", "INFLUXDB3_ADMIN_TOKEN", "GRAFANA_ADMIN_PASSWORD",
           "SEAWEEDFS_ACCESS_KEY_ID", "SEAWEEDFS_SECRET_ACCESS_KEY")


def test_example_marks_the_secrets_and_ships_none():
    entries = {name: (value, kind) for name, value, kind in stack_module().parse_template(EXAMPLE.read_text())}
    assert {name for name, (_, kind) in entries.items() if kind} == set(SECRETS)
    assert all(entries[name][0] == "" for name in SECRETS), "no default secret may be committed"


def test_generated_env_has_strong_secrets_in_the_servers_formats(tmp_path: Path):
    cli = stack_module()
    target = tmp_path / ".env"
    actions = cli.ensure_env(EXAMPLE, target)
    assert actions == [f"created .env (mode 0600) with generated {', '.join(SECRETS)}"]
    env = cli.read_env(target)
    for password in (env["INFLUXDB2_ADMIN_PASSWORD"], env["GRAFANA_ADMIN_PASSWORD"],
                     env["SEAWEEDFS_SECRET_ACCESS_KEY"]):
        assert re.fullmatch(r"[A-Za-z0-9]{32}", password)  # ~190 bits, safe unquoted everywhere
    token3 = env["INFLUXDB3_ADMIN_TOKEN"]
    assert token3.startswith("apiv3_")
    raw = base64.urlsafe_b64decode(token3[6:] + "=" * (-len(token3[6:]) % 4))
    assert len(raw) == 32  # InfluxDB asks for at least 16 random bytes
    token2 = env["INFLUXDB2_ADMIN_TOKEN"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{64}", token2)
    assert re.fullmatch(r"[A-Z0-9]{20}", env["SEAWEEDFS_ACCESS_KEY_ID"])  # the S3 access key id form
    assert len(set(env[name] for name in SECRETS)) == len(SECRETS)
    # Every non-secret setting keeps the example's default.
    for name, value, kind in cli.parse_template(EXAMPLE.read_text()):
        if not kind:
            assert env[name] == value


def test_env_file_is_private_from_the_first_byte(tmp_path: Path):
    target = tmp_path / ".env"
    stack_module().ensure_env(EXAMPLE, target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_two_generations_differ(tmp_path: Path):
    cli = stack_module()
    first, second = tmp_path / "a", tmp_path / "b"
    cli.ensure_env(EXAMPLE, first)
    cli.ensure_env(EXAMPLE, second)
    a, b = cli.read_env(first), cli.read_env(second)
    assert all(a[name] != b[name] for name in SECRETS)


def test_second_run_changes_nothing(tmp_path: Path):
    cli = stack_module()
    target = tmp_path / ".env"
    cli.ensure_env(EXAMPLE, target)
    before = target.read_bytes(), target.stat().st_mtime_ns
    assert cli.ensure_env(EXAMPLE, target) == []
    assert (target.read_bytes(), target.stat().st_mtime_ns) == before


def test_existing_values_are_never_overwritten(tmp_path: Path):
    cli = stack_module()
    target = tmp_path / ".env"
    target.write_text("INFLUXDB2_ADMIN_PASSWORD=my-own-password\nGRAFANA_PORT=3300\n")
    target.chmod(0o600)
    actions = cli.ensure_env(EXAMPLE, target)
    env = cli.read_env(target)
    assert env["INFLUXDB2_ADMIN_PASSWORD"] == "my-own-password"
    assert env["GRAFANA_PORT"] == "3300"
    # What an older .env lacked is appended, secrets generated, defaults copied.
    assert env["INFLUXDB3_ADMIN_TOKEN"].startswith("apiv3_")
    assert env["INFLUXDB2_ORG"] == "stack"
    assert len(actions) == 1 and actions[0].startswith("appended ") and "INFLUXDB2_ADMIN_PASSWORD" not in actions[0]
    assert target.read_text().startswith("INFLUXDB2_ADMIN_PASSWORD=my-own-password\nGRAFANA_PORT=3300\n")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_a_readable_env_is_reported(tmp_path: Path):
    cli = stack_module()
    target = tmp_path / ".env"
    cli.ensure_env(EXAMPLE, target)
    target.chmod(0o644)
    assert any("readable by others" in action for action in cli.ensure_env(EXAMPLE, target))


def test_check_names_empty_secrets_and_required_settings(tmp_path: Path):
    cli = stack_module()
    target = tmp_path / ".env"
    cli.ensure_env(EXAMPLE, target)
    text = target.read_text()
    text = re.sub(r"^GRAFANA_ADMIN_PASSWORD=.*$", "GRAFANA_ADMIN_PASSWORD=", text, flags=re.M)
    text = re.sub(r"^INFLUXDB2_ORG=.*$", "INFLUXDB2_ORG=", text, flags=re.M)
    text = re.sub(r"^INFLUXDB3_ADMIN_TOKEN=.*$", "INFLUXDB3_ADMIN_TOKEN=not-a-v3-token", text, flags=re.M)
    target.write_text(text)
    problems = cli.check_env(EXAMPLE, target)
    assert any(p.startswith("GRAFANA_ADMIN_PASSWORD is empty") and "secret" in p for p in problems)
    assert any(p.startswith("INFLUXDB2_ORG is empty") for p in problems)
    assert any("must start with apiv3_" in p for p in problems)
    assert not any(p.startswith("INFLUXDB2_RETENTION") for p in problems)  # empty on purpose: keep forever


def test_env_command_never_prints_a_secret(tmp_path: Path, capsys):
    cli = stack_module()
    target = tmp_path / ".env"
    assert cli.main(["env", "--env-file", str(target)]) == 0
    output = capsys.readouterr()
    env = cli.read_env(target)
    for name in SECRETS:
        assert env[name] not in output.out + output.err
    assert cli.main(["info", "--env-file", str(target)]) == 0
    info = capsys.readouterr().out
    assert "http://localhost:3000" in info and "GRAFANA_ADMIN_PASSWORD" in info
    for name in SECRETS:
        assert env[name] not in info


def test_unknown_secret_kind_is_refused(tmp_path: Path):
    example = tmp_path / "example"
    example.write_text("# secret:sha1\nX=\n")
    try:
        stack_module().ensure_env(example, tmp_path / ".env")
    except stack_module().StackError as exc:
        assert "unknown secret kind 'sha1'" in str(exc)
    else:
        raise AssertionError("an unknown secret kind must be refused")
