"""The admin's "Scheduled jobs" page: what it shows, who may see it and run jobs, CSRF, and the run it records."""

import os
import re
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.test.utils import CaptureQueriesContext

from cronjobs import dbclock, runner
from cronjobs.models import JobRun
from tests.crm.gql_helpers import logged_in, staff, user_with
from tests.factories import JobRunFactory
from tests.runs import finish_detached

pytestmark = pytest.mark.django_db

PAGE = "/admin/cronjobs/scheduledjob/"


def run_url(name):
    return f"{PAGE}run/{name}/"


def row_html(html: str, name: str) -> str:
    match = re.search(rf'<tr id="job-{name}".*?</tr>', html, re.S)
    assert match, f"no row for {name}"
    return match.group(0)


def row(html: str, name: str) -> str:
    """The text of a job's row, as a reader sees it."""
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row_html(html, name)))).strip()


def messages_of(response):
    return [(m.level_tag, m.message) for m in get_messages(response.wsgi_request)]


class TestPage:
    def test_every_job_with_schedule_next_last_history_and_run_button(self, operator, scheduled_jobs):
        started = datetime.now(UTC) - timedelta(minutes=1)
        run = JobRunFactory(job_name="fine", started_at=started, took=timedelta(seconds=1.5))
        response = logged_in(operator).get(PAGE)
        assert response.status_code == 200
        html = response.content.decode()
        assert "<title>Scheduled jobs | Django site admin</title>" in html  # the admin's own base template
        assert 'id="user-tools"' in html and "Schedules are read in <strong>UTC</strong>" in html
        fine = row(html, "fine")
        assert "fine Says all good" in fine and "*/5 * * * * Every 5 minutes" in fine
        assert "ok succeeded" in fine and "1.50 s" in fine and "system crontab" in fine and "History" in fine
        assert 'data-state="ok"' in row_html(html, "fine") and 'value="Run now"' in row_html(html, "fine")
        broken = row(html, "broken")
        assert "0 6 * * 1 At 06:00, only on Monday" in broken and "new never" in broken
        assert f'href="/admin/cronjobs/jobrun/{run.pk}/change/"' in html
        assert 'href="/admin/cronjobs/jobrun/?job_name=fine"' in html
        assert 'action="/admin/cronjobs/scheduledjob/run/broken/"' in html and "csrfmiddlewaretoken" in html

    def test_linked_from_the_admin_index_under_the_app(self, operator, scheduled_jobs):
        html = logged_in(operator).get("/admin/").content.decode()
        app = re.search(r'<div class="app-cronjobs module.*?</div>', html, re.S).group(0)
        assert f'<a href="{PAGE}">Scheduled jobs</a>' in app

    def test_history_link_lists_that_jobs_runs(self, operator, scheduled_jobs):
        now = datetime.now(UTC)
        for name in ("fine", "broken"):
            JobRunFactory(job_name=name, started_at=now)
        response = logged_in(operator).get("/admin/cronjobs/jobrun/?job_name=fine")
        assert response.status_code == 200
        assert [run.job_name for run in response.context["cl"].result_list] == ["fine"]

    def test_history_is_read_only_and_filterable(self, scheduled_jobs):
        admin_user = user_with(username="root-ish")
        admin_user.is_staff = admin_user.is_superuser = True
        admin_user.save()
        run = JobRunFactory(job_name="fine", status="failed")
        client = logged_in(admin_user)
        changelist = client.get("/admin/cronjobs/jobrun/")
        assert [spec.title for spec in changelist.context["cl"].filter_specs][:3] == ["job name", "status", "trigger"]
        assert b"/admin/cronjobs/jobrun/add/" not in changelist.content
        assert client.get("/admin/cronjobs/jobrun/add/").status_code == 403
        assert client.post(f"/admin/cronjobs/jobrun/{run.pk}/change/", {"status": "succeeded"}).status_code == 403
        assert client.post(f"/admin/cronjobs/jobrun/{run.pk}/delete/", {"post": "yes"}).status_code == 403
        run.refresh_from_db()
        assert run.status == "failed"

    def test_queries_do_not_grow_with_jobs(self, operator, settings):
        counts = {}
        dbclock.reading()  # the database's clock is read once a minute per process (PostgreSQL), not per page
        for count in (5, 50):
            settings.CRONJOBS = [
                ("*/5 * * * *", "tests.cronjobs.jobs.succeed", {"name": f"job{i}"}) for i in range(count)
            ]
            now = datetime.now(UTC)
            JobRun.objects.bulk_create(
                JobRun(
                    job_name=f"job{i}", trigger="crontab", status="succeeded", exclusive=False, host="h", started_at=now
                )
                for i in range(count)
            )
            client = logged_in(operator)
            from django.db import connection

            with CaptureQueriesContext(connection) as queries:
                assert client.get(PAGE).status_code == 200
            counts[count] = len(queries)
        assert counts[5] == counts[50], counts

    def test_every_value_a_row_shows_is_escaped(self, operator, settings):
        from cronjobs import pausing

        hostile = "<script>alert(1)</script>"
        entry = {"name": "xss", "description": hostile, "timezone": "Europe/Berlin"}
        settings.CRONJOBS = [("* * * * *", "tests.cronjobs.jobs.succeed", entry)]
        JobRunFactory(job_name="xss", status="failed", result=hostile)
        pausing.pause_job("xss", by="<b>me</b>", reason='"><img src=x onerror=alert(1)>')
        html = row_html(logged_in(operator).get(PAGE).content.decode(), "xss")
        assert "<script>" not in html and "<img" not in html and "<b>" not in html, html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&quot;&gt;&lt;img src=x" in html

    def test_viewer_without_run_job_sees_no_button(self, viewer, scheduled_jobs):
        response = logged_in(viewer).get(PAGE)
        assert response.status_code == 200 and "Run now" not in response.content.decode()

    def test_staff_without_view_permission_is_refused(self, scheduled_jobs):
        assert logged_in(staff()).get(PAGE).status_code == 403

    def test_not_staff_goes_to_the_login_page(self, scheduled_jobs):
        response = logged_in(user_with("cronjobs.view_jobrun", "cronjobs.run_job")).get(PAGE)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
        assert Client().get(PAGE)["Location"].startswith("/admin/login/")


