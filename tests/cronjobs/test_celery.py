"""The Celery route: the run_cronjob task and its scheduled minute, beat's stamping, the lazy import,
and real worker + beat runs."""

import os
import secrets
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from urllib.parse import urlparse, urlunparse

import pytest
from celery.beat import ScheduleEntry
from django.conf import settings as django_settings
from django.utils import timezone

from alx_backend_graphql_crm.celery import CRONJOB_TASKS, app
from crm.tasks import generate_crm_report
from cronjobs.beat import CronJobFailed, CronJobScheduler, beat_schedule, run_cronjob
from cronjobs.models import JobRun
from cronjobs.registry import UnknownJob
from tests.clock import travel
from tests.cronjobs.conftest import ROOT, SUBPROCESS_SETTINGS, clean_env, write_config
from tests.cronjobs.procs import start_celery_beat, start_celery_worker, start_work

JOBS = "tests.cronjobs.jobs"
MINUTE = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


@pytest.fixture
def at_the_minute():
    """The engine's clock a few seconds after MINUTE: the task is on time for it."""
    with travel(MINUTE + timedelta(seconds=3), tick=True):
        yield


@pytest.fixture
def jobs(settings, at_the_minute):
    settings.CRONJOBS = [
        ("* * * * *", f"{JOBS}.succeed"),
        ("* * * * *", f"{JOBS}.boom"),
        ("0 6 * * 1", f"{JOBS}.succeed", {"name": "generate_crm_report"}),
        ("61 * * * *", f"{JOBS}.succeed", {"name": "broken"}),
    ]


def call(task, *args, **options):
    """Run the task in-process as a worker would (eagerly, exceptions raised)."""
    return task.apply(args=args, throw=True, **options).get()


@pytest.mark.django_db
def test_the_task_runs_the_job_for_the_minute_in_its_message(jobs):
    outcome = call(run_cronjob, "succeed", MINUTE.isoformat())
    run = JobRun.objects.get(pk=outcome["run"])
    assert (run.job_name, run.scheduled_for, run.trigger, run.status) == ("succeed", MINUTE, "celery", "succeeded")
    assert outcome["status"] == "succeeded" and not outcome["duplicate"]


@pytest.mark.django_db
def test_a_redelivered_message_finds_its_minute_claimed_and_runs_nothing(jobs):
    first = call(run_cronjob, "succeed", MINUTE.isoformat())
    again = call(run_cronjob, "succeed", MINUTE.isoformat())
    assert again["duplicate"] and again["run"] == first["run"]
    assert JobRun.objects.filter(job_name="succeed").count() == 1


@pytest.mark.django_db
def test_a_failing_job_is_a_failed_task_and_a_recorded_failure(jobs):
    with pytest.raises(CronJobFailed, match="boom run #\\d+ failed: ValueError: boom from a test job"):
        call(run_cronjob, "boom", MINUTE.isoformat())
    assert JobRun.objects.get(job_name="boom").status == "failed"


@pytest.mark.django_db
def test_unknown_jobs_bad_entries_and_bad_minutes_fail_the_task_and_record_nothing(jobs):
    with pytest.raises(UnknownJob):
        call(run_cronjob, "nope", MINUTE.isoformat())
    with pytest.raises(Exception, match="invalid schedule"):
        call(run_cronjob, "broken", MINUTE.isoformat())
    with pytest.raises(ValueError, match="not an ISO datetime"):
        call(run_cronjob, "succeed", "next monday")
    assert not JobRun.objects.exists()


@pytest.mark.django_db
def test_without_a_minute_beat_messages_claim_the_latest_and_calls_by_hand_claim_none(jobs):
    by_hand = call(run_cronjob, "succeed")
    assert by_hand["scheduled_for"] is None
    from_beat = call(run_cronjob, "succeed", headers={"celery_beat_task": True})
    expected = timezone.now().replace(second=0, microsecond=0)
    assert datetime.fromisoformat(from_beat["scheduled_for"]) in (expected, expected - timedelta(minutes=1))


@pytest.mark.django_db
def test_generate_crm_report_task_runs_that_job_through_the_runner(jobs):
    outcome = call(generate_crm_report, MINUTE.isoformat())
    run = JobRun.objects.get(pk=outcome["run"])
    assert (run.job_name, run.trigger, run.scheduled_for) == ("generate_crm_report", "celery", MINUTE)
    assert generate_crm_report.name == "crm.tasks.generate_crm_report"


def test_the_projects_beat_schedule_sends_the_report_to_its_own_task_on_monday_0600(settings):
    settings.CRONJOBS = [("0 6 * * 1", "crm.cron.generate_crm_report", {"name": "generate_crm_report"})]
    entry = beat_schedule(CRONJOB_TASKS)["cronjob:generate_crm_report"]
    assert entry["task"] == "crm.tasks.generate_crm_report"
    schedule = entry["schedule"]
    schedule.nowfun = lambda: datetime(2026, 3, 1, 12, 0, tzinfo=UTC)  # a Sunday
    assert schedule.remaining_estimate(datetime(2026, 3, 1, 12, 0, tzinfo=UTC)) == timedelta(hours=18)
    assert app.conf.beat_scheduler == "cronjobs.beat:CronJobScheduler"
    assert app.main == "alx_backend_graphql_crm"


