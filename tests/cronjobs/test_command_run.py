"""`manage.py crontab run` in-process: exit codes, scheduled versus by-hand runs, legacy hashes; the admin."""

from datetime import UTC, datetime
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from cronjobs.models import JobRun
from cronjobs.registry import get_registry
from tests.clock import travel
from tests.factories import JobRunFactory, UserFactory

JOBS = "tests.cronjobs.jobs"
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def jobs(settings):
    settings.CRONJOBS = [
        ("* * * * *", f"{JOBS}.succeed"),
        ("0 0 1 1 *", f"{JOBS}.boom"),
        ("61 * * * *", f"{JOBS}.succeed", {"name": "broken"}),
    ]


def crontab_run(*args):
    out, err = StringIO(), StringIO()
    try:
        call_command("crontab", "run", *args, stdout=out, stderr=err)
    except CommandError as error:
        return error.returncode, out.getvalue(), err.getvalue() + str(error)
    return 0, out.getvalue(), err.getvalue()


def test_success_exits_0_as_a_manual_run_without_slot():
    code, out, _ = crontab_run("succeed")
    assert code == 0 and "succeed run #" in out and "succeeded" in out
    record = JobRun.objects.get()
    assert (record.trigger, record.scheduled_for, record.status) == ("manual", None, "succeeded")


def test_failure_exits_1_with_traceback_on_stderr():
    code, _, err = crontab_run("boom")
    assert code == 1
    assert "Traceback (most recent call last)" in err and "ValueError: boom from a test job" in err
    record = JobRun.objects.get()
    assert record.status == "failed" and "ValueError: boom from a test job" in record.traceback


def test_unknown_job_and_bad_configuration_exit_2_and_record_nothing():
    assert crontab_run("nope")[0] == 2
    code, _, err = crontab_run("broken")
    assert code == 2 and "invalid schedule" in err
    assert crontab_run()[0] == 2
    assert not JobRun.objects.exists()


def test_scheduled_runs_claim_the_latest_scheduled_minute_once():
    with travel(datetime(2027, 1, 1, 0, 0, 4, tzinfo=UTC)):  # cron started the yearly line 4 s into its minute
        assert crontab_run("boom", "--scheduled")[0] == 1
        code, out, _ = crontab_run("boom", "--scheduled")
    assert code == 0 and out == ""  # a duplicate of a scheduled run is silent: cron mails nothing
    record = JobRun.objects.get()
    assert record.trigger == "crontab" and record.scheduled_for == datetime(2027, 1, 1, tzinfo=UTC)


def test_a_scheduled_run_started_past_its_start_limit_is_recorded_missed_and_exits_0():
    with travel(datetime(2027, 1, 1, 2, 0, tzinfo=UTC)):  # two hours late for a yearly minute: limit one hour
        code, out, err = crontab_run("boom", "--scheduled")
    assert code == 0 and out == "" and "missed: starting 7200s after its minute" in err
    assert JobRun.objects.get().status == "missed"


def test_legacy_hash_runs_as_a_scheduled_run():
    job = get_registry().get("succeed")
    assert crontab_run(job.legacy_hash)[0] == 0
    assert crontab_run(job.legacy_hash)[0] == 0
    record = JobRun.objects.get()
    assert record.job_name == "succeed" and record.trigger == "crontab" and record.scheduled_for is not None


def test_scheduled_for_and_trigger_options():
    code, _, _ = crontab_run("succeed", "--scheduled-for", "2026-02-03T04:05:59+00:00", "--trigger", "work")
    record = JobRun.objects.get()
    assert code == 0 and record.trigger == "work" and record.scheduled_for.isoformat() == "2026-02-03T04:05:00+00:00"
    assert crontab_run("succeed", "--scheduled-for", "yesterday")[0] == 2


def test_recorded_skip_exits_0():
    JobRunFactory(
        status="running", trigger="work", host="elsewhere", pid=1, started_at=datetime(2099, 1, 1, tzinfo=UTC)
    )
    code, out, _ = crontab_run("succeed")
    assert code == 0 and "skipped: still running" in out


def test_add_and_remove_take_no_job_argument():
    with pytest.raises(CommandError) as error:
        call_command("crontab", "add", "succeed")
    assert error.value.returncode == 2


def test_admin_lists_runs_read_only_with_filters(client):
    crontab_run("succeed")
    crontab_run("boom")
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    url = reverse("admin:cronjobs_jobrun_changelist")
    page = client.get(url)
    assert page.status_code == 200
    body = page.content.decode()
    assert "succeed" in body and "boom" in body and "job_name" in body and "status__exact" in body
    rows = client.get(url, {"status__exact": "failed"}).context["cl"].result_list
    assert [r.job_name for r in rows] == ["boom"]
    rows = client.get(url, {"job_name": "succeed"}).context["cl"].result_list
    assert [r.job_name for r in rows] == ["succeed"]
    record = JobRun.objects.first()
    assert client.get(reverse("admin:cronjobs_jobrun_add")).status_code == 403
    detail = client.get(reverse("admin:cronjobs_jobrun_change", args=[record.pk]))
    assert detail.status_code == 200 and 'type="submit"' not in detail.content.decode().split('id="jobrun_form"')[-1]
    assert client.post(reverse("admin:cronjobs_jobrun_delete", args=[record.pk])).status_code == 403
