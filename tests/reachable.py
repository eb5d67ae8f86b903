"""What this machine can reach: one availability check per test marker, and the one rule for a miss.

Each check returns None when its service is usable here, or the reason it is not. tests/conftest.py
runs the check of every marker a test carries before the test: a miss skips the test with the
reason, or fails it under CRM_E2E=1 (.ci/run), where every end-to-end tier must really run.
"""

import functools
import glob
import os
import shutil
import socket
import subprocess
from pathlib import Path
from urllib.parse import urlparse

import pytest
from django.conf import settings

CHROMIUM = os.environ.get("CRM_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# libfaketime's preload library (Debian's `faketime` package), which skews a simulated host's clock.
LIBFAKETIME = next(iter(sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))), "")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def on_postgres() -> bool:
    return settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"


def postgres() -> str | None:
    if on_postgres():
        return None
    return "needs PostgreSQL: run with DATABASE_URL=postgres://... (as .ci/run does)"


def redis() -> str | None:
    url = urlparse(settings.CELERY_BROKER_URL)
    if url.scheme.startswith("redis") and _reachable(url.hostname or "localhost", url.port or 6379):
        return None
    return f"needs Redis at CELERY_BROKER_URL ({settings.CELERY_BROKER_URL})"


def crontab() -> str | None:
    if shutil.which("crontab") and shutil.which("useradd") and os.geteuid() == 0:
        return None
    return "needs the crontab binary, useradd and root (apt-get install cron) for a throw-away user"


def cron_daemon() -> str | None:
    for name in ("cron", "crond"):
        if subprocess.run(["pgrep", "-x", name], capture_output=True).returncode == 0:
            return None
    return "needs a running cron daemon (start `cron` as root, as .ci/run does)"


def browser() -> str | None:
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        return f"needs Chromium at {CHROMIUM} (apt-get install chromium; CRM_CHROMIUM=<path> to use another)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "needs the playwright package (pip install -r requirements-dev.txt; no `playwright install` needed)"
    return None


def multihost() -> str | None:
    """The multi-host kit (tests/multihost): hosts are `unshare --uts` trees, clocks skewed by libfaketime."""
    if os.geteuid() != 0:
        return "needs root: each simulated host is an `unshare --uts` process tree with its own hostname"
    if not shutil.which("unshare"):
        return "needs unshare (util-linux) for the simulated hosts"
    if not LIBFAKETIME:
        return "needs libfaketime for the hosts' skewed clocks (apt-get install faketime)"
    probe = subprocess.run(["unshare", "--uts", "hostname", "probe"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"needs `unshare --uts` to work here: {probe.stderr.strip() or probe.returncode}"
    return None


def always() -> None:
    """`slow` needs nothing: `make test` deselects it (-m "not slow"), nothing skips it."""
    return None


# marker -> its check; pytest.ini declares the same markers (--strict-markers).
CHECKS = {
    "postgres": postgres,
    "redis": redis,
    "crontab": crontab,
    "cron_daemon": cron_daemon,
    "browser": browser,
    "multihost": multihost,
    "slow": always,
}


@functools.cache
def missing(marker: str) -> str | None:
    """Why the tests carrying `marker` cannot run here (checked once per run), or None."""
    return CHECKS[marker]()


def e2e() -> bool:
    """CRM_E2E=1 (.ci/run): the end-to-end tiers must run; a missing service is a failure, not a skip."""
    return os.environ.get("CRM_E2E", "").strip().lower() in {"1", "true", "yes", "on"}


def unavailable(reason: str):
    """Skip the running test with `reason`, or fail it under CRM_E2E=1."""
    if e2e():
        pytest.fail(f"CRM_E2E=1 but this test cannot run: {reason}", pytrace=False)
    pytest.skip(reason)
