"""The shipped CRONJOBS: the contract's six jobs, valid, and runnable as cron runs them."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from cronjobs.registry import get_registry
from tests.privileges import without_root_override

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = {
    "log_crm_heartbeat": "*/5 * * * *",
    "update_low_stock": "0 */12 * * *",
    "clean_inactive_customers": "0 2 * * 0",
    "send_order_reminders": "0 8 * * *",
    "generate_crm_report": "0 6 * * 1",
    "prune_job_runs": "30 3 * * *",
}


def test_shipped_jobs_match_the_contract():
    registry = get_registry()
    assert {job.name: job.schedule for job in registry.jobs} == CONTRACT
    assert all(job.path == f"crm.cron.{job.name}" for job in registry.jobs)
    assert registry.all_problems() == []


def test_manage_py_check_accepts_them():
    call_command("check", fail_level="ERROR")


@pytest.fixture
def file_db(sqlite_file):
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "alx_backend_graphql_crm.settings",
        "DJANGO_SECRET_KEY": "tests-only",
        "DATABASE_URL": f"sqlite:///{sqlite_file}",
    }


def crontab_run(env, job):
    return subprocess.run(
        without_root_override([sys.executable, "manage.py", "crontab", "run", job]),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_heartbeat_as_cron_runs_it(file_db, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    result = crontab_run({**file_db, "CRM_LOG_DIR": str(logs)}, "log_crm_heartbeat")
    assert result.returncode == 0, result.stderr
    assert (logs / "crm_heartbeat_log.txt").read_text().endswith(" CRM is alive\n")


@pytest.mark.parametrize("kind", ["unwritable", "missing"])
def test_unusable_log_dir_fails_the_heartbeat_naming_the_path(file_db, tmp_path, kind):
    logs = tmp_path / "logs"
    if kind == "unwritable":
        logs.mkdir(mode=0o555)
        logs.chmod(0o555)
    result = crontab_run({**file_db, "CRM_LOG_DIR": str(logs)}, "log_crm_heartbeat")
    assert result.returncode == 1
    assert str(logs) in result.stderr
    assert ("permission denied" if kind == "unwritable" else "does not exist") in result.stderr
    assert not (logs / "crm_heartbeat_log.txt").exists()
