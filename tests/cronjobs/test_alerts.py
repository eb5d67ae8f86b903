"""Failures reach people: ERROR records on `cronjobs.runs`, mail after N failures, monitor pings, on every route."""

import logging
import os
import time
from datetime import timedelta
from io import StringIO

import pytest
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from cronjobs import alerts, reaper, runner
from cronjobs.checks import check_cronjobs
from cronjobs.logformat import RunLineFormatter
from cronjobs.models import JobRun
from tests.crm.gql_helpers import logged_in, ok, staff
from tests.cronjobs.monitors import Monitor, bound_socket
from tests.factories import JobRunFactory
from tests.runs import finish_detached

JOBS = "tests.cronjobs.jobs"
pytestmark = pytest.mark.django_db


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)

    def at(self, level: int) -> list[logging.LogRecord]:
        return [r for r in self.records if r.levelno == level]


@pytest.fixture
def run_log():
    """A handler attached to the documented logger, at INFO (recoveries are INFO)."""
    log = logging.getLogger("cronjobs.runs")
    handler, level = Collect(), log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    yield handler
    log.removeHandler(handler)
    log.setLevel(level)


@pytest.fixture
def alert_log():
    log = logging.getLogger("cronjobs.alerts")
    handler = Collect()
    log.addHandler(handler)
    yield handler
    log.removeHandler(handler)


@pytest.fixture
def monitor():
    server = Monitor().start()
    yield server
    server.stop()


@pytest.fixture
def flag(tmp_path):
    path = tmp_path / "failing"
    path.touch()
    return path


@pytest.fixture
def alerting(settings, monitor, flag):
    settings.CRONJOBS_NOTIFY_EMAILS = ["ops@example.com"]
    settings.CRONJOBS_PING_URL_TEMPLATE = monitor.url + "/ping/{name}"
    settings.CRONJOBS_BASE_URL = "https://crm.example.com/"
    settings.CRONJOBS = [
        ("* * * * *", f"{JOBS}.boom"),
        ("* * * * *", f"{JOBS}.succeed"),
        ("* * * * *", f"{JOBS}.fail_while", [str(flag)], {}, {"name": "flaky", "notify_after": 3}),
        ("* * * * *", f"{JOBS}.loop_forever", {"timeout": 0.2}),
    ]
    mail.outbox.clear()
    return monitor


# --- one failure, whichever route fired it ----------------------------------------------------------
def fire_manual(name):
    runner.run(name)


def fire_crontab_command(name):
    with pytest.raises(CommandError):
        call_command("crontab", "run", name, "--scheduled", stdout=StringIO(), stderr=StringIO())


def operator_client():
    return logged_in(staff("cronjobs.view_jobrun", "cronjobs.run_job", username="operator"))


def fire_admin(name):
    assert operator_client().post(f"/admin/cronjobs/scheduledjob/run/{name}/").status_code == 302
    finish_detached(JobRun.objects.get(job_name=name, status="running"))  # what the started process does


def fire_graphql(name):
    query = "mutation($name: String!) { runCronJob(name: $name) { run { status } errors } }"
    assert ok(operator_client(), query, {"name": name})["runCronJob"]["run"]["status"] == "running"
    finish_detached(JobRun.objects.get(job_name=name, status="running"))


def fire_celery(name):
    from cronjobs.beat import run_cronjob

    result = run_cronjob.apply(args=(name, timezone.now().isoformat()))
    assert result.failed()


ROUTES = {
    "manual": ("manual", fire_manual),
    "crontab": ("crontab", fire_crontab_command),
    "admin": ("admin", fire_admin),
    "graphql": ("graphql", fire_graphql),
    "celery": ("celery", fire_celery),
}


