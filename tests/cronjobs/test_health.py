"""/health/ and /health/cron/: each state, the 503, and a query count independent of the job count."""

import logging
from datetime import UTC, datetime, timedelta

import pytest
from django.db import DatabaseError
from django.test import Client
from django.test.utils import CaptureQueriesContext

from tests.clock import travel
from tests.factories import JobRunFactory

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 3, 2, 12, 48, 30, tzinfo=UTC)  # a Monday


@pytest.fixture(autouse=True)
def frozen():
    with travel(NOW, tick=False):
        yield


@pytest.fixture
def client(details_client):
    """These tests read each job's details: the metrics token's (an anonymous body: tests/security/test_access.py)."""
    return details_client


@pytest.fixture
def jobs(settings):
    settings.TIME_ZONE = "UTC"
    settings.CRONJOBS = [
        ("*/5 * * * *", "tests.cronjobs.health_jobs.noop", {"name": "fresh"}),
        ("0 * * * *", "tests.cronjobs.health_jobs.noop", {"name": "hourly_late"}),
        ("0 * * * *", "tests.cronjobs.health_jobs.noop", {"name": "hourly_failing"}),
        ("0 * * * *", "tests.cronjobs.health_jobs.noop", {"name": "switched_off", "enabled": False}),
        ("0 3 * * *", "tests.cronjobs.health_jobs.noop", {"name": "never_ran"}),
    ]


def states(body):
    return {job["name"]: job["state"] for job in body["jobs"]}


def test_health_ok(client):
    response = client.get("/health/")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_health_503_when_the_database_fails(client, monkeypatch):
    from django.db.backends.utils import CursorWrapper

    def broken(self, sql, params=None):
        raise DatabaseError("connection refused")

    monkeypatch.setattr(CursorWrapper, "execute", broken)
    response = client.get("/health/")
    assert response.status_code == 503
    assert response.json() == {"status": "error", "database": "unavailable"}


def test_all_fresh_is_200(client, jobs, settings):
    settings.CRONJOBS = settings.CRONJOBS[:1]
    JobRunFactory(job_name="fresh", started_at=NOW - timedelta(minutes=2))
    response = client.get("/health/cron/?jobs=all")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and states(body) == {"fresh": "ok"}
    [job] = body["jobs"]
    assert job["next_run"] == "2026-03-02T12:50:00+00:00" and job["last_run"]["status"] == "succeeded"


def test_each_state_and_503(client, jobs):
    JobRunFactory(job_name="fresh", started_at=NOW - timedelta(minutes=7, seconds=20))  # the 12:40 slot
    JobRunFactory(
        job_name="fresh", status="skipped", started_at=NOW - timedelta(minutes=2)
    )  # skips don't count as runs
    JobRunFactory(
        job_name="hourly_late", started_at=NOW - timedelta(hours=1, minutes=7)
    )  # 11:41; 12:00 + 30 min grace missed
    JobRunFactory(job_name="hourly_failing", started_at=NOW - timedelta(hours=1))
    JobRunFactory(job_name="hourly_failing", status="failed", started_at=NOW - timedelta(minutes=7))
    JobRunFactory(job_name="switched_off", status="failed", started_at=NOW - timedelta(days=3))

    response = client.get("/health/cron/?jobs=all")
    assert response.status_code == 503
    body = response.json()
    assert states(body) == {
        "fresh": "late",  # 12:45 slot missed, past its 2.5 minute grace
        "hourly_late": "late",
        "hourly_failing": "failing",
        "switched_off": "disabled",
        "never_ran": "new",
    }
    assert body["late"] == ["fresh", "hourly_late"] and body["failing"] == ["hourly_failing"]
    problems = {job["name"]: job["problem"] for job in body["jobs"]}
    assert problems["hourly_failing"].startswith("failing: last run #") and "boom" in problems["hourly_failing"]


def test_an_unhealthy_answer_is_not_logged_as_a_server_error_at_each_poll(client, jobs, caplog):
    JobRunFactory(job_name="hourly_failing", status="failed", started_at=NOW - timedelta(minutes=7))
    with caplog.at_level(logging.INFO, logger="django.request"):
        assert client.get("/health/cron/").status_code == 503
    # Before: "ERROR django.request Service Unavailable: /health/cron/" at every poll of a monitor.
    assert [r.getMessage() for r in caplog.records if r.name == "django.request"] == []


