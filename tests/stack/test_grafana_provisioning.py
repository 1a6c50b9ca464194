"""Grafana provisioning: datasources with pinned uids and interpolated tokens, wired to the compose file."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tests.support.paths import REPO

PROVISIONING = REPO / "grafana" / "provisioning"
INTERPOLATION = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")
# Grafana's file expander, `$__file{PATH}` (pkg/setting/expanders.go; applied to provisioning values by
# pkg/services/provisioning/values/values.go before environment interpolation): a secret read from a file.
FILE_EXPANSION = re.compile(r"\$__file\{([^}]+)\}")


def datasources() -> list[dict]:
    found = []
    for path in sorted((PROVISIONING / "datasources").glob("*.yaml")):
        document = yaml.safe_load(path.read_text())
        assert document["apiVersion"] == 1
        found.extend(document["datasources"])
    return found


def by_uid() -> dict[str, dict]:
    return {source["uid"]: source for source in datasources()}


def test_influxdb_datasources_with_unique_pinned_uids():
    sources = datasources()
    uids = [s["uid"] for s in sources]
    assert sorted(uids) == ["influxdb2-flux", "influxdb3-influxql", "influxdb3-sql", "influxdb3-sql-forecast",
                            "influxdb3-sql-history", "influxdb3-sql-monitoring"]
    assert len({s["name"] for s in sources}) == len(sources)
    assert sum(1 for s in sources if s.get("isDefault")) == 1
    assert all(s["type"] == "influxdb" and s["access"] == "proxy" and s["editable"] is False for s in sources)


def grafana_environment(env_file: Path) -> dict[str, str]:
    from tests.support.compose import resolved_config

    return resolved_config(env_file)["services"]["grafana"]["environment"]


def as_grafana_reads(value: str, environment: dict[str, str]) -> str:
    """A provisioning value after Grafana's $VAR / ${VAR} interpolation from its environment."""
    return INTERPOLATION.sub(lambda match: environment.get(match.group(1), ""), value)


def test_query_languages_and_targets(env_file: Path):
    sources, environment = by_uid(), grafana_environment(env_file)
    assert sources["influxdb2-flux"]["jsonData"]["version"] == "Flux"
    assert as_grafana_reads(sources["influxdb2-flux"]["url"], environment) == "http://influxdb2:8086"
    assert sources["influxdb3-sql"]["jsonData"]["version"] == "SQL"
    assert sources["influxdb3-sql"]["jsonData"]["insecureGrpc"] is True  # no TLS inside the stack network
    assert as_grafana_reads(sources["influxdb3-sql"]["url"], environment) == "http://influxdb3:8181"
    # The plugins' tables live in their own database, which SQL mode can only reach through its own datasource.
    from plugins.stacklib.tables import FORECAST_DATABASE, HOST_DATABASE

    assert sources["influxdb3-sql-forecast"]["jsonData"]["dbName"] == FORECAST_DATABASE
    assert sources["influxdb3-sql-monitoring"]["jsonData"]["dbName"] == HOST_DATABASE
    influxql = sources["influxdb3-influxql"]
    assert influxql["jsonData"]["version"] == "InfluxQL"
    assert as_grafana_reads(influxql["url"], environment) == "http://influxdb3:8181"
    assert influxql["jsonData"]["httpHeaderName1"] == "Authorization"
    assert influxql["secureJsonData"]["httpHeaderValue1"].startswith("Bearer ${")


def test_every_secret_is_interpolated_never_written():
    for source in datasources():
        for key, value in source.get("secureJsonData", {}).items():
            files = FILE_EXPANSION.findall(value)
            names = INTERPOLATION.findall(FILE_EXPANSION.sub("", value))
            assert names or files, f"{source['uid']}.{key} must come from the environment or a secret file"
            rest = INTERPOLATION.sub("", FILE_EXPANSION.sub("", value)).strip()
            assert rest in ("", "Bearer"), f"{source['uid']}.{key} has a literal"


def test_tokens_are_only_in_secure_json_data():
    """Grafana keeps secureJsonData encrypted in its database and hands the browser only which keys are set
    (`secureJsonFields`); jsonData and the URL are sent to every viewer's browser in the boot data
    (pkg/api/frontendsettings.go), so no token may be there."""
    for source in datasources():
        visible = {key: value for key, value in source.items() if key != "secureJsonData"}
        text = str(visible)
        assert "TOKEN" not in text and "$__file" not in text, source["uid"]
        assert set(source.get("secureJsonData", {})) <= {"token", "httpHeaderValue1"}, source["uid"]


def test_the_flux_datasource_reads_grafanas_own_token_file():
    """Not the operator token: the read-only one influxdb2-init writes (README, "Security")."""
    flux = by_uid()["influxdb2-flux"]["secureJsonData"]["token"]
    assert FILE_EXPANSION.fullmatch(flux) and FILE_EXPANSION.fullmatch(flux).group(1) == "/run/secrets/influxdb2/token"


def test_every_interpolated_variable_is_given_to_grafana(env_file: Path):
    """Datasources and dashboards; the alerting files, where only some fields are interpolated, are checked in
    tests/stack/test_alerting_provisioning.py."""
    environment = grafana_environment(env_file)
    text = "\n".join(p.read_text() for p in PROVISIONING.rglob("*.yaml") if p.parent.name != "alerting")
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    used = set(INTERPOLATION.findall(FILE_EXPANSION.sub("", code)))
    assert used == {"INFLUXDB2_ORG", "INFLUXDB2_BUCKET", "INFLUXDB3_TOKEN", "INFLUXDB3_DATABASE",
                    "INFLUXDB2_URL", "INFLUXDB3_URL", "GRAFANA_DASHBOARDS_DIR"}
    missing = {name for name in used if not environment.get(name)}
    assert missing == set()


def test_services_and_ports_exist_in_the_compose_file(env_file: Path):
    from tests.support.compose import resolved_config

    services = resolved_config(env_file)["services"]
    environment = services["grafana"]["environment"]
    for source in datasources():
        host, port = re.match(r"http://([a-z0-9-]+):(\d+)$", as_grafana_reads(source["url"], environment)).groups()
        assert host in services, source["uid"]
        published = [p["target"] for p in services[host].get("ports", [])]
        assert int(port) in published or int(port) in (8086, 8181), source["uid"]


def test_dashboard_provider_reads_the_mounted_dashboards(env_file: Path):
    from tests.support.compose import resolved_config

    document = yaml.safe_load((PROVISIONING / "dashboards" / "influx-stack.yaml").read_text())
    (provider,) = document["providers"]
    assert provider["type"] == "file"
    grafana = resolved_config(env_file)["services"]["grafana"]
    mounts = {v["target"]: v for v in grafana["volumes"]}
    mount = mounts[as_grafana_reads(provider["options"]["path"], grafana["environment"])]
    assert Path(mount["source"]) == REPO / "grafana" / "dashboards" and mount["read_only"] is True
    assert Path(mounts["/etc/grafana/provisioning"]["source"]) == PROVISIONING
