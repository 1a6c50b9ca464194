"""The stack as processes on this machine, from server binaries the user gives, with docker-compose.yml's settings.

Nothing here is a second copy of the stack's configuration: every command line, environment variable and
mount comes from the resolved compose file (stacks/settings.py), translated for a process — a named volume is a
folder under the test stack's root, `http://influxdb3:8181` is the loopback port InfluxDB 3 is published on. What
a container image does before its server starts is done the way the image does it, and says so:
- influxdb2: the official image's entrypoint runs `influx setup` with the `DOCKER_INFLUXDB_INIT_*` variables;
  here the same values go to the same HTTP API (`POST /api/v2/setup`) once influxd answers. The image's default
  config puts the bolt file and engine under /var/lib/influxdb2, which is the `influxdb2-data` volume.
- influxdb3-prepare: compose/influxdb3-prepare.sh itself, with the volume folders and this user's ids.
- influxdb2-init, influxdb3-init, ingest, backup: the Python packages of this repository, run with the interpreter
  of the tests, their Dockerfile's ENTRYPOINT/CMD and ENV; BACKUP_RUN_AS is left out (it exists to drop the
  container's root to the InfluxDB 3 image's uid 1500; here everything runs as the user who runs the tests), and
  so are influxdb2-init's token file owners (the images' uids 472 and 10001: here this user's), and the buckets
  file its image copies from ingest/ is read where it is.
- seaweedfs (only with WEED_BIN, `weed` 4.x): the compose file's `weed server` command with the folder of its
  volume as -dir (the image's entrypoint adds -dir=/data) and loopback addresses and free ports for its master,
  volume, filer and S3 servers; seaweedfs-init (python -m backup.buckets) then creates its buckets. `wipe` keeps its
  volume: it stands for the bucket on another machine that off-host backups outlive a lost host with. With
  INFLUXDB3_OBJECT_STORE=s3 in the test .env (STACK_INFLUXDB3_OBJECT_STORE=s3), Core keeps its data in that
  server's bucket, and `wipe` empties that bucket: there it is the store the wipe loses.
- grafana (only with GRAFANA_BIN and GRAFANA_HOME): `grafana server` with the image's GF_PATHS_* pointing at the
  volume and at the repository's provisioning, exactly as the compose file mounts them (a `$__file{PATH}` in the
  provisioning files names the host file behind PATH).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import requests

from backup.remote import Remote, RemoteConfig
from common.config import parse_duration
from tests.integration.stacks import Stack, keep, run, wait_for
from tests.integration.stacks.settings import Service, StackSettings
from tests.support.paths import REPO

__all__ = ["Binaries", "NativeStack", "binary", "find_binaries", "free_port", "start_influxd", "start_influxdb3",
           "start_weed"]

# Container-only settings a process on this machine must not take over (see the module docstring).
CONTAINER_ONLY = ("BACKUP_RUN_AS", "PYTHONPATH", "PIP_NO_CACHE_DIR", "PIP_DISABLE_PIP_VERSION_CHECK")


@dataclass(frozen=True)
class Binaries:
    influxd: Path
    influxdb3: Path
    influx: Path | None = None
    grafana: Path | None = None
    grafana_home: Path | None = None
    weed: Path | None = None

    def describe(self) -> str:
        parts = [f"influxd={self.influxd}", f"influxdb3={self.influxdb3}"]
        parts.append(f"influx={self.influx}" if self.influx else "influx CLI: none")
        parts.append(f"weed={self.weed}" if self.weed else "weed: none (WEED_BIN)")
        parts.append(f"grafana={self.grafana}" if self.grafana else "grafana: none (GRAFANA_BIN and GRAFANA_HOME)")
        return ", ".join(parts)


def binary(variable: str, *names: str) -> Path | None:
    """A server binary named by `variable`, else the first of `names` on PATH."""
    named = os.environ.get(variable)
    if named:
        return Path(named) if Path(named).is_file() and os.access(named, os.X_OK) else None
    for name in names:
        found = shutil.which(name)
        if found:
            return Path(found)
    return None


def find_binaries() -> tuple[Binaries | None, str]:
    """The server binaries (from INFLUXD_BIN, INFLUXDB3_BIN, INFLUX_BIN, GRAFANA_BIN or PATH), or why not."""
    influxd, influxdb3 = binary("INFLUXD_BIN", "influxd"), binary("INFLUXDB3_BIN", "influxdb3")
    missing = [name for name, found in (("INFLUXD_BIN (influxd 2.x)", influxd),
                                        ("INFLUXDB3_BIN (influxdb3 serve)", influxdb3)) if found is None]
    if missing:
        return None, "no server binaries: set " + " and ".join(missing) + " or put them on PATH"
    home = os.environ.get("GRAFANA_HOME")
    grafana = binary("GRAFANA_BIN", "grafana") if home else None
    return Binaries(influxd, influxdb3, binary("INFLUX_BIN", "influx"), grafana,
                    Path(home) if home and grafana else None, binary("WEED_BIN", "weed")), ""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def weed_port() -> int:
    """A free loopback port whose gRPC twin (SeaweedFS listens on port + 10000 too) is free as well."""
    while True:
        port = free_port()
        if port + 10000 <= 65535 and _free(port + 10000):
            return port


def weed_args(args: list[str], data_dir: Path, s3_port: int) -> list[str]:
    """`weed server` arguments for a process here: the compose file's, with the data folder, loopback addresses
    and free ports instead of the container's."""
    kept = [arg for arg in args if not arg.startswith(("-ip=", "-ip.bind=", "-s3.port=", "-dir="))]
    return [*kept, f"-dir={data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-s3.port={s3_port}",
            f"-master.port={weed_port()}", f"-volume.port={weed_port()}", f"-filer.port={weed_port()}"]


