#!/usr/bin/env python3
"""Host-side helper behind `make up`: secrets, preflight checks, waiting for health, and the welcome text.

Runs with the host's plain `python3` (standard library only, Python 3.8+): a user needs nothing installed
but Docker with Compose v2 to bring the stack up.

    python3 compose/stack.py env      create .env from .env.example with generated secrets (never overwrites)
    python3 compose/stack.py doctor   fail fast if Docker, the engine or Compose v2 is missing, or .env is incomplete
    python3 compose/stack.py wait     wait until every long-running service is healthy and every one-shot succeeded
    python3 compose/stack.py tokens   restart a service whose InfluxDB 2 token influxdb2-init has just replaced
    python3 compose/stack.py info     print the URLs and where the credentials are (never the secrets themselves)
    python3 compose/stack.py chart    save the forecast chart page (it needs the InfluxDB 3 token) to open locally
    python3 compose/stack.py restore --set NAME|latest [...]   what `make restore` runs (see `restore` below)
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import secrets
import shlex
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PREFIX = "[stack]"
_SECRET_MARK = re.compile(r"^#\s*secret:([a-z0-9-]+)")
_ASSIGN = re.compile(r"^([A-Z][A-Z0-9_]*)=(.*)$")
_ALNUM = string.ascii_letters + string.digits


class StackError(RuntimeError):
    """A problem the user must fix; the message says what and how."""


# ------------------------------------------------------------------------------------------------ secrets
def _password() -> str:
    # Letters and digits only: safe unquoted in .env, in Compose interpolation, in URLs and in shells.
    return "".join(secrets.choice(_ALNUM) for _ in range(32))


def _token() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(48)).decode().rstrip("=")


def _influxdb3_token() -> str:
    # The format InfluxDB 3 documents for offline admin tokens: apiv3_ + base64url of >= 16 random bytes.
    return "apiv3_" + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def _key() -> str:
    # 32 random bytes, urlsafe base64 with padding: the form Fernet and most AEAD wrappers accept.
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def _access_key() -> str:
    # S3 access key ids are 20 upper-case letters and digits (AWS's form; SeaweedFS takes any string).
    return "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(20))


GENERATORS: dict[str, Callable[[], str]] = {
    "password": _password,
    "access-key": _access_key,
    "token": _token,
    "influxdb3-token": _influxdb3_token,
    "key": _key,
}


def parse_template(text: str) -> list[tuple[str, str, str | None]]:
    """(name, default value, secret kind or None) for every assignment in an .env template, in order."""
    entries = []
    pending: str | None = None
    for line in text.splitlines():
        mark = _SECRET_MARK.match(line)
        if mark:
            pending = mark.group(1)
            if pending not in GENERATORS:
                raise StackError(f".env.example: unknown secret kind {pending!r} (known: {', '.join(GENERATORS)})")
            continue
        assign = _ASSIGN.match(line)
        if assign:
            entries.append((assign.group(1), assign.group(2), pending))
            pending = None
        elif not line.startswith("#"):
            pending = None
    return entries


def read_env(path: Path) -> dict[str, str]:
    """KEY=value pairs of an .env file (comments and blank lines skipped, surrounding quotes removed)."""
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        assign = _ASSIGN.match(line.strip())
        if assign:
            value = assign.group(2).strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            values[assign.group(1)] = value
    return values


def _write_private(path: Path, text: str) -> None:
    """Write atomically with mode 0600 from the first byte (no window where the secrets are readable)."""
    fd, tmp = tempfile.mkstemp(prefix=".env.", dir=str(path.parent))
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def ensure_env(example: Path, target: Path) -> list[str]:
    """Create `target` from `example` with generated secrets, or append variables it lacks.

    Never changes a value already in `target`. Returns what was done, one line per action, without values.
    """
    template = example.read_text(encoding="utf-8")
    entries = parse_template(template)
    kinds = {name: kind for name, _, kind in entries}
    if not target.exists():
        out = []
        for line in template.splitlines():
            assign = _ASSIGN.match(line)
            if assign and kinds.get(assign.group(1)) and assign.group(2).strip() == "":
                line = f"{assign.group(1)}={GENERATORS[kinds[assign.group(1)]]()}"
            out.append(line)
        _write_private(target, "\n".join(out) + "\n")
        generated = [name for name, value, kind in entries if kind and not value.strip()]
        return [f"created {target.name} (mode 0600) with generated {', '.join(generated)}"]
    actions = []
    mode = target.stat().st_mode & 0o777
    if mode & 0o077:
        actions.append(f"warning: {target.name} is readable by others (mode {mode:o}); run chmod 600 {target.name}")
    present = read_env(target)
    missing = [(name, value, kind) for name, value, kind in entries if name not in present]
    if missing:
        lines = [f"\n# Added by make up from a newer {example.name}"]
        for name, value, kind in missing:
            lines.append(f"{name}={GENERATORS[kind]() if kind and not value.strip() else value}")
        existing = target.read_text(encoding="utf-8")
        _write_private(target, existing.rstrip("\n") + "\n" + "\n".join(lines) + "\n")
        actions.append(f"appended {', '.join(name for name, _, _ in missing)} to {target.name}")
    return actions


def check_env(example: Path, target: Path) -> list[str]:
    """Problems that would stop the stack: missing .env, empty secrets, emptied required settings."""
    if not target.exists():
        return [f"{target.name} does not exist: run `make up` (or `python3 compose/stack.py env`)"]
    present = read_env(target)
    problems = []
    for name, default, kind in parse_template(example.read_text(encoding="utf-8")):
        value = present.get(name, "")
        if kind and not value:
            problems.append(f"{name} is empty in {target.name}: it is a secret; delete the line and run `make up` "
                            "to generate it")
        elif default.strip() and not value:
            problems.append(f"{name} is empty in {target.name} (the default is {default.strip()!r})")
    if present.get("INFLUXDB3_ADMIN_TOKEN") and not present["INFLUXDB3_ADMIN_TOKEN"].startswith("apiv3_"):
        problems.append("INFLUXDB3_ADMIN_TOKEN must start with apiv3_ (the format InfluxDB 3 accepts)")
    return problems


# ------------------------------------------------------------------------------------------------- docker
def _run(cmd: Sequence[str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)


def doctor(compose: Sequence[str]) -> list[str]:
    """Problems with the Docker installation, each with what to do about it."""
    try:
        version = _run([*compose, "version", "--short"])
    except FileNotFoundError:
        return [f"`{compose[0]}` is not installed: install Docker (https://docs.docker.com/engine/install/)"]
    except subprocess.TimeoutExpired:
        return ["`docker compose version` did not answer within 60 s"]
    if version.returncode != 0:
        return ["Docker Compose v2 is required but `" + " ".join(compose) + " version` failed: install the "
                "compose plugin (https://docs.docker.com/compose/install/)"]
    text = version.stdout.strip().lstrip("v")
    major = text.split(".", 1)[0]
    if not major.isdigit() or int(major) < 2:
        return [f"Docker Compose v2 or newer is required, found {text or 'an unknown version'}"]
    info = _run(["docker", "info", "--format", "{{.ServerVersion}}"]) if compose[0] == "docker" else None
    if info is not None and info.returncode != 0:
        return ["the Docker engine is not reachable (is it running? can this user use it?): "
                + (info.stderr.strip().splitlines() or ["docker info failed"])[-1]]
    return []


def parse_ps(output: str) -> list[dict]:
    """Rows of `docker compose ps --format json`: a JSON array (older v2) or one object per line (newer)."""
    text = output.strip()
    if not text:
        return []
    if text.startswith("["):
        return list(json.loads(text))
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def assess(rows: Iterable[dict], services: dict[str, bool]) -> tuple[list[str], list[str]]:
    """(failures, still waiting) for the stack. `services` maps each service to True when it is a one-shot.

    A long-running service is ready when running and healthy (or running, if it has no healthcheck);
    a one-shot is ready when it exited with code 0.
    """
    by_service: dict[str, dict] = {}
    for row in rows:
        by_service[row.get("Service", "")] = row
    failures, waiting = [], []
    for name, one_shot in services.items():
        row = by_service.get(name)
        if row is None:
            waiting.append(f"{name}: not created yet")
            continue
        state, health = (row.get("State") or "").lower(), (row.get("Health") or "").lower()
        code = row.get("ExitCode", 0)
        if one_shot:
            if state == "exited":
                if code == 0:
                    continue
                failures.append(f"{name}: exited with code {code}")
            else:
                waiting.append(f"{name}: {state or 'starting'}")
        elif state in ("exited", "dead"):
            failures.append(f"{name}: {state} with code {code}")
        elif state == "restarting":
            waiting.append(f"{name}: restarting")
        elif health == "unhealthy":
            failures.append(f"{name}: unhealthy")
        elif health in ("", "healthy") and state == "running":
            continue
        else:
            waiting.append(f"{name}: {health or state}")
    return failures, waiting


def compose_services(config_json: str) -> dict[str, bool]:
    """Service name -> one-shot? from `docker compose config --format json` (restart "no" means one-shot)."""
    config = json.loads(config_json)
    return {name: str(spec.get("restart", "no")).lower() in ("no", "")
            for name, spec in config.get("services", {}).items()}


def wait(compose: Sequence[str], timeout: float, interval: float = 3.0,
         clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
         run: Callable[[Sequence[str]], subprocess.CompletedProcess] = _run) -> None:
    """Poll `compose ps` until the stack is ready; raise StackError naming what failed or timed out."""
    config = run([*compose, "config", "--format", "json"])
    if config.returncode != 0:
        raise StackError("docker compose config failed:\n" + config.stderr.strip())
    services = compose_services(config.stdout)
    deadline = clock() + timeout
    last = None
    while True:
        ps = run([*compose, "ps", "--all", "--format", "json"])
        if ps.returncode != 0:
            raise StackError("docker compose ps failed:\n" + ps.stderr.strip())
        failures, waiting = assess(parse_ps(ps.stdout), services)
        if failures:
            detail = "\n".join(f"  - {item}" for item in failures)
            raise StackError(f"the stack did not come up:\n{detail}\n"
                             f"see: {' '.join(compose)} logs {' '.join(f.split(':')[0] for f in failures)}")
        if not waiting:
            return
        if waiting != last:
            print(f"{PREFIX} waiting for: {'; '.join(waiting)}", flush=True)
            last = waiting
        if clock() >= deadline:
            raise StackError(f"timed out after {timeout:.0f} s waiting for: {'; '.join(waiting)}")
        sleep(interval)


# ------------------------------------------------------------------------------------------------- tokens
# influxdb2-init's last line: "tokens: grafana kept, ingest replaced" (text or inside a JSON log line).
_TOKENS_LINE = re.compile(r"tokens: ((?:[a-z0-9-]+ (?:kept|created|replaced)(?:, )?)+)")


def replaced_tokens(logs: str) -> list[str]:
    """The services whose token the latest run of influxdb2-init replaced, from its logs (every run's, in order)."""
    found = _TOKENS_LINE.findall(logs)
    if not found:
        return []
    return [part.split()[0] for part in found[-1].split(", ") if part.endswith(" replaced")]


def restart_replaced(compose: Sequence[str], timeout: float,
                     capture: Callable[[Sequence[str]], subprocess.CompletedProcess] | None = None,
                     call: Callable[[Sequence[str]], int] | None = None,
                     wait_for: Callable[[Sequence[str], float], None] | None = None) -> list[str]:
    """Restart the services whose InfluxDB 2 token influxdb2-init replaced (a lost token file, or a restore that
    brought back other tokens): Grafana reads its token only when it starts, and the old one no longer works.
    A service started after influxdb2-init already has the new one; restarting it again is harmless."""
    capture = capture or _capture
    logs = capture([*compose, "logs", "--no-color", "--no-log-prefix", "influxdb2-init"])
    names = replaced_tokens(logs.stdout or "")
    if names:
        print(f"{PREFIX} restarting {', '.join(names)}: influxdb2-init replaced its InfluxDB 2 token", flush=True)
        if (call or _call)([*compose, "restart", *names]) != 0:
            raise StackError(f"could not restart {', '.join(names)}; run `{' '.join(compose)} restart "
                             f"{' '.join(names)}`")
        (wait_for or wait)(compose, timeout)
    return names


# ------------------------------------------------------------------------------------------------ restore
def _call(cmd: Sequence[str]) -> int:
    """Run a Compose command with the terminal attached (the user sees its progress and its errors)."""
    return subprocess.run(list(cmd)).returncode


def _capture(cmd: Sequence[str]) -> subprocess.CompletedProcess:
    """Run a Compose command, keeping its stdout (its logs still go to the terminal on stderr)."""
    return subprocess.run(list(cmd), stdout=subprocess.PIPE, text=True)


def restore(compose: Sequence[str], set_name: str, *, only: str | None = None, bucket: str | None = None,
            new_bucket: str | None = None, accept_credential_mismatch: bool = False,
            pre_restore_backup: bool = True, timeout: float = 900.0,
            call: Callable[[Sequence[str]], int] = _call,
            capture: Callable[[Sequence[str]], subprocess.CompletedProcess] = _capture,
            wait_for: Callable[[Sequence[str], float], None] = wait) -> str:
    """`make restore`: the scheduled backups and ingest stop for the whole restore (a backup must not copy a
    half-restored store, and nothing may write into one). Then, in the one-off `restore` service (the only one with
    the data volumes writable): `backup restore SET --prepare` while the servers run, which resolves SET once
    (`latest` could otherwise mean another set by the next step), checks .env's credentials against the set and
    takes the pre-restore set; InfluxDB 3 and Grafana stop; `backup restore NAME` with that name. The stack starts
    again only when the restore succeeded. Returns the name of the set restored."""
    args: list[str] = []
    if only:
        args += ["--only", only]
    if bucket:
        args += ["--bucket", bucket]
    if new_bucket:
        args += ["--new-bucket", new_bucket]
    if accept_credential_mismatch:
        args.append("--accept-credential-mismatch")
    if not pre_restore_backup:
        args.append("--no-pre-restore-backup")
    run = [*compose, "run", "--rm", "--no-deps"]

    def must(cmd: list[str]) -> None:
        if call(cmd) != 0:
            raise StackError(f"`{' '.join(cmd)}` failed (see above)")

    print(f"{PREFIX} pausing the scheduled backups and ingest for the restore", flush=True)
    must([*compose, "stop", "backup", "ingest"])
    prepared = capture([*run, "-T", "restore", "restore", set_name, "--prepare", *args])
    names = (prepared.stdout or "").split()
    if prepared.returncode != 0 or not names:
        call([*compose, "up", "--detach", "backup", "ingest"])
        raise StackError("nothing was restored (the reason is above); the scheduled backups and ingest run again")
    name = names[-1]
    stopped = [] if bucket else [store for store in ("influxdb3", "grafana") if only in (None, store)]
    if stopped:
        must([*compose, "stop", *stopped])
    must([*compose, "up", "--detach", "--wait", "influxdb2"])
    if call([*run, "restore", "restore", name, "--skip-verify", *args]) != 0:
        raise StackError(f"the restore of {name} stopped (the reason is above). ingest, backup"
                         f"{''.join(', ' + store for store in stopped)} stay stopped, so nothing writes into a store "
                         "that is only partly restored: see README, 'When a restore stops half-way'")
    must([*compose, "up", "--detach"])
    wait_for(compose, timeout)
    # A full InfluxDB 2 restore brings back the set's authorizations: influxdb2-init (run again by `up`) kept the
    # service tokens the set still accepts and replaced the others; the services holding a replaced one restart.
    restart_replaced(compose, timeout, capture=capture, call=call, wait_for=wait_for)
    return name


# --------------------------------------------------------------------------------------------------- info
def info_text(env: dict[str, str], env_path: Path) -> str:
    bind = env.get("BIND_ADDRESS") or "127.0.0.1"
    host = "localhost" if bind in ("127.0.0.1", "0.0.0.0", "") else bind
    lines = [
        "The stack is up.",
        "",
        f"  Grafana      http://{host}:{env.get('GRAFANA_PORT', '3000')}   "
        f"user {env.get('GRAFANA_ADMIN_USER', 'admin')}, password GRAFANA_ADMIN_PASSWORD",
        f"  InfluxDB 2   http://{host}:{env.get('INFLUXDB2_PORT', '8086')}   "
        f"user {env.get('INFLUXDB2_ADMIN_USER', 'admin')}, password INFLUXDB2_ADMIN_PASSWORD, "
        f"token INFLUXDB2_ADMIN_TOKEN, org {env.get('INFLUXDB2_ORG', 'stack')}",
        f"  InfluxDB 3   http://{host}:{env.get('INFLUXDB3_PORT', '8181')}   token INFLUXDB3_ADMIN_TOKEN",
        "",
        f"Credentials are in {env_path} (mode 0600); they are never printed. For example:",
        f"  grep GRAFANA_ADMIN_PASSWORD {env_path.name}",
    ]
    if bind == "0.0.0.0":
        lines.append("Note: BIND_ADDRESS=0.0.0.0 publishes these ports on every network interface.")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------- chart
def save_chart(env: dict[str, str], target: Path, path: str = "peyton-chart", series: str | None = None,
               timeout: float = 120.0) -> Path:
    """Fetch a request plugin's page with the token and keep it as a file a browser opens offline.

    Every /api/v3/engine/ path needs the token and InfluxDB 3 sends no WWW-Authenticate challenge
    (influxdb3_server/src/http.rs), so a browser pointed at it gets a bare 401 and never asks for a password.
    """
    import urllib.error
    import urllib.parse
    import urllib.request

    token = env.get("INFLUXDB3_ADMIN_TOKEN")
    if not token:
        raise StackError("INFLUXDB3_ADMIN_TOKEN is not set in .env; run `make up` first")
    host = env.get("BIND_ADDRESS") or "127.0.0.1"
    host = "127.0.0.1" if host == "0.0.0.0" else host
    query = "?" + urllib.parse.urlencode({"series": series}) if series else ""
    url = f"http://{host}:{env.get('INFLUXDB3_PORT', '8181')}/api/v3/engine/{path}{query}"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            page = answer.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")[:300]
        raise StackError(f"{url} answered {exc.code}: {detail}") from None
    except OSError as exc:
        raise StackError(f"cannot reach InfluxDB 3 at {url}: {exc}") from None
    _write_private(target, page.decode("utf-8", "replace"))
    return target


# ---------------------------------------------------------------------------------------------------- cli
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["env", "doctor", "wait", "tokens", "info", "chart", "restore"])
    parser.add_argument("--env-file", type=Path, default=REPO / ".env")
    parser.add_argument("--example", type=Path, default=REPO / ".env.example")
    parser.add_argument("--compose", default=os.environ.get("COMPOSE", "docker compose"),
                        help="the Compose v2 command (default: docker compose)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds `wait` allows (default 900)")
    parser.add_argument("--out", type=Path, default=REPO / "peyton-chart.html", help="where `chart` saves the page")
    parser.add_argument("--series", help="the series `chart` draws (default: the trigger's)")
    parser.add_argument("--set", help="`restore`: the set's name, or latest")
    parser.add_argument("--only", choices=["influxdb2", "influxdb3", "grafana"], help="`restore`: one store")
    parser.add_argument("--bucket", help="`restore`: one InfluxDB 2 bucket, as a new bucket")
    parser.add_argument("--new-bucket", help="`restore`: the restored bucket's name")
    parser.add_argument("--accept-credential-mismatch", action="store_true",
                        help="`restore`: InfluxDB 3 / Grafana even if .env's credentials will not open them")
    parser.add_argument("--no-pre-restore-backup", action="store_true",
                        help="`restore`: without a pre-restore set (a restore that stops half-way cannot be undone)")
    args = parser.parse_args(argv)
    compose = shlex.split(args.compose)
    try:
        if args.command == "env":
            for action in ensure_env(args.example, args.env_file):
                print(f"{PREFIX} {action}")
            problems = check_env(args.example, args.env_file)
            if problems:
                raise StackError("\n".join(problems))
        elif args.command == "doctor":
            problems = doctor(compose) + check_env(args.example, args.env_file)
            if problems:
                raise StackError("\n".join(problems))
        elif args.command == "wait":
            wait(compose, args.timeout)
            print(f"{PREFIX} every service is healthy and provisioning finished")
        elif args.command == "tokens":
            restart_replaced(compose, args.timeout)
        elif args.command == "restore":
            if not args.set:
                raise StackError("restore needs --set <set name|latest>")
            name = restore(compose, args.set, only=args.only, bucket=args.bucket, new_bucket=args.new_bucket,
                           accept_credential_mismatch=args.accept_credential_mismatch,
                           pre_restore_backup=not args.no_pre_restore_backup, timeout=args.timeout)
            print(f"{PREFIX} restored {name}; every service is healthy again")
        elif args.command == "chart":
            saved = save_chart(read_env(args.env_file), args.out, series=args.series)
            print(f"{PREFIX} forecast chart saved: open {saved.resolve().as_uri()} in a browser")
        else:
            print(info_text(read_env(args.env_file), args.env_file))
    except StackError as exc:
        for line in str(exc).splitlines():
            print(f"{PREFIX} ERROR: {line}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
