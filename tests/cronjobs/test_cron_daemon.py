"""End to end with a real cron daemon: `crontab add` installs a job, cron fires it, the run is in the history."""

import subprocess
import sys
import sysconfig
import time

import pytest

from tests.cronjobs.conftest import SUBPROCESS_SETTINGS, config_prefix, manage, write_config
from tests.reachable import unavailable

JOBS = "tests.cronjobs.jobs"


def python_for(user: str) -> tuple[str, str] | None:
    """A Python the throw-away user can run with Django importable: (executable, command prefix)."""
    candidates = [
        (sys.executable, ""),
        # The venv's interpreter may live under a folder other users cannot enter (/root/.pyenv):
        # the system Python of the same minor version with the venv's packages on its path.
        (
            f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}",
            f"PYTHONPATH={sysconfig.get_paths()['purelib']} ",
        ),
    ]
    for executable, prefix in candidates:
        env_args = prefix.split() if prefix else []
        probe = subprocess.run(
            ["runuser", "-u", user, "--", "env", *env_args, executable, "-c", "import django, croniter, psycopg"],
            capture_output=True,
        )
        if probe.returncode == 0:
            return executable, prefix
    return None


@pytest.mark.cron_daemon
@pytest.mark.slow
@pytest.mark.crontab
def test_cron_fires_the_installed_job_and_the_run_is_recorded(crontab_user, shared_db, world_dir):
    found = python_for(crontab_user.name)
    if found is None:
        unavailable(f"no Python with Django that user {crontab_user.name} may run")
    python, pythonpath = found
    output, log = world_dir / "fired.txt", world_dir / "cron.log"
    config = write_config(
        world_dir,
        shared_db,
        CRONJOBS=[["* * * * *", f"{JOBS}.append_line", [str(output), "fired"], {}, {"name": "cron_e2e"}]],
        CRONTAB_EXECUTABLE=crontab_user.executable,
        CRONTAB_PYTHON_EXECUTABLE=python,
        CRONTAB_COMMAND_PREFIX=pythonpath + config_prefix(world_dir / "cronjobs-test-config.json"),
        CRONTAB_COMMAND_SUFFIX=f">> {log} 2>&1",
        CRONJOBS_PREFLIGHT=True,  # `add` first runs the line as this user under env -i, as cron will
    )

    try:
        added = manage("crontab", "add", config=config)
        assert added.returncode == 0, added.stdout + added.stderr
        assert "preflight ok" in added.stdout
        line = crontab_user.read()
        assert f"crontab run cron_e2e --scheduled --settings={SUBPROCESS_SETTINGS}" in line

        deadline = time.monotonic() + 150  # cron reads new crontabs each minute: fired within two minutes
        runs = []
        while not runs and time.monotonic() < deadline:
            time.sleep(1)
            runs = [r for r in shared_db.runs("cron_e2e") if r["status"] != "running"]
        cron_output = log.read_text() if log.exists() else "(no output)"
        assert runs, f"cron did not run the job within two minutes; its output: {cron_output}"
        assert runs[0]["status"] == "succeeded" and runs[0]["trigger"] == "crontab", cron_output
        assert runs[0]["scheduled_for"] is not None
        assert "fired" in output.read_text()
        assert manage("crontab", "remove", config=config).returncode == 0
        assert "cron_e2e" not in (crontab_user.read() or "")

    finally:
        crontab_user.clear()
        wait_for_no_processes(crontab_user.name)


def wait_for_no_processes(user: str) -> None:
    """A run cron started just before `remove` must finish before the database is cleaned for the next test."""
    deadline = time.monotonic() + 120
    while subprocess.run(["pgrep", "-u", user], capture_output=True).returncode == 0:
        assert time.monotonic() < deadline, f"processes of {user} still running"
        time.sleep(0.5)
