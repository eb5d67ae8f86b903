"""Retries with backoff (one slot, linked attempts, Celery's own retry) and captured output (issue 16)."""

import io
import logging
import sys
from datetime import UTC, datetime, timedelta

import pytest
from celery.exceptions import Retry
from django.core.management import call_command
from django.test import Client

from cronjobs import health, runner
from cronjobs.beat import run_cronjob, run_job_task
from cronjobs.models import JobRun
from cronjobs.output import OUTPUT_LIMIT
from tests.clock import travel
from tests.crm.gql_helpers import ok, user_with
from tests.cronjobs.conftest import manage, write_config

pytestmark = pytest.mark.django_db
JOBS = "tests.cronjobs.jobs"
SLOT = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def at_the_slot(request):
    """Five seconds after SLOT, on the clock the engine reads (the runner starts a minute that late).
    Not for the slow tests: the processes they start read the real clock."""
    if request.node.get_closest_marker("slow"):
        yield
        return
    with travel(SLOT + timedelta(seconds=5), tick=True):
        yield


@pytest.fixture
def counter(tmp_path):
    return str(tmp_path / "calls")


@pytest.fixture(autouse=True)
def jobs(settings, counter):
    settings.TIME_ZONE = "UTC"
    settings.CRONJOBS = [
        ("* * * * *", f"{JOBS}.fail_then_succeed", [counter], {}, {"name": "flaky", "retries": 3, "retry_backoff": 1}),
        ("* * * * *", f"{JOBS}.fail_then_succeed", [counter, 9], {}, {"name": "hopeless", "retries": 2}),
        ("* * * * *", f"{JOBS}.loop_forever", {"name": "slow", "timeout": 0.1, "retries": 2}),
        (
            "* * * * *",
            f"{JOBS}.loop_forever",
            {"name": "slow_retried", "timeout": 0.1, "retries": 1, "retry_on_timeout": True},
        ),
        ("* * * * *", f"{JOBS}.print_and_log", {"name": "chatty"}),
        ("* * * * *", f"{JOBS}.print_and_log", [100 * 1024], {}, {"name": "verbose"}),
        ("* * * * *", f"{JOBS}.print_then_loop", {"name": "print_then_loop", "timeout": 0.2}),
        ("* * * * *", f"{JOBS}.print_then_interrupt"),
    ]


def staff(*permissions, superuser=False):
    user = user_with(*permissions)
    user.is_staff, user.is_superuser = True, superuser
    user.save()
    client = Client()
    client.force_login(user)
    return client


# --- retries ---------------------------------------------------------------------------------------
def test_failing_twice_then_succeeding_leaves_three_linked_rows_one_slot_and_a_healthy_state(details_client):
    delays = []
    with travel(SLOT + timedelta(seconds=5), tick=False):
        last = runner.run("flaky", SLOT, "crontab", sleep=delays.append)
        runs = list(JobRun.objects.filter(job_name="flaky").order_by("attempt"))
        assert [(r.attempt, r.status) for r in runs] == [(1, "failed"), (2, "failed"), (3, "succeeded")]
        assert last == runs[2] and last.result == "succeeded on call 3"
        assert {r.scheduled_for for r in runs} == {SLOT}
        assert [r.retry_of_id for r in runs] == [None, runs[0].pk, runs[0].pk]
        assert "ConnectionError: transient failure 1" in runs[0].traceback
        # backoff 1 s then 2 s, each with "equal jitter" (between half and all of it)
        assert 0.5 <= delays[0] <= 1 and 1 <= delays[1] <= 2 and len(delays) == 2
        # the slot counts once: firing the minute again (another route, a redelivery) runs nothing
        again = runner.run("flaky", SLOT, "work", sleep=delays.append)
        assert again.duplicate and again.pk == runs[0].pk and JobRun.objects.filter(job_name="flaky").count() == 3
        item = next(item for item in health.snapshot() if item.job.name == "flaky")
        assert item.state == "ok" and item.healthy and item.last_run.attempt == 3
        body = details_client.get("/health/cron/?jobs=all").json()
        assert {job["name"]: job for job in body["jobs"]}["flaky"]["last_run"]["attempt"] == 3


