"""Production wiring: the env file, one-line settings errors, logging once, the shipped systemd units and
logrotate snippet, and the list of every environment variable the code reads."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SECRET = "x" * 40 + "-Ab3$kQ9!zR7pL2mN8vW4yT6uE1oI5"
# Where the project's code reads the environment (tests and bench have their own variables).
CODE = ["alx_backend_graphql_crm", "crm", "cronjobs", "manage.py", "gunicorn.conf.py", "bin", "Makefile"]
READS = [
    r"""os\.environ\.get\(\s*["']([A-Z][A-Z0-9_]+)["']""",
    r"""os\.environ\[\s*["']([A-Z][A-Z0-9_]+)["']\s*\]""",
    r"""os\.environ\.setdefault\(\s*["']([A-Z][A-Z0-9_]+)["']""",
    r"""os\.getenv\(\s*["']([A-Z][A-Z0-9_]+)["']""",
    r"""\benv_\w+\(\s*["']([A-Z][A-Z0-9_]+)["']""",
    r"""\$\{?([A-Z][A-Z0-9_]+)\b""",  # shell scripts and the Makefile
]
# Shell and make variables of the scripts themselves, not settings.
NOT_SETTINGS = {"BIN", "VENV", "PY", "PYTEST_ARGS", "BENCH_ARGS", "MAINPID", "BASH_SOURCE"}


def python(*args, env: dict, cwd=ROOT) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "CRM_", "CRONTAB_"))}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env={**base, **env}, capture_output=True, text=True, timeout=120
    )


def code_files():
    for entry in CODE:
        path = ROOT / entry
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        for file in files:
            if file.suffix in {".py", ".sh", ""} and "migrations" not in file.parts and "__pycache__" not in file.parts:
                yield file


def variables_read() -> dict[str, str]:
    found = {}
    for file in code_files():
        text = file.read_text(errors="replace")
        for pattern in READS:
            if pattern.startswith(r"\$") and file.suffix == ".py":
                continue
            for name in re.findall(pattern, text):
                found.setdefault(name, str(file.relative_to(ROOT)))
    from django.conf import settings

    for name in settings.CRONTAB_SETTINGS_FROM_ENV:  # read in a loop in settings.py
        found.setdefault(name, "alx_backend_graphql_crm/settings.py")
    return {name: where for name, where in found.items() if name not in NOT_SETTINGS}


def test_env_example_and_docs_list_every_variable_the_code_reads():
    documented = (ROOT / ".env.example").read_text() + "".join(p.read_text() for p in (ROOT / "docs").glob("*.md"))
    found = variables_read()
    assert {"DJANGO_SECRET_KEY", "DJANGO_LOG_LEVEL", "DATABASE_CONN_MAX_AGE", "CRONTAB_EXECUTABLE", "PORT"} <= set(
        found
    )
    missing = {name: where for name, where in found.items() if not re.search(rf"\b{name}\b", documented)}
    assert not missing, f"read by the code but not in .env.example or docs/: {missing}"


