"""GraphQL cronJobs / cronJobRuns / runCronJob: staff and permissions, shapes, filters, tracebacks, query counts."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from graphql_relay import from_global_id

from cronjobs import dbclock, runner
from cronjobs.models import JobRun
from tests.crm.gql_helpers import error_codes, logged_in, ok, post, staff, user_with
from tests.factories import JobRunFactory, UserFactory
from tests.runs import finish_detached

pytestmark = pytest.mark.django_db

CONTRACT_QUERY = (
    "query { cronJobs { name schedule description nextRun lastRun { status startedAt finishedAt } healthy } }"
)
SHIPPED = [
    "log_crm_heartbeat",
    "update_low_stock",
    "clean_inactive_customers",
    "send_order_reminders",
    "generate_crm_report",
    "prune_job_runs",
]


class TestCronJobs:
    def test_contract_query_as_written_over_the_shipped_jobs(self, viewer):
        JobRunFactory(job_name="log_crm_heartbeat", started_at=datetime.now(UTC) - timedelta(minutes=1))
        jobs = ok(logged_in(viewer), CONTRACT_QUERY)["cronJobs"]
        assert [job["name"] for job in jobs] == SHIPPED
        heartbeat = jobs[0]
        assert heartbeat["schedule"] == "*/5 * * * *"
        assert heartbeat["description"] == "Check the database and GraphQL; log that the CRM is alive"
        assert heartbeat["lastRun"]["status"] == "succeeded" and heartbeat["lastRun"]["finishedAt"]
        assert heartbeat["healthy"] is True and heartbeat["nextRun"]
        assert jobs[1]["lastRun"] is None and jobs[1]["healthy"] is True  # never ran: "new", not an alarm

    def test_every_field(self, viewer, scheduled_jobs, settings):
        now = datetime.now(UTC)
        run = JobRunFactory(
            job_name="fine", started_at=now - timedelta(minutes=1), trigger="admin", triggered_by=viewer
        )
        JobRunFactory(
            job_name="broken", status="failed", started_at=now - timedelta(minutes=2), traceback="Traceback ..."
        )
        data = ok(
            logged_in(viewer),
            """{ cronJobs { name schedule description humanSchedule timezone enabled nextRun
                 lastRun { id status startedAt finishedAt duration trigger result triggeredBy traceback }
                 lastSuccess healthy state problem } }""",
        )
        fine, broken, off = data["cronJobs"]
        assert fine["description"] == "Says all good" and fine["humanSchedule"] == "Every 5 minutes"
        assert fine["timezone"] == "UTC" and fine["enabled"] is True and fine["state"] == "ok"
        assert fine["lastRun"] == {
            "id": fine["lastRun"]["id"],
            "status": "succeeded",
            "startedAt": run.started_at.isoformat(),
            "finishedAt": run.finished_at.isoformat(),
            "duration": 2.0,
            "trigger": "admin",
            "result": "done",
            "triggeredBy": "viewer",
            "traceback": None,
        }
        assert from_global_id(fine["lastRun"]["id"]) == ("CronJobRun", str(run.pk))
        assert fine["lastSuccess"] == run.finished_at.isoformat() and fine["problem"] is None
        # No description in CRONJOBS: cron-descriptor's words stand in.
        assert broken["description"] == broken["humanSchedule"] == "At 06:00, only on Monday"
        assert broken["state"] == "failing" and broken["healthy"] is False and "boom" in broken["problem"]
        assert broken["lastRun"]["traceback"] is None  # staff, but not a superuser
        assert off["enabled"] is False and off["state"] == "disabled" and off["humanSchedule"] == "At 00:00"

    def test_superuser_sees_tracebacks(self, scheduled_jobs):
        JobRunFactory(
            job_name="broken", status="failed", started_at=datetime.now(UTC), traceback="Traceback: ValueError boom"
        )
        root = staff(superuser=True)
        data = ok(logged_in(root), "{ cronJobs { name lastRun { traceback } } }")
        assert data["cronJobs"][1]["lastRun"]["traceback"] == "Traceback: ValueError boom"

    @pytest.mark.parametrize(
        ("make_user", "code"),
        [
            (lambda: None, "unauthenticated"),
            (lambda: user_with("cronjobs.view_jobrun"), "forbidden"),  # permission, but not staff
            (lambda: staff(), "forbidden"),  # staff, but no permission
        ],
        ids=["anonymous", "not-staff", "no-permission"],
    )
    def test_refused_without_staff_and_permission(self, make_user, code, scheduled_jobs):
        user = make_user()
        client = logged_in(user) if user else Client()
        status, body = post(client, CONTRACT_QUERY)
        assert status == 200 and body["data"] is None and error_codes(body) == [code]
        status, body = post(client, "{ cronJobRuns { edges { node { id } } } }")
        assert body["data"]["cronJobRuns"] is None and error_codes(body) == [code]

    def test_not_staff_message_says_so(self, scheduled_jobs):
        _, body = post(logged_in(user_with("cronjobs.view_jobrun")), CONTRACT_QUERY)
        assert body["errors"][0]["message"] == "Permission denied: this is for staff users only."

    def test_same_query_count_with_5_and_50_jobs(self, viewer, settings):
        query = (
            "{ cronJobs { name schedule description humanSchedule timezone enabled nextRun lastSuccess healthy state "
            "problem lastRun { id status startedAt finishedAt duration trigger result triggeredBy traceback } } }"
        )
        now = datetime.now(UTC)
        counts = {}
        dbclock.reading()  # the database's clock is read once a minute per process (PostgreSQL), not per query
        for count in (5, 50):
            settings.CRONJOBS = [
                ("*/5 * * * *", "tests.cronjobs.jobs.succeed", {"name": f"job{i}"}) for i in range(count)
            ]
            JobRun.objects.all().delete()
            for i in range(count):
                for minutes in (1, 6, 11):
                    JobRunFactory(
                        job_name=f"job{i}", started_at=now - timedelta(minutes=minutes), triggered_by=UserFactory()
                    )
            client = logged_in(viewer)
            with CaptureQueriesContext(connection) as queries:
                data = ok(client, query)
            assert len(data["cronJobs"]) == count
            assert all(job["lastRun"]["triggeredBy"] for job in data["cronJobs"])
            counts[count] = len(queries)
        # session, user, its permissions (2), the health snapshot (3: runs, last rows, pauses), the last runs' users.
        assert counts == {5: 8, 50: 8}


class TestCronJobRuns:
    @pytest.fixture
    def runs(self, scheduled_jobs, viewer):
        base = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
        return [
            JobRunFactory(job_name="fine", started_at=base, trigger="crontab"),
            JobRunFactory(
                job_name="broken", status="failed", started_at=base + timedelta(hours=1), trigger="work", traceback="TB"
            ),
            JobRunFactory(job_name="fine", started_at=base + timedelta(hours=2), trigger="admin", triggered_by=viewer),
            JobRunFactory(job_name="fine", status="skipped", started_at=base + timedelta(hours=3), trigger="celery"),
        ]

    def ids(self, client, filter_="{}", extra=""):
        data = ok(client, f"{{ cronJobRuns(filter: {filter_}{extra}) {{ totalCount edges {{ node {{ id }} }} }} }}")
        return [int(from_global_id(edge["node"]["id"])[1]) for edge in data["cronJobRuns"]["edges"]]

    def test_newest_first_and_each_filter(self, viewer, runs):
        client = logged_in(viewer)
        pk = [run.pk for run in runs]
        assert self.ids(client) == pk[::-1]
        assert self.ids(client, '{jobName: "fine"}') == [pk[3], pk[2], pk[0]]
        assert self.ids(client, '{status: "failed"}') == [pk[1]]
        assert self.ids(client, '{trigger: "admin"}') == [pk[2]]
        assert self.ids(client, '{startedAtGte: "2026-03-01T13:00:00+00:00"}') == [pk[3], pk[2], pk[1]]
        assert self.ids(client, '{startedAtLte: "2026-03-01T13:00:00+00:00"}') == [pk[1], pk[0]]
        assert self.ids(
            client, '{jobName: "fine", startedAtGte: "2026-03-01T13:00:00+00:00", status: "succeeded"}'
        ) == [pk[2]]
        assert self.ids(client, '{jobName: "nope"}') == []

    def test_pages(self, viewer, runs):
        client = logged_in(viewer)
        query = """query($after: String) { cronJobRuns(first: 3, after: $after) {
          totalCount pageInfo { hasNextPage endCursor } edges { node { jobName status } } } }"""
        first = ok(client, query)["cronJobRuns"]
        assert first["totalCount"] == 4 and first["pageInfo"]["hasNextPage"] is True
        assert [e["node"]["status"] for e in first["edges"]] == ["skipped", "succeeded", "failed"]
        second = ok(client, query, {"after": first["pageInfo"]["endCursor"]})["cronJobRuns"]
        assert [e["node"]["status"] for e in second["edges"]] == ["succeeded"] and second["pageInfo"][
            "hasNextPage"
        ] is False

    @pytest.mark.parametrize(
        ("filter_", "message"),
        [
            (
                '{status: "done"}',
                "filter.status: 'done' is not one of: "
                "running, succeeded, failed, skipped, timed_out, interrupted, missed.",
            ),
            (
                '{trigger: "cron"}',
                "filter.trigger: 'cron' is not one of: crontab, manual, work, celery, admin, graphql, http.",
            ),
        ],
    )
    def test_bad_filter_values_are_clear_errors(self, viewer, runs, filter_, message):
        status, body = post(logged_in(viewer), f"{{ cronJobRuns(filter: {filter_}) {{ edges {{ node {{ id }} }} }} }}")
        assert status == 200 and error_codes(body) == ["bad_user_input"]
        assert body["errors"][0]["message"] == f"Invalid filter or ordering: {message}"

    def test_bad_date_is_a_clear_error(self, viewer, runs):
        status, body = post(logged_in(viewer), '{ cronJobRuns(filter: {startedAtGte: "yesterday"}) { totalCount } }')
        # A literal the DateTime scalar refuses fails validation, before anything runs: graphene-django's 400.
        assert status == 400 and body.get("data") is None
        assert body["errors"][0]["message"] == (
            "filter.startedAtGte: DateTime cannot represent value: 'yesterday'; accepted: an ISO 8601 date-time "
            "such as 2025-01-01T00:00:00Z, or a date such as 2025-01-01"
        )

    def test_date_out_of_range_is_a_clear_error(self, viewer, runs):
        # Year 1 with a positive offset cannot be converted to UTC: refused before it reaches the database.
        status, body = post(
            logged_in(viewer), '{ cronJobRuns(filter: {startedAtGte: "0001-01-01T00:00:00+05:00"}) { totalCount } }'
        )
        assert status == 200 and error_codes(body) == ["bad_user_input"]
        assert (
            body["errors"][0]["message"] == "Invalid filter or ordering: filter.startedAtGte: Date-time out of range: "
            "it must fall within years 1-9999 in UTC."
        )

    def test_tracebacks_for_superusers_only(self, viewer, runs):
        query = '{ cronJobRuns(filter: {status: "failed"}) { edges { node { result traceback } } } }'
        assert ok(logged_in(viewer), query)["cronJobRuns"]["edges"][0]["node"] == {"result": "boom", "traceback": None}
        root = logged_in(staff(superuser=True))
        assert ok(root, query)["cronJobRuns"]["edges"][0]["node"] == {"result": "boom", "traceback": "TB"}

    @pytest.mark.parametrize("count", [5, 50])
    def test_query_count_does_not_grow_with_the_page(self, viewer, scheduled_jobs, count):
        now = datetime.now(UTC)
        for i in range(count):
            JobRunFactory(job_name="fine", started_at=now - timedelta(minutes=i), triggered_by=UserFactory())
        client = logged_in(viewer)
        with CaptureQueriesContext(connection) as queries:
            data = ok(
                client, "{ cronJobRuns(first: 100) { totalCount edges { node { jobName triggeredBy duration } } } }"
            )
        assert data["cronJobRuns"]["totalCount"] == count and all(
            e["node"]["triggeredBy"] for e in data["cronJobRuns"]["edges"]
        )
        # session + user + permissions (2) + COUNT + page with its users joined
        assert len(queries) == 6, [q["sql"] for q in queries]


RUN_MUTATION = """mutation($name: String!) { runCronJob(name: $name) {
  run { id jobName status trigger result triggeredBy traceback }
  message errors fieldErrors { field message code } } }"""


class TestRunCronJob:
    def test_answers_at_once_with_the_run_running_in_a_process_of_its_own(
        self, operator, scheduled_jobs, detached_supervisors
    ):
        payload = ok(logged_in(operator), RUN_MUTATION, {"name": "fine"})["runCronJob"]
        assert payload["errors"] == [] and payload["fieldErrors"] == []
        run = payload["run"]
        assert run["jobName"] == "fine" and run["status"] == "running" and run["result"] == ""
        assert run["trigger"] == "graphql" and run["triggeredBy"] == "operator"
        assert payload["message"] == f"Run #{from_global_id(run['id'])[1]} of fine is running"
        stored = JobRun.objects.get()
        assert (stored.trigger, stored.status, stored.triggered_by, stored.pid) == (
            "graphql",
            "running",
            operator,
            None,
        )
        assert stored.scheduled_for is None  # a run by hand claims no scheduled minute
        assert detached_supervisors == [stored]  # handed to `crontab run fine --claimed-run <id>`
        finished = finish_detached(stored)
        assert (finished.status, finished.result) == ("succeeded", "all good")

    def test_wait_returns_the_outcome_when_it_comes_in_time(self, operator, scheduled_jobs, monkeypatch):
        # The supervising process is this test, finishing the run while the request waits.
        def finish_while_waiting(record, seconds, poll=0.25):
            finish_detached(record)
            return real_wait(record, seconds, poll)

        real_wait = runner.wait_for
        monkeypatch.setattr(runner, "wait_for", finish_while_waiting)
        query = RUN_MUTATION.replace("runCronJob(name: $name)", "runCronJob(name: $name, wait: 5)")
        payload = ok(logged_in(operator), query, {"name": "broken"})["runCronJob"]
        assert payload["errors"] == [] and payload["run"]["status"] == "failed"
        assert payload["run"]["result"] == "ValueError: boom from a test job"
        assert payload["run"]["traceback"] is None  # not a superuser
        assert "failed after" in payload["message"] and "boom from a test job" in payload["message"]
        assert "ValueError" in JobRun.objects.get().traceback

    def test_wait_gives_up_at_its_seconds_and_the_run_goes_on(self, operator, scheduled_jobs):
        query = RUN_MUTATION.replace("runCronJob(name: $name)", "runCronJob(name: $name, wait: 1)")
        payload = ok(logged_in(operator), query, {"name": "fine"})["runCronJob"]
        assert payload["run"]["status"] == "running" and payload["message"].endswith("is running")

    @pytest.mark.parametrize("wait", [-1, 21])
    def test_wait_outside_0_to_20_seconds_is_refused_and_nothing_runs(self, operator, scheduled_jobs, wait):
        query = RUN_MUTATION.replace("runCronJob(name: $name)", f"runCronJob(name: $name, wait: {wait})")
        payload = ok(logged_in(operator), query, {"name": "fine"})["runCronJob"]
        assert payload["run"] is None
        assert payload["errors"] == [f"wait: must be a number of seconds from 0 to 20, got {wait}"]
        assert not JobRun.objects.exists()

    def test_unknown_job_is_a_payload_error(self, operator, scheduled_jobs):
        status, body = post(logged_in(operator), RUN_MUTATION, {"name": "nope"})
        assert status == 200 and "errors" not in body
        payload = body["data"]["runCronJob"]
        message = "no job named 'nope' in CRONJOBS (known: fine, broken, off)"
        assert payload["run"] is None and payload["message"] == f"Nothing ran: name: {message}"
        assert payload["errors"] == [f"name: {message}"]
        assert payload["fieldErrors"] == [{"field": "name", "message": message, "code": "not_found"}]
        assert not JobRun.objects.exists()

    def test_broken_entry_is_a_payload_error(self, operator, settings):
        settings.CRONJOBS = [("*/5 * * * *", "tests.cronjobs.jobs.NOT_CALLABLE", {"name": "not_callable"})]
        payload = ok(logged_in(operator), RUN_MUTATION, {"name": "not_callable"})["runCronJob"]
        assert payload["run"] is None and payload["fieldErrors"][0]["code"] == "invalid_config"
        assert "not callable" in payload["errors"][0]
        assert not JobRun.objects.exists()

    @pytest.mark.parametrize(
        ("make_user", "code"),
        [
            (lambda: None, "unauthenticated"),
            (lambda: staff("cronjobs.view_jobrun"), "forbidden"),  # may look, may not run
            (lambda: user_with("cronjobs.view_jobrun", "cronjobs.run_job"), "forbidden"),  # not staff
        ],
        ids=["anonymous", "no-run_job", "not-staff"],
    )
    def test_refused_and_nothing_runs(self, make_user, code, scheduled_jobs):
        user = make_user()
        status, body = post(logged_in(user) if user else Client(), RUN_MUTATION, {"name": "fine"})
        assert status == 200 and body["data"]["runCronJob"] is None and error_codes(body) == [code]
        assert not JobRun.objects.exists()
