"""Start as root only long enough to make the backup folder ours, then run everything as BACKUP_RUN_AS.

The container starts as root because the host's BACKUP_DIR is a bind mount owned by whoever ran `make up`;
the work itself (reading the stores, writing sets, restoring files) runs as uid 1500 (InfluxDB 3's server
uid, so restored object-store files belong to it) with supplementary group 0 (Grafana's image runs as
472:0 and keeps its data readable and writable by group 0). See backup/Dockerfile.

The folder keeps the host user's group with the setgid bit (mode 2770), so every set inherits that group and
the host user can read and delete it. Compose gives this container no CAP_FSETID, and without it the kernel
silently clears a setgid bit that a chmod asks for unless the caller is in the folder's group (chmod(2),
"EPERM" aside: the bit is just dropped). So the host group joins the process's groups BEFORE the chmod.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from backup.config import RunAs

__all__ = ["FOLDER_MODE", "drop_privileges"]

log = logging.getLogger("backup.privileges")

FOLDER_MODE = 0o2770


def drop_privileges(run_as: RunAs | None, backup_dir: Path) -> None:
    """No-op unless running as root with BACKUP_RUN_AS set (the container image sets it)."""
    if run_as is None or os.geteuid() != 0:
        return
    backup_dir.mkdir(parents=True, exist_ok=True)
    status = backup_dir.stat()
    # In the host group first: then the kernel keeps the setgid bit the chmod below sets (see module docstring).
    os.setgroups(sorted({run_as.gid, *run_as.groups, status.st_gid}))
    needs_mode = status.st_mode & 0o7777 != FOLDER_MODE
    if status.st_uid != run_as.uid or needs_mode:
        # Keep the host group so the person who owns the folder can still read and delete sets.
        try:
            if status.st_uid != run_as.uid:
                os.chown(backup_dir, run_as.uid, status.st_gid)
            os.chmod(backup_dir, FOLDER_MODE)
        except OSError as exc:  # rootless Docker, NFS root squash: go on, and say why writes may fail
            log.warning("cannot hand %s to uid %d (%s); make it writable for uid %d on the host", backup_dir,
                        run_as.uid, exc.strerror or exc, run_as.uid)
    if not backup_dir.stat().st_mode & stat.S_ISGID:
        log.warning("%s has no setgid bit: new sets will belong to group %d, not to the folder's group %d, and "
                    "the host user may not read them (chmod g+s the folder on the host)", backup_dir, run_as.gid,
                    status.st_gid)
    os.setgid(run_as.gid)
    os.setuid(run_as.uid)
    os.umask(0o007)
    if os.geteuid() == 0 or os.getuid() == 0:
        raise RuntimeError("could not drop root privileges")