class TestRunNow:
    def test_starts_the_run_in_a_process_of_its_own_and_shows_its_page_running(
        self, operator, scheduled_jobs, detached_supervisors
    ):
        response = logged_in(operator).post(run_url("fine"))
        run = JobRun.objects.get()
        assert response.status_code == 302 and response["Location"] == f"/admin/cronjobs/jobrun/{run.pk}/change/"
        assert (run.job_name, run.trigger, run.status, run.triggered_by) == ("fine", "admin", "running", operator)
        assert run.scheduled_for is None and run.pid is None  # the web worker claimed it; it runs elsewhere
        assert detached_supervisors == [run]  # handed to `crontab run fine --claimed-run <id>`
        assert runner.supervisor_command(run)[-3:] == ["--claimed-run", str(run.pk), "--settings=tests.settings"]
        assert messages_of(response) == [("warning", f"Run #{run.pk} of fine is running")]

    def test_the_run_s_page_reloads_while_it_runs_and_shows_the_outcome_after(
        self, operator, scheduled_jobs, detached_supervisors
    ):
        client = logged_in(operator)
        page = client.post(run_url("fine"), follow=True).content.decode()
        assert '<meta http-equiv="refresh" content="3">' in page and "This run is still running." in page
        finish_detached(detached_supervisors[0])
        run = JobRun.objects.get()
        assert (run.status, run.result, run.pid) == ("succeeded", "all good", os.getpid())
        page = client.get(f"/admin/cronjobs/jobrun/{run.pk}/change/").content.decode()
        assert "http-equiv" not in page and "still running" not in page and "all good" in page
        assert "succeeded" in row(client.get(PAGE).content.decode(), "fine")

    def test_a_failing_job_is_a_failed_run_on_its_page(self, operator, scheduled_jobs, detached_supervisors):
        logged_in(operator).post(run_url("broken"))
        run = finish_detached(detached_supervisors[0])
        assert run.status == "failed" and run.result == "ValueError: boom from a test job"

    def test_unknown_job_says_so_and_runs_nothing(self, operator, scheduled_jobs):
        response = logged_in(operator).post(run_url("nope"))
        assert response.status_code == 302 and not JobRun.objects.exists()
        assert messages_of(response) == [
            ("error", "Nothing ran: no job named 'nope' in CRONJOBS (known: fine, broken, off)")
        ]

    def test_staff_without_run_job_gets_403_and_nothing_runs(self, viewer, scheduled_jobs):
        assert logged_in(viewer).post(run_url("fine")).status_code == 403
        assert not JobRun.objects.exists()

    def test_post_without_csrf_token_is_refused(self, operator, scheduled_jobs):
        client = logged_in(operator, enforce_csrf_checks=True)
        response = client.post(run_url("fine"))
        assert response.status_code == 403 and b"CSRF" in response.content
        assert not JobRun.objects.exists()
        # With the token the page carries, the same POST goes through.
        page = client.get(PAGE).content.decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        assert client.post(run_url("fine"), {"csrfmiddlewaretoken": token}).status_code == 302
        assert JobRun.objects.get().triggered_by == operator

    def test_get_is_refused(self, operator, scheduled_jobs):
        assert logged_in(operator).get(run_url("fine")).status_code == 405
        assert not JobRun.objects.exists()