def test_retries_stop_after_the_last_attempt_and_the_job_is_failing():
    delays = []
    last = runner.run("hopeless", SLOT, "crontab", sleep=delays.append)
    assert (last.attempt, last.status) == (3, "failed") and len(delays) == 2
    assert next(item for item in health.snapshot() if item.job.name == "hopeless").state == "failing"


def test_backoff_doubles_and_is_capped(settings, counter):
    settings.CRONJOBS = [
        (
            "* * * * *",
            f"{JOBS}.fail_then_succeed",
            [counter, 9],
            {},
            {"name": "j", "retries": 4, "retry_backoff": 10, "retry_backoff_max": 25},
        )
    ]
    delays = []
    runner.run("j", SLOT, "crontab", sleep=delays.append)
    upper = [10, 20, 25, 25]
    assert all(high / 2 <= delay <= high for delay, high in zip(delays, upper, strict=True)), delays


def test_timeouts_are_not_retried_unless_retry_on_timeout():
    assert runner.run("slow", SLOT, "crontab", sleep=lambda s: None).attempt == 1
    last = runner.run("slow_retried", SLOT, "crontab", sleep=lambda s: None)
    assert (last.attempt, last.status) == (2, "timed_out")


def test_a_run_now_from_the_admin_makes_one_attempt():
    client = staff("cronjobs.view_jobrun", "cronjobs.run_job")
    client.post("/admin/cronjobs/scheduledjob/run/flaky/")
    assert JobRun.objects.filter(job_name="flaky").count() == 1


def test_a_pending_retry_is_not_yet_an_alarm():
    with travel(SLOT + timedelta(seconds=5), tick=False):
        first = runner.run("flaky", SLOT, "crontab", retry=False)
        assert first.status == "failed"
        assert next(item for item in health.snapshot() if item.job.name == "flaky").state == "retrying"
    with travel(SLOT + timedelta(minutes=5), tick=False):  # the retry never came
        assert next(item for item in health.snapshot() if item.job.name == "flaky").state == "failing"


def test_show_and_graphql_show_attempts(empty_crontab):
    runner.run("flaky", SLOT, "crontab", sleep=lambda s: None)
    out = io.StringIO()
    call_command("crontab", "show", stdout=out)
    text = out.getvalue()
    assert "retries:   3 (backoff 1s doubling, max 600s)" in text
    assert "succeeded at" in text and "(crontab, attempt 3)" in text
    client = staff("cronjobs.view_jobrun")
    data = ok(
        client, '{ cronJobRuns(filter: {jobName: "flaky"}) { edges { node { attempt status retryOf { attempt } } } } }'
    )
    nodes = [edge["node"] for edge in data["cronJobRuns"]["edges"]]
    assert nodes == [
        {"attempt": 3, "status": "succeeded", "retryOf": {"attempt": 1}},
        {"attempt": 2, "status": "failed", "retryOf": {"attempt": 1}},
        {"attempt": 1, "status": "failed", "retryOf": None},
    ]
    data = ok(client, "{ cronJobs { name retries lastRun { attempt } } }")
    assert data["cronJobs"][0] == {"name": "flaky", "retries": 3, "lastRun": {"attempt": 3}}


class FakeTask:
    """Stands in for a bound Celery task: records the retry it asks for."""

    def __init__(self, kwargs):
        self.request = type("Request", (), {"kwargs": kwargs, "headers": {}, "celery_beat_task": None})()
        self.retried = None

    def retry(self, **options):
        self.retried = options
        return Retry("retry asked")


