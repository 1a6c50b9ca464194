"""`python -m grafana.generate` (make dashboards): write grafana/dashboards/<uid>.json from grafana.boards and
grafana/provisioning/alerting/*.yaml from grafana.alerting, with the ALERT_* settings of --env-file and the
environment (grafana/alerting/settings.py; the defaults when neither sets one).

`--check` writes nothing and exits 1, naming the files, when the committed files differ from what the code
generates (a stale file, a missing one, or one nothing generates any more).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from grafana_foundation_sdk.cog.encoder import JSONEncoder

from grafana.alerting import build as alerting
from grafana.alerting.settings import DEFAULTS, Settings, from_env_file, resolve
from grafana.boards import BOARDS

__all__ = ["ALERTING_OUTPUT", "OUTPUT", "Target", "check", "generated", "main", "render", "targets", "write"]

OUTPUT = Path(__file__).resolve().parent / "dashboards"
ALERTING_OUTPUT = Path(__file__).resolve().parent / "provisioning" / "alerting"


@dataclass(frozen=True)
class Target:
    """One generated folder: the files it must hold exactly (`pattern` says which files there are ours)."""

    folder: Path
    pattern: str
    files: dict[str, str]


def render(board: object) -> str:
    """The JSON Grafana reads: stable key order (as the SDK emits it), two-space indent, final newline."""
    return json.dumps(board, cls=JSONEncoder, indent=2, ensure_ascii=False) + "\n"


def generated(settings: Settings = DEFAULTS) -> dict[str, str]:
    """File name -> JSON text for every dashboard; uids must be unique."""
    files: dict[str, str] = {}
    for module in BOARDS:
        board = module.build(settings)
        if board.uid != module.UID:
            raise ValueError(f"{module.__name__}: built uid {board.uid!r}, declared {module.UID!r}")
        name = f"{board.uid}.json"
        if name in files:
            raise ValueError(f"two dashboards use the uid {board.uid!r}")
        files[name] = render(board)
    return files


def targets(settings: Settings = DEFAULTS, dashboards: Path = OUTPUT,
            alerting_folder: Path = ALERTING_OUTPUT) -> list[Target]:
    return [Target(dashboards, "*.json", generated(settings)),
            Target(alerting_folder, "*.yaml", alerting.generated(settings))]


def _problems(target: Target) -> list[str]:
    present = {path.name for path in target.folder.glob(target.pattern)}
    expected = target.files
    where = target.folder.name
    problems = [f"{where}/{name}: missing (run make dashboards)" for name in sorted(set(expected) - present)]
    problems += [f"{where}/{name}: nothing generates it (delete it or run make dashboards)"
                 for name in sorted(present - set(expected))]
    problems += [f"{where}/{name}: differs from the code (run make dashboards)"
                 for name in sorted(set(expected) & present)
                 if (target.folder / name).read_text(encoding="utf-8") != expected[name]]
    return problems


def check(folder: Path = OUTPUT, settings: Settings = DEFAULTS, alerting_folder: Path = ALERTING_OUTPUT) -> list[str]:
    """What differs between the folders and the generator: one line per file, empty when up to date."""
    return [line for target in targets(settings, folder, alerting_folder) for line in _problems(target)]


def _write(target: Target) -> list[str]:
    target.folder.mkdir(parents=True, exist_ok=True)
    changed = []
    for path in target.folder.glob(target.pattern):
        if path.name not in target.files:
            path.unlink()
            changed.append(f"deleted {path.name}")
    for name, text in target.files.items():
        path = target.folder / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(f"wrote {name}")
    (target.folder / ".gitkeep").unlink(missing_ok=True)
    return changed


def write(folder: Path = OUTPUT, settings: Settings = DEFAULTS, alerting_folder: Path = ALERTING_OUTPUT) -> list[str]:
    """Write every dashboard and alerting file, delete generated files nothing generates; returns what changed."""
    return [line for target in targets(settings, folder, alerting_folder) for line in _write(target)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grafana.generate", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed files, write nothing")
    parser.add_argument("--output", type=Path, default=OUTPUT, help=f"dashboards folder (default {OUTPUT})")
    parser.add_argument("--alerting-output", type=Path, default=ALERTING_OUTPUT,
                        help=f"alerting provisioning folder (default {ALERTING_OUTPUT})")
    parser.add_argument("--env-file", type=Path, default=None,
                        help="read ALERT_* settings from this .env file (the environment overrides it)")
    args = parser.parse_args(argv)
    try:
        settings = resolve(from_env_file(args.env_file, os.environ))
    except ValueError as exc:
        print(f"[dashboards] ERROR: {exc}", file=sys.stderr)
        return 2
    note = ", ".join(f"{key}={value}" for key, value in sorted(settings.overrides().items()))
    if note:
        print(f"[dashboards] settings other than the defaults: {note}")
    if args.check:
        problems = check(args.output, settings, args.alerting_output)
        for line in problems:
            print(f"[dashboards] {line}", file=sys.stderr)
        if not problems:
            print(f"[dashboards] {len(BOARDS)} dashboards and {len(alerting.FILES)} alerting files up to date")
        return 1 if problems else 0
    changed = write(args.output, settings, args.alerting_output)
    for line in changed:
        print(f"[dashboards] {line}")
    print(f"[dashboards] {len(BOARDS)} dashboards in {args.output}, {len(alerting.FILES)} alerting files in "
          f"{args.alerting_output} ({len(changed)} changed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
