"""POST /cron/fire/<name> (issue 28): external schedulers fire a job's current minute over HTTP.

The endpoint claims the minute as `crontab run --scheduled` does and hands the run to a supervising process
(runner.start); here that process is recorded (tests/runs.py) unless a test asks for `real_supervisors`.
"""

import json
import os
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test import Client, RequestFactory

from crm.models import ApiToken
from cronjobs import dbclock, pausing, runner
from cronjobs.models import JobRun
from cronjobs.views import fire_view
from tests.clock import travel
from tests.conftest import database_down
from tests.crm.gql_helpers import user_with
from tests.cronjobs.conftest import SUBPROCESS_SETTINGS, write_config
from tests.runs import finish_detached

JOBS = "tests.cronjobs.jobs"
ENTRIES = [
    ("*/5 * * * *", f"{JOBS}.succeed", {"name": "heartbeat"}),
    ("* * * * *", f"{JOBS}.succeed", {"name": "every_minute", "grace": 300}),
    ("0 9 * * *", f"{JOBS}.succeed", {"name": "berlin", "timezone": "Europe/Berlin", "grace": 300}),
    ("0 9 * * *", f"{JOBS}.succeed", {"name": "strict", "grace": 60}),
    ("* * * * *", f"{JOBS}.succeed", {"name": "off", "enabled": False}),
    ("* * * * *", f"{JOBS}.does_not_exist", {"name": "broken"}),
]
MINUTE = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)  # a due minute of heartbeat (*/5)


@pytest.fixture(autouse=True)
def jobs(settings):
    settings.TIME_ZONE = "UTC"
    settings.CRONJOBS = ENTRIES


def token_of(*permissions: str, user=None) -> str:
    _, raw = ApiToken.issue(user=user or user_with(*permissions))
    return raw


@pytest.fixture
def token() -> str:
    """A token of a user who may run jobs and nothing else (docs/deploy.md's scheduler user)."""
    return token_of("cronjobs.run_job")


def fire(name: str, token: str | None = None, *, client=None, query: str = "", method: str = "post", **headers):
    if token is not None:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return getattr(client or Client(), method)(f"/cron/fire/{name}{query}", **headers)


def refusal(response, status: int, code: str) -> str:
    """The message of a JSON refusal, after checking its status, shape and code."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    [error] = json.loads(response.content)["errors"]
    assert error["extensions"]["code"] == code, error
    return error["message"]


def runs(name: str) -> list[JobRun]:
    return list(JobRun.objects.filter(job_name=name).order_by("pk"))


# --- the acceptance: one minute, one run ---------------------------------------------------------------
@pytest.mark.django_db
def test_duplicated_and_retried_posts_for_one_minute_run_the_job_once(token, detached_supervisors):
    with travel(MINUTE + timedelta(seconds=5)) as clock:
        first, second = fire("heartbeat", token), fire("heartbeat", token)
        assert first.status_code == 202, first.content
        body = first.json()
        run = body["run"]
        assert body["started"] is True and body["duplicate"] is False
        assert (run["job"], run["status"], run["trigger"]) == ("heartbeat", "running", "http")
        assert run["scheduled_for"] == MINUTE.isoformat() and run["finished_at"] is None
        assert body["message"] == f"run #{run['id']} of heartbeat started for {MINUTE.isoformat()}"
        assert "result" not in run  # the token's user may run jobs, not read their history

        assert second.status_code == 200, second.content
        assert second.json()["run"]["id"] == run["id"] and second.json()["duplicate"] is True
        assert second.json()["message"] == f"already run by run #{run['id']} (running)"

        finish_detached(detached_supervisors[0])  # what the supervising process does
        clock.shift(20)
        third = fire("heartbeat", token)  # a retry 20 s later: still the same minute
    assert third.status_code == 200 and third.json()["run"]["status"] == "succeeded"
    assert third.json()["message"] == f"already run by run #{run['id']} (succeeded)"
    [recorded] = runs("heartbeat")
    assert (recorded.pk, recorded.status, recorded.trigger) == (run["id"], "succeeded", "http")
    assert recorded.triggered_by == ApiToken.authenticate(token)
    assert [r.pk for r in detached_supervisors] == [run["id"]]  # one supervising process, started once


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_posts_for_one_minute_start_one_run(token, detached_supervisors):
    """Real concurrency: four requests at once, each in its own thread and database connection."""
    barrier, answers = threading.Barrier(4), []

    def post():
        try:
            barrier.wait(timeout=30)
            answers.append(fire("heartbeat", token))
        finally:
            connection.close()

    with travel(MINUTE + timedelta(seconds=1), tick=True):
        threads = [threading.Thread(target=post) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 202]
    [run] = runs("heartbeat")
    assert {a.json()["run"]["id"] for a in answers} == {run.pk} and len(detached_supervisors) == 1


@pytest.mark.django_db
def test_a_fire_costs_a_few_statements_whatever_cronjobs_holds(token, settings, django_assert_max_num_queries):
    """The token (read, last use), the user's permissions (2), the claim (insert in a savepoint); a duplicate
    adds the read of the holder; on PostgreSQL, one more to read the database's clock. None per job."""
    many = [("*/5 * * * *", f"{JOBS}.succeed", {"name": f"job{i}"}) for i in range(2000)]
    settings.CRONJOBS = [*many, *ENTRIES]
    with travel(MINUTE + timedelta(seconds=5)):
        with django_assert_max_num_queries(8):
            assert fire("heartbeat", token).status_code == 202
        with django_assert_max_num_queries(10):
            assert fire("heartbeat", token).status_code == 200


