"""The packages check runs inside the engine's interpreter: every pin must be installed at its version and import.

It matters because InfluxDB 3 answers 200 to a package install without looking at pip's exit status
(influxdb3_processing_engine/src/environment.rs, v3.10.1): only an import in the engine proves anything.
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
from pathlib import Path

import pytest

from tests.support.paths import REPO

PLUGIN = "stack/packages_check.py"


def pins(path: Path = REPO / "plugins" / "requirements.txt") -> list[str]:
    return [line.split("#", 1)[0].strip() for line in path.read_text().splitlines() if line.split("#", 1)[0].strip()]


def check(engine, packages) -> tuple[int, dict]:
    run = engine.run_request(PLUGIN, "forecast", body=json.dumps({"packages": packages}).encode())
    run.raise_for_error()
    return run.response.status, run.response.json()


def test_the_plugins_own_pins_import_at_their_versions(engine):
    status, answer = check(engine, pins())
    assert status == 200 and answer["ok"] is True, answer
    assert [item["pin"] for item in answer["packages"]] == pins()
    assert {item["pin"].split("==")[0]: item["installed"] for item in answer["packages"]} == {
        name: importlib.metadata.version(name) for name in (pin.split("==")[0] for pin in pins())}
    assert "prophet" in next(item["modules"] for item in answer["packages"] if item["pin"].startswith("prophet"))
    assert answer["python"] == sys.version.split()[0]


@pytest.fixture
def broken_distribution(tmp_path: Path):
    """An installed distribution whose module raises on import (a wheel built for another Python, say)."""
    site = tmp_path / "site"
    (site / "brokenpkg").mkdir(parents=True)
    (site / "brokenpkg" / "__init__.py").write_text("raise ImportError('libbroken.so.1: cannot open shared object')\n")
    info = site / "brokenpkg-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: brokenpkg\nVersion: 1.0\n")
    (info / "top_level.txt").write_text("brokenpkg\n")
    sys.path.append(str(site))
    yield
    sys.path.remove(str(site))
    sys.modules.pop("brokenpkg", None)


def test_missing_wrong_version_and_failing_imports_are_named(engine, broken_distribution):
    numpy = importlib.metadata.version("numpy")
    status, answer = check(engine, ["surely-not-installed-pkg==1.0", "numpy==0.0.1", "brokenpkg==1.0",
                                    f"numpy=={numpy}", "prophet>=1"])
    assert status == 200 and answer["ok"] is False
    problems = {item["pin"]: item.get("problem") for item in answer["packages"]}
    assert problems["surely-not-installed-pkg==1.0"] == \
        "surely-not-installed-pkg is not installed in the engine's environment"
    assert problems["numpy==0.0.1"] == f"numpy {numpy} is installed, 0.0.1 is pinned"
    assert problems["brokenpkg==1.0"].startswith("import brokenpkg failed: ImportError: libbroken.so.1")
    assert problems[f"numpy=={numpy}"] is None
    assert problems["prophet>=1"] == "not a name==version pin"


def test_a_request_without_pins_is_refused(engine):
    run = engine.run_request(PLUGIN, "forecast", body=b"not json").raise_for_error()
    assert run.response.status == 400 and run.response.json()["ok"] is False
