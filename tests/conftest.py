"""The suite's one conftest at the root: the report header, the Hypothesis profiles, the hook that
turns markers into availability checks (tests/reachable.py), runs handed to supervising processes
(recorded unless asked for), a fresh reading of the database's clock per test, a migrated SQLite file
for tests that start Django processes of their own, and a database that cannot be reached. See
docs/testing.md.

A test that needs a service carries its marker (`postgres`, `redis`, `crontab`, `cron_daemon`,
`browser`); before it runs, the marker's check decides: available, run; missing, skip with the
reason, or fail under CRM_E2E=1. `slow` has no check: `make test` deselects it with -m "not slow".
"""

import contextlib
import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connections
from django.db.utils import ConnectionHandler
from hypothesis import settings as hypothesis_settings

from tests import reachable

ROOT = Path(__file__).resolve().parents[1]

# HYPOTHESIS_PROFILE=ci (.ci/run): 1,000 examples per property. The default, "dev", is the quick one
# `make test` uses (50 examples). No deadline in either: the machine may be shared, and speed is bench's business.
hypothesis_settings.register_profile("dev", max_examples=50, deadline=None)
hypothesis_settings.register_profile("ci", max_examples=1000, deadline=None, print_blob=True)
HYPOTHESIS_PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "dev")
hypothesis_settings.load_profile(HYPOTHESIS_PROFILE)


def pytest_report_header(config):
    from django.conf import settings

    db = settings.DATABASES["default"]
    where = db.get("HOST") or db.get("NAME")
    e2e = ", CRM_E2E=1" if reachable.e2e() else ""
    examples = hypothesis_settings.default.max_examples
    return [
        f"database: {db['ENGINE'].rsplit('.', 1)[-1]} ({where}){e2e}",
        f"hypothesis profile: {HYPOTHESIS_PROFILE} ({examples} examples)",
    ]


def pytest_collection_modifyitems(config, items):
    """The tests that mostly wait (multi-host cases first, then the other `slow` ones) go first, so that
    pytest-xdist hands them out while every worker is free instead of leaving them to one at the end
    (with `--maxschedchunk 2`, as make test-all passes: a worker takes two tests at a time)."""

    def rank(item) -> int:
        if item.get_closest_marker("multihost") is not None:
            return 0
        return 1 if item.get_closest_marker("slow") is not None else 2

    items.sort(key=rank)  # stable: the collection order within each rank


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    for marker in reachable.CHECKS:
        if item.get_closest_marker(marker) is not None:
            reason = reachable.missing(marker)
            if reason:
                reachable.unavailable(reason)


@pytest.fixture(autouse=True)
def detached_supervisors(request, monkeypatch) -> list:
    """The runs cronjobs.runner.start() handed to a supervising process, recorded instead of started
    (tests/runs.py says why); empty for tests that ask for `real_supervisors`."""
    handed_over = []
    if "real_supervisors" not in request.fixturenames:
        from cronjobs import runner

        monkeypatch.setattr(runner, "spawn_supervisor", handed_over.append)
    return handed_over


@pytest.fixture(autouse=True)
def fresh_database_clock():
    """Each test measures the database's clock afresh: a test that moved this process's clock without
    tests/clock.py (plain time_machine) leaves a measured offset of days, which cronjobs.dbclock keeps
    for a minute, and the next test's claims would be refused as clock skew."""
    yield
    from cronjobs import dbclock

    dbclock.forget()


@pytest.fixture
def real_supervisors(monkeypatch, transactional_db):
    """runner.start() starts the real `crontab run --claimed-run` process, on the test database (which it
    can reach only on PostgreSQL: SQLite's test database is in this process's memory)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("a supervising process reaches the test database only on PostgreSQL (DATABASE_URL=postgres://...)")
    s = connection.settings_dict
    auth = f"{s['USER']}:{s['PASSWORD']}" if s.get("PASSWORD") else s["USER"]
    monkeypatch.setenv("DATABASE_URL", f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}")
    monkeypatch.setenv("CRM_ENV_FILE", os.devnull)


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory) -> Path:
    """A SQLite file migrated once per run by `manage.py migrate` in a process of its own (read-only:
    copy it with `sqlite_file`)."""
    path = tmp_path_factory.mktemp("migrated") / "db.sqlite3"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "alx_backend_graphql_crm.settings",
        "DJANGO_SECRET_KEY": "tests-only",
        "DATABASE_URL": f"sqlite:///{path}",
    }
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=300)
    return path


def copy_sqlite(source: Path, target: Path) -> Path:
    """A consistent copy of a SQLite database (WAL included), through SQLite's backup API."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    return target


@pytest.fixture
def sqlite_file(migrated_sqlite, tmp_path) -> Path:
    """This test's own migrated SQLite file (a copy: no migrate per test)."""
    return copy_sqlite(migrated_sqlite, tmp_path / "db.sqlite3")


@pytest.fixture
def unreachable_database():
    """A real PostgreSQL connection to a closed local port, with a user and password that must not leak."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again when the block ends: nothing listens there
    handler = ConnectionHandler(
        {
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "HOST": "127.0.0.1",
                "PORT": str(port),
                "NAME": "crm_secret_name",
                "USER": "crm_secret_user",
                "PASSWORD": "s3cret-passw0rd",
                "OPTIONS": {"connect_timeout": 2},
            }
        }
    )
    connection = handler["default"]
    yield connection, port
    connection.close()


@contextlib.contextmanager
def database_down(unreachable):
    """Within, every query of this thread goes to `unreachable` (from the fixture above): a whole request,
    middleware included, meets the outage as a real driver reports it."""
    real = connections["default"]
    connections._connections.default = unreachable
    try:
        yield
    finally:
        connections._connections.default = real
