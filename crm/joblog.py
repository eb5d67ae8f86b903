"""Append-only job log files in CRM_LOG_DIR, safe with several writers and with logrotate."""

import errno
import os
import stat
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.utils import timezone

HEARTBEAT_LOG = "crm_heartbeat_log.txt"
LOW_STOCK_LOG = "low_stock_updates_log.txt"
CLEANUP_LOG = "customer_cleanup_log.txt"
REMINDERS_LOG = "order_reminders_log.txt"
REPORT_LOG = "crm_report_log.txt"

# O_NONBLOCK: opening a FIFO for writing would otherwise wait for a reader (until the job's timeout);
# it has no effect on a regular file, and anything else is refused after fstat.
_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


class JobLogError(OSError):
    """A job log file cannot be written; the message names the path and the reason."""


def log_path(filename: str) -> Path:
    return Path(settings.CRM_LOG_DIR) / filename


def local_now() -> datetime:
    """Now in DJANGO_TIME_ZONE, the zone of every log timestamp."""
    return timezone.localtime(timezone.now())


def stamp(moment: datetime | None = None) -> str:
    """``YYYY-MM-DD HH:MM:SS``, the timestamp of every log but the heartbeat's."""
    return (moment or local_now()).strftime("%Y-%m-%d %H:%M:%S")


def append_lines(filename: str, lines: list[str]) -> Path:
    """Append each line with its own ``write`` on an O_APPEND descriptor.

    One write per line keeps lines whole when several processes log at once. The file is
    opened for every call (never held open), so logrotate's rename-and-create works without
    copytruncate. A symlink in place of the file is refused, never followed; so is anything that
    is not a regular file (a FIFO, a device), at once. New files get mode 0640. Every error is a
    JobLogError naming the file.
    """
    path = log_path(filename)
    folder = path.parent
    if not folder.is_dir():
        raise JobLogError(f"log folder {folder} does not exist (CRM_LOG_DIR)")
    fd = _open_regular(path)
    try:
        for line in lines:
            os.write(fd, f"{line}\n".encode())
    except OSError as exc:
        raise JobLogError(f"cannot write job log {path}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)
    return path


def _open_regular(path: Path) -> int:
    try:
        fd = os.open(path, _FLAGS, 0o640)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            reason = "it is a symbolic link, which job logs never follow"
        elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            reason = "permission denied (check CRM_LOG_DIR's owner and mode)"
        elif exc.errno == errno.ENXIO:
            reason = "it is a FIFO (named pipe), not a regular file"
        else:
            reason = exc.strerror or str(exc)
        raise JobLogError(f"cannot write job log {path}: {reason}") from exc
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "not a regular file"
        raise JobLogError(f"cannot write job log {path}: it is {kind}; job logs are regular files")
    return fd


def append_line(filename: str, line: str) -> Path:
    return append_lines(filename, [line])
