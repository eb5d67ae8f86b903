"""The runner in-process: outcomes recorded, slots claimed once, overlap refused, timeouts, dead runs closed."""

import os
import signal
import subprocess
import threading
from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from cronjobs import runner
from cronjobs.models import JobRun
from cronjobs.registry import JobConfigError, UnknownJob, get_job
from cronjobs.retention import prune_job_runs
from tests.cronjobs.jobs import loop_forever
from tests.factories import JobRunFactory

JOBS = "tests.cronjobs.jobs"
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def jobs(settings):
    settings.CRONJOBS = [
        ("* * * * *", f"{JOBS}.succeed"),
        ("* * * * *", f"{JOBS}.add", [2], {"b": 3}),
        ("* * * * *", f"{JOBS}.boom"),
        ("* * * * *", f"{JOBS}.exit_hard"),
        ("* * * * *", f"{JOBS}.loop_forever", {"timeout": 0.2}),
        ("* * * * *", f"{JOBS}.mutate_args", [["a"]]),
        ("* * * * *", f"{JOBS}.return_nothing", {"allow_overlap": True}),
        ("* * * * *", f"{JOBS}.succeed", {"name": "off", "enabled": False}),
        ("* * * * *", f"{JOBS}.succeed", {"name": "strict", "grace": 60}),
        ("* * * * *", f"{JOBS}.succeed", {"name": "timed", "timeout": 600}),
        ("61 * * * *", f"{JOBS}.succeed", {"name": "broken"}),
    ]


def slot(minute=0):
    return datetime(2026, 3, 1, 8, minute, tzinfo=timezone.get_fixed_timezone(0))


def test_success_records_everything():
    record = runner.run("add", trigger="manual")
    record.refresh_from_db()
    assert (record.status, record.result, record.trigger, record.scheduled_for) == ("succeeded", "5", "manual", None)
    assert record.host == runner.HOST and record.pid == os.getpid()
    assert record.finished_at >= record.started_at and record.duration == record.finished_at - record.started_at
    assert record.traceback == ""


def test_failure_records_the_traceback():
    record = runner.run(get_job("boom"))
    record.refresh_from_db()
    assert record.status == "failed"
    assert record.result == "ValueError: boom from a test job"
    assert "Traceback" in record.traceback and "raise ValueError" in record.traceback


def test_system_exit_inside_a_job_is_a_recorded_failure():
    assert runner.run("exit_hard").status == "failed"


def test_timeout_in_the_main_thread_stops_the_job():
    record = runner.run("loop_forever")
    record.refresh_from_db()
    assert record.status == "timed_out" and "timed out after 0.2s" in record.result
    assert "JobTimeout" in record.traceback


def test_timeout_outside_the_main_thread_stops_the_job():
    # The runner may be called from a worker thread (a `crontab work` pool, say), where SIGALRM is
    # unusable; the deadline then injects JobTimeout into that thread. (The database is left out:
    # the in-memory test database belongs to the test's own thread.)
    outcome = {}

    def target():
        try:
            with runner._deadline(0.2):
                loop_forever()
        except runner.JobTimeout:
            outcome["timed_out"] = True

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(60)
    assert not thread.is_alive() and outcome == {"timed_out": True}


def test_timeout_leaves_no_alarm_behind():
    record = runner.run("timed")
    assert record.status == "succeeded"
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_job_arguments_are_not_shared_between_runs():
    assert runner.run("mutate_args").result == "2"
    assert runner.run("mutate_args").result == "2"


def test_scheduled_minute_is_claimed_once():
    first = runner.run("succeed", scheduled_for=slot(0) + timedelta(seconds=42), trigger="crontab")
    second = runner.run("succeed", scheduled_for=slot(0), trigger="celery")
    assert first.scheduled_for == slot(0) and not first.duplicate
    assert second.duplicate and second.pk == first.pk
    assert JobRun.objects.filter(job_name="succeed").count() == 1
    assert runner.run("succeed", scheduled_for=slot(1), trigger="work").status == "succeeded"


def test_running_job_makes_the_next_start_a_recorded_skip():
    holder = JobRunFactory(status="running", trigger="work", host=runner.HOST, pid=os.getpid())
    manual = runner.run("succeed")
    scheduled = runner.run("succeed", scheduled_for=slot(), trigger="crontab")
    for record in (manual, scheduled):
        assert record.status == "skipped" and f"still running: run #{holder.pk}" in record.result
    # The skip claims the minute: that minute is accounted for and does not run later either.
    assert runner.run("succeed", scheduled_for=slot(), trigger="celery").duplicate


def test_allow_overlap_runs_alongside_a_running_one():
    JobRunFactory(
        job_name="return_nothing", status="running", exclusive=False, trigger="work", host=runner.HOST, pid=os.getpid()
    )
    assert runner.run("return_nothing").status == "succeeded"


def test_a_scheduled_run_costs_three_queries():
    # Claim (the database checks the slot, the overlap and a pause), outcome, and the alerts' streak read
    # (cronjobs/alerts.py); dead runs are looked for only when a claim is refused. Savepoints not counted.
    runner.run("succeed", scheduled_for=slot(0), trigger="work")  # imports, the registry, the connection
    with CaptureQueriesContext(connection) as captured:
        record = runner.run("succeed", scheduled_for=slot(1), trigger="work")
    assert record.status == "succeeded"
    statements = [query["sql"].split(None, 1)[0].upper() for query in captured.captured_queries]
    assert [word for word in statements if word not in {"SAVEPOINT", "RELEASE"}] == ["INSERT", "UPDATE", "SELECT"]


