"""Runs started for someone else (the admin's Run now, GraphQL runCronJob, the fire endpoint): claimed in
the web request, supervised by a process of their own. The real process, on PostgreSQL (the test
database must be one it can reach); the web side with the hand-over recorded is in test_admin_page.py
and test_schema.py, and the whole path through the production server in tests/e2e/test_serve.py."""

import time

import pytest

from cronjobs import runner
from cronjobs.models import JobRun
from tests.cronjobs.conftest import SUBPROCESS_SETTINGS, write_config

JOBS = "tests.cronjobs.jobs"
pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def wait_until_finished(record: JobRun, seconds: float = 120) -> JobRun:
    deadline = time.monotonic() + seconds
    while True:
        record.refresh_from_db()
        if record.status != "running":
            return record
        assert time.monotonic() < deadline, record.__dict__
        time.sleep(0.2)


@pytest.fixture
def same_jobs(settings, monkeypatch, shared_db, world_dir):
    """The supervising process gets this test's database and CRONJOBS: subprocess_settings and its file."""

    def use(cronjobs, **more):
        settings.CRONJOBS = cronjobs
        config = write_config(world_dir, shared_db, CRONJOBS=cronjobs, **more)
        settings.CRONTAB_DJANGO_SETTINGS_MODULE = SUBPROCESS_SETTINGS
        monkeypatch.setenv("CRONJOBS_TEST_CONFIG", str(config))

    return use


def test_run_now_hands_the_run_to_a_supervising_process_that_records_it(real_supervisors, same_jobs):
    same_jobs([["* * * * *", f"{JOBS}.own_process"]])
    record = runner.start("own_process", JobRun.Trigger.ADMIN)
    assert record.status == "running" and record.pid is None
    record = wait_until_finished(record)
    pid, parent, group = (int(x) for x in record.result.split())
    assert record.status == "succeeded" and record.pid == parent and group == pid  # its own process group


def test_run_now_of_a_job_that_swallows_every_exception_is_stopped_at_its_timeout(
    real_supervisors, same_jobs, world_dir
):
    marker = world_dir / "marker"
    same_jobs([["* * * * *", f"{JOBS}.swallow_everything", [str(marker)], {}, {"timeout": 3}]], CRONJOBS_STOP_WAIT=1)
    started = time.monotonic()
    record = wait_until_finished(runner.start("swallow_everything", JobRun.Trigger.GRAPHQL))
    assert record.status == "timed_out" and "killed (SIGKILL)" in record.result, record.result
    assert time.monotonic() - started < 3 + 1 + 30  # timeout + CRONJOBS_STOP_WAIT + a cold start on a busy machine
    size = marker.stat().st_size
    time.sleep(0.5)
    assert marker.stat().st_size == size


def test_a_run_its_supervising_process_cannot_take_is_closed_saying_why(real_supervisors, same_jobs, settings):
    same_jobs([["* * * * *", f"{JOBS}.succeed"]])
    settings.CRONJOBS = [("* * * * *", f"{JOBS}.succeed"), ("* * * * *", f"{JOBS}.add", {"name": "only_here"})]
    record = wait_until_finished(runner.start("only_here", JobRun.Trigger.ADMIN), seconds=60)
    # Before the fix the run stayed `running` until its start-up lease expired (two minutes).
    assert record.status == "failed"
    assert record.result.startswith("its supervising process could not take the run: no job named 'only_here'")
