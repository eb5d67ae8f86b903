"""The `jitter` option: a fixed start offset into the minute, on every route; the claimed slot stays the minute.

`crontab work`'s queue is tested in test_scheduler.py (test_jitter_starts_a_job_at_its_fixed_second...);
real processes in the slow tier below."""

import io
from datetime import UTC, datetime, timedelta

import pytest
from celery.beat import ScheduleEntry
from django.core.management import call_command

from alx_backend_graphql_crm.celery import app
from cronjobs.beat import CronJobScheduler
from cronjobs.models import JobRun
from cronjobs.registry import get_job
from tests.clock import travel
from tests.crm.gql_helpers import ok
from tests.cronjobs.conftest import write_config
from tests.cronjobs.procs import start_work

pytestmark = pytest.mark.django_db
JOBS = "tests.cronjobs.jobs"
MINUTE = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def spread(settings, empty_crontab):
    settings.TIME_ZONE = "UTC"
    settings.CRONJOBS = [("* * * * *", f"{JOBS}.succeed", {"name": "spread", "jitter": 30})]


def offset() -> int:
    value = get_job("spread").start_offset
    assert 0 < value <= 30  # "spread" hashes to a second within its jitter, not 0 (else pick another name)
    return value


def test_the_cron_route_waits_for_the_offset_then_claims_the_minute(monkeypatch):
    waits = []
    monkeypatch.setattr("cronjobs.management.commands.crontab.time", type("T", (), {"sleep": waits.append}))
    with travel(MINUTE + timedelta(seconds=1)):  # cron started the line one second into the minute
        call_command("crontab", "run", "spread", "--scheduled", stdout=io.StringIO())
    assert waits == [offset() - 1]
    assert JobRun.objects.get().scheduled_for == MINUTE


def test_beat_sends_the_task_its_offset_into_the_minute(monkeypatch, tmp_path):
    sent = []
    monkeypatch.setattr(
        "celery.app.task.Task.apply_async", lambda self, args, kwargs, **options: sent.append((kwargs, options))
    )
    scheduler = CronJobScheduler(app=app, schedule_filename=str(tmp_path / "beat"), lazy=True)
    entry = ScheduleEntry(name="cronjob:spread", task="cronjobs.run_cronjob", args=("spread",), app=app, schedule=60)
    with travel(MINUTE + timedelta(seconds=2)):
        scheduler.apply_async(entry, advance=False)
    [(kwargs, options)] = sent
    assert kwargs == {"scheduled_for_iso": MINUTE.isoformat()}
    assert options["countdown"] == pytest.approx(offset() - 2, abs=0.01)


def test_show_health_graphql_and_the_admin_give_the_exact_second(details_client, admin_client):
    with travel(MINUTE + timedelta(seconds=40)):
        out = io.StringIO()
        call_command("crontab", "show", stdout=out)
        start = MINUTE + timedelta(minutes=1, seconds=offset())
        assert f"next run:  {start:%Y-%m-%d %H:%M:%S} UTC (jitter: {offset()} s into its minute)" in out.getvalue()
        [job] = details_client.get("/health/cron/?jobs=all").json()["jobs"]
        assert job["next_run"] == start.isoformat()
        data = ok(admin_client, "{ cronJobs { name nextRun startOffset } }")
        assert data["cronJobs"] == [{"name": "spread", "nextRun": start.isoformat(), "startOffset": offset()}]
        page = admin_client.get("/admin/cronjobs/scheduledjob/").content.decode()
        assert f"{start:%Y-%m-%d %H:%M}:{offset():02d}" in page


@pytest.mark.slow
def test_crontab_work_starts_a_jitter_30_job_at_its_offset(shared_db, world_dir):
    import time

    from cronjobs.registry import parse_cronjobs

    cronjobs = [["* * * * *", f"{JOBS}.succeed", {"name": "spread", "jitter": 30}]]
    expected = parse_cronjobs(cronjobs).jobs[0].start_offset
    work = start_work(write_config(world_dir, shared_db, CRONJOBS=cronjobs, TIME_ZONE="UTC"))
    try:
        # The first fire is the minute it started in (a start catches up), whenever it started; the
        # second is the next minute's, at its offset.
        deadline = time.monotonic() + 150
        while len(fires := [line for line in work.lines if "fire spread [" in line]) < 2:
            assert time.monotonic() < deadline and work.process.poll() is None, work.output
            time.sleep(0.2)
    finally:
        work.stop()
    fired_at = datetime.strptime(fires[1][:19], "%Y-%m-%d %H:%M:%S")
    assert abs(fired_at.second - expected) <= 2, (fires, expected)