# --- refusals --------------------------------------------------------------------------------------------
@pytest.mark.django_db
class TestRefusals:
    def test_no_token_is_401_json(self):
        message = refusal(fire("heartbeat"), 401, "unauthenticated")
        assert message == "An API token is required: send Authorization: Bearer <token>."
        assert fire("heartbeat")["WWW-Authenticate"] == "Bearer"
        assert runs("heartbeat") == []

    def test_a_bad_or_revoked_token_is_401_json(self, token):
        assert refusal(fire("heartbeat", "not-a-token"), 401, "unauthenticated") == "Invalid or revoked API token."
        ApiToken.objects.update(revoked_at=datetime.now(UTC))
        refusal(fire("heartbeat", token), 401, "unauthenticated")
        assert runs("heartbeat") == []

    def test_an_inactive_users_token_is_401(self, token):
        """Its token no longer authenticates anyone (the API-token rule), so it is not even a 403."""
        user = ApiToken.authenticate(token)
        user.is_active = False
        user.save()
        refusal(fire("heartbeat", token), 401, "unauthenticated")

    def test_a_session_is_not_a_token(self):
        """A logged-in browser is refused, with or without its CSRF token: CSRF has nothing to forge here."""
        client = Client(enforce_csrf_checks=True)
        client.force_login(user_with("cronjobs.run_job"))
        refusal(fire("heartbeat", client=client), 401, "unauthenticated")
        assert runs("heartbeat") == []

    def test_a_token_is_not_asked_for_a_csrf_token(self, token):
        with travel(MINUTE):
            assert fire("heartbeat", token, client=Client(enforce_csrf_checks=True)).status_code == 202

    def test_the_engine_takes_only_users_its_projects_bearer_authentication_vouches_for(self):
        """The engine's side of the contract, for projects with another token layer: request.user counts only
        with request.auth_scheme == "bearer" (else it may be a session's user), and an inactive user is 403."""
        request = RequestFactory().post("/cron/fire/heartbeat", HTTP_AUTHORIZATION="Bearer whatever")
        request.user = user_with("cronjobs.run_job")
        refusal(fire_view(request, "heartbeat"), 401, "unauthenticated")
        request.auth_scheme, request.user.is_active = "bearer", False
        refusal(fire_view(request, "heartbeat"), 403, "forbidden")
        assert runs("heartbeat") == []

    def test_a_token_without_the_permission_is_403(self):
        weak = token_of("cronjobs.view_jobrun", "crm.view_customer")
        assert refusal(fire("heartbeat", weak), 403, "forbidden") == (
            "The token's user may not run jobs: it needs the permission cronjobs.run_job."
        )
        refusal(fire("no_such_job", weak), 403, "forbidden")  # job names are not revealed to it either
        assert runs("heartbeat") == []

    def test_an_unknown_job_is_404_naming_no_other_job(self, token):
        message = refusal(fire("no_such_job", token), 404, "not_found")
        assert message == "No job named 'no_such_job' in CRONJOBS."

    @pytest.mark.parametrize("method", ["get", "put", "delete", "patch", "head", "options"])
    def test_other_methods_are_405_with_allow(self, token, method):
        response = fire("heartbeat", token, method=method)
        assert response.status_code == 405 and response["Allow"] == "POST"
        if method != "head":
            assert (
                refusal(response, 405, "method_not_allowed")
                == f"{method.upper()} is not allowed: fire a job with POST."
            )
        assert runs("heartbeat") == []

    def test_a_job_that_cannot_run_is_409_and_the_detail_is_logged(self, token, caplog):
        message = refusal(fire("broken", token), 409, "cannot_run")
        assert message == "Job 'broken' cannot run as configured; `manage.py check` says why. Nothing was run."
        assert "does_not_exist" in caplog.text and "does_not_exist" not in message
        assert runs("broken") == []

    @pytest.mark.parametrize("wait", ["abc", "-1", "21", "nan", "inf", ""])
    def test_a_bad_wait_is_400_naming_it(self, token, wait):
        message = refusal(fire("heartbeat", token, query=f"?wait={wait}"), 400, "invalid")
        assert message == f"wait: must be a number of seconds from 0 to 20, got {wait!r}"
        assert runs("heartbeat") == []


