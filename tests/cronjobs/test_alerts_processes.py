"""Alerts from real processes: `crontab run` and `crontab work` log, mail (to a real SMTP server process) and ping."""

import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.cronjobs.conftest import manage, write_config
from tests.cronjobs.monitors import Monitor, SmtpServer
from tests.cronjobs.procs import start_work

JOBS = "tests.cronjobs.jobs"
pytestmark = pytest.mark.slow

# The project's console formatter, plus level and logger name, so the test can count the records of `cronjobs.runs`.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"named": {"()": "cronjobs.logformat.RunLineFormatter", "fmt": "%(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "named"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}


@pytest.fixture
def smtp(world_dir):
    server = SmtpServer(world_dir).start()
    yield server
    server.stop()


@pytest.fixture
def monitor():
    server = Monitor().start()
    yield server
    server.stop()


def alert_settings(smtp: SmtpServer, monitor: Monitor, **extra) -> dict:
    return {
        "LOGGING": LOGGING,
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": smtp.port,
        "DEFAULT_FROM_EMAIL": "cron@example.com",
        "CRONJOBS_NOTIFY_EMAILS": ["ops@example.com"],
        "CRONJOBS_PING_URL_TEMPLATE": monitor.url + "/{name}",
        "CRONJOBS_BASE_URL": "https://crm.example.com",
        **extra,
    }


def scraped_failures(config, job: str) -> float:
    """cronjobs_job_failures_total of `job` as /metrics renders it, from a process on the shared database."""
    code = "from cronjobs.metrics import exposition; print(exposition().decode())"
    result = manage("shell", "--verbosity", "0", "-c", code, config=config)
    assert result.returncode == 0, result.stderr
    families = {f.name: f for f in text_string_to_metric_families(result.stdout)}
    [sample] = [s for s in families["cronjobs_job_failures"].samples if s.labels == {"job": job}]
    return sample.value


def error_records(output: str) -> list[str]:
    return [line for line in output.splitlines() if "ERROR cronjobs.runs " in line]


def test_crontab_run_processes_log_each_failure_once_mail_at_the_nth_and_on_recovery(
    shared_db, world_dir, smtp, monitor
):
    flag = world_dir / "failing"
    flag.touch()
    cronjobs = [["* * * * *", f"{JOBS}.fail_while", [str(flag)], {}, {"name": "flaky", "notify_after": 2}]]
    config = write_config(world_dir, shared_db, CRONJOBS=cronjobs, **alert_settings(smtp, monitor))

    outcomes = [manage("crontab", "run", "flaky", config=config) for _ in range(3)]
    assert [o.returncode for o in outcomes] == [1, 1, 1], [o.stderr for o in outcomes]
    runs = shared_db.runs("flaky")
    for outcome, run in zip(outcomes, runs, strict=True):
        [record] = error_records(outcome.stderr)
        assert record.startswith(f"ERROR cronjobs.runs flaky run #{run['id']} failed: RuntimeError: failing while")
        assert "(trigger manual, host " in record
        # Once: the command's own report of a run by hand; the log record is one line.
        assert outcome.stderr.count("Traceback (most recent call last)") == 1
    [failing] = smtp.messages()
    assert failing["Subject"] == "[cronjobs] flaky failed 2 time(s) in a row" and failing["To"] == "ops@example.com"
    body = failing.get_payload(decode=True).decode()
    assert f"https://crm.example.com/admin/cronjobs/jobrun/{runs[1]['id']}/change/" in body
    assert "RuntimeError: failing while" in body

    assert scraped_failures(config, "flaky") == 3

    flag.unlink()
    recovered = manage("crontab", "run", "flaky", config=config)
    assert recovered.returncode == 0 and recovered.stderr == "", recovered.stderr  # a success prints no log
    assert sorted(m["Subject"] for m in smtp.messages()) == [
        "[cronjobs] flaky failed 2 time(s) in a row",
        "[cronjobs] flaky recovered",
    ]
    assert monitor.paths() == ["/flaky/start", "/flaky/fail"] * 3 + ["/flaky/start", "/flaky"]


@pytest.mark.django_db(transaction=True)  # creates the test database shared_db names on PostgreSQL
def test_a_crontab_work_fired_failure_is_one_error_record_one_mail_and_one_fail_ping(
    shared_db, world_dir, smtp, monitor
):
    config = write_config(
        world_dir, shared_db, CRONJOBS=[["* * * * *", f"{JOBS}.boom"]], **alert_settings(smtp, monitor)
    )
    work = start_work(config)
    try:
        finish = work.wait_for("finish boom [")  # the next minute boundary
        deadline = time.monotonic() + 60
        while not smtp.messages():  # the mail is sent before the run process exits; read it as it lands
            assert time.monotonic() < deadline, "no mail arrived"
            time.sleep(0.05)
    finally:
        work.stop()
    assert "exit 1 (job failed)" in finish
    # On a loaded machine the next minute may fire before the stop (and be interrupted by it): count per run.
    failed = [run for run in shared_db.runs("boom") if run["status"] in ("failed", "interrupted")]
    assert failed and {run["trigger"] for run in failed} == {"work"}
    records = error_records(work.output)
    assert len(records) == len(failed)
    assert "Traceback" not in work.output  # a scheduled failure is short: the traceback is in the history
    first = f"ERROR cronjobs.runs boom run #{failed[0]['id']} failed: ValueError: boom from a test job (trigger work"
    assert first in records[0]
    [message] = smtp.messages()  # at the 1st failure; none for the rest of the streak
    assert message["Subject"] == "[cronjobs] boom failed 1 time(s) in a row"
    assert monitor.paths() == ["/boom/start", "/boom/fail"] * len(failed)
    assert scraped_failures(config, "boom") == len(failed)
