"""An unreachable PostgreSQL costs seconds, not minutes (issue 23): DATABASE_CONNECT_TIMEOUT and
DATABASE_TCP_TIMEOUT in alx_backend_graphql_crm/settings.py. A silent partition of an open connection,
through a real black hole: tests/multihost/test_partitions.py."""

import importlib.util
import json
import re
import subprocess
import sys

import pytest

from alx_backend_graphql_crm.env import SettingsError
from tests.cronjobs.conftest import ROOT, SUBPROCESS_SETTINGS, clean_env
from tests.multihost.conftest import DatabaseProxy

SETTINGS_PY = ROOT / "alx_backend_graphql_crm" / "settings.py"
SUCCEED = "tests.cronjobs.jobs.succeed"


def settings_with(monkeypatch, **environment):
    """The project's settings module, executed afresh with `environment`."""
    monkeypatch.setenv("DJANGO_SECRET_KEY", "tests-only-" + "k" * 40)
    for name in ("DATABASE_CONNECT_TIMEOUT", "DATABASE_TCP_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location("settings_probe", SETTINGS_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_postgresql_connections_give_up_in_seconds_by_default(monkeypatch):
    options = settings_with(monkeypatch, DATABASE_URL="postgres://crm@db.example.com:5432/crm").DATABASES["default"][
        "OPTIONS"
    ]
    assert options == {
        "connect_timeout": 5,
        "tcp_user_timeout": 10_000,
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 3,
        "keepalives_count": 3,
    }


def test_the_timeouts_come_from_the_environment_and_0_leaves_them_to_the_driver(monkeypatch):
    url = "postgres://crm@db.example.com:5432/crm"
    options = settings_with(monkeypatch, DATABASE_URL=url, DATABASE_CONNECT_TIMEOUT="2", DATABASE_TCP_TIMEOUT="30")
    assert options.DATABASES["default"]["OPTIONS"] == {
        "connect_timeout": 2,
        "tcp_user_timeout": 30_000,
        "keepalives": 1,
        "keepalives_idle": 30,
        "keepalives_interval": 10,
        "keepalives_count": 3,
    }
    off = settings_with(monkeypatch, DATABASE_URL=url, DATABASE_CONNECT_TIMEOUT="0", DATABASE_TCP_TIMEOUT="0")
    assert off.DATABASES["default"].get("OPTIONS", {}) == {}


def test_sqlite_gets_none_of_them(monkeypatch, tmp_path):
    sqlite = settings_with(monkeypatch, DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}", DATABASE_TCP_TIMEOUT="3")
    assert not {"connect_timeout", "tcp_user_timeout"} & set(sqlite.DATABASES["default"]["OPTIONS"])


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-1", "DATABASE_CONNECT_TIMEOUT must be a number of seconds >= 0 (0: the driver's own), got -1"),
        ("soon", "DATABASE_CONNECT_TIMEOUT must be an integer, got 'soon'"),
    ],
)
def test_a_bad_timeout_stops_startup_naming_the_variable(monkeypatch, value, message):
    with pytest.raises(SettingsError, match=re.escape(message)):
        settings_with(monkeypatch, DATABASE_URL="postgres://crm@db/crm", DATABASE_CONNECT_TIMEOUT=value)


@pytest.fixture
def silent_database():
    """A PostgreSQL address that accepts connections and never answers (the proxy, `silent`, with no
    database behind it: nothing it forwards is ever read)."""
    proxy = DatabaseProxy("127.0.0.1", 9)
    proxy.silent()
    yield proxy
    proxy.close()


def test_a_run_against_a_database_that_never_answers_gives_up_after_the_connect_timeout(silent_database, tmp_path):
    """Before: `crontab run` waited psycopg's own 130 s for a server that never answers; now one line
    and exit 3 after DATABASE_CONNECT_TIMEOUT."""
    config = tmp_path / "config.json"
    url = f"postgres://postgres@127.0.0.1:{silent_database.port}/crm"
    config.write_text(json.dumps({"DATABASE_URL": url, "settings": {"CRONJOBS": [["* * * * *", SUCCEED]]}}))
    env = clean_env(CRONJOBS_TEST_CONFIG=str(config), DATABASE_CONNECT_TIMEOUT="2")
    argv = [sys.executable, "manage.py", "crontab", "run", "succeed", f"--settings={SUBPROCESS_SETTINGS}"]
    # A hang would end at the subprocess timeout (TimeoutExpired), far past the connect timeout.
    result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 3, result
    assert re.search(r"run history unreachable \(postgresql database crm\): \w+: .*timeout expired", result.stderr), (
        result.stderr
    )
