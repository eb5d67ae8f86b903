"""Fixtures for the scheduling engine tests: a throw-away crontab user and a database subprocesses can share."""

import json
import os
import secrets
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.db import connection

from tests.conftest import copy_sqlite
from tests.crm.gql_helpers import staff
from tests.reachable import on_postgres

ROOT = Path(__file__).resolve().parents[2]
SUBPROCESS_SETTINGS = "tests.cronjobs.subprocess_settings"


def clean_env(**extra) -> dict:
    """The environment of a started process: nothing Django-related inherited, only what is passed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "CRONJOBS_"))}
    env.update(extra)
    return env


@dataclass
class CrontabUser:
    """A throw-away system user whose crontab the tests may change (never root's own)."""

    name: str

    @property
    def executable(self) -> str:
        return f"/usr/bin/crontab -u {self.name}"

    def install(self, text: str) -> None:
        if text == "":
            self.clear()
            return
        subprocess.run(["crontab", "-u", self.name, "-"], input=text.encode(), check=True, capture_output=True)

    def read(self) -> str | None:
        """The crontab text, or None when the user has no crontab."""
        result = subprocess.run(["crontab", "-u", self.name, "-l"], capture_output=True)
        if result.returncode != 0:
            assert b"no crontab for" in result.stderr, result.stderr
            return None
        return result.stdout.decode()

    def clear(self) -> None:
        subprocess.run(["crontab", "-u", self.name, "-r"], capture_output=True)


@pytest.fixture(scope="session")
def crontab_user_session():
    # Tests using it carry @pytest.mark.crontab: tests/conftest.py has skipped them where it is unusable.
    name = f"cjt{secrets.token_hex(4)}"
    subprocess.run(["useradd", "-M", "-N", "-s", "/bin/sh", name], check=True, capture_output=True)
    user = CrontabUser(name)
    yield user
    user.clear()
    subprocess.run(["userdel", name], capture_output=True)


@pytest.fixture
def crontab_user(crontab_user_session):
    crontab_user_session.clear()
    yield crontab_user_session
    crontab_user_session.clear()


@pytest.fixture
def empty_crontab(settings, tmp_path):
    """CRONTAB_EXECUTABLE: a stand-in crontab holding no line, for what `crontab show` says of each job
    (pause, zone, retries) on every machine, with or without a `crontab` binary, reading nobody's
    crontab. `show` against the real binary: test_crontab.py's tests marked `crontab`."""
    fake = tmp_path / "crontab"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    settings.CRONTAB_EXECUTABLE = str(fake)


@dataclass
class SharedDb:
    """A database that this test and the processes it starts both see."""

    url: str
    sqlite_path: Path | None

    def runs(self, job_name: str) -> list[dict]:
        return self.query(
            "SELECT id, job_name, status, trigger, scheduled_for, result, traceback, host, pid "
            "FROM cronjobs_jobrun WHERE job_name = {} ORDER BY id",
            job_name,
        )

    def query(self, sql: str, *params) -> list[dict]:
        """Rows as the started processes wrote them (on SQLite, this test's ORM reads another database);
        `{}` stands for each parameter."""
        if self.sqlite_path:
            with sqlite3.connect(self.sqlite_path) as db:
                db.row_factory = sqlite3.Row
                return [dict(row) for row in db.execute(sql.replace("{}", "?"), params)]
        with connection.cursor() as cursor:
            cursor.execute(sql.replace("{}", "%s"), list(params))
            columns = [c[0] for c in cursor.description]
            return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def _world_dir(prefix: str) -> Path:
    # pytest's tmp_path sits under a 0700 folder; the cron end-to-end job runs as the throw-away user
    # and must reach the config, write the SQLite db (and its WAL files) and its output.
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))  # noqa: S108
    folder.chmod(0o777)
    return folder


