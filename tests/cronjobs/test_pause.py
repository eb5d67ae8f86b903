"""Pause / resume (issue 16): from the command, the admin and GraphQL; honoured by every route; shown everywhere."""

import io
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction

from cronjobs import pausing, runner
from cronjobs.beat import run_cronjob
from cronjobs.models import JobPause, JobRun
from tests.clock import travel
from tests.crm.gql_helpers import error_codes, logged_in, ok, post, staff
from tests.factories import JobRunFactory

pytestmark = pytest.mark.django_db
JOBS = "tests.cronjobs.jobs"
NOW = datetime(2026, 3, 2, 12, 0, 10, tzinfo=UTC)
PAGE = "/admin/cronjobs/scheduledjob/"


@pytest.fixture(autouse=True)
def jobs(settings):
    settings.TIME_ZONE = "UTC"
    settings.CRONJOBS = [
        ("* * * * *", f"{JOBS}.succeed"),
        ("* * * * *", f"{JOBS}.add", [1]),
    ]


@pytest.fixture
def frozen():
    with travel(NOW, tick=False):
        yield


def staff_client(*permissions, username=None):
    return logged_in(staff(*permissions, username=username))


def crontab(*args) -> str:
    out = io.StringIO()
    call_command("crontab", *args, stdout=out)
    return out.getvalue()


# --- the three routes, each firing the minute NOW is in -----------------------------------------------
def fire_crontab(name):
    crontab("run", name, "--scheduled")


def fire_work(name):
    crontab("run", name, "--scheduled-for", "2026-03-02T12:00:00+00:00", "--trigger", "work")


def fire_celery(name):
    run_cronjob.apply(args=(name, "2026-03-02T12:00:00+00:00"), throw=True).get()


ROUTES = {"crontab": fire_crontab, "work": fire_work, "celery": fire_celery}


def pause_by_command():
    crontab("pause", "succeed", "--reason", "supplier API down")
    return "(manage.py)"  # user@host (manage.py)


def pause_by_admin():
    client = staff_client("cronjobs.view_jobrun", "cronjobs.pause_job", username="ada")
    response = client.post(f"{PAGE}pause/succeed/", {"reason": "supplier API down"})
    assert response.status_code == 302
    return "ada"


def pause_by_graphql():
    client = staff_client("cronjobs.view_jobrun", "cronjobs.pause_job", username="grace")
    data = ok(
        client,
        'mutation { pauseCronJob(name: "succeed", reason: "supplier API down") '
        "{ message errors cronJob { name paused pausedBy pauseReason state } } }",
    )
    payload = data["pauseCronJob"]
    assert payload["errors"] == [] and payload["cronJob"]["paused"] and payload["cronJob"]["state"] == "paused"
    return "grace"


PAUSES = {"command": pause_by_command, "admin": pause_by_admin, "graphql": pause_by_graphql}


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("where", PAUSES)
def test_a_pause_from_anywhere_skips_the_next_scheduled_run_on_every_route_naming_who(frozen, where, route):
    who = PAUSES[where]()
    ROUTES[route]("succeed")
    run = JobRun.objects.get(job_name="succeed")
    assert run.status == "skipped" and run.trigger == route
    assert who in run.result and "supplier API down" in run.result and "paused by" in run.result
    ROUTES[route]("add")  # other jobs go on
    assert JobRun.objects.get(job_name="add").status == "succeeded"


@pytest.mark.parametrize("route", ROUTES)
def test_resuming_restores_every_route(frozen, route):
    pause_by_command()
    crontab("resume", "succeed")
    ROUTES[route]("succeed")
    assert JobRun.objects.get(job_name="succeed").status == "succeeded"


def test_the_database_refuses_to_claim_a_paused_jobs_slot_from_any_process():
    # The pause is checked by the claim itself (migration 0006's trigger), not only by our runner.
    pause_by_command()
    with pytest.raises(IntegrityError, match="paused"), transaction.atomic():
        JobRunFactory(status="running", scheduled_for=NOW.replace(second=0), host="elsewhere", pid=1)
    JobRunFactory(status="running", scheduled_for=None, host="elsewhere", pid=1)  # a run by hand: no slot
    JobRunFactory(status="skipped", scheduled_for=NOW.replace(second=0), result="job is paused")  # the skip itself
    JobRunFactory(job_name="add", status="running", scheduled_for=NOW.replace(second=0), host="elsewhere", pid=2)
    crontab("resume", "succeed")
    JobRunFactory(status="running", scheduled_for=NOW.replace(second=0, minute=1), exclusive=False, host="x", pid=3)


def test_a_late_slot_of_a_paused_job_is_a_pause_not_a_miss(settings, frozen):
    settings.CRONJOBS = [("* * * * *", f"{JOBS}.succeed", {"grace": 30})]
    pause_by_command()
    record = runner.run("succeed", scheduled_for=NOW - timedelta(minutes=5), trigger="work")
    assert record.status == "skipped" and "paused by" in record.result and "supplier API down" in record.result


