"""Per-job time zones (issue 16): the option, and a fake clock across both DST changes of 2026 in two zones,
for the system crontab, `crontab work` and Celery beat alike.

The rule (cronie's, and croniter's for the skipped day): a time inside the spring-forward gap runs once at
the first minute after it (02:30 runs at 03:00); a wall time repeated when the clocks go back runs once, at
its first occurrence, for a job with a fixed minute and hour.
"""

import io
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from celery.beat import ScheduleEntry
from croniter import croniter
from django.core.management import call_command

from alx_backend_graphql_crm.celery import app
from cronjobs.beat import CronJobScheduler, celery_schedule, scheduled_minute
from cronjobs.models import JobRun
from cronjobs.registry import get_job, get_registry, parse_cronjobs
from cronjobs.system_crontab import cron_schedule, get_config, render_line
from tests.clock import travel
from tests.cronjobs.test_scheduler import scheduler

JOBS = "tests.cronjobs.jobs"
BERLIN, NEW_YORK = ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York")
ENTRIES = [
    ("30 2 * * *", f"{JOBS}.succeed", {"name": "berlin_0230", "timezone": "Europe/Berlin"}),
    ("30 2 * * *", f"{JOBS}.succeed", {"name": "new_york_0230", "timezone": "America/New_York"}),
    # New York repeats 01:00-02:00 (not 02:xx) when its clocks go back
    ("30 1 * * *", f"{JOBS}.succeed", {"name": "new_york_0130", "timezone": "America/New_York"}),
]


def local(zone, *parts):
    return datetime(*parts, tzinfo=zone)


# (job, local day) -> the one minute it runs that day, as an aware instant (offset shows which 02:30)
CASES = {
    # spring forward: 02:00-03:00 does not exist; 02:30 runs at 03:00 (+02:00 / -04:00)
    ("berlin_0230", (2026, 3, 29)): "2026-03-29T03:00:00+02:00",
    ("new_york_0230", (2026, 3, 8)): "2026-03-08T03:00:00-04:00",
    ("new_york_0130", (2026, 3, 8)): "2026-03-08T01:30:00-05:00",
    # fall back: the repeated wall time runs once, at its first occurrence (still summer time)
    ("berlin_0230", (2026, 10, 25)): "2026-10-25T02:30:00+02:00",
    ("new_york_0130", (2026, 11, 1)): "2026-11-01T01:30:00-04:00",
    ("new_york_0230", (2026, 11, 1)): "2026-11-01T02:30:00-05:00",
}


@pytest.fixture(autouse=True)
def zoned_jobs(settings):
    settings.TIME_ZONE = "UTC"  # the project's zone, which is the system cron's
    settings.CRONJOBS = ENTRIES


def window(name, day):
    """The job's local night from 00:30 to 04:00 (both changes happen inside it), as UTC minutes."""
    zone = get_job(name).zone
    start = local(zone, *day, 0, 30).astimezone(UTC)
    return [start + timedelta(minutes=i) for i in range(210)]


def fires_by_crontab(name, day):
    """Cron (in UTC) starts the installed line at each matching minute; each start is `crontab run --scheduled`."""
    schedule = render_line(get_job(name), get_config()).split(" crontab run")[0].split(" cd ")[0]
    assert schedule == cron_schedule(get_job(name), 2026)
    for minute in window(name, day):
        if croniter.match(schedule, minute):
            with travel(minute + timedelta(seconds=2), tick=False):
                call_command("crontab", "run", name, "--scheduled", stdout=io.StringIO())
    return [run.scheduled_for for run in JobRun.objects.filter(job_name=name)]


def fires_by_work(name, day):
    minutes = window(name, day)
    # max_concurrent=0: the minutes are queued, none claimed (what they would run is the runner's business).
    sched, clock, _ = scheduler([entry for entry in ENTRIES if entry[2]["name"] == name], minutes[0], max_concurrent=0)
    sched.tick()
    slots = []
    for _ in minutes:
        clock.advance(minutes=1)
        slots.extend(slot for _job, slot in sched.tick())
    return slots


def fires_by_beat(name, day):
    """Beat's loop on a fake clock: ask the entry, fire if due (the message carries the minute it stamps),
    sleep as long as it says (at most beat's 300 s max interval)."""
    minutes = window(name, day)
    now = [minutes[0]]
    schedule = celery_schedule(get_job(name))
    schedule.nowfun = lambda: now[0]
    entry = ScheduleEntry(name=f"cronjob:{name}", schedule=schedule, last_run_at=now[0], app=app)
    beat = object.__new__(CronJobScheduler)  # is_due needs no scheduler state
    stamps = []
    while now[0] < minutes[-1]:
        state = beat.is_due(entry)
        if state.is_due:
            stamps.append(datetime.fromisoformat(scheduled_minute(name, now[0])))
            assert now[0] - stamps[-1] < timedelta(minutes=1), f"beat fired at {now[0]} for {stamps[-1]}: late"
            entry.last_run_at = now[0]
            state = beat.is_due(entry)
        now[0] += timedelta(seconds=min(max(state.next, 0.5), 300))
    return stamps


ROUTES = {"crontab": fires_by_crontab, "work": fires_by_work, "beat": fires_by_beat}