# --- rate limit ------------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_a_token_past_the_rate_limit_gets_429_until_the_minute_ends(token, settings):
    settings.CRONJOBS_FIRE_RATE_LIMIT = 3
    with travel(MINUTE + timedelta(seconds=15)) as clock:
        answers = [fire("heartbeat", token).status_code for _ in range(3)]
        assert answers == [202, 200, 200]
        limited = fire("heartbeat", token)
        message = refusal(limited, 429, "rate_limited")
        assert limited["Retry-After"] == "45"
        assert message == (
            "Too many requests for heartbeat: at most 3 a minute per token (CRONJOBS_FIRE_RATE_LIMIT); "
            "nothing was run. Try again in 45 s."
        )
        assert fire("every_minute", token).status_code == 202  # counted per job
        assert fire("heartbeat", token_of("cronjobs.run_job")).status_code == 200  # and per token
        clock.shift(45)
        assert fire("heartbeat", token).status_code == 200  # a new minute, a new count
    assert len(runs("heartbeat")) == 1


# --- minutes not run ---------------------------------------------------------------------------------------
@pytest.mark.django_db
class TestMinutesNotRun:
    def test_a_paused_job_records_its_minute_skipped(self, token):
        pausing.pause_job("heartbeat", by="ops", reason="the deploy of 10:00")
        with travel(MINUTE):
            response = fire("heartbeat", token)
        assert response.status_code == 200, response.content
        body = response.json()
        assert (body["started"], body["run"]["status"]) == (False, "skipped")
        assert (
            body["message"] == f"run #{body['run']['id']} of heartbeat skipped: the job is paused; the job did not run"
        )
        assert "ops" not in response.content.decode()  # who paused it and why are for the history's readers

    def test_who_paused_it_is_for_a_token_that_may_read_the_history(self):
        pausing.pause_job("heartbeat", by="ops", reason="the deploy of 10:00")
        with travel(MINUTE):
            response = fire("heartbeat", token_of("cronjobs.run_job", "cronjobs.view_jobrun"))
        assert response.json()["run"]["result"].startswith("job is paused by ops at ")

    def test_a_disabled_job_records_its_minute_skipped(self, token):
        with travel(MINUTE):
            body = fire("off", token).json()
        assert body["run"]["status"] == "skipped" and body["message"].endswith(
            "the job is disabled; the job did not run"
        )

    def test_a_minute_too_late_to_start_is_recorded_missed(self, token):
        with travel(datetime(2026, 7, 1, 9, 2, tzinfo=UTC)):  # strict: 09:00, grace 60 s
            response = fire("strict", token)
        assert response.status_code == 200
        run = response.json()["run"]
        assert (run["status"], run["scheduled_for"]) == ("missed", "2026-07-01T09:00:00+00:00")
        why = "missed: too late to start it (past the job's grace or start limit); the job did not run"
        assert response.json()["message"].endswith(why)

    def test_a_job_still_running_records_the_next_minute_skipped(self, token):
        with travel(MINUTE):
            assert fire("every_minute", token).status_code == 202
        with travel(MINUTE + timedelta(minutes=1)):
            response = fire("every_minute", token)
        assert response.json()["run"]["status"] == "skipped"
        assert response.json()["message"].endswith("another run of the job is still running; the job did not run")