@pytest.mark.parametrize("route", list(ROUTES))
def test_a_failing_job_on_each_route_is_one_error_record_one_mail_one_fail_ping_and_a_metric(
    route, alerting, run_log, admin_client
):
    trigger, fire = ROUTES[route]
    fire("boom")
    run = JobRun.objects.get(job_name="boom")
    assert (run.status, run.trigger) == ("failed", trigger)

    [record] = run_log.records
    assert record.levelno == logging.ERROR and record.name == "cronjobs.runs"
    assert (record.job, record.run_id, record.trigger, record.host, record.status) == (
        "boom",
        run.pk,
        trigger,
        runner.HOST,
        "failed",
    )
    assert record.duration == run.duration.total_seconds()
    assert record.msg.startswith("boom run #%s failed: %s")  # one Sentry issue per job and status
    text = logging.Formatter().format(record)
    assert f"boom run #{run.pk} failed: ValueError: boom from a test job (trigger {trigger}, host" in text
    assert "\nTraceback (most recent call last)" in text and text.rstrip().endswith("ValueError: boom from a test job")

    [message] = mail.outbox
    assert message.to == ["ops@example.com"] and message.subject == "[cronjobs] boom failed 1 time(s) in a row"
    assert f"https://crm.example.com/admin/cronjobs/jobrun/{run.pk}/change/" in message.body
    assert "ValueError: boom from a test job" in message.body

    assert alerting.paths() == ["/ping/boom/start", "/ping/boom/fail"]
    assert f"boom run #{run.pk} failed" in alerting.pings[1].body and "Traceback" in alerting.pings[1].body

    scraped = admin_client.get("/metrics").content.decode()
    assert 'cronjobs_job_failures_total{job="boom"} 1.0' in scraped
    assert 'cronjobs_job_last_status{job="boom",status="failed"} 1.0' in scraped


def test_a_timeout_is_logged_mailed_and_pinged_as_a_failure(alerting, run_log):
    run = runner.run("loop_forever")
    assert run.status == "timed_out"
    [record] = run_log.at(logging.ERROR)
    assert record.status == "timed_out" and "Stopped: stopped by SIGTERM" in logging.Formatter().format(record)
    assert len(mail.outbox) == 1 and alerting.paths() == ["/ping/loop_forever/start", "/ping/loop_forever/fail"]


def test_a_missed_slot_is_logged_mailed_and_pinged_as_a_failure(alerting, run_log, settings):
    settings.CRONJOBS = [("* * * * *", f"{JOBS}.succeed", {"grace": 5})]
    run = runner.run("succeed", scheduled_for=timezone.now() - timedelta(minutes=10), trigger="crontab")
    assert run.status == "missed"
    [record] = run_log.records
    assert record.levelno == logging.ERROR and record.status == "missed" and record.exc_text is None
    assert "missed: starting" in record.getMessage()
    assert len(mail.outbox) == 1 and alerting.paths() == ["/ping/succeed/fail"]


def test_an_interrupted_run_is_logged_mailed_and_pinged_as_a_failure(alerting, run_log, settings):
    settings.CRONJOBS = [("* * * * *", f"{JOBS}.interrupt")]
    runner.run("interrupt")  # the job raised KeyboardInterrupt in its own process: recorded
    run = JobRun.objects.get(job_name="interrupt")
    assert run.status == "interrupted"
    [record] = run_log.records
    assert record.levelno == logging.ERROR and record.status == "interrupted" and record.run_id == run.pk
    assert record.exc_text is None and "KeyboardInterrupt" in record.traceback  # one line; traceback kept aside
    formatted = logging.Formatter().format(record)
    assert formatted.startswith(f"interrupt run #{run.pk} interrupted: the job raised KeyboardInterrupt")
    assert len(mail.outbox) == 1 and alerting.paths() == ["/ping/interrupt/start", "/ping/interrupt/fail"]


def test_a_run_closed_as_dead_is_logged_as_a_failure(alerting, run_log):
    dead = JobRunFactory(job_name="boom", status="running", host=runner.HOST, pid=2**22 + 12345)
    reaper.reap("boom")
    [record] = run_log.records
    assert (
        record.run_id == dead.pk
        and record.levelno == logging.ERROR
        and "its supervising process" in record.getMessage()
    )


def test_successes_and_skips_log_nothing(alerting, run_log, settings):
    runner.run("succeed")
    settings.CRONJOBS = [("* * * * *", f"{JOBS}.succeed", {"enabled": False})]
    assert runner.run("succeed", scheduled_for=timezone.now(), trigger="crontab").status == "skipped"
    assert run_log.records == [] and mail.outbox == []


