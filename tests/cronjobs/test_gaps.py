"""No silent gaps: a run of minutes nothing fired becomes one `missed` row (first, last, count), once,
whoever sweeps; it grows instead of repeating; what a restarted `crontab work` does equals `crontab plan
--outage`. Real processes in the slow tier."""

import time
from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail

from cronjobs import gaps, plan, runner
from cronjobs.models import JobPause, JobRun
from cronjobs.registry import get_registry
from tests.clock import travel
from tests.cronjobs.conftest import write_config
from tests.cronjobs.procs import start_work
from tests.factories import JobRunFactory

pytestmark = pytest.mark.django_db
JOBS = "tests.cronjobs.jobs"
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # the last minute that ran before every scheduler stopped


@pytest.fixture(autouse=True)
def jobs(settings):
    settings.TIME_ZONE = "UTC"
    settings.CRONJOBS_NOTIFY_EMAILS = ["ops@example.com"]
    settings.CRONJOBS = [
        ("* * * * *", f"{JOBS}.succeed", {"name": "every"}),
        ("* * * * *", f"{JOBS}.succeed", {"name": "fresh"}),  # never ran: no gap is counted for it
    ]
    mail.outbox.clear()


def ran(name: str, minute: datetime) -> JobRun:
    return JobRunFactory(job_name=name, scheduled_for=minute, started_at=minute + timedelta(seconds=1))


def sweep_at(moment: datetime) -> list[JobRun]:
    with travel(moment):
        return gaps.sweep(get_registry().jobs)


def missed_rows():
    return list(JobRun.objects.filter(status="missed").order_by("scheduled_for"))


def test_minutes_nothing_fired_are_one_missed_row_with_first_last_and_count():
    ran("every", T0)
    [row] = sweep_at(T0 + timedelta(minutes=6, seconds=30))
    # 10:01 .. 10:05 are older than the start limit (60 s) plus the margin (10 s); 10:06 is not yet.
    assert (row.scheduled_for, row.gap_last, row.gap_count) == (T0 + timedelta(minutes=1), T0 + timedelta(minutes=5), 5)
    assert row.status == "missed" and row.attempt == 1 and row.trigger == "work"
    assert row.result.startswith("missed 5 scheduled minute(s), 2026-03-02 10:01 to 2026-03-02 10:05 (UTC)")
    assert "nothing fired them" in row.result and "no crontab work or Celery beat had ticked" in row.result
    assert missed_rows() == [row] and not JobRun.objects.filter(job_name="fresh").exists()
    # Announced like a failure: the log record and the mail of a first failure.
    [message] = mail.outbox
    assert message.subject == "[cronjobs] every failed 1 time(s) in a row" and "missed 5" in message.body


def test_a_gap_that_goes_on_grows_instead_of_repeating_and_is_announced_once():
    ran("every", T0)
    sweep_at(T0 + timedelta(minutes=6, seconds=30))
    [grown] = sweep_at(T0 + timedelta(minutes=9, seconds=30))
    assert (grown.gap_last, grown.gap_count) == (T0 + timedelta(minutes=8), 8)
    assert len(missed_rows()) == 1 and len(mail.outbox) == 1


def test_two_sweepers_at_once_write_one_row():
    ran("every", T0)
    moment = T0 + timedelta(minutes=6, seconds=30)
    first, second = sweep_at(moment), sweep_at(moment)
    assert len(first) == 1 and second == [] and len(missed_rows()) == 1


def test_paused_and_disabled_jobs_and_jobs_that_never_ran_have_no_gaps(settings):
    ran("every", T0)
    JobPause.objects.create(job_name="every", paused_at=T0, paused_by="ada")
    assert sweep_at(T0 + timedelta(minutes=10)) == []
    JobPause.objects.all().delete()
    settings.CRONJOBS = [("* * * * *", f"{JOBS}.succeed", {"name": "every", "enabled": False})]
    assert sweep_at(T0 + timedelta(minutes=10)) == []


def test_a_late_claim_of_a_minute_already_recorded_in_a_gap_records_nothing():
    ran("every", T0)
    [gap] = sweep_at(T0 + timedelta(minutes=6, seconds=30))
    with travel(T0 + timedelta(minutes=6, seconds=40)):
        again = runner.run("every", scheduled_for=T0 + timedelta(minutes=3), trigger="celery")
    assert again.duplicate and again.pk == gap.pk and len(missed_rows()) == 1