def start_weed(server: Path, folder: Path, access_key: str, secret_key: str, *, port: int | None = None,
               args: list[str] | None = None, name: str = "seaweedfs", timeout: float = 90) -> tuple[Process, str]:
    """A `weed server` with its S3 API on loopback (`port`, else a free one), data and log in `folder`, whose one
    identity is `access_key`/`secret_key` (weed reads them from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, which
    turns its S3 authentication on); waited for until /healthz answers. `args`: the compose file's command."""
    port = port or weed_port()
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    base = args or ["server", "-s3", "-s3.port.iceberg=0", "-s3.port.lance=0", "-volume.max=0",
                    "-master.volumeSizeLimitMB=1024"]
    env = {"PATH": os.environ.get("PATH", ""), "AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key}
    process = Process(name, [str(server), "-logtostderr=true", *weed_args(base, data, port)], env,
                      folder / f"{name}.log")
    process.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(name, lambda: requests.get(f"{url}/healthz", timeout=5).ok, timeout=timeout, interval=0.5)
    except BaseException:
        process.stop(60)
        raise
    return process, url


@dataclass
class Process:
    """One long-running service: its command, environment and log file."""

    name: str
    cmd: list[str]
    env: dict[str, str]
    log: Path
    cwd: Path = REPO
    popen: subprocess.Popen | None = None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.log, "ab")  # noqa: SIM115 - owned by the child for its lifetime
        self.popen = subprocess.Popen(self.cmd, env=self.env, cwd=self.cwd, stdout=handle, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        handle.close()

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout: float = 30) -> None:
        if not self.running:
            return
        assert self.popen is not None
        os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(10)

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def _started(process: Process, url: str, timeout: float, then=None) -> tuple[Process, str]:
    """Wait until `process` answers /health (then run `then`); stop it again if either fails."""
    try:
        wait_for(process.name, lambda: requests.get(f"{url}/health", timeout=5).ok, timeout=timeout, interval=0.5)
        if then is not None:
            then()
    except BaseException:
        process.stop()
        raise
    return process, url


