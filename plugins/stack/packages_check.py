"""
{
    "plugin_type": ["http"],
    "http_args_config": []
}
"""

# Proof, from inside the engine, that the plugins' packages are there. InfluxDB 3 installs packages with
# `python -m pip install` and answers 200 without looking at pip's exit status
# (influxdb3_processing_engine/src/environment.rs), so "installed" means nothing until the engine's own
# interpreter imports each package at its pinned version. influxdb3-init POSTs the pins here right after the
# install: {"packages": ["prophet==1.5.0", ...]}. The answer lists, per package, the version found and whether
# it imports; `ok` is true only when every pin matches and imports. Anyone can call it again later.

import importlib
import importlib.metadata
import json
import re
import sys

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;]+)$")
_JSON = {"Content-Type": "application/json"}


def _modules(distribution, name):
    """Top-level modules a distribution provides (top_level.txt, else the file list, else its own name)."""
    text = distribution.read_text("top_level.txt") or ""
    found = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("_")]
    if not found:
        for entry in distribution.files or []:
            parts = entry.parts
            if parts and parts[-1] == "__init__.py" and len(parts) == 2:
                found.append(parts[0])
    return sorted(set(found)) or [name.replace("-", "_")]


def _check(pin):
    match = _PIN.match(pin.strip())
    if not match:
        return {"pin": pin, "ok": False, "problem": "not a name==version pin"}
    name, wanted = match.groups()
    try:
        distribution = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return {"pin": pin, "ok": False, "installed": None,
                "problem": f"{name} is not installed in the engine's environment"}
    installed = distribution.version
    result = {"pin": pin, "installed": installed, "modules": _modules(distribution, name)}
    if installed != wanted:
        return {**result, "ok": False, "problem": f"{name} {installed} is installed, {wanted} is pinned"}
    for module in result["modules"]:
        try:
            importlib.import_module(module)
        except Exception as exc:  # an import can fail with anything (a missing shared library, a bad wheel)
            return {**result, "ok": False, "problem": f"import {module} failed: {type(exc).__name__}: {exc}"}
    return {**result, "ok": True}


def process_request(influxdb3_local, query_parameters, request_headers, request_body, args=None):
    try:
        pins = json.loads(request_body or b"{}").get("packages")
    except (ValueError, AttributeError):
        pins = None
    if not isinstance(pins, list) or not all(isinstance(pin, str) for pin in pins):
        return {"ok": False, "error": 'POST {"packages": ["name==version", ...]}'}, 400, _JSON
    results = [_check(pin) for pin in pins]
    failed = [item for item in results if not item["ok"]]
    for item in failed:
        influxdb3_local.error(f"[packages_check] {item['pin']}: {item['problem']}")
    influxdb3_local.info(f"[packages_check] {len(results) - len(failed)} of {len(results)} packages import at their "
                         "pinned versions")
    return {"ok": not failed, "python": sys.version.split()[0], "packages": results}
