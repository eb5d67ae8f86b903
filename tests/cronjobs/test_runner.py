"""The runner in-process: where a job runs, outcomes recorded, slots claimed once, overlap refused,
timeouts enforced from outside, dead runs closed by their lease."""

import os
import signal
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from cronjobs import runner
from cronjobs.models import JobRun
from cronjobs.registry import JobConfigError, UnknownJob, get_job
from cronjobs.retention import prune_job_runs
from tests.factories import JobRunFactory

JOBS = "tests.cronjobs.jobs"
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def jobs(settings, tmp_path):
    settings.CRONJOBS_STOP_WAIT = 0.5
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
        ("* * * * *", f"{JOBS}.own_process"),
        ("* * * * *", f"{JOBS}.swallow_everything", [str(tmp_path / "marker")], {}, {"timeout": 0.3}),
        ("* * * * *", f"{JOBS}.catch_stop_and_succeed", {"timeout": 0.2}),
        ("* * * * *", f"{JOBS}.start_sleeper", [str(tmp_path / "sleeper.pid")], {}, {"timeout": 0.5}),
        ("* * * * *", f"{JOBS}.write_everywhere"),
        ("0 * * * *", f"{JOBS}.succeed", {"name": "hourly"}),
    ]


def slot(minutes=0):
    """The current minute (+ minutes): a scheduled minute the runner will still start."""
    return timezone.now().replace(second=0, microsecond=0) + timedelta(minutes=minutes)


def test_success_records_everything():
    record = runner.run("add", trigger="manual")
    record.refresh_from_db()
    assert (record.status, record.result, record.trigger, record.scheduled_for) == ("succeeded", "5", "manual", None)
    assert record.host == runner.HOST and record.pid == os.getpid()
    assert record.finished_at >= record.started_at and record.duration == record.finished_at - record.started_at
    assert record.traceback == ""
    assert record.lease_expires_at > record.started_at and record.clock_offset is not None


def test_the_job_runs_in_a_child_process_of_its_own_never_in_the_runner():
    pid, parent, group = runner.run("own_process").result.split()
    assert int(pid) != os.getpid() and int(parent) == os.getpid()
    assert int(group) == int(pid) != os.getpgrp()  # its own process group: a timeout stops all of it


def test_failure_records_the_traceback():
    record = runner.run(get_job("boom"))
    record.refresh_from_db()
    assert record.status == "failed"
    assert record.result == "ValueError: boom from a test job"
    assert "Traceback" in record.traceback and "raise ValueError" in record.traceback


def test_system_exit_inside_a_job_is_a_recorded_failure():
    assert runner.run("exit_hard").status == "failed"


def test_a_timeout_stops_the_job_from_outside():
    record = runner.run("loop_forever")
    record.refresh_from_db()
    assert record.status == "timed_out" and record.result.startswith("timed out after 0.2s; ")
    assert "Stopped: stopped by SIGTERM" in record.traceback


def test_a_job_that_swallows_every_exception_is_killed_at_its_timeout_plus_stop_wait(tmp_path):
    started = time.monotonic()
    record = runner.run("swallow_everything")
    took = time.monotonic() - started
    assert record.status == "timed_out"
    assert "it did not stop within 0.5s of SIGTERM and was killed (SIGKILL)" in record.result
    assert took < 0.3 + 0.5 + 2  # timeout + CRONJOBS_STOP_WAIT (+ a loaded machine's slack)
    marker = tmp_path / "marker"
    size = marker.stat().st_size
    time.sleep(0.3)
    assert marker.stat().st_size == size  # nothing of it runs afterwards


def test_a_job_that_catches_the_stop_and_returns_is_still_timed_out():
    record = runner.run("catch_stop_and_succeed")
    assert record.status == "timed_out"
    assert "the job caught the stop signal, ran on" in record.result and "then succeeded" in record.result


def test_a_timeout_ends_the_job_s_own_subprocesses_too(tmp_path):
    assert runner.run("start_sleeper").status == "timed_out"
    sleeper = int((tmp_path / "sleeper.pid").read_text())
    deadline = time.monotonic() + 5
    while Path(f"/proc/{sleeper}").exists() and _state(sleeper) != "Z" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{sleeper}").exists() or _state(sleeper) == "Z"


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def test_output_of_print_logging_and_subprocesses_is_kept():
    record = runner.run("write_everywhere")
    assert record.status == "succeeded"
    assert "printed\n" in record.output and "from a subprocess\n" in record.output
    assert "WARNING tests.cronjobs.jobs: logged" in record.output