@pytest.mark.django_db
def test_a_zoned_job_claims_its_due_minute_in_its_zone_even_when_it_starts_late(token):
    """09:00 in Berlin is 07:00 UTC in summer; two minutes late is within its grace (the `--scheduled`
    run's tolerance for a zoned job's extra crontab minutes does not apply here)."""
    with travel(datetime(2026, 7, 1, 7, 2, 30, tzinfo=UTC)):
        response = fire("berlin", token)
    assert response.status_code == 202
    assert response.json()["run"]["scheduled_for"] == "2026-07-01T07:00:00+00:00"


# --- ?wait=N -------------------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_wait_returns_at_its_deadline_with_the_run_still_running(token):
    started = time.monotonic()
    with travel(MINUTE, tick=True):
        response = fire("every_minute", token, query="?wait=0.5")
    assert time.monotonic() - started >= 0.5
    assert response.status_code == 202 and response.json()["run"]["status"] == "running"


# --- X-CloudScheduler-ScheduleTime -----------------------------------------------------------------------------
@pytest.mark.django_db
class TestCloudSchedulerScheduleTime:
    def test_a_retry_claims_the_minute_of_its_first_attempt(self, token, detached_supervisors):
        header = {"HTTP_X_CLOUDSCHEDULER_SCHEDULETIME": "2026-07-01T10:00:00Z"}
        with travel(MINUTE + timedelta(seconds=2)):
            first = fire("every_minute", token, **header)
        finish_detached(detached_supervisors[0])
        with travel(MINUTE + timedelta(minutes=2, seconds=10)):  # Cloud Scheduler's retry, two minutes later
            retry = fire("every_minute", token, **header)
        assert first.status_code == 202 and first.json()["run"]["scheduled_for"] == "2026-07-01T10:00:00+00:00"
        assert retry.status_code == 200 and retry.json()["run"]["id"] == first.json()["run"]["id"]
        assert len(runs("every_minute")) == 1  # without the header the retry would have claimed 10:02

    def test_the_header_is_read_in_the_jobs_zone(self, token):
        with travel(datetime(2026, 7, 1, 7, 0, 3, tzinfo=UTC)):
            response = fire("berlin", token, HTTP_X_CLOUDSCHEDULER_SCHEDULETIME="2026-07-01T07:00:00.000Z")
        assert response.status_code == 202 and response.json()["run"]["scheduled_for"] == "2026-07-01T07:00:00+00:00"

    @pytest.mark.parametrize(
        ("value", "says"),
        [
            ("yesterday", "'yesterday' is not an RFC 3339 time with its UTC offset."),
            ("2026-07-01T10:00:00", "'2026-07-01T10:00:00' is not an RFC 3339 time with its UTC offset."),
            ("2026-07-01T10:05:00Z", "'2026-07-01T10:05:00Z' is in the future (the database's clock says "),
            ("2026-07-01T10:01:00Z", "'2026-07-01T10:01:00Z' is not a due minute of heartbeat ('*/5 * * * *' in UTC)"),
        ],
    )
    def test_a_time_that_is_not_a_past_due_minute_is_400(self, token, value, says):
        with travel(MINUTE + timedelta(minutes=1, seconds=30)):
            message = refusal(fire("heartbeat", token, HTTP_X_CLOUDSCHEDULER_SCHEDULETIME=value), 400, "invalid")
        assert message.startswith(f"X-CloudScheduler-ScheduleTime {says}"), message
        assert runs("heartbeat") == []

    def test_a_time_a_few_seconds_ahead_of_the_databases_clock_is_taken(self, token):
        with travel(MINUTE - timedelta(seconds=3)):  # the scheduler's clock a little ahead of the database's
            response = fire("heartbeat", token, HTTP_X_CLOUDSCHEDULER_SCHEDULETIME="2026-07-01T10:00:00Z")
        assert response.status_code == 202 and response.json()["run"]["scheduled_for"] == MINUTE.isoformat()