def start_influxd(server: Path, folder: Path, setup: dict[str, str], *, name: str = "influxd",
                  timeout: float = 60) -> tuple[Process, str]:
    """A bare influxd of its own (not the stack's), its stores and log (influxd.log) in `folder`, on a free loopback
    port, set up once /health answers: POST /api/v2/setup with `setup` (username, password, org, bucket, token)
    must answer 201. Returns the process and its URL; a server that fails to come up is stopped again."""
    port = free_port()
    process = Process(name, [str(server)], {
        "PATH": os.environ.get("PATH", ""), "INFLUXD_BOLT_PATH": str(folder / "influxd.bolt"),
        "INFLUXD_ENGINE_PATH": str(folder / "engine"), "INFLUXD_SQLITE_PATH": str(folder / "influxd.sqlite"),
        "INFLUXD_HTTP_BIND_ADDRESS": f"127.0.0.1:{port}", "INFLUXD_REPORTING_DISABLED": "true"},
        folder / "influxd.log")
    url = f"http://127.0.0.1:{port}"

    def set_up() -> None:
        answer = requests.post(f"{url}/api/v2/setup", timeout=30, json=setup)
        assert answer.status_code == 201, answer.text

    process.start()
    return _started(process, url, timeout, set_up)


def start_influxdb3(server: Path, name: str, log: Path, *args: str, port: int | None = None,
                    admin_token: tuple[Path, str, str] | None = None, home: Path | None = None,
                    timeout: float = 60) -> tuple[Process, str]:
    """A bare `influxdb3 serve <args> --disable-telemetry-upload` of its own (not the stack's) on loopback (`port`,
    else a free one), logging to `log`, waited for until /health answers. With `admin_token` (file, token, name)
    the token file is written first as influxdb3-prepare writes it (mode 0600) and given as --admin-token-file,
    with --disable-authz=health,ping (else `args` must make /health open, e.g. --without-auth). `home` is its
    HOME (else it runs without one). Returns the process and its URL; a server that fails to come up is stopped
    again."""
    port = port or free_port()
    command = [str(server), "serve", *args, "--disable-telemetry-upload", f"--http-bind=127.0.0.1:{port}"]
    if admin_token is not None:
        token_file, token, token_name = admin_token
        token_file.write_text(json.dumps({"token": token, "name": token_name}))
        token_file.chmod(0o600)
        command += [f"--admin-token-file={token_file}", "--disable-authz=health,ping"]
    env = {"PATH": os.environ.get("PATH", ""), **({"HOME": str(home)} if home is not None else {})}
    process = Process(name, command, env, log)
    process.start()
    return _started(process, f"http://127.0.0.1:{port}", timeout)