def test_a_claim_refused_by_a_run_that_ended_meanwhile_is_made_again(monkeypatch):
    # The refusing row is gone when the runner looks (it finished, or the job was resumed): claim again,
    # once, instead of recording a "still running" skip that names nobody.
    from django.db import IntegrityError

    real, refusals = runner._insert_row, []

    def refuse_once(*args, **kwargs):
        if kwargs.get("status") == "running" and not refusals:
            refusals.append(1)
            raise IntegrityError("a running row of this job was there a moment ago")
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "_insert_row", refuse_once)
    record = runner.run("succeed", scheduled_for=slot(), trigger="work")
    assert refusals == [1] and record.status == "succeeded"
    assert JobRun.objects.filter(job_name="succeed").count() == 1


def test_dead_process_on_this_host_is_closed_and_does_not_block():
    finished = subprocess.Popen(["true"])
    finished.wait()
    dead = JobRunFactory(status="running", host=runner.HOST, pid=finished.pid)
    assert runner.run("succeed").status == "succeeded"
    dead.refresh_from_db()
    assert dead.status == "failed" and "ended without recording an outcome" in dead.result


def test_reused_pid_is_not_mistaken_for_the_run():
    # Our own pid is alive, but this process started long after the recorded run did.
    dead = JobRunFactory(
        status="running", host=runner.HOST, pid=os.getpid(), started_at=timezone.now() - timedelta(days=400)
    )
    assert runner.run("succeed").status == "succeeded"
    dead.refresh_from_db()
    assert dead.status == "failed"


def test_run_on_another_host_past_its_timeout_is_closed():
    other = JobRunFactory(
        job_name="timed",
        status="running",
        trigger="celery",
        host="elsewhere",
        pid=1,
        started_at=timezone.now() - timedelta(seconds=600 + 61),
    )
    assert runner.run("timed").status == "succeeded"
    other.refresh_from_db()
    assert other.status == "timed_out"


def test_run_on_another_host_within_its_time_still_blocks():
    JobRunFactory(job_name="timed", status="running", trigger="celery", host="elsewhere", pid=1)
    assert runner.run("timed").status == "skipped"


def test_run_without_timeout_on_another_host_is_closed_after_stale_after(settings):
    settings.CRONJOBS_STALE_AFTER = 3600
    old = JobRunFactory(
        status="running", trigger="celery", host="elsewhere", pid=1, started_at=timezone.now() - timedelta(hours=2)
    )
    assert runner.run("succeed").status == "succeeded"
    old.refresh_from_db()
    assert old.status == "failed" and "CRONJOBS_STALE_AFTER" in old.result


def test_disabled_job_skips_scheduled_runs_but_runs_by_hand():
    assert runner.run("off", scheduled_for=slot(), trigger="crontab").status == "skipped"
    assert runner.run("off").status == "succeeded"


def test_grace_records_a_run_that_starts_too_late_as_missed():
    late = runner.run("strict", scheduled_for=timezone.now() - timedelta(minutes=5), trigger="work")
    assert late.status == "missed" and late.result.startswith("missed")
    assert runner.run("strict", scheduled_for=timezone.now(), trigger="work").status == "succeeded"


def test_naive_scheduled_for_is_read_in_settings_time_zone(settings):
    settings.TIME_ZONE = "Asia/Tokyo"
    record = runner.run("succeed", scheduled_for=datetime(2026, 3, 1, 17, 5, 30), trigger="work")
    assert record.scheduled_for == datetime(2026, 3, 1, 8, 5, tzinfo=timezone.get_fixed_timezone(0))


def test_config_errors_raise_and_record_nothing():
    with pytest.raises(UnknownJob):
        runner.run("nope")
    with pytest.raises(JobConfigError):
        runner.run("broken")
    with pytest.raises(ValueError, match="unknown trigger"):
        runner.run("succeed", trigger="cron")
    assert not JobRun.objects.exists()


def test_prune_deletes_only_finished_runs_older_than_retention(settings):
    settings.CRONJOBS_RUN_RETENTION_DAYS = 30
    now = timezone.now()
    old = JobRunFactory(job_name="a", started_at=now - timedelta(days=31))
    recent = JobRunFactory(job_name="a", status="failed", started_at=now - timedelta(days=29))
    stuck = JobRunFactory(job_name="b", status="running", started_at=now - timedelta(days=90))
    assert prune_job_runs() == "Deleted 1 job runs older than 30 days"
    assert set(JobRun.objects.values_list("pk", flat=True)) == {recent.pk, stuck.pk}
    assert old.pk not in set(JobRun.objects.values_list("pk", flat=True))
    assert prune_job_runs(days=1).startswith("Deleted 1 ")
    with pytest.raises(ValueError, match="whole number of days"):
        prune_job_runs(days=0)


def test_prune_is_a_valid_cronjobs_target(settings):
    settings.CRONJOBS = [("30 3 * * *", "cronjobs.retention.prune_job_runs")]
    assert runner.run("prune_job_runs").result == "Deleted 0 job runs older than 30 days"


def test_every_recorded_outcome_is_announced_once_and_duplicates_never():
    from cronjobs import signals

    seen = []

    def on_finished(sender, run, **kwargs):
        seen.append((run.job_name, run.status))

    def broken_receiver(sender, run, **kwargs):
        raise RuntimeError("a receiver's bug")

    signals.run_finished.connect(on_finished)
    signals.run_finished.connect(broken_receiver)
    try:
        assert runner.run("boom").status == "failed"
        assert runner.run("off", scheduled_for=slot(), trigger="crontab").status == "skipped"
        runner.run("succeed", scheduled_for=slot(), trigger="crontab")
        assert runner.run("succeed", scheduled_for=slot(), trigger="celery").duplicate
    finally:
        signals.run_finished.disconnect(on_finished)
        signals.run_finished.disconnect(broken_receiver)
    assert seen == [("boom", "failed"), ("off", "skipped"), ("succeed", "succeeded")]