def test_beat_puts_the_minute_it_fires_for_into_the_message(jobs, monkeypatch, tmp_path):
    sent = []
    monkeypatch.setattr(
        "celery.app.task.Task.apply_async", lambda self, args, kwargs, **opts: sent.append((args, kwargs))
    )
    scheduler = CronJobScheduler(app=app, schedule_filename=str(tmp_path / "beat"), lazy=True)
    entry = ScheduleEntry(name="cronjob:succeed", task="cronjobs.run_cronjob", args=("succeed",), app=app, schedule=60)
    monkeypatch.setattr("cronjobs.beat.datetime", _FrozenDatetime)
    scheduler.apply_async(entry, advance=False)
    assert sent == [(["succeed"], {"scheduled_for_iso": "2026-03-02T06:00:00+00:00"})]
    assert entry.kwargs == {}  # the stored entry is unchanged


class _FrozenDatetime(datetime):
    @classmethod
    def now(cls, tz=None):
        return datetime(2026, 3, 2, 6, 0, 2, tzinfo=UTC)


def test_plain_django_processes_never_import_celery():
    code = (
        "import sys, django; django.setup();"
        "from django.core.management import call_command;"
        "call_command('check');"
        "import alx_backend_graphql_crm, cronjobs.runner, cronjobs.scheduler;"
        "print(sorted(m for m in sys.modules if m == 'celery' or m.startswith(('celery.', 'kombu'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=clean_env(DJANGO_SETTINGS_MODULE=SUBPROCESS_SETTINGS),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


# --- real processes ------------------------------------------------------------------------------
@pytest.fixture
def broker_url():
    """The configured Redis on the configured database number, or on 5 when that is the default 0, so that
    other users of the same Redis are not disturbed."""
    url = urlparse(django_settings.CELERY_BROKER_URL)
    return urlunparse(url._replace(path=url.path if url.path.strip("/") not in ("", "0") else "/5"))


def celery_config(world_dir, shared_db, cronjobs):
    # A queue of its own: another test run on the same Redis cannot take these messages.
    queue = f"cronjobs-test-{secrets.token_hex(4)}"
    return write_config(world_dir, shared_db, CRONJOBS=cronjobs, CELERY_TASK_DEFAULT_QUEUE=queue)


def task_outcomes(worker) -> list[str]:
    return [line for line in worker.lines if "Task cronjobs.run_cronjob[" in line and " succeeded in " in line]


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)  # creates the test database shared_db names on PostgreSQL
def test_scheduler_and_beat_run_an_every_minute_job_recorded_with_trigger_celery(shared_db, world_dir, broker_url):
    output, name = world_dir / "ran.txt", f"every_minute_{secrets.token_hex(3)}"  # a name no other test's runs have
    config = celery_config(
        world_dir, shared_db, [["* * * * *", f"{JOBS}.append_line", [str(output)], {}, {"name": name}]]
    )
    worker = start_celery_worker(config, broker_url, f"cjt-{secrets.token_hex(3)}")
    beat = start_celery_beat(config, broker_url, world_dir)
    try:
        worker.wait_for(" ready.")
        beat.wait_for("beat: Starting")
        worker.wait_for("Task cronjobs.run_cronjob[")
        deadline = time.monotonic() + 200
        while not shared_db.runs(name) or shared_db.runs(name)[0]["status"] == "running":
            assert time.monotonic() < deadline, worker.output
            time.sleep(0.1)
    finally:
        beat.stop()
        worker.stop()
    run = shared_db.runs(name)[0]
    assert (run["status"], run["trigger"]) == ("succeeded", "celery"), (run, worker.output)
    assert run["scheduled_for"] is not None
    assert f"Sending due task cronjob:{name} (cronjobs.run_cronjob)" in beat.output
    assert output.read_text().startswith("ran ")


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)  # creates the test database shared_db names on PostgreSQL
def test_crontab_work_and_celery_beat_together_run_each_minute_exactly_once(shared_db, world_dir, broker_url):
    output, name = world_dir / "ran.txt", f"every_minute_{secrets.token_hex(3)}"
    config = celery_config(
        world_dir, shared_db, [["* * * * *", f"{JOBS}.append_line", [str(output)], {}, {"name": name}]]
    )
    worker = start_celery_worker(config, broker_url, f"cjt-{secrets.token_hex(3)}")
    beat = start_celery_beat(config, broker_url, world_dir)
    work = start_work(config)
    try:
        worker.wait_for(" ready.")
        beat.wait_for("beat: Starting")
        work.wait_for("crontab work:")
        # Two minute boundaries after all three are up: both routes fire each of these minutes.
        ready = datetime.now(UTC).replace(second=0, microsecond=0)
        minutes = [ready + timedelta(minutes=n) for n in (1, 2)]
        for minute in minutes:
            label = minute.strftime("%Y-%m-%d %H:%M")
            work.wait_for(f"fire {name} [{label}]")  # launched, or found claimed by the worker
            worker.wait_for(f"'scheduled_for': '{minute.isoformat()}'")
    finally:
        work.stop()
        beat.stop()
        worker.stop()
    runs = shared_db.runs(name)
    per_minute = Counter(run["scheduled_for"] for run in runs)
    assert all(count == 1 for count in per_minute.values()), runs
    assert set(minutes) <= set(per_minute), runs
    assert {run["status"] for run in runs} == {"succeeded"}, runs
    assert len(output.read_text().splitlines()) == len(runs), (runs, work.output, worker.output)
    # Both routes really competed: each of these minutes both fired it (waited for above), one ran it
    # and the other found it claimed ("already claimed by run #N" in work's log, "duplicate" in the task's).
    attempts = sum(work.has(f"fire {name} [{m:%Y-%m-%d %H:%M}]") for m in minutes) + sum(
        f"'scheduled_for': '{m.isoformat()}'" in line for line in task_outcomes(worker) for m in minutes
    )
    assert attempts - sum(run["scheduled_for"] in minutes for run in runs) >= len(minutes), (work.output, runs)