def test_the_console_prints_a_run_failure_on_one_line_and_other_handlers_get_the_traceback(alerting, run_log):
    runner.run("boom")
    [record] = run_log.records
    console = RunLineFormatter().format(record)
    assert "\n" not in console and console.startswith("boom run #")
    assert "Traceback (most recent call last)" in logging.Formatter().format(record)  # exc_text left in place
    other = logging.LogRecord("django.request", logging.ERROR, __file__, 1, "oops", None, None)
    other.exc_text = "Traceback (most recent call last):\nValueError"
    assert RunLineFormatter().format(other) == "oops\nTraceback (most recent call last):\nValueError"


# --- mail after N failures ---------------------------------------------------------------------------
def test_one_mail_at_the_nth_failure_none_after_and_one_recovered_mail(alerting, run_log, flag):
    failures = [runner.run("flaky") for _ in range(2)]
    assert mail.outbox == []
    failures.append(runner.run("flaky"))  # the 3rd in a row: notify_after 3
    [failing] = mail.outbox
    assert failing.subject == "[cronjobs] flaky failed 3 time(s) in a row"
    for run in failures:
        assert f"run #{run.pk} failed at {timezone.localtime(run.finished_at):%Y-%m-%d %H:%M:%S}" in failing.body
    assert "RuntimeError: failing while" in failing.body
    assert failing.body.count("/admin/cronjobs/jobrun/") == 1 and f"jobrun/{failures[-1].pk}/change/" in failing.body

    runner.run("flaky")
    runner.run("flaky")
    assert len(mail.outbox) == 1  # no mail per further failure of the same streak
    assert len(run_log.at(logging.ERROR)) == 5  # but every failure is logged

    flag.unlink()
    recovered = runner.run("flaky")
    assert recovered.status == "succeeded" and len(mail.outbox) == 2
    assert mail.outbox[1].subject == "[cronjobs] flaky recovered"
    assert f"jobrun/{recovered.pk}/change/" in mail.outbox[1].body
    [info] = run_log.at(logging.INFO)
    assert info.getMessage().startswith(f"flaky recovered: run #{recovered.pk} succeeded after 3+ failed run(s)")

    runner.run("flaky")
    assert len(mail.outbox) == 2 and len(run_log.at(logging.INFO)) == 1

    flag.touch()
    for _ in range(3):
        runner.run("flaky")
    assert len(mail.outbox) == 3  # a new streak mails again at its 3rd failure


def test_a_streak_short_of_n_recovers_with_an_info_record_and_no_mail(alerting, run_log, flag):
    runner.run("flaky")
    runner.run("flaky")
    flag.unlink()
    runner.run("flaky")
    assert mail.outbox == []
    [info] = run_log.at(logging.INFO)
    assert "succeeded after 2 failed run(s)" in info.getMessage()


def test_skips_neither_count_nor_break_a_streak(alerting, settings, flag):
    settings.CRONJOBS_NOTIFY_AFTER = 2
    settings.CRONJOBS = [("* * * * *", f"{JOBS}.boom")]
    runner.run("boom")
    settings.CRONJOBS = [("* * * * *", f"{JOBS}.boom", {"enabled": False})]
    runner.run("boom", scheduled_for=timezone.now(), trigger="crontab")  # a recorded skip
    settings.CRONJOBS = [("* * * * *", f"{JOBS}.boom")]
    assert mail.outbox == []
    runner.run("boom")
    assert [m.subject for m in mail.outbox] == ["[cronjobs] boom failed 2 time(s) in a row"]


def test_each_failed_retry_attempt_counts_as_one_failure(alerting, run_log, settings):
    settings.CRONJOBS = [("* * * * *", f"{JOBS}.boom", {"retries": 2, "notify_after": 3})]
    last = runner.run("boom", sleep=lambda seconds: None)
    assert last.attempt == 3 and JobRun.objects.filter(status="failed").count() == 3
    assert len(run_log.at(logging.ERROR)) == 3
    assert [m.subject for m in mail.outbox] == ["[cronjobs] boom failed 3 time(s) in a row"]
    assert alerting.paths() == ["/ping/boom/start", "/ping/boom/fail"] * 3