@dataclass
class NativeStack(Stack):
    root: Path = field(default=Path())
    binaries: Binaries | None = None
    settings: StackSettings | None = None
    processes: dict[str, Process] = field(default_factory=dict)
    # Arguments added to the compose file's influxdb3 command (benchmarks only: e.g. a smaller WAL snapshot size).
    influxdb3_extra: tuple[str, ...] = ()
    kind = "native"

    # ---- settings --------------------------------------------------------------------------------------
    @property
    def has_grafana(self) -> bool:
        return self.binaries is not None and self.binaries.grafana is not None

    @property
    def has_seaweedfs(self) -> bool:
        """The optional S3 server runs: WEED_BIN given and the test .env turns its profile on."""
        return (self.binaries is not None and self.binaries.weed is not None and self.settings is not None
                and "seaweedfs" in self.settings.config["services"])

    @property
    def core_on_bucket(self) -> bool:
        """InfluxDB 3 keeps its data in the S3 server's bucket (INFLUXDB3_OBJECT_STORE=s3), not in its volume."""
        return self.env.get("INFLUXDB3_OBJECT_STORE") == "s3"

    def core_bucket(self) -> Remote:
        """Core's bucket, reached with the endpoint and keys the compose file gives the server."""
        env = self.service("influxdb3").host_env()
        return Remote(RemoteConfig(bucket=env["INFLUXDB3_BUCKET"], endpoint=env["AWS_ENDPOINT"],
                                   region=env["AWS_DEFAULT_REGION"], access_key_id=env["AWS_ACCESS_KEY_ID"],
                                   secret_access_key=env["AWS_SECRET_ACCESS_KEY"]))

    @property
    def server_uid(self) -> int:
        return os.getuid()

    def service(self, name: str) -> Service:
        assert self.settings is not None
        return self.settings.service(name)

    def python_env(self, name: str, **extra: str) -> dict[str, str]:
        """A Python service's environment: the compose file's (translated) over this process's PATH and HOME."""
        base = {key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "LANG", "TMPDIR")}
        env = {**base, **self.service(name).host_env(drop=CONTAINER_ONLY), **extra}
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "compose" / "influxdb3-init"),
                                             str(REPO / "compose" / "influxdb2-init")])
        return env

    def _log(self, name: str) -> Path:
        (self.root / "logs").mkdir(parents=True, exist_ok=True)  # a stack without InfluxDB 2 starts with a one-shot
        return self.root / "logs" / f"{name}.log"

    # ---- bring-up, in the compose file's dependency order ----------------------------------------------
    def up(self, services: tuple[str, ...] = ("influxdb2", "influxdb3", "grafana", "ingest", "backup")) -> None:
        """Start `services` (InfluxDB 3 with its prepare and init one-shots) and wait until they are healthy."""
        if "influxdb2" in services:
            self._start_influxdb2()
            self._init_influxdb2()
        if self.has_seaweedfs and "influxdb3" in services:
            self._start_seaweedfs()
            self._init_seaweedfs()
        if "influxdb3" in services:
            self._prepare_influxdb3()
            self._start_influxdb3()
            self._init_influxdb3()
        if "grafana" in services and self.has_grafana:
            self._start_grafana()
        for name in ("ingest", "backup"):
            if name in services:
                self._start_python(name)
        self.wait_healthy()

    def _start(self, name: str, cmd: list[str], env: dict[str, str]) -> Process:
        process = Process(name, cmd, env, self._log(name))
        process.start()
        self.processes[name] = process
        return process

    def _wait(self, name: str, what: str, check, timeout: float = 180) -> None:
        process = self.processes.get(name)
        try:
            wait_for(what, lambda: (process is None or process.running or _died(process)) and check(),
                     timeout=timeout, interval=0.5)
        except (TimeoutError, RuntimeError) as exc:
            log = process.tail() if process else ""
            raise RuntimeError(f"{name}: {exc}\n--- last lines of {self._log(name)} ---\n{log}") from None

    def _start_influxdb2(self) -> None:
        service = self.service("influxdb2")
        assert self.binaries is not None
        env = {key: value for key, value in os.environ.items() if key in ("PATH", "HOME")}
        env.update({key: value for key, value in service.host_env().items() if key.startswith("INFLUXD_")})
        env.update({
            "INFLUXD_BOLT_PATH": str(service.host_path("/var/lib/influxdb2/influxd.bolt")),
            "INFLUXD_ENGINE_PATH": str(service.host_path("/var/lib/influxdb2/engine")),
            "INFLUXD_SQLITE_PATH": str(service.host_path("/var/lib/influxdb2/influxd.sqlite")),
            "INFLUXD_HTTP_BIND_ADDRESS": f"127.0.0.1:{service.published(8086)}",
        })
        self._start("influxdb2", [str(self.binaries.influxd)], env)
        url = self.influxdb2_url
        self._wait("influxdb2", "influxd /health", lambda: requests.get(f"{url}/health", timeout=5).ok)
        if requests.get(f"{url}/api/v2/setup", timeout=10).json().get("allowed"):
            self._setup_influxdb2(service)
        self._wait("influxdb2", "onboarding to finish",
                   lambda: requests.get(f"{url}/api/v2/setup", timeout=5).json().get("allowed") is False)

    def _setup_influxdb2(self, service: Service) -> None:
        """What the image's entrypoint does with DOCKER_INFLUXDB_INIT_* (`influx setup`, POST /api/v2/setup)."""
        env = service.environment
        retention = env.get("DOCKER_INFLUXDB_INIT_RETENTION") or ""
        body = {"username": env["DOCKER_INFLUXDB_INIT_USERNAME"], "password": env["DOCKER_INFLUXDB_INIT_PASSWORD"],
                "org": env["DOCKER_INFLUXDB_INIT_ORG"], "bucket": env["DOCKER_INFLUXDB_INIT_BUCKET"],
                "token": env["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"],
                "retentionPeriodSeconds": int(parse_duration(retention).total_seconds()) if retention else 0}
        answer = requests.post(f"{self.influxdb2_url}/api/v2/setup", json=body, timeout=30)
        if answer.status_code != 201:
            raise RuntimeError(f"influxdb2 setup failed: {answer.status_code} {answer.text}")

    def _init_influxdb2(self) -> str:
        """influxdb2-init as its one-shot container runs it (its image's ENV, the compose file's environment), the
        token files owned by this user; its output, also appended to its log."""
        owner = f"{os.getuid()}:{os.getgid()}"
        env = self.python_env("influxdb2-init", GRAFANA_TOKEN_OWNER=owner, INGEST_TOKEN_OWNER=owner,
                              INGEST_BUCKETS_FILE=str(REPO / "ingest" / "buckets.yaml"))
        result = run([sys.executable, "-m", "influxdb2_init"], timeout=600, env=env, cwd=REPO)
        with open(self._log("influxdb2-init"), "a") as handle:
            handle.write(result.stdout + result.stderr)
        if result.returncode != 0:
            raise RuntimeError(f"influxdb2-init exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result.stdout + result.stderr

    def _prepare_influxdb3(self) -> None:
        """compose/influxdb3-prepare.sh as the one-shot runs it, on the volume folders, for this user's ids."""
        service = self.service("influxdb3-prepare")
        env = {"PATH": os.environ.get("PATH", ""), **service.host_env(),
               "SECRETS_DIR": str(service.host_path("/var/lib/influxdb3/secrets")),
               "DATA_DIR": str(service.host_path("/var/lib/influxdb3/data")),
               "VENV_DIR": str(service.host_path("/var/lib/influxdb3/venv")),
               "SERVER_UID": str(os.getuid()), "SERVER_GID": str(os.getgid())}
        script = service.host_path(service.raw["entrypoint"][-1])
        result = run(["sh", str(script)], timeout=60, env=env)
        self._log("influxdb3-prepare").write_text(result.stdout + result.stderr)
        if result.returncode != 0:
            raise RuntimeError(f"influxdb3-prepare failed:\n{result.stdout}\n{result.stderr}")

    def _start_influxdb3(self) -> None:
        service = self.service("influxdb3")
        assert self.binaries is not None
        args = []
        for arg in service.host_args(service.command[1:]):  # the compose command, without the binary's name
            if arg.startswith("--http-bind="):
                arg = f"--http-bind=127.0.0.1:{service.published(8181)}"
            args.append(arg)
        env = {key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "LANG")}
        env.update(service.host_env())  # the compose file's environment (INFLUXDB3_PLUGIN_REPO)
        self._start("influxdb3", [str(self.binaries.influxdb3), *args, *self.influxdb3_extra], env)
        url = self.influxdb3_url
        # --disable-authz=health,ping (from the compose file): /health answers without the token.
        self._wait("influxdb3", "influxdb3 /health", lambda: requests.get(f"{url}/health", timeout=5).ok, 300)

    def _init_influxdb3(self) -> None:
        env = self.python_env("influxdb3-init")
        result = run([sys.executable, "-m", "influxdb3_init"], timeout=3600, env=env, cwd=REPO)
        with open(self._log("influxdb3-init"), "a") as handle:
            handle.write(result.stdout + result.stderr)
        if result.returncode != 0:
            raise RuntimeError(f"influxdb3-init exited {result.returncode}:\n{result.stdout}\n{result.stderr}")

    def _start_seaweedfs(self) -> None:
        service = self.service("seaweedfs")
        assert self.binaries is not None and self.binaries.weed is not None
        env = {"PATH": os.environ.get("PATH", ""), **service.host_env()}
        data = service.host_path("/data")
        command = [str(self.binaries.weed), "-logtostderr=true",
                   *weed_args(service.command, data, service.published(8333))]
        self._start("seaweedfs", command, env)
        url = f"http://127.0.0.1:{service.published(8333)}"
        self._wait("seaweedfs", "weed /healthz", lambda: requests.get(f"{url}/healthz", timeout=5).ok, 120)

    def _init_seaweedfs(self) -> None:
        """seaweedfs-init as its one-shot runs it: `python -m backup.buckets` (its entrypoint) with its environment."""
        result = run([sys.executable, "-m", "backup.buckets"], timeout=300, env=self.python_env("seaweedfs-init"),
                     cwd=REPO)
        with open(self._log("seaweedfs-init"), "a") as handle:
            handle.write(result.stdout + result.stderr)
        if result.returncode != 0:
            raise RuntimeError(f"seaweedfs-init exited {result.returncode}:\n{result.stdout}\n{result.stderr}")

    def _start_grafana(self) -> None:
        service = self.service("grafana")
        assert self.binaries is not None and self.binaries.grafana and self.binaries.grafana_home
        env = {key: value for key, value in os.environ.items() if key in ("PATH", "HOME")}
        env.update(service.host_env())
        data = service.host_path("/var/lib/grafana")
        env.update({"GF_PATHS_DATA": str(data), "GF_PATHS_LOGS": str(data / "logs"),
                    "GF_PATHS_PLUGINS": str(data / "plugins"),
                    "GF_PATHS_PROVISIONING": str(self._grafana_provisioning(service)),
                    "GF_SERVER_HTTP_ADDR": "127.0.0.1", "GF_SERVER_HTTP_PORT": str(service.published(3000))})
        self._start("grafana", [str(self.binaries.grafana), "server", "--homepath",
                                str(self.binaries.grafana_home)], env)
        url = self.grafana_url
        self._wait("grafana", "Grafana /api/health", lambda: requests.get(f"{url}/api/health", timeout=5).ok, 300)

    def _grafana_provisioning(self, service: Service) -> Path:
        """The provisioning folder as the container sees it: the mounted folder with the mounts inside it (the
        alerting files, GRAFANA_ALERTING_DIR) laid over it, copied into one folder, since a process reads one path."""
        base = "/etc/grafana/provisioning"
        nested = [(target, source) for target, source, _ in service.mounts if target.startswith(base + "/")]
        merged = self.root / "grafana-provisioning"
        shutil.rmtree(merged, ignore_errors=True)
        shutil.copytree(service.host_path(base), merged)
        for target, source in nested:
            inside = merged / target[len(base) + 1:]
            shutil.rmtree(inside, ignore_errors=True)
            shutil.copytree(source, inside)
        for path in merged.rglob("*.yaml"):  # $__file{/run/secrets/...}: the host file of that mount
            text = path.read_text(encoding="utf-8")
            path.write_text(re.sub(r"\$__file\{([^}]+)\}", lambda m: f"$__file{{{service.host_path(m.group(1))}}}",
                                   text), encoding="utf-8")
        return merged

    def _start_python(self, name: str) -> None:
        """`python -m <service> <command>`: the image's entrypoint runs the package, the command is the compose
        file's (ingest: run) or the image's CMD (backup: schedule)."""
        self._start(name, [sys.executable, "-m", name, *self.service(name).command], self.python_env(name))

    def wait_healthy(self, timeout: float = 300) -> None:
        for name in ("ingest", "backup"):
            if name in self.processes:
                self._wait(name, f"{name} health", lambda name=name: self._health(name).returncode == 0, timeout)

    def _health(self, name: str) -> subprocess.CompletedProcess:
        return run([sys.executable, "-m", name, "health"], timeout=60, env=self.python_env(name), cwd=REPO)

    def _stop_all(self) -> None:
        """Stop every service, the last started first (weed takes up to half a minute to stop on SIGTERM)."""
        for process in reversed(list(self.processes.values())):
            process.stop(60 if process.name == "seaweedfs" else 30)

    def close(self) -> None:
        self._stop_all()
        if not keep():
            shutil.rmtree(self.root, ignore_errors=True)

    # ---- services --------------------------------------------------------------------------------------
    def ingest(self, *args: str, env: dict[str, str] | None = None, timeout: float = 900) \
            -> subprocess.CompletedProcess:
        return run([sys.executable, "-m", "ingest", *args], timeout=timeout,
                   env={**self.python_env("ingest"), **(env or {})}, cwd=REPO)

    def ingest_file(self, path: Path) -> str:
        return str(path)

    def influxdb3_file(self, path: Path) -> str:
        return str(path)

    def ingest_health(self) -> subprocess.CompletedProcess:
        return self._health("ingest")

    def backup(self, *args: str, timeout: float = 1200) -> subprocess.CompletedProcess:
        return run([sys.executable, "-m", "backup", *args], timeout=timeout, env=self.python_env("backup"), cwd=REPO)

    def restore(self, set_name: str, *args: str) -> str:
        """The steps of `make restore` (compose/stack.py restore): stop the scheduled backups and ingest; prepare
        (resolve the set once, check .env's credentials, take the pre-restore set) while the servers run; stop
        InfluxDB 3 and Grafana; restore the resolved set; start everything. Returns the set restored."""
        self.stop("backup", "ingest")
        prepared = self.backup("restore", set_name, "--prepare", *args)
        if prepared.returncode != 0:
            self.start("ingest", "backup")
            raise RuntimeError(f"backup restore --prepare failed:\n{prepared.stdout}\n{prepared.stderr}")
        name = prepared.stdout.split()[-1]
        self.stop("influxdb3", "grafana")
        restored = self.backup("restore", name, "--skip-verify", *args)
        if restored.returncode != 0:
            raise RuntimeError(f"backup restore failed:\n{restored.stdout}\n{restored.stderr}")
        # `up --detach` runs influxdb2-init again before Grafana and the ingest start (their depends_on).
        self._init_influxdb2()
        self.start("influxdb3", "grafana", "ingest", "backup")
        return name

    def wipe(self) -> None:
        """Lose every store; the S3 server's volume stays (it stands for the bucket on another machine), but with
        Core on its bucket every object of Core's bucket is deleted first (Core stopped): that is Core's store."""
        if self.core_on_bucket:
            self.stop("ingest", "backup", "grafana", "influxdb3")
            bucket = self.core_bucket()
            bucket.delete([item["Key"] for item in bucket.objects_under("")])
            assert not bucket.objects_under("", limit=1), "Core's bucket still holds objects after the wipe"
        self._stop_all()
        self.processes.clear()
        assert self.settings is not None
        for volume in (self.settings.volumes_root.iterdir() if self.settings.volumes_root.is_dir() else ()):
            if volume.name != "seaweedfs-data":
                shutil.rmtree(volume, ignore_errors=True)
        self.up()

    def stop(self, *services: str) -> None:
        for name in services:
            if name in self.processes:
                self.processes[name].stop()

    def start(self, *services: str) -> None:
        starters = {"influxdb2": self._start_influxdb2, "influxdb3": self._start_influxdb3,
                    "seaweedfs": self._start_seaweedfs,
                    "grafana": self._start_grafana if self.has_grafana else (lambda: None),
                    "ingest": lambda: self._start_python("ingest"),
                    "backup": lambda: self._start_python("backup")}
        for name in services:
            if not (name in self.processes and self.processes[name].running):
                starters[name]()
        self.wait_healthy()

    def rerun_init(self) -> str:
        self._init_influxdb3()
        return self.logs("influxdb3-init")

    def rerun_influxdb2_init(self) -> str:
        return self._init_influxdb2()

    def _service_token_path(self, service: str) -> Path:
        init = self.service("influxdb2-init")
        return init.host_path(init.environment[f"{service.upper()}_TOKEN_FILE"])

    def service_token(self, service: str) -> str:
        return self._service_token_path(service).read_text().strip()

    def service_token_file(self, service: str) -> tuple[int, int]:
        status = self._service_token_path(service).stat()
        return status.st_mode & 0o777, status.st_uid

    def lose_service_token(self, service: str) -> None:
        self._service_token_path(service).unlink()

    def logs(self, service: str) -> str:
        try:
            return self._log(service).read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def token_file(self) -> tuple[int, int]:
        path = self.service("influxdb3").host_path("/var/lib/influxdb3/secrets/admin-token.json")
        status = path.stat()
        return status.st_mode & 0o777, status.st_uid

    def versions(self) -> dict[str, str]:
        """What each running server says it is (for the test report)."""
        found = {}
        if "influxdb2" in self.processes:
            ping = requests.get(f"{self.influxdb2_url}/ping", timeout=5)
            found["influxdb2"] = ping.headers.get("X-Influxdb-Version", "?")
        ping3 = requests.get(f"{self.influxdb3_url}/ping", timeout=5)
        found["influxdb3"] = json.loads(ping3.text).get("version", "?") if ping3.ok else "?"
        return found


def _died(process: Process) -> bool:
    code = process.popen.poll() if process.popen else None
    raise RuntimeError(f"{process.name} exited with code {code}")