def test_env_file_is_read_and_the_process_environment_wins(tmp_path):
    env_file = tmp_path / "crm.env"
    env_file.write_text(
        f"DJANGO_SECRET_KEY={SECRET}\nDJANGO_TIME_ZONE=Europe/Paris\nCRM_LOG_DIR=/from/file\n"
        'CRONTAB_EXECUTABLE="/usr/bin/crontab -u deploy"\nCRONTAB_LOCK_JOBS=false\n'
    )
    show = (
        "from django.conf import settings as s; "
        "print(s.TIME_ZONE, s.CRM_LOG_DIR, s.CRONTAB_EXECUTABLE, s.CRONTAB_LOCK_JOBS, sep='|')"
    )
    result = python("manage.py", "shell", "-c", show, env={"CRM_ENV_FILE": str(env_file), "CRM_LOG_DIR": "/from/env"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "Europe/Paris|/from/env|/usr/bin/crontab -u deploy|False"


def test_dot_env_in_the_project_directory_is_the_default(tmp_path):
    # A copy of the entry point beside a .env: the file is found from the project directory, not the cwd.
    project = tmp_path / "project"
    shutil.copytree(ROOT / "alx_backend_graphql_crm", project / "alx_backend_graphql_crm")
    shutil.copy(ROOT / "manage.py", project / "manage.py")
    (project / ".env").write_text(f"DJANGO_SECRET_KEY={SECRET}\nDJANGO_TIME_ZONE=Asia/Tokyo\n")
    show = "from django.conf import settings as s; print(s.TIME_ZONE)"
    env = {"PYTHONPATH": str(ROOT), "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3"}
    result = python(str(project / "manage.py"), "shell", "-c", show, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "Asia/Tokyo"


@pytest.mark.parametrize(
    "command",
    [
        ["manage.py", "create_api_token", "someone"],
        ["-c", "import alx_backend_graphql_crm.wsgi"],
        # The same one line from the other entry points: a process each, so in the slow tier.
        pytest.param(["manage.py", "migrate"], marks=pytest.mark.slow),
        pytest.param(["-c", "import alx_backend_graphql_crm.asgi"], marks=pytest.mark.slow),
        pytest.param(["-m", "celery", "-A", "alx_backend_graphql_crm", "inspect", "ping"], marks=pytest.mark.slow),
        pytest.param(
            ["-m", "gunicorn", "--config", "gunicorn.conf.py", "--check-config", "alx_backend_graphql_crm.wsgi"],
            marks=pytest.mark.slow,
        ),
    ],
    ids=["create_api_token", "wsgi", "migrate", "asgi", "celery", "gunicorn"],
)
def test_missing_secret_key_is_one_line_and_exit_1(command):
    result = python(*command, env={"CRM_ENV_FILE": os.devnull, "DJANGO_DEBUG": "0"})
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: DJANGO_SECRET_KEY is not set"), result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_a_missing_env_file_named_by_crm_env_file_is_one_line(tmp_path):
    result = python("manage.py", "check", env={"CRM_ENV_FILE": str(tmp_path / "nope.env")})
    assert (result.returncode, result.stderr) == (
        1,
        f"error: CRM_ENV_FILE names {tmp_path / 'nope.env'}, which does not exist\n",
    )


def test_each_log_record_is_printed_once_in_development():
    log = "import logging; logging.getLogger('django.request').warning('Not Found: /nowhere')"
    result = python("manage.py", "shell", "-c", log, env={"CRM_ENV_FILE": os.devnull, "DJANGO_DEBUG": "1"})
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("Not Found: /nowhere") == 1, result.stderr


@pytest.mark.slow  # several Django processes: over 2 CPU-seconds (docs/testing.md, Tiers)
def test_static_files_storage_in_production_and_development():
    show = "from django.conf import settings as s; print(s.STORAGES['staticfiles']['BACKEND'])"
    prod = python("manage.py", "shell", "-c", show, env={"CRM_ENV_FILE": os.devnull, "DJANGO_SECRET_KEY": SECRET})
    dev = python("manage.py", "shell", "-c", show, env={"CRM_ENV_FILE": os.devnull, "DJANGO_DEBUG": "1"})
    assert prod.stdout.strip().endswith("alx_backend_graphql_crm.storage.StaticFilesStorage"), prod.stderr
    assert dev.stdout.strip().endswith("django.contrib.staticfiles.storage.StaticFilesStorage"), dev.stderr


def _installed_units(tmp_path: Path) -> list[Path]:
    """The shipped units with /srv/crm pointing at this checkout and the `crm` user replaced by root, so
    systemd-analyze can check that their commands exist."""
    units = []
    for unit in sorted((ROOT / "deploy" / "systemd").glob("*.service")):
        text = unit.read_text().replace("/srv/crm", str(ROOT))
        text = re.sub(r"^(User|Group)=crm$", r"\1=root", text, flags=re.MULTILINE)
        (tmp_path / unit.name).write_text(text)
        units.append(tmp_path / unit.name)
    return units


def test_systemd_units_verify(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("needs systemd-analyze (apt-get install systemd)")
    units = _installed_units(tmp_path)
    assert {u.name for u in units} == {
        "crm-serve.service",
        "crm-web.service",
        "crm-celery-worker.service",
        "crm-celery-beat.service",
    }
    result = subprocess.run(["systemd-analyze", "verify", *map(str, units)], capture_output=True, text=True)
    if result.returncode != 0 and "Failed to" in result.stderr and "crm-" not in result.stderr:
        pytest.skip(f"systemd-analyze cannot run here: {result.stderr.strip()}")
    assert result.returncode == 0 and "crm-" not in result.stderr, result.stderr
    beat = (ROOT / "deploy/systemd/crm-celery-beat.service").read_text()
    assert "celery -A alx_backend_graphql_crm beat" in beat and "EXACTLY ONE" in beat


def test_logrotate_snippet_is_valid_and_rotates(tmp_path):
    if shutil.which("logrotate") is None:
        pytest.skip("needs logrotate (apt-get install logrotate)")
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "crm_heartbeat_log.txt").write_text("01/12/2026-10:00:00 CRM is alive\n")
    user = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    group = subprocess.run(["id", "-gn"], capture_output=True, text=True).stdout.strip()
    text = (ROOT / "deploy/logrotate/crm").read_text().replace("/var/log/crm", str(logs))
    config = tmp_path / "crm.logrotate"
    config.write_text(text.replace("su crm crm", f"su {user} {group}"))
    debug = subprocess.run(
        ["logrotate", "-d", "-s", str(tmp_path / "state"), str(config)], capture_output=True, text=True
    )
    assert debug.returncode == 0 and "error" not in debug.stderr.lower(), debug.stderr
    assert f"rotating pattern: {logs}/*_log.txt" in debug.stderr + debug.stdout
    forced = subprocess.run(
        ["logrotate", "-f", "-s", str(tmp_path / "state"), str(config)], capture_output=True, text=True
    )
    assert forced.returncode == 0, forced.stderr
    assert (logs / "crm_heartbeat_log.txt.1").read_text().endswith("CRM is alive\n")
    assert (logs / "crm_heartbeat_log.txt").read_text() == ""  # copytruncate: the jobs keep appending here


def test_a_web_worker_loads_the_schema_then_freezes_its_heap():
    script = (
        "import gc, sys\n"
        "import alx_backend_graphql_crm.wsgi\n"
        "print(gc.get_freeze_count(), 'alx_backend_graphql_crm.schema' in sys.modules, len(gc.get_objects()))\n"
    )
    result = python("-c", script, env={"CRM_ENV_FILE": os.devnull, "DJANGO_SECRET_KEY": "x" * 50})
    assert result.returncode == 0, result.stderr
    frozen, schema_loaded, still_tracked = result.stdout.split()
    # The schema and everything loaded with it are frozen; a full collection walks only what came after.
    assert schema_loaded == "True"
    assert int(frozen) > 50_000
    assert int(still_tracked) < int(frozen) // 10
