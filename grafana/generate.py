"""`python -m grafana.generate` (make dashboards): write grafana/dashboards/<uid>.json from grafana.boards.

`--check` writes nothing and exits 1, naming the files, when the committed JSON differs from what the code
generates (a stale file, a missing one, or one no dashboard generates any more).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from grafana_foundation_sdk.cog.encoder import JSONEncoder

from grafana.boards import BOARDS

__all__ = ["OUTPUT", "check", "generated", "main", "render", "write"]

OUTPUT = Path(__file__).resolve().parent / "dashboards"


def render(board: object) -> str:
    """The JSON Grafana reads: stable key order (as the SDK emits it), two-space indent, final newline."""
    return json.dumps(board, cls=JSONEncoder, indent=2, ensure_ascii=False) + "\n"


def generated() -> dict[str, str]:
    """File name -> JSON text for every dashboard; uids must be unique."""
    files: dict[str, str] = {}
    for module in BOARDS:
        board = module.build()
        if board.uid != module.UID:
            raise ValueError(f"{module.__name__}: built uid {board.uid!r}, declared {module.UID!r}")
        name = f"{board.uid}.json"
        if name in files:
            raise ValueError(f"two dashboards use the uid {board.uid!r}")
        files[name] = render(board)
    return files


def check(folder: Path = OUTPUT) -> list[str]:
    """What differs between `folder` and the generator: one line per file, empty when up to date."""
    expected = generated()
    present = {path.name for path in folder.glob("*.json")}
    problems = [f"{name}: missing (run make dashboards)" for name in sorted(set(expected) - present)]
    problems += [f"{name}: no dashboard generates it (delete it or run make dashboards)"
                 for name in sorted(present - set(expected))]
    problems += [f"{name}: differs from the code (run make dashboards)" for name in sorted(set(expected) & present)
                 if (folder / name).read_text(encoding="utf-8") != expected[name]]
    return problems


def write(folder: Path = OUTPUT) -> list[str]:
    """Write every dashboard, delete JSON no dashboard generates; returns what changed."""
    folder.mkdir(parents=True, exist_ok=True)
    expected = generated()
    changed = []
    for path in folder.glob("*.json"):
        if path.name not in expected:
            path.unlink()
            changed.append(f"deleted {path.name}")
    for name, text in expected.items():
        path = folder / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(f"wrote {name}")
    (folder / ".gitkeep").unlink(missing_ok=True)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grafana.generate", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed JSON, write nothing")
    parser.add_argument("--output", type=Path, default=OUTPUT, help=f"folder (default {OUTPUT})")
    args = parser.parse_args(argv)
    if args.check:
        problems = check(args.output)
        for line in problems:
            print(f"[dashboards] {line}", file=sys.stderr)
        if not problems:
            print(f"[dashboards] {len(BOARDS)} dashboards up to date in {args.output}")
        return 1 if problems else 0
    changed = write(args.output)
    for line in changed:
        print(f"[dashboards] {line}")
    print(f"[dashboards] {len(BOARDS)} dashboards in {args.output} ({len(changed)} changed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