def _call_task(config, broker_url, name):
    """`celery call cronjobs.run_cronjob <name>`: a run by hand through the broker (no minute claimed)."""
    from tests.cronjobs.procs import celery_env

    call = [sys.executable, "-m", "celery", "-A", "alx_backend_graphql_crm", "call", "cronjobs.run_cronjob"]
    call += ["--args", f'["{name}"]']
    subprocess.run(call, env=celery_env(config, broker_url), check=True, capture_output=True, timeout=60)


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_job_that_swallows_every_exception_is_stopped_at_its_timeout_on_a_celery_worker(
    shared_db, world_dir, broker_url
):
    marker, name = world_dir / "marker", f"swallow_{secrets.token_hex(3)}"
    options = {"name": name, "timeout": 3}
    config = celery_config(
        world_dir, shared_db, [["* * * * *", f"{JOBS}.swallow_everything", [str(marker)], {}, options]]
    )
    config.write_text(config.read_text().replace('"settings": {', '"settings": {"CRONJOBS_STOP_WAIT": 1, ', 1))
    worker = start_celery_worker(config, broker_url, f"cjt-{secrets.token_hex(3)}")
    try:
        worker.wait_for(" ready.")
        started = time.monotonic()
        _call_task(config, broker_url, name)
        deadline = time.monotonic() + 120
        while not [r for r in shared_db.runs(name) if r["status"] != "running"]:
            assert time.monotonic() < deadline, worker.output
            time.sleep(0.1)
        took = time.monotonic() - started
    finally:
        worker.stop()
    (run,) = shared_db.runs(name)
    assert run["status"] == "timed_out" and "killed (SIGKILL)" in run["result"], run
    assert took < 3 + 1 + 30, took  # timeout + CRONJOBS_STOP_WAIT, plus the broker round trip on a busy machine
    size = marker.stat().st_size
    time.sleep(0.5)
    assert marker.stat().st_size == size  # nothing of it runs afterwards


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_sigkill_of_the_celery_worker_mid_run_leaves_a_run_closed_interrupted_not_running(
    shared_db, world_dir, broker_url
):
    started, release = world_dir / "started", world_dir / "release"
    name = f"held_{secrets.token_hex(3)}"
    config = celery_config(
        world_dir,
        shared_db,
        [["* * * * *", f"{JOBS}.wait_for_release", [str(started), str(release)], {}, {"name": name}]],
    )
    config.write_text(config.read_text().replace('"settings": {', '"settings": {"CRONJOBS_LEASE_SECONDS": 1, ', 1))
    worker = start_celery_worker(config, broker_url, f"cjt-{secrets.token_hex(3)}")
    try:
        worker.wait_for(" ready.")
        _call_task(config, broker_url, name)
        deadline = time.monotonic() + 120
        while not started.exists():
            assert time.monotonic() < deadline, worker.output
            time.sleep(0.1)
        job_pid = int(started.read_text())
        worker.process.kill()
        worker.wait()
        # The job dies with the worker that supervised it (parent-death signal) ...
        deadline = time.monotonic() + 30
        while os.path.exists(f"/proc/{job_pid}") and "Z" not in open(f"/proc/{job_pid}/stat").read().split(")")[1][:3]:
            assert time.monotonic() < deadline, "the job outlived its supervisor"
            time.sleep(0.1)
        # ... and the run is closed by the next process that looks: here a reaper, as `crontab work` runs one.
        from tests.cronjobs.conftest import manage

        deadline = time.monotonic() + 60
        while shared_db.runs(name)[0]["status"] == "running":
            assert time.monotonic() < deadline, shared_db.runs(name)
            manage("shell", "-c", "from cronjobs import reaper; reaper.reap()", config=config)
            time.sleep(0.5)
    finally:
        release.touch()
        worker.stop()
    (run,) = shared_db.runs(name)
    assert run["status"] == "interrupted" and "its supervising process" in run["result"], run