def test_within_grace_is_not_late(client, jobs, settings):
    job = ("0 * * * *", "tests.cronjobs.health_jobs.noop", {"name": "hourly", "grace": 3600})
    settings.CRONJOBS = [job]
    JobRunFactory(job_name="hourly", started_at=NOW - timedelta(hours=1, minutes=7))  # 12:00 missed, 48 min < 60 grace
    assert client.get("/health/cron/?jobs=all").status_code == 200
    settings.CRONJOBS = [(*job[:2], {"name": "hourly", "grace": 1800})]
    assert client.get("/health/cron/?jobs=all").status_code == 503


@pytest.mark.parametrize(("finished_ago", "state"), [(timedelta(seconds=85), "ok"), (timedelta(minutes=2), "late")])
def test_an_every_minute_job_is_late_once_the_minute_before_this_one_passed_without_a_success(
    client, settings, finished_ago, state
):
    # At 12:48:30 the 12:48 minute is within its 1-minute limit, but 12:47's has passed: a success since
    # 12:47:00 is on time, an older one is late. (Before: only the latest minute was compared, which an
    # every-minute job is always within, so one whose scheduler had died read "ok" forever.)
    settings.CRONJOBS = [("* * * * *", "tests.cronjobs.health_jobs.noop", {"name": "minutely"})]
    JobRunFactory(job_name="minutely", started_at=NOW - finished_ago - timedelta(seconds=2))
    body = client.get("/health/cron/?jobs=all").json()
    assert states(body) == {"minutely": state}
    if state == "late":
        [job] = body["jobs"]
        assert "due 2026-03-02T12:47:00+00:00 (+0:01:00 grace)" in job["problem"]


def test_disabled_job_ignored(client, settings):
    settings.CRONJOBS = [("* * * * *", "tests.cronjobs.health_jobs.noop", {"name": "off", "enabled": False})]
    JobRunFactory(job_name="off", status="failed", started_at=NOW - timedelta(days=1))
    response = client.get("/health/cron/?jobs=all")
    assert response.status_code == 200 and states(response.json()) == {"off": "disabled"}


def test_running_job_is_healthy(client, settings):
    settings.CRONJOBS = [("* * * * *", "tests.cronjobs.health_jobs.noop", {"name": "busy"})]
    JobRunFactory(job_name="busy", status="running", started_at=NOW - timedelta(seconds=20))
    assert states(client.get("/health/cron/?jobs=all").json()) == {"busy": "running"}


def test_query_count_independent_of_jobs_and_runs(client, settings):
    from django.db import connection

    counted = []
    for count in (5, 50):
        names = [f"job{count}_{i}" for i in range(count)]
        settings.CRONJOBS = [("*/5 * * * *", "tests.cronjobs.health_jobs.noop", {"name": name}) for name in names]
        for name in names:
            for minutes in (3, 8, 13):
                JobRunFactory(job_name=name, started_at=NOW - timedelta(minutes=minutes))
        with CaptureQueriesContext(connection) as queries:
            response = client.get("/health/cron/?jobs=all")
        assert response.status_code == 200 and len(response.json()["jobs"]) == count
        counted.append(len(queries))
    # latest runs, last rows, pauses; the schedulers alive, the hosts' clocks; the engine's clock reading
    assert counted == [6, 6], counted


def test_the_body_does_not_grow_with_healthy_jobs(client, settings, jobs):
    settings.CRONJOBS = [("*/5 * * * *", "tests.cronjobs.health_jobs.noop", {"name": f"j{i}"}) for i in range(200)]
    for i in range(200):
        JobRunFactory(job_name=f"j{i}", started_at=NOW - timedelta(minutes=2))
    body = client.get("/health/cron/").json()
    assert body["status"] == "ok" and body["jobs"] == [] and body["counts"] == {"ok": 200}
    anonymous = Client().get("/health/cron/").json()
    assert anonymous == {"status": "ok", "late": [], "failing": [], "stuck": [], "unhealthy": 0}