def test_a_restarted_crontab_work_and_the_sweeper_do_what_plan_outage_says():
    """The scheduler is down from 10:01 to 10:06:30 and starts: it fires 10:06 (catch-up), and the gap
    10:01-10:05 is one row of 5: the same as `crontab plan --outage` computes (cronjobs.plan.outage)."""
    from tests.cronjobs.test_scheduler import scheduler

    ran("every", T0)
    start = T0 + timedelta(minutes=6, seconds=30)
    with travel(start):
        sched, _clock, runners = scheduler([("* * * * *", f"{JOBS}.succeed", {"name": "every"})], start)
        sched.tick()  # what `crontab work` does on starting: fire the latest minute, sweep the gaps
    assert runners.names == [("every", "10:06")]
    [row] = missed_rows()
    [effect] = plan.outage([get_registry().get("every")], T0 + timedelta(minutes=1), start, timedelta(seconds=300))
    assert effect.fired == T0 + timedelta(minutes=6) and not effect.late_missed
    assert (row.scheduled_for, row.gap_last, row.gap_count) == (effect.gap.first, effect.gap.last, effect.gap.count)


def test_health_records_the_gap_of_a_late_job_it_notices(details_client, settings):
    settings.CRONJOBS = [("0 * * * *", f"{JOBS}.succeed", {"name": "hourly"})]
    ran("hourly", T0)
    with travel(T0 + timedelta(hours=3, minutes=45)):
        body = details_client.get("/health/cron/").json()
    [row] = missed_rows()
    assert (row.gap_count, row.gap_last) == (3, T0 + timedelta(hours=3))
    assert body["failing"] == ["hourly"] and body["late"] == []  # a recorded gap is a failure now


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_stop_every_scheduler_for_five_minutes_then_start_two_crontab_work_one_row_for_the_gap(shared_db, world_dir):
    """Acceptance: an every-minute job's history says it last ran 6 minutes ago (every scheduler was
    down since); two `crontab work` start at once: exactly one missed row, count 5."""
    import sqlite3

    now = datetime.now(UTC)
    last = now.replace(second=0, microsecond=0) - timedelta(minutes=6)
    if now.second > 45:  # keep the whole test inside one minute, so the count is exactly 5
        time.sleep(61 - now.second)
        now = datetime.now(UTC)
        last = now.replace(second=0, microsecond=0) - timedelta(minutes=6)
    started = (last + timedelta(seconds=1)).strftime("%Y-%m-%d %H:%M:%S.%f")
    seed = (last.strftime("%Y-%m-%d %H:%M:%S.%f"), started, started)
    sql = (
        "INSERT INTO cronjobs_jobrun (job_name, scheduled_for, trigger, status, exclusive, host, pid, started_at, "
        "finished_at, result, traceback, attempt, output, late_status, late_result) "
        "VALUES ('every', ?, 'work', 'succeeded', false, 'old', 1, ?, ?, '', '', 1, '', '', '')"
    )
    if shared_db.sqlite_path:
        with sqlite3.connect(shared_db.sqlite_path) as db:
            db.execute(sql, seed)
    else:
        JobRunFactory(job_name="every", scheduled_for=last, started_at=last + timedelta(seconds=1), trigger="work")
    config = write_config(world_dir, shared_db, CRONJOBS=[["* * * * *", f"{JOBS}.succeed", {"name": "every"}]])
    works = [start_work(config, name=f"crontab work {i}") for i in (1, 2)]
    try:
        for work in works:
            work.wait_for("fire every [")
        # The last minute of the gap is judged once its start limit and margin have passed (70 s after
        # it): a sweep before that writes the row with four minutes and a later one extends it.
        deadline = time.monotonic() + 90
        while not [r for r in shared_db.runs("every") if "missed 5 scheduled minute(s)" in r["result"]]:
            assert time.monotonic() < deadline, (shared_db.runs("every"), [w.output for w in works])
            time.sleep(0.2)
        time.sleep(1)  # the other scheduler's sweep, had it written a second row
    finally:
        for work in works:
            work.stop()
    rows = [r for r in shared_db.runs("every") if r["status"] == "missed"]
    assert len(rows) == 1, rows
    assert "missed 5 scheduled minute(s)" in rows[0]["result"], rows[0]
