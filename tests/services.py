"""Which real services the test run can reach, and markers that skip with a stated reason."""

import os
import shutil
import socket
from urllib.parse import urlparse

import pytest
from django.conf import settings


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def on_postgres() -> bool:
    return settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"


def redis_reachable() -> bool:
    url = urlparse(settings.CELERY_BROKER_URL)
    return url.scheme.startswith("redis") and _reachable(url.hostname or "localhost", url.port or 6379)


def crontab_usable() -> bool:
    return shutil.which("crontab") is not None and shutil.which("useradd") is not None and os.geteuid() == 0


requires_postgres = pytest.mark.skipif(
    not on_postgres(), reason="needs PostgreSQL: run with DATABASE_URL=postgres://... (as .ci/run does)"
)
requires_redis = pytest.mark.skipif(
    not redis_reachable(), reason=f"needs Redis at CELERY_BROKER_URL ({settings.CELERY_BROKER_URL})"
)
requires_crontab = pytest.mark.skipif(
    not crontab_usable(), reason="needs the crontab binary and root (apt-get install cron) for a throw-away user"
)
