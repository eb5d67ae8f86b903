"""The plain-crontab route in crm/cron_jobs/: scripts that find the project themselves."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CRON_JOBS = ROOT / "crm" / "cron_jobs"


@pytest.fixture
def project_env(sqlite_file, tmp_path):
    """A throw-away SQLite file database, migrated, and a log folder; env as a crontab would set it."""
    logs = tmp_path / "logs"
    logs.mkdir()
    env = {
        "PATH": "/usr/bin:/bin",  # cron's bare PATH
        "DJANGO_SECRET_KEY": "tests-only",
        "DATABASE_URL": f"sqlite:///{sqlite_file}",
        "CRM_LOG_DIR": str(logs),
    }
    return env, logs


def django_shell(env, code):
    subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env={**os.environ, **env}, check=True, timeout=120
    )


def test_crontab_files_are_one_line_without_trailing_newline():
    for name in ("customer_cleanup_crontab.txt", "order_reminders_crontab.txt"):
        text = (CRON_JOBS / name).read_text()
        assert "\n" not in text and len(text.split()) > 5, name
    assert (CRON_JOBS / "customer_cleanup_crontab.txt").read_text().startswith("0 2 * * 0 ")
    assert (CRON_JOBS / "order_reminders_crontab.txt").read_text().startswith("0 8 * * * ")


def cleanup_script(env, *args, cwd):
    return subprocess.run(
        ["bash", str(CRON_JOBS / "clean_inactive_customers.sh"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow  # several Django processes: over 2 CPU-seconds (docs/testing.md, Tiers)
def test_cleanup_script_dry_run_changes_nothing_then_runs_from_another_directory_and_logs(project_env, tmp_path):
    env, logs = project_env
    django_shell(
        env,
        "from datetime import timedelta; from django.utils import timezone; from crm.models import Customer; "
        "old = timezone.now() - timedelta(days=400); "
        "Customer.objects.create(name='Old', email='old@example.com', created_at=old); "
        "Customer.objects.create(name='New', email='new@example.com')",
    )
    dry = cleanup_script(env, "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "Would delete 1 and archive 0 inactive customers." in dry.stdout
    assert not (logs / "customer_cleanup_log.txt").exists()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = cleanup_script(env, cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    # run #1: the dry run recorded no run and deleted nothing.
    assert "clean_inactive_customers run #1 succeeded" in result.stdout and "deleted 1, archived 0" in result.stdout
    [line] = (logs / "customer_cleanup_log.txt").read_text().splitlines()
    assert line.endswith(" - Deleted 1 inactive customers")


def test_cleanup_script_without_virtualenv_explains(tmp_path):
    fake = tmp_path / "project" / "crm" / "cron_jobs"
    fake.mkdir(parents=True)
    script = fake / "clean_inactive_customers.sh"
    script.write_text((CRON_JOBS / "clean_inactive_customers.sh").read_text())
    result = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert f"no virtualenv at {tmp_path / 'project'}/.venv" in result.stderr
