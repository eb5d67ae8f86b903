"""Real processes on a shared database (a SQLite file, or PostgreSQL): slots, overlap, exit codes, checks."""

import shlex
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.test import override_settings

from cronjobs import system_crontab as backend
from cronjobs.registry import parse_cronjobs
from tests.cronjobs.conftest import ROOT, SUBPROCESS_SETTINGS, clean_env, config_prefix, manage, write_config

JOBS = "tests.cronjobs.jobs"
pytestmark = pytest.mark.slow


def wait_for(path: Path, process: subprocess.Popen) -> None:
    """Wait for a file the job writes when it starts (an event, not a duration)."""
    deadline = time.monotonic() + 120
    while not path.exists():
        if process.poll() is not None:
            pytest.fail(f"the job process ended early: {process.communicate()}")
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.05)


def installed_command(cronjobs, name: str, config: Path) -> str:
    """The shell command of the line `crontab add` would install for job `name`."""
    with override_settings(
        CRONJOBS=cronjobs,
        CRONTAB_DJANGO_SETTINGS_MODULE=SUBPROCESS_SETTINGS,
        CRONTAB_COMMAND_PREFIX=config_prefix(config),
    ):
        job = parse_cronjobs(cronjobs).get(name)
        line = backend.render_line(job, backend.get_config())
    # cron passes everything after the five time fields to sh, with \% turned back into %.
    return line.split(" ", 5)[5].rstrip("\n").replace("\\%", "%")


def test_six_processes_with_the_installed_command_run_the_job_once(shared_db, world_dir):
    output = world_dir / "ran.txt"
    # Every minute, the six started within one: they all claim the same (current) scheduled minute.
    cronjobs = [["* * * * *", f"{JOBS}.append_line", [str(output)]]]
    if datetime.now(UTC).second > 40:
        time.sleep(61 - datetime.now(UTC).second)
    config = write_config(world_dir, shared_db, CRONJOBS=cronjobs)
    command = installed_command(cronjobs, "append_line", config)
    assert f"crontab run append_line --scheduled --settings={SUBPROCESS_SETTINGS}" in command

    processes = [
        subprocess.Popen(
            ["sh", "-c", command], env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(6)
    ]
    results = [(p.wait(timeout=300), *p.communicate()) for p in processes]
    assert [code for code, _, _ in results] == [0] * 6, results
    assert len(output.read_text().splitlines()) == 1
    runs = shared_db.runs("append_line")
    assert len(runs) == 1 and runs[0]["status"] == "succeeded" and runs[0]["trigger"] == "crontab"
    # Scheduled runs print nothing when they succeed or find the minute claimed: cron mails nothing.
    assert all(out == "" for _, out, _ in results), results


def test_a_running_job_makes_the_next_start_a_recorded_skip(shared_db, world_dir):
    started, release = world_dir / "started", world_dir / "release"
    config = write_config(
        world_dir, shared_db, CRONJOBS=[["* * * * *", f"{JOBS}.wait_for_release", [str(started), str(release)]]]
    )
    first = subprocess.Popen(
        ["sh", "-c", f"exec {manage_argv('wait_for_release')}"],
        cwd=ROOT,
        env=clean_env(CRONJOBS_TEST_CONFIG=str(config)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(started, first)
        second = manage("crontab", "run", "wait_for_release", "--scheduled", config=config)
        assert second.returncode == 0, second.stderr
        assert second.stdout == ""  # a scheduled skip is silent; the row below says why
    finally:
        release.touch()
        out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    runs = shared_db.runs("wait_for_release")
    assert [(r["status"], r["trigger"]) for r in runs] == [("succeeded", "manual"), ("skipped", "crontab")]
    assert f"still running: run #{runs[0]['id']}" in runs[1]["result"]


def manage_argv(job: str) -> str:
    return shlex.join([sys.executable, "manage.py", "crontab", "run", job, f"--settings={SUBPROCESS_SETTINGS}"])


def test_a_job_that_raises_exits_1_with_its_traceback_recorded(shared_db, world_dir):
    config = write_config(world_dir, shared_db, CRONJOBS=[["* * * * *", f"{JOBS}.boom"]])
    result = manage("crontab", "run", "boom", config=config)
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr and "ValueError: boom from a test job" in result.stderr
    (run,) = shared_db.runs("boom")
    assert run["status"] == "failed" and "ValueError: boom from a test job" in run["traceback"]


def test_exit_codes_0_and_2(shared_db, world_dir):
    config = write_config(
        world_dir,
        shared_db,
        CRONJOBS=[["* * * * *", f"{JOBS}.succeed"], ["61 * * * *", f"{JOBS}.succeed", {"name": "bad"}]],
    )
    assert manage("crontab", "run", "succeed", config=config).returncode == 0
    assert manage("crontab", "run", "nope", config=config).returncode == 2
    bad = manage("crontab", "run", "bad", config=config)
    assert bad.returncode == 2 and "invalid schedule" in bad.stderr


def test_manage_py_check_reports_each_kind_of_bad_entry_with_its_id(world_dir):
    cronjobs = [
        "not a tuple",  # E002
        ["61 * * * *", f"{JOBS}.succeed"],  # E003
        ["* * * * *", f"{JOBS}.missing"],  # E004
        ["* * * * *", f"{JOBS}.NOT_CALLABLE"],  # E005
        ["* * * * *", f"{JOBS}.add", [1]],
        ["@daily", f"{JOBS}.add", [2]],  # E006 (same name)
        ["* * * * *", f"{JOBS}.succeed", {"timeout": "soon"}],  # E008
        ["* * * * *", f"{JOBS}.return_nothing", {"name": "a b"}],  # E009
    ]
    config = write_config(world_dir, None, CRONJOBS=cronjobs, CRONTAB_COMMAND_PREFIX="A=1\nB=2")  # E010
    result = manage("check", config=config)
    assert result.returncode == 1
    for code in ("E002", "E003", "E004", "E005", "E006", "E008", "E009", "E010"):
        assert f"(cronjobs.{code})" in result.stderr, code
    # E001 and E007 cannot be expressed in JSON: CRONJOBS not a list, and a non-JSON argument.
    for settings, code in (
        ({"CRONJOBS": {"a": 1}}, "E001"),
        ({"CRONJOBS": [["* * * * *", f"{JOBS}.add", [float("nan")]]]}, "E007"),
    ):
        config = write_config(world_dir, None, **settings)
        result = manage("check", config=config)
        assert f"(cronjobs.{code})" in result.stderr, result.stderr