def test_a_retry_that_succeeds_ends_the_streak(alerting, run_log, settings, tmp_path):
    settings.CRONJOBS = [("* * * * *", f"{JOBS}.fail_first_time", [str(tmp_path / "tried")], {}, {"retries": 1})]
    assert runner.run("fail_first_time", sleep=lambda seconds: None).status == "succeeded"
    assert [m.subject for m in mail.outbox] == [
        "[cronjobs] fail_first_time failed 1 time(s) in a row",
        "[cronjobs] fail_first_time recovered",
    ]
    assert [r.levelno for r in run_log.records] == [logging.ERROR, logging.INFO]


def test_recipients_default_to_admins(alerting, settings):
    settings.CRONJOBS_NOTIFY_EMAILS = []
    settings.ADMINS = [("Ann", "ann@example.com"), ("Bob", "bob@example.com")]
    runner.run("boom")
    assert mail.outbox[0].to == ["ann@example.com", "bob@example.com"]


def test_a_mail_server_that_fails_changes_nothing_and_the_ping_still_goes(alerting, settings, run_log, alert_log):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    refusing = bound_socket(listen=False)
    settings.EMAIL_HOST, settings.EMAIL_PORT = refusing.getsockname()
    try:
        run = runner.run("boom")
    finally:
        refusing.close()
    assert JobRun.objects.get(pk=run.pk).status == "failed"
    assert len(run_log.at(logging.ERROR)) == 1
    assert alerting.paths() == ["/ping/boom/start", "/ping/boom/fail"]
    [problem] = alert_log.records
    assert "mail_failure failed" in problem.getMessage() and problem.exc_info[0] is ConnectionRefusedError


# --- monitor pings ---------------------------------------------------------------------------------
def test_a_success_pings_start_then_the_url_with_the_summary(alerting):
    run = runner.run("succeed")
    assert alerting.paths() == ["/ping/succeed/start", "/ping/succeed"]
    assert alerting.pings[0].body.startswith(
        f"succeed run #{run.pk} started (manual on {runner.HOST} pid {os.getpid()})"
    )
    assert alerting.pings[1].body.startswith(f"succeed run #{run.pk} succeeded in ")
    assert alerting.pings[1].body.endswith("\nall good")


@pytest.mark.parametrize(
    ("url", "kind", "target"),
    [
        ("https://hc-ping.com/uuid", "start", "https://hc-ping.com/uuid/start"),
        ("https://hc-ping.com/uuid/", "fail", "https://hc-ping.com/uuid/fail"),
        ("https://hc-ping.com/uuid/", "", "https://hc-ping.com/uuid"),
        ("https://hc-ping.com/key/my-job?create=1", "start", "https://hc-ping.com/key/my-job/start?create=1"),
        ("http://monitor:8000", "", "http://monitor:8000/"),
    ],
)
def test_the_kind_goes_after_the_path_and_before_the_query(url, kind, target):
    assert alerts.ping_target(url, kind) == target


def test_the_body_is_capped_keeping_both_ends():
    text = "head " + "x" * 50_000 + " tail"
    capped = alerts._cap(text, alerts.PING_BODY_LIMIT)
    assert len(capped) == alerts.PING_BODY_LIMIT and capped.startswith("head ") and capped.endswith(" tail")
    assert "characters cut" in capped


def test_a_job_ping_url_wins_over_the_template_and_an_empty_one_turns_pings_off(alerting, settings):
    settings.CRONJOBS = [
        ("* * * * *", f"{JOBS}.succeed", {"ping_url": alerting.url + "/own-check/"}),
        ("* * * * *", f"{JOBS}.boom", {"ping_url": ""}),
    ]
    runner.run("succeed")
    runner.run("boom")
    assert alerting.paths() == ["/own-check/start", "/own-check"]


def test_a_hanging_monitor_adds_at_most_twice_the_timeout_per_ping_and_never_changes_the_run(settings, alert_log):
    hanging = Monitor(hang=True).start()
    try:
        settings.CRONJOBS = [("* * * * *", f"{JOBS}.succeed", {"ping_url": hanging.url}), ("* * * * *", f"{JOBS}.boom")]
        settings.CRONJOBS_PING_TIMEOUT = 0.5
        runner.run("boom")  # warm up (imports) without pings
        began = time.monotonic()
        run = runner.run("succeed")
        elapsed = time.monotonic() - began
    finally:
        hanging.stop()
    assert run.status == "succeeded" and JobRun.objects.get(pk=run.pk).status == "succeeded"
    # The start ping goes beside the job: the job is not delayed, its recorded duration not inflated.
    assert run.duration < timedelta(seconds=0.5), run.duration
    assert hanging.paths() == ["/start", "/start", "/", "/"]
    bound = 2 * 2 * 0.5  # two pings (start, finish) of at most two attempts each
    assert elapsed < bound + 1.5, elapsed  # the slack is for a loaded machine; without the bound it hangs 120 s
    assert [r.getMessage().split(" failed: ")[1] for r in alert_log.records] == ["no answer within 0.5s"] * 2