def test_the_runner_s_own_signal_handlers_are_untouched_by_a_timeout():
    before = signal.getsignal(signal.SIGTERM)
    runner.run("loop_forever")
    assert signal.getsignal(signal.SIGTERM) is before
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_job_arguments_are_not_shared_between_runs():
    assert runner.run("mutate_args").result == "2"
    assert runner.run("mutate_args").result == "2"


def test_scheduled_minute_is_claimed_once():
    first = runner.run("succeed", scheduled_for=slot() + timedelta(seconds=42), trigger="crontab")
    second = runner.run("succeed", scheduled_for=slot(), trigger="celery")
    assert first.scheduled_for == slot() and not first.duplicate
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
    runner.run("succeed", scheduled_for=slot(0), trigger="work")  # imports, the registry, the clock reading
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


def test_a_run_whose_supervisor_is_gone_on_this_host_is_closed_at_once_and_does_not_block():
    import subprocess

    finished = subprocess.Popen(["true"])
    finished.wait()
    dead = JobRunFactory(status="running", host=runner.HOST, pid=finished.pid)
    assert runner.run("succeed").status == "succeeded"
    dead.refresh_from_db()
    assert dead.status == "interrupted"
    assert f"its supervising process {finished.pid} on {runner.HOST} ended while the job ran" in dead.result


def test_reused_pid_is_not_mistaken_for_the_run():
    # Our own pid is alive, but this process started long after the recorded run did.
    dead = JobRunFactory(
        status="running", host=runner.HOST, pid=os.getpid(), started_at=timezone.now() - timedelta(days=400)
    )
    assert runner.run("succeed").status == "succeeded"
    dead.refresh_from_db()
    assert dead.status == "interrupted"


def test_a_run_on_another_host_with_a_current_lease_blocks_whatever_its_age_or_timeout():
    JobRunFactory(
        job_name="timed", status="running", host="elsewhere", pid=1, started_at=timezone.now() - timedelta(days=3)
    )
    assert runner.run("timed").status == "skipped"


def test_a_run_whose_lease_expired_is_closed_by_any_host_naming_the_host_and_last_renewal():
    renewed = timezone.now() - timedelta(seconds=40)
    other = JobRunFactory(
        job_name="timed",
        status="running",
        host="elsewhere",
        pid=4242,
        renewed_at=renewed,
        lease_expires_at=renewed + timedelta(seconds=15),
    )
    assert runner.run("timed").status == "succeeded"
    other.refresh_from_db()
    assert other.status == "interrupted"
    assert "its lease expired at" in other.result and "no renewal from elsewhere pid 4242 since" in other.result


def test_disabled_job_skips_scheduled_runs_but_runs_by_hand():
    assert runner.run("off", scheduled_for=slot(), trigger="crontab").status == "skipped"
    assert runner.run("off").status == "succeeded"


def test_grace_records_a_run_that_starts_too_late_as_missed():
    late = runner.run("strict", scheduled_for=timezone.now() - timedelta(minutes=5), trigger="work")
    assert late.status == "missed" and late.result.startswith("missed") and "grace is 60s" in late.result
    assert runner.run("strict", scheduled_for=timezone.now(), trigger="work").status == "succeeded"


def test_without_grace_a_run_may_start_half_its_interval_late():
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    assert runner.run("hourly", scheduled_for=hour - timedelta(hours=2), trigger="work").status == "missed"
    on_time = runner.run("hourly", scheduled_for=hour + timedelta(hours=1), trigger="work")
    assert on_time.status == "succeeded"
    late = runner.run("hourly", scheduled_for=hour - timedelta(hours=1), trigger="work")
    assert late.status == "missed" and "its start limit is 1800s (no grace set)" in late.result


def test_naive_scheduled_for_is_read_in_settings_time_zone(settings):
    settings.TIME_ZONE = "Asia/Tokyo"
    tokyo = timezone.localtime(timezone.now(), timezone.get_fixed_timezone(9 * 60)).replace(tzinfo=None)
    record = runner.run("succeed", scheduled_for=tokyo, trigger="work")
    assert record.scheduled_for == slot()


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