def test_the_celery_task_retries_with_celerys_own_retry_and_the_backoff_as_countdown():
    kwargs = {"scheduled_for_iso": SLOT.isoformat()}
    task = FakeTask(kwargs)
    with pytest.raises(Retry):
        run_job_task(task, "flaky", SLOT.isoformat())
    first = JobRun.objects.get(job_name="flaky")
    assert task.retried["max_retries"] == 3 and 0.5 <= task.retried["countdown"] <= 1
    assert task.retried["kwargs"] == {"scheduled_for_iso": SLOT.isoformat(), "previous_run": first.pk}
    # the retried message: the next attempt, linked to the first
    task = FakeTask(task.retried["kwargs"])
    with pytest.raises(Retry):
        run_job_task(task, "flaky", SLOT.isoformat(), first.pk)
    second = JobRun.objects.get(job_name="flaky", attempt=2)
    assert second.retry_of_id == first.pk and 1 <= task.retried["countdown"] <= 2
    outcome = run_job_task(FakeTask({}), "flaky", SLOT.isoformat(), second.pk)
    assert outcome["status"] == "succeeded" and outcome["attempt"] == 3
    assert JobRun.objects.get(pk=outcome["run"]).retry_of_id == first.pk


def test_the_celery_task_in_eager_mode_runs_every_attempt():
    # throw=False: eager apply() then runs the retry signature itself, as a worker would after the countdown
    outcome = run_cronjob.apply(args=("flaky", SLOT.isoformat()), throw=False).get()
    assert outcome["attempt"] == 3 and outcome["status"] == "succeeded"
    assert JobRun.objects.filter(job_name="flaky", scheduled_for=SLOT).count() == 3


# --- captured output -------------------------------------------------------------------------------
def test_print_stderr_and_logging_are_kept_with_the_run_and_streams_are_restored(capsys):
    stdout, stderr = sys.stdout, sys.stderr
    run = runner.run("chatty", trigger="manual")
    run.refresh_from_db()
    assert "to stdout\n" in run.output and "to stderr\n" in run.output
    assert "WARNING tests.cronjobs.jobs: to logging" in run.output and run.output.endswith("the end\n")
    assert (sys.stdout, sys.stderr) == (stdout, stderr)
    assert logging.getLogger().handlers == logging.getLogger().handlers  # no handler left behind
    assert "to stdout" in capsys.readouterr().out  # by hand: shown live as well (tee)


def test_a_run_fired_by_cron_prints_nothing_and_keeps_its_output(capsys):
    run = runner.run("chatty", SLOT, "crontab")
    assert "to stdout" in JobRun.objects.get(pk=run.pk).output
    captured = capsys.readouterr()
    assert "to stdout" not in captured.out and "to stderr" not in captured.err


def test_a_job_printing_100_kb_keeps_the_last_64_kb_with_a_note():
    run = JobRun.objects.get(pk=runner.run("verbose").pk)
    note, kept = run.output.split("\n", 1)
    assert note.startswith("[output cut: the first ") and note.endswith("bytes were dropped; the last 64 KB follow]")
    assert len(kept.encode()) == OUTPUT_LIMIT and kept.endswith("the end\n")
    dropped = int(note.split("the first ")[1].split(" ")[0])
    assert dropped >= 100 * 1024 - OUTPUT_LIMIT  # everything before the kept tail, the early lines included
    assert "to stdout" not in kept and "line 000000" not in kept and "line 001625 " in kept


def test_the_admin_run_page_and_graphql_show_the_output():
    run = runner.run("verbose")
    client = staff("cronjobs.view_jobrun")
    page = client.get(f"/admin/cronjobs/jobrun/{run.pk}/change/").content.decode()
    assert '<pre class="job-output"' in page and "[output cut: the first" in page and "the end" in page
    data = ok(client, '{ cronJobRuns(filter: {jobName: "verbose"}) { edges { node { output } } } }')
    output = data["cronJobRuns"]["edges"][0]["node"]["output"]
    assert output.startswith("[output cut: the first") and output.endswith("the end\n")


@pytest.mark.parametrize("name", ["print_then_loop", "print_then_interrupt"])
def test_streams_are_restored_after_a_timeout_and_a_keyboard_interrupt(name):
    stdout, stderr, handlers = sys.stdout, sys.stderr, list(logging.getLogger().handlers)
    try:
        runner.run(name)
    except KeyboardInterrupt:
        pass
    assert (sys.stdout, sys.stderr, logging.getLogger().handlers) == (stdout, stderr, handlers)
    run = JobRun.objects.get(job_name=name)
    assert run.status in ("timed_out", "interrupted") and "before" in run.output


FLAKY_NOW = {"name": "flaky", "retries": 2, "retry_backoff": 0}