@pytest.mark.django_db
@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(("name", "day"), CASES)
def test_a_job_runs_once_on_each_dst_day_at_the_documented_minute(route, name, day):
    slots = ROUTES[route](name, day)
    expected = datetime.fromisoformat(CASES[name, day])
    assert [slot.astimezone(UTC) for slot in slots] == [expected.astimezone(UTC)], slots


def test_the_crontab_line_of_a_zoned_job_covers_every_offset_and_the_end_of_the_gap():
    # Berlin is UTC+1 / UTC+2: 02:30 is 01:30 or 00:30 UTC; its gap ends at 01:00 UTC (03:00 CEST).
    assert cron_schedule(get_job("berlin_0230"), 2026) == "0,30 0,1 * * *"
    # New York is UTC-5 / UTC-4: 02:30 is 07:30 or 06:30 UTC; its gap ends at 07:00 UTC.
    assert cron_schedule(get_job("new_york_0230"), 2026) == "0,30 6,7 * * *"


def test_a_job_in_the_projects_zone_keeps_its_own_line(settings):
    settings.CRONJOBS = [("30 2 * * 1-5", f"{JOBS}.succeed", {"timezone": "UTC"}), ("0 9 * * 1-5", f"{JOBS}.add")]
    assert [cron_schedule(job) for job in get_registry().jobs] == ["30 2 * * 1-5", "0 9 * * 1-5"]


def test_a_weekday_job_in_a_zone_without_dst_keeps_its_days(settings):
    settings.CRONJOBS = [("0 9 * * 1-5", f"{JOBS}.succeed", {"timezone": "Asia/Tokyo"})]
    assert cron_schedule(get_registry().jobs[0]) == "0 0 * * 1-5"  # 09:00 JST is 00:00 UTC, same day


@pytest.mark.django_db
@pytest.mark.parametrize("second", [2, 70])  # 70: a start that spilled into the next minute
def test_a_start_at_a_minute_not_due_in_the_jobs_zone_is_quiet_and_records_nothing(second):
    with travel(datetime(2026, 7, 1, 1, 30, tzinfo=UTC) + timedelta(seconds=second), tick=False):  # 03:30 Berlin
        out, err = io.StringIO(), io.StringIO()
        call_command("crontab", "run", "berlin_0230", "--scheduled", stdout=out, stderr=err)
    assert (out.getvalue(), err.getvalue()) == ("", "")
    assert not JobRun.objects.exists()


@pytest.mark.django_db
def test_a_start_late_at_a_minute_the_line_never_fires_claims_the_latest_due_minute():
    # A Kubernetes pod that took 150 s to start (the line fires at :00 and :30 of 00 and 01 UTC only).
    with travel(datetime(2026, 7, 1, 0, 32, 30, tzinfo=UTC), tick=False):
        call_command("crontab", "run", "berlin_0230", "--scheduled", stdout=io.StringIO(), stderr=io.StringIO())
    (run,) = JobRun.objects.all()
    assert run.scheduled_for == datetime(2026, 7, 1, 0, 30, tzinfo=UTC)  # 02:30 in Berlin


def test_the_timezone_option_is_checked():
    registry = parse_cronjobs(
        [
            ("* * * * *", f"{JOBS}.succeed", {"timezone": "Europe/Berln"}),
            ("* * * * *", f"{JOBS}.add", {"timezone": 1}),
            ("* * * * *", f"{JOBS}.boom", {"retries": 1.5, "retry_backoff": -1, "retry_on_timeout": "yes"}),
        ]
    )
    messages = [problem.msg for job in registry.jobs for problem in job.problems]
    assert all(problem.id == "cronjobs.E008" for job in registry.jobs for problem in job.problems)
    assert "CRONJOBS[0]: option 'timezone': unknown time zone 'Europe/Berln'" in messages
    assert "CRONJOBS[1]: option 'timezone': must be an IANA time zone name, got 1" in messages
    assert any("'retries': must be a whole number" in m for m in messages)
    assert any("'retry_backoff': must be a number of seconds from 0" in m for m in messages)
    assert any("'retry_on_timeout': must be True or False" in m for m in messages)


@pytest.mark.django_db
def test_show_health_graphql_and_admin_show_the_zone(details_client, client, settings, empty_crontab):
    from tests.crm.gql_helpers import ok, user_with

    settings.CRONJOBS = [("0 9 * * *", f"{JOBS}.succeed", {"name": "tokyo", "timezone": "Asia/Tokyo"})]
    with travel(datetime(2026, 7, 1, 12, 0, tzinfo=UTC), tick=False):
        out = io.StringIO()
        call_command("crontab", "show", stdout=out)
        assert "time zone: Asia/Tokyo" in out.getvalue() and "next run:  2026-07-02 09:00 JST" in out.getvalue()
        job = details_client.get("/health/cron/?jobs=all").json()["jobs"][0]
        assert (job["timezone"], job["next_run"]) == ("Asia/Tokyo", "2026-07-02T09:00:00+09:00")
        user = user_with("cronjobs.view_jobrun")
        user.is_staff = True
        user.save()
        client.force_login(user)
        assert ok(client, "{ cronJobs { timezone nextRun } }")["cronJobs"] == [
            {"timezone": "Asia/Tokyo", "nextRun": "2026-07-02T09:00:00+09:00"}
        ]
        assert "(Asia/Tokyo)" in client.get("/admin/cronjobs/scheduledjob/").content.decode()