@pytest.fixture
def world_dir():
    folder = _world_dir("cronjobs-test-")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def _sqlite_file_db(migrated_sqlite):
    folder = _world_dir("cronjobs-db-")
    path = copy_sqlite(migrated_sqlite, folder / "db.sqlite3")
    for file in folder.iterdir():
        file.chmod(0o666)
    yield path
    shutil.rmtree(folder, ignore_errors=True)


def pytest_collection_modifyitems(items):
    """On PostgreSQL, tests using `shared_db` share the test database: mark them so pytest-django
    creates it (it decides from the marks, before any fixture runs) and subprocesses never reach
    the database DATABASE_URL names."""
    if on_postgres():
        for item in items:
            if "shared_db" in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.django_db(transaction=True))


@pytest.fixture
def shared_db(request):
    """SQLite: a migrated file database (not the in-memory test db). PostgreSQL: the test database itself,
    with transactional tests so that started processes see committed rows."""
    if on_postgres():
        request.getfixturevalue("transactional_db")
        s = connection.settings_dict
        url = f"postgres://{s['USER']}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"
        if s.get("PASSWORD"):
            url = f"postgres://{s['USER']}:{s['PASSWORD']}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"
        return SharedDb(url, None)
    path = request.getfixturevalue("_sqlite_file_db")
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM cronjobs_jobrun")
    return SharedDb(f"sqlite:///{path}", path)


def write_config(folder: Path, db: SharedDb | None, **settings) -> Path:
    """The JSON file tests/cronjobs/subprocess_settings.py reads; readable by any user."""
    path = folder / "cronjobs-test-config.json"
    path.write_text(json.dumps({"DATABASE_URL": db.url if db else "", "settings": settings}))
    path.chmod(0o644)
    return path


def manage(*args, config: Path | None = None, timeout=120, **popen):
    """Run manage.py with the subprocess settings and a clean environment."""
    env = clean_env(**({"CRONJOBS_TEST_CONFIG": str(config)} if config else {}))
    return subprocess.run(
        [sys.executable, "manage.py", *args, f"--settings={SUBPROCESS_SETTINGS}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        **popen,
    )


def config_prefix(config: Path) -> str:
    return f"CRONJOBS_TEST_CONFIG={shlex.quote(str(config))}"


# --- users and jobs of the admin and GraphQL tests ---------------------------------------------------
@pytest.fixture
def viewer():
    """Staff who may look at the jobs and their runs."""
    return staff("cronjobs.view_jobrun", username="viewer")


@pytest.fixture
def operator():
    """Staff who may look and also run a job now."""
    return staff("cronjobs.view_jobrun", "cronjobs.run_job", username="operator")


@pytest.fixture
def scheduled_jobs(settings):
    """Three jobs in UTC: `fine` (succeeds, has a description), `broken` (raises), `off` (disabled)."""
    settings.TIME_ZONE = "UTC"
    settings.CRONJOBS = [
        ("*/5 * * * *", "tests.cronjobs.jobs.succeed", {"name": "fine", "description": "Says all good"}),
        ("0 6 * * 1", "tests.cronjobs.jobs.boom", {"name": "broken"}),
        ("@daily", "tests.cronjobs.jobs.succeed", {"name": "off", "enabled": False}),
    ]


@pytest.fixture
def details_client(settings):
    """A client that may read the engine's details (/health/cron/'s jobs, /metrics): it sends the metrics
    token. Anonymous bodies hold the status and the unhealthy jobs' names only (tests/security/test_access.py)."""
    from django.test import Client

    settings.CRONJOBS_METRICS_TOKEN = "tests-metrics-token"
    return Client(HTTP_AUTHORIZATION="Bearer tests-metrics-token")


def jobrun_triggers() -> set[str]:
    """The names of the database triggers on cronjobs_jobrun."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'cronjobs_jobrun'")
        else:
            cursor.execute(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = 'cronjobs_jobrun'::regclass AND NOT tgisinternal"
            )
        return {row[0] for row in cursor.fetchall()}