def test_a_paused_slot_is_one_skip_row_claimed_once(frozen):
    pause_by_command()
    first = runner.run("succeed", scheduled_for=NOW, trigger="work")
    again = runner.run("succeed", scheduled_for=NOW, trigger="celery")
    assert first.status == "skipped" and again.duplicate and again.pk == first.pk
    assert JobRun.objects.filter(job_name="succeed").count() == 1


def test_a_run_by_hand_still_runs_a_paused_job():
    pause_by_command()
    crontab("run", "succeed")
    assert JobRun.objects.get(job_name="succeed").status == "succeeded"


def test_pause_and_resume_commands_say_what_they_did_and_are_idempotent():
    first = crontab("pause", "succeed", "--reason", "maintenance")
    assert "succeed: paused (paused by " in first and "maintenance" in first
    pause = JobPause.objects.get()
    assert "again" not in crontab("pause", "succeed", "--reason", "again")
    assert JobPause.objects.get().reason == "maintenance" and JobPause.objects.get().paused_at == pause.paused_at
    assert "resumed (was paused by" in crontab("resume", "succeed")
    assert "not paused" in crontab("resume", "succeed")
    assert not JobPause.objects.exists()


@pytest.mark.parametrize(
    "args", [("pause", "nope"), ("resume", "nope"), ("pause",), ("pause", "succeed", "--reason", "x" * 1001)]
)
def test_bad_pause_arguments_exit_2_and_change_nothing(args):
    with pytest.raises(CommandError) as refused:
        call_command("crontab", *args, stdout=io.StringIO(), stderr=io.StringIO())
    assert refused.value.returncode == 2
    assert not JobPause.objects.exists()


def test_show_health_graphql_and_admin_show_the_pause(details_client, frozen, empty_crontab):
    pause_by_admin()
    assert "PAUSED:    paused by ada at 2026-03-02T12:00:10+00:00: supplier API down" in crontab("show")
    response = details_client.get("/health/cron/")
    assert response.status_code == 200  # paused is not an alarm
    state = {job["name"]: job for job in response.json()["jobs"]}["succeed"]
    assert (state["state"], state["paused"], state["paused_by"], state["pause_reason"]) == (
        "paused",
        True,
        "ada",
        "supplier API down",
    )
    viewer = staff_client("cronjobs.view_jobrun", "cronjobs.pause_job", username="viewer")
    data = ok(viewer, "{ cronJobs { name paused pausedBy pausedAt pauseReason state } }")
    assert data["cronJobs"][0] == {
        "name": "succeed",
        "paused": True,
        "pausedBy": "ada",
        "pausedAt": "2026-03-02T12:00:10+00:00",
        "pauseReason": "supplier API down",
        "state": "paused",
    }
    assert data["cronJobs"][1]["paused"] is False and data["cronJobs"][1]["pausedBy"] is None
    page = viewer.get(PAGE).content.decode()
    assert (
        "paused by ada" in page and f'action="{PAGE}resume/succeed/"' in page and f'action="{PAGE}pause/add/"' in page
    )


def test_admin_resume_and_its_refusals():
    pause_by_command()
    viewer = staff_client("cronjobs.view_jobrun", username="viewer")
    assert viewer.post(f"{PAGE}resume/succeed/").status_code == 403
    assert viewer.post(f"{PAGE}pause/add/").status_code == 403
    assert "Pause" not in viewer.get(PAGE).content.decode().split("<tbody>")[0]  # no Pause column
    operator = staff_client("cronjobs.view_jobrun", "cronjobs.pause_job", username="operator")
    assert operator.get(f"{PAGE}resume/succeed/").status_code == 405
    assert JobPause.objects.filter(job_name="succeed").exists()
    assert operator.post(f"{PAGE}resume/succeed/").status_code == 302
    assert not JobPause.objects.exists()


def test_admin_pause_without_csrf_token_is_refused():
    client = logged_in(staff("cronjobs.view_jobrun", "cronjobs.pause_job"), enforce_csrf_checks=True)
    assert client.post(f"{PAGE}pause/succeed/").status_code == 403
    assert not JobPause.objects.exists()


def test_graphql_resume_unknown_job_and_permission():
    pausing.pause_job("succeed", by="someone")
    viewer = staff_client("cronjobs.view_jobrun", username="viewer")
    status, body = post(viewer, 'mutation { resumeCronJob(name: "succeed") { message errors } }')
    assert "PERMISSION_DENIED" in error_codes(body) or "permission" in str(body).lower()
    assert JobPause.objects.exists()
    operator = staff_client("cronjobs.view_jobrun", "cronjobs.pause_job", username="operator")
    data = ok(operator, 'mutation { resumeCronJob(name: "nope") { message errors cronJob { name } } }')
    assert data["resumeCronJob"]["errors"][0].startswith("name: no job named 'nope'")
    assert data["resumeCronJob"]["cronJob"] is None
    data = ok(operator, 'mutation { resumeCronJob(name: "succeed") { message errors cronJob { paused state } } }')
    assert data["resumeCronJob"]["cronJob"] == {"paused": False, "state": "new"}
    assert "resumed (was paused by someone" in data["resumeCronJob"]["message"]