def _stored_runs(shared_db, name):
    if shared_db.sqlite_path:
        import sqlite3

        with sqlite3.connect(shared_db.sqlite_path) as db:
            sql = "SELECT attempt, status, output FROM cronjobs_jobrun WHERE job_name = ? ORDER BY id"
            return list(db.execute(sql, (name,)))
    return list(JobRun.objects.filter(job_name=name).order_by("id").values_list("attempt", "status", "output"))


@pytest.mark.slow  # several Django processes: over 2 CPU-seconds (docs/testing.md, Tiers)
def test_the_run_process_crontab_work_starts_retries_in_process_and_captures_output(shared_db, world_dir):
    """What `crontab work` fires for a minute (cronjobs.scheduler.Scheduler.command): output kept and shown live
    (work relays it into its log), retries made in that process."""
    counter = str(world_dir / "calls")
    config = write_config(
        world_dir,
        shared_db,
        CRONJOBS=[
            ["* * * * *", f"{JOBS}.print_and_log", {"name": "chatty"}],
            [
                "* * * * *",
                f"{JOBS}.fail_then_succeed",
                [counter],
                {},
                {"name": "flaky", "retries": 2, "retry_backoff": 0},
            ],
        ],
    )
    minute = datetime.now(UTC).replace(second=0, microsecond=0).isoformat()
    result = manage("crontab", "run", "chatty", "--scheduled-for", minute, "--trigger", "work", config=config)
    assert result.returncode == 0, result.stderr
    assert "to stdout" in result.stdout and "to stderr" in result.stdout  # live, one stream, in the order written
    [(attempt, status, output)] = _stored_runs(shared_db, "chatty")
    assert status == "succeeded" and "to stdout" in output and "WARNING tests.cronjobs.jobs: to logging" in output
    result = manage("crontab", "run", "flaky", "--scheduled-for", minute, "--trigger", "work", config=config)
    assert result.returncode == 0, result.stderr
    assert [(a, s) for a, s, _ in _stored_runs(shared_db, "flaky")] == [(1, "failed"), (2, "failed"), (3, "succeeded")]


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)  # creates the test database shared_db names on PostgreSQL
def test_a_real_celery_worker_retries_through_the_broker_and_links_the_attempts(shared_db, world_dir):
    """Celery's own retry: each failed attempt re-publishes the message (Redis db 8, a queue of its own)."""
    import secrets
    import subprocess
    import time
    from urllib.parse import urlparse, urlunparse

    from django.conf import settings as django_settings

    from tests.cronjobs.procs import celery_env, start_celery_worker

    broker_url = urlunparse(urlparse(django_settings.CELERY_BROKER_URL)._replace(path="/8"))
    name = f"flaky_{secrets.token_hex(3)}"
    options = {"name": name, "retries": 3, "retry_backoff": 0.2}
    config = write_config(
        world_dir,
        shared_db,
        CRONJOBS=[["* * * * *", f"{JOBS}.fail_then_succeed", [str(world_dir / "calls")], {}, options]],
        CELERY_TASK_DEFAULT_QUEUE=f"cronjobs-test-{secrets.token_hex(4)}",
    )
    worker = start_celery_worker(config, broker_url, f"cjt-{secrets.token_hex(3)}")
    try:
        worker.wait_for(" ready.")
        call = [sys.executable, "-m", "celery", "-A", "alx_backend_graphql_crm", "call", "cronjobs.run_cronjob"]
        minute = datetime.now(UTC).replace(second=0, microsecond=0)
        call += ["--args", f'["{name}", "{minute.isoformat()}"]']
        subprocess.run(call, env=celery_env(config, broker_url), check=True, capture_output=True, timeout=60)
        deadline = time.monotonic() + 120
        while [a for a, s, _ in _stored_runs(shared_db, name) if s == "succeeded"] != [3]:
            assert time.monotonic() < deadline, worker.output
            time.sleep(0.1)
    finally:
        worker.stop()
    assert [(a, s) for a, s, _ in _stored_runs(shared_db, name)] == [(1, "failed"), (2, "failed"), (3, "succeeded")]
    assert worker.output.count("Retry in ") == 2, worker.output