# --- the database ----------------------------------------------------------------------------------------------
@pytest.mark.django_db
class TestDatabaseUnreachable:
    def test_when_the_token_cannot_be_checked_it_is_503(self, token, unreachable_database):
        unreachable, port = unreachable_database
        with database_down(unreachable):
            response = fire("heartbeat", token)
        message = refusal(response, 503, "database_unavailable")
        assert response["Retry-After"] == "10" and str(port) not in message

    def test_when_the_minute_cannot_be_claimed_it_is_503_and_nothing_ran(
        self, token, unreachable_database, monkeypatch, detached_supervisors
    ):
        unreachable, port = unreachable_database
        monkeypatch.setattr(dbclock, "connection", unreachable)  # the database's clock is read first
        response = fire("heartbeat", token)
        message = refusal(response, 503, "database_unavailable")
        assert message == "The database is unavailable; nothing was run. Try again later."
        assert response["Retry-After"] == "10" and str(port) not in response.content.decode()
        assert detached_supervisors == []


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_server_whose_clock_is_off_claims_nothing_and_answers_503(token, settings):
    settings.CRONJOBS_CLOCK_SKEW_MAX = 60
    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=10)):  # this host's clock only
        response = fire("heartbeat", token)
    assert refusal(response, 503, "clock_skew").startswith("This server's clock is too far from the database's")
    assert runs("heartbeat") == []


# --- a real supervising process --------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.postgres
def test_the_supervising_process_the_endpoint_starts_runs_the_job(
    token, settings, shared_db, world_dir, monkeypatch, real_supervisors
):
    """The endpoint starts `manage.py crontab run every_minute --claimed-run ID`, which runs the job and
    records it while the request waits (?wait=20)."""
    entries = [("* * * * *", f"{JOBS}.succeed", {"name": "every_minute", "grace": 300})]
    settings.CRONJOBS = entries
    settings.CRONTAB_DJANGO_SETTINGS_MODULE = SUBPROCESS_SETTINGS
    monkeypatch.setenv("CRONJOBS_TEST_CONFIG", str(write_config(world_dir, shared_db, CRONJOBS=entries)))
    response = fire("every_minute", token, query="?wait=20")
    assert response.status_code == 202, response.content
    run = response.json()["run"]
    assert run["trigger"] == "http"
    if run["status"] == "running":  # a loaded machine took more than 20 s to start the process
        [recorded] = runs("every_minute")
        assert runner.wait_for(recorded, 120).status != "running"
    else:
        assert response.json()["message"].startswith(f"run #{run['id']} of every_minute succeeded in ")
    [recorded] = runs("every_minute")
    assert (recorded.pk, recorded.status, recorded.result) == (run["id"], "succeeded", "all good")
    assert recorded.pid not in (None, os.getpid())  # its own process
