"""Start as root only long enough to make the backup folder ours, then run everything as BACKUP_RUN_AS.

The container starts as root because the host's BACKUP_DIR is a bind mount owned by whoever ran `make up`;
the work itself (reading the stores, writing sets, restoring files) runs as uid 1500 (InfluxDB 3's server
uid, so restored object-store files belong to it) with supplementary group 0 (Grafana's image runs as
472:0 and keeps its data readable and writable by group 0). See backup/Dockerfile.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from backup.config import RunAs

__all__ = ["drop_privileges"]

log = logging.getLogger("backup.privileges")


def drop_privileges(run_as: RunAs | None, backup_dir: Path) -> None:
    """No-op unless running as root with BACKUP_RUN_AS set (the container image sets it)."""
    if run_as is None or os.geteuid() != 0:
        return
    backup_dir.mkdir(parents=True, exist_ok=True)
    status = backup_dir.stat()
    if status.st_uid != run_as.uid:
        # Keep the host group so the person who owns the folder can still read and delete sets (mode 2770).
        try:
            os.chown(backup_dir, run_as.uid, status.st_gid)
            os.chmod(backup_dir, 0o2770)
        except OSError as exc:  # rootless Docker, NFS root squash: go on, and say why writes may fail
            log.warning("cannot hand %s to uid %d (%s); make it writable for uid %d on the host", backup_dir,
                        run_as.uid, exc.strerror or exc, run_as.uid)
    os.setgroups(sorted({run_as.gid, *run_as.groups, status.st_gid}))
    os.setgid(run_as.gid)
    os.setuid(run_as.uid)
    os.umask(0o007)
    if os.geteuid() == 0 or os.getuid() == 0:
        raise RuntimeError("could not drop root privileges")