def test_a_refusing_monitor_is_retried_once_and_logged_and_the_run_keeps_its_status(settings, alert_log):
    refusing = bound_socket(listen=False)
    port = refusing.getsockname()[1]
    settings.CRONJOBS = [("* * * * *", f"{JOBS}.boom", {"ping_url": f"http://127.0.0.1:{port}/check-secret"})]
    try:
        run = runner.run("boom")
    finally:
        refusing.close()
    assert JobRun.objects.get(pk=run.pk).status == "failed"
    assert len(alert_log.records) == 2  # start and fail, each after its retry
    message = alert_log.records[1].getMessage()
    assert message.startswith(f"cronjobs: monitor ping fail to http://127.0.0.1:{port} failed: URLError")
    assert "check-secret" not in message  # the URL's path is the check's secret


@pytest.mark.parametrize(("status", "attempts"), [(404, 1), (503, 2)])
def test_a_4xx_answer_is_not_retried_a_5xx_is_retried_once(status, attempts, alert_log):
    answering = Monitor(status=status).start()
    try:
        assert alerts.ping(answering.url, "fail", "body") is False
    finally:
        answering.stop()
    assert answering.paths() == ["/fail"] * attempts
    assert f"HTTP {status}" in alert_log.records[0].getMessage()


# --- configuration -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"notify_after": 0}, "option 'notify_after': must be a whole number of failures >= 1, got 0"),
        ({"notify_after": 2.5}, "option 'notify_after': must be a whole number of failures >= 1, got 2.5"),
        ({"notify_after": True}, "option 'notify_after': must be a whole number of failures >= 1, got True"),
        ({"ping_url": "hc-ping.com/abc"}, "option 'ping_url': must be an http(s) URL, got 'hc-ping.com/abc'"),
        ({"ping_url": 5}, "option 'ping_url': must be an http(s) URL, got 5"),
        ({"ping_url": "ftp://x/y"}, "option 'ping_url': must be an http(s) URL, got 'ftp://x/y'"),
    ],
)
def test_bad_options_are_check_errors_e008(settings, options, message):
    settings.CRONJOBS = [("* * * * *", f"{JOBS}.succeed", options)]
    [error] = check_cronjobs()
    assert error.id == "cronjobs.E008" and error.msg == f"CRONJOBS[0]: {message}"


def test_good_options_pass_the_checks(settings):
    settings.CRONJOBS = [
        ("* * * * *", f"{JOBS}.succeed", {"notify_after": 3, "ping_url": "https://hc-ping.com/1234"}),
        ("* * * * *", f"{JOBS}.boom", {"ping_url": ""}),
    ]
    assert check_cronjobs() == []


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("CRONJOBS_NOTIFY_AFTER", 0, "must be a whole number >= 1, got 0"),
        ("CRONJOBS_NOTIFY_EMAILS", ["ops@example.com", "not-an-address"], "'not-an-address' is not an e-mail address"),
        ("CRONJOBS_PING_URL_TEMPLATE", "https://hc-ping.com/key/{nme}", "is not an http(s) URL with only {name}"),
        ("CRONJOBS_PING_URL_TEMPLATE", "hc-ping.com/{name}", "is not an http(s) URL with only {name}"),
        ("CRONJOBS_PING_TIMEOUT", 0, "must be a number of seconds in (0, 60], got 0"),
    ],
)
def test_bad_alert_settings_are_check_errors_e011(settings, setting, value, message):
    settings.CRONJOBS = [("* * * * *", f"{JOBS}.succeed")]
    setattr(settings, setting, value)
    [error] = check_cronjobs()
    assert error.id == "cronjobs.E011" and error.msg.startswith(f"settings.{setting}: ") and message in error.msg
