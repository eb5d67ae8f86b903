"""Who fires the jobs and what is wrong with the engine: scheduler heartbeats, `crontab show`'s
`fired by` lines and summary, /health/cron/'s problems (configuration, no scheduler, clock, version)."""

import io
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command

from cronjobs import liveness
from cronjobs.models import SchedulerBeat
from tests.clock import travel
from tests.factories import JobRunFactory

pytestmark = pytest.mark.django_db
JOBS = "tests.cronjobs.jobs"
NOW = datetime(2026, 3, 2, 12, 30, 20, tzinfo=UTC)


@pytest.fixture(autouse=True)
def setup(settings, empty_crontab):
    settings.TIME_ZONE = "UTC"
    settings.CRONJOBS = [
        ("*/5 * * * *", f"{JOBS}.succeed", {"name": "often"}),
        ("0 * * * *", f"{JOBS}.succeed", {"name": "hourly"}),
        ("0 * * * *", f"{JOBS}.boom", {"name": "broken_job"}),
    ]
    with travel(NOW):
        yield


def show(*args) -> str:
    out = io.StringIO()
    call_command("crontab", "show", *args, stdout=out)
    return out.getvalue()


def beat(**fields) -> SchedulerBeat:
    defaults = {
        "instance": "a" * 16,
        "route": "work",
        "host": "web1",
        "pid": 4242,
        "cronjobs_version": liveness.cronjobs_version(),
        "jobs": 3,
        "clock_offset": 0.01,
        "started_at": NOW - timedelta(hours=1),
        "last_tick": NOW - timedelta(seconds=20),
    }
    return SchedulerBeat.objects.create(**{**defaults, **fields})


def test_a_heartbeat_row_says_who_ticked_and_stopped():
    heartbeat = liveness.Heartbeat("work", jobs=3)
    heartbeat.tick()
    row = SchedulerBeat.objects.get(instance=heartbeat.instance)
    assert (row.route, row.jobs, row.config_error, row.stopped_at) == ("work", 3, "", None)
    assert row.cronjobs_version == liveness.cronjobs_version() and row.last_tick == NOW
    assert liveness.alive() == [row]
    heartbeat.tick(config_error="cronjobs.E003: CRONJOBS[0]: invalid schedule")
    assert SchedulerBeat.objects.get(instance=heartbeat.instance).config_error.startswith("cronjobs.E003")
    heartbeat.stopped()
    assert liveness.alive() == []


def test_a_scheduler_is_gone_when_it_has_not_ticked_for_150_seconds():
    beat(last_tick=NOW - timedelta(seconds=149))
    assert len(liveness.alive()) == 1
    SchedulerBeat.objects.update(last_tick=NOW - timedelta(seconds=151))
    assert liveness.alive() == []


def test_show_says_nothing_fires_the_jobs_when_no_line_is_installed_and_no_scheduler_is_alive():
    # Before: "installed: no (run `crontab add`)" for every job, and no word of what does fire them.
    text = show()
    assert "fired by:  NOTHING (WARNING): no crontab line installed, no `crontab work` or Celery beat alive" in text
    assert "WARNING: nothing fires these jobs" in text


def test_show_names_a_live_crontab_work_as_what_fires_each_job():
    beat()
    text = show()
    assert text.count("fired by:  crontab work on web1") == 3
    assert "crontab work on web1 pid 4242, last tick 2026-03-02T12:30:00+00:00" in text
    assert "nothing fires" not in text


def test_show_failing_and_job_filters_and_the_summary_line():
    beat()
    JobRunFactory(job_name="often", started_at=NOW - timedelta(minutes=1))
    JobRunFactory(job_name="hourly", started_at=NOW - timedelta(minutes=30))
    JobRunFactory(job_name="broken_job", status="failed", started_at=NOW - timedelta(minutes=30))
    everything = show()
    assert everything.rstrip().endswith("3 job(s): 1 failing, 2 ok")
    failing = show("--failing")
    assert "broken_job  [0 * * * *]" in failing and "often  [" not in failing and "hourly  [" not in failing
    assert "state:     failing: last run #" in failing
    one = show("--job", "hourly")
    assert "hourly  [0 * * * *]" in one and "often  [" not in one and one.rstrip().endswith("1 job(s): 1 ok")


def test_health_reports_a_scheduler_refusing_a_broken_cronjobs_as_a_configuration_error(details_client):
    beat(config_error="cronjobs.E003: CRONJOBS[0]: invalid schedule '61 * * * *'")
    response = details_client.get("/health/cron/")
    assert response.status_code == 503
    [problem] = response.json()["problems"]
    assert problem["kind"] == "configuration" and problem["severity"] == "error"
    assert "crontab work on web1 pid 4242" in problem["problem"] and "61 * * * *" in problem["problem"]
    assert "ERROR configuration: crontab work on web1 pid 4242" in show()


def test_health_reports_no_scheduler_when_jobs_are_late_and_nothing_is_alive(details_client):
    JobRunFactory(job_name="hourly", started_at=NOW - timedelta(hours=2))
    body = details_client.get("/health/cron/").json()
    assert body["late"] == ["hourly"]
    kinds = {problem["kind"]: problem for problem in body["problems"]}
    assert "no scheduler" in kinds and "1 job(s) are late (hourly)" in kinds["no scheduler"]["problem"]
    beat()
    assert "no scheduler" not in {p["kind"] for p in details_client.get("/health/cron/").json()["problems"]}


def test_a_skewed_host_is_a_clock_warning_from_its_heartbeat_or_its_recent_runs(details_client):
    beat(clock_offset=90.4)
    JobRunFactory(job_name="often", host="web2", clock_offset=-12.0, started_at=NOW - timedelta(minutes=3))
    JobRunFactory(job_name="often", host="web3", clock_offset=0.2, started_at=NOW - timedelta(minutes=2))
    JobRunFactory(job_name="often", host="web4", clock_offset=50.0, started_at=NOW - timedelta(hours=2))  # old
    response = details_client.get("/health/cron/")
    clocks = [p for p in response.json()["problems"] if p["kind"] == "clock"]
    assert [p["problem"] for p in clocks] == [
        "web1's clock is 90.4s ahead of the database's",
        "web2's clock is 12.0s behind the database's (its recent runs)",
    ]
    assert all(p["severity"] == "warning" for p in clocks) and response.status_code == 200
    assert "WARNING clock: web1's clock is 90.4s ahead of the database's" in show()


def test_a_scheduler_firing_another_cronjobs_is_flagged(details_client):
    beat(cronjobs_version="0123456789ab")
    [problem] = details_client.get("/health/cron/").json()["problems"]
    assert problem["kind"] == "version" and "fires another CRONJOBS than this process's" in problem["problem"]
