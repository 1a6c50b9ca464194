"""The backup folder under the capabilities the container really has (docker-compose.yml: cap_drop ALL, then
CHOWN, FOWNER, SETUID, SETGID; no-new-privileges): the host user must be able to read every set."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.paths import REPO

HOST_UID = HOST_GID = 1000  # whoever ran `make up` and owns BACKUP_DIR on the host
SETPRIV = shutil.which("setpriv")

WRITE_A_SET = textwrap.dedent("""
    import sys
    from datetime import UTC, datetime
    from pathlib import Path
    from backup.config import RunAs
    from backup.privileges import drop_privileges
    from backup.sets import SetStore

    folder = Path(sys.argv[1])
    drop_privileges(RunAs(1500, 1500, (0,)), folder)
    partial = SetStore(folder).begin(datetime(2025, 1, 7, 22, 59, tzinfo=UTC))
    (partial.path / "influxdb2").mkdir()
    (partial.path / "influxdb2" / "x.manifest").write_text("{}")
""")


def _container_capabilities() -> list[str]:
    backup = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["backup"]
    assert backup["cap_drop"] == ["ALL"] and "no-new-privileges:true" in backup["security_opt"]
    return [name.lower() for name in backup["cap_add"]]


@pytest.fixture
def host_folder() -> Iterator[Path]:
    """BACKUP_DIR as `make up` creates it: the host user's, mode 0755, under a folder others can enter."""
    parent = Path(tempfile.mkdtemp(prefix="backup-dir-"))
    parent.chmod(0o755)
    folder = parent / "backups"
    folder.mkdir(mode=0o755)
    os.chown(folder, HOST_UID, HOST_GID)
    yield folder
    shutil.rmtree(parent, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0 or SETPRIV is None,
                    reason="needs root and util-linux's setpriv to start as the container does")
def test_the_host_user_can_read_a_set_written_under_the_containers_capabilities(host_folder: Path):
    caps = ",".join(["-all", *(f"+{name}" for name in _container_capabilities())])
    started = subprocess.run([SETPRIV, f"--bounding-set={caps}", "--inh-caps=-all", "--no-new-privs",
                              sys.executable, "-c", WRITE_A_SET, str(host_folder)],
                             env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO)},
                             capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, started.stderr
    status = host_folder.stat()
    assert (status.st_uid, status.st_gid, status.st_mode & 0o7777) == (1500, HOST_GID, 0o2770), \
        "handed to the service user, the host's group kept, setgid kept"
    written = [path for path in host_folder.rglob("*") if path.name != ".lock"]
    assert written and {path.stat().st_gid for path in written} == {HOST_GID}, "every set file is in the host group"
    assert "no setgid bit" not in started.stderr

    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - reports through the pipe
        os.close(read)
        try:
            os.setgroups([HOST_GID])
            os.setgid(HOST_GID)
            os.setuid(HOST_UID)
            found = [path.read_text() for path in host_folder.rglob("x.manifest")]
            os.write(write, f"read {found}".encode())
        except Exception as exc:
            os.write(write, f"error {exc}".encode())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    report = os.read(read, 1000).decode()
    os.close(read)
    assert report == "read ['{}']", f"the host user cannot read its own set: {report}"
