"""The fault catalogue of the scheduling engine: one section per section of docs/faults.md.

Invariant: every run ends in a terminal status that matches what really happened; nothing stays
`running` after its supervisor is gone; a run whose lease is current is never closed by another
process; a CRONJOBS that passes `manage.py check` never crashes `crontab work`, `crontab show`,
/health/cron/, GraphQL or the admin, and one that does not never stops `crontab work`.

Faults about processes use real processes and real signals; faults about PostgreSQL run on it.
Tests that start `manage.py` processes are marked slow (each start is a Django start-up); the
in-process ones are in the fast tier.
"""

import errno
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import OperationalError, connection
from django.db.models.query import QuerySet
from django.utils import timezone

from crm import joblog
from cronjobs import reaper, runner, supervisor
from cronjobs import registry as registry_module
from cronjobs.models import JobRun
from cronjobs.registry import E003, E008, parse_cronjobs
from cronjobs.scheduler import Scheduler
from tests.cronjobs.conftest import ROOT, SUBPROCESS_SETTINGS, clean_env, manage, write_config
from tests.factories import JobRunFactory, ProductFactory
from tests.reachable import on_postgres

JOBS = "tests.cronjobs.jobs"
FAULTS = "tests.cronjobs.fault_jobs"
WAIT = 60  # seconds: an upper bound for an event, never a measured duration


# --- helpers ---------------------------------------------------------------------------------------
def start_run(config: Path, *args: str) -> subprocess.Popen:
    """`manage.py crontab run ...` as cron would start it, left running."""
    return subprocess.Popen(
        [sys.executable, "manage.py", "crontab", "run", *args, f"--settings={SUBPROCESS_SETTINGS}"],
        cwd=ROOT,
        env=clean_env(CRONJOBS_TEST_CONFIG=str(config)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_file(path: Path, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + WAIT
    while not path.exists():
        if process.poll() is not None:
            pytest.fail(f"the run process ended early: {process.communicate()}")
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.02)


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)


def held_job(world_dir: Path, function: str = "wait_for_release", **options) -> tuple[list, Path, Path]:
    started, release = world_dir / "started", world_dir / "release"
    entry = ["* * * * *", f"{FAULTS}.{function}", [str(started), str(release)]]
    return [entry + ([{}, options] if options else [])], started, release


# --- What timed_out guarantees -------------------------------------------------------------------------
def active_sleeps() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%%pg_sleep%%' "
            "AND query NOT LIKE '%%pg_stat_activity%%' AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


@pytest.mark.slow
@pytest.mark.postgres
def test_a_timed_out_statement_is_cancelled_and_never_commits_later(shared_db, world_dir):
    product = ProductFactory(stock=24)
    # A timeout long enough for the job's process to be connected and inside the UPDATE on a loaded machine.
    cronjobs = [["* * * * *", f"{FAULTS}.slow_update", [product.pk, 10], {}, {"timeout": 2}]]
    result = manage("crontab", "run", "slow_update", config=write_config(world_dir, shared_db, CRONJOBS=cronjobs))
    assert result.returncode == 1, result.stderr
    (run,) = shared_db.runs("slow_update")
    assert run["status"] == "timed_out"
    # Stopped inside its UPDATE: the job's process cancelled the statement and said so; or, on a loaded
    # machine, its session was ended for it, or the server's statement_timeout (the job's timeout) came
    # first. Each rolls the UPDATE back.
    assert any(
        undone in run["result"]
        for undone in (
            "statement was cancelled and its transaction rolled back",
            "its database session was ended, which rolled back its open transaction",
            "the database cancelled its statement at the job's timeout",
        )
    ), run["result"]
    wait_until(lambda: active_sleeps() == 0, "the timed-out statement leaves the server")
    product.refresh_from_db()
    assert product.stock == 24


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("timeout", "status"), [(0.3, "timed_out"), (5, "failed")])
def test_a_statement_the_server_ends_at_the_jobs_timeout_is_a_timeout_not_a_failure(settings, timeout, status):
    # Seen in a loaded CI run: the server's statement_timeout (the job's timeout) fired before the
    # supervisor's SIGTERM reached the job, and the run was recorded `failed` (QueryCanceled).
    product = ProductFactory(stock=24)
    entry = [product.pk, 300]  # the server ends the UPDATE after 300 ms
    settings.CRONJOBS = [("* * * * *", f"{FAULTS}.update_past_statement_timeout", entry, {}, {"timeout": timeout})]
    message = supervisor._call(registry_module.get_job("update_past_statement_timeout"))
    connection.close()  # its statement_timeout stays with the session: not for the test's teardown
    assert message["status"] == status, message
    if status == "timed_out":
        assert message["result"].startswith("timed out after 0.3s; the database cancelled its statement"), message
    else:  # a statement timeout of the job's own, well within its timeout: its failure
        assert "QueryCanceled" in message["result"] or "statement timeout" in message["result"], message
    product.refresh_from_db()
    assert product.stock == 24


@pytest.mark.slow
@pytest.mark.postgres
def test_a_killed_supervisor_cannot_leave_its_job_s_statement_running_past_the_timeout(shared_db, world_dir):
    product = ProductFactory(stock=24)
    cronjobs = [["* * * * *", f"{FAULTS}.slow_update", [product.pk, 60], {}, {"timeout": 1}]]
    process = start_run(write_config(world_dir, shared_db, CRONJOBS=cronjobs), "slow_update")
    try:
        wait_until(lambda: active_sleeps() == 1, "the UPDATE runs on the server")
        process.kill()  # the supervisor: no chance to stop anything itself; its job dies with it
        process.wait(WAIT)
        # statement_timeout (the job's timeout) ends it on the server, whatever happened to the processes.
        wait_until(lambda: active_sleeps() == 0, "the server cancels the statement at the job's timeout")
    finally:
        process.kill()
    product.refresh_from_db()
    assert product.stock == 24


@pytest.mark.slow
@pytest.mark.postgres
def test_a_job_killed_with_its_transaction_open_has_its_session_ended_and_nothing_commits(shared_db, world_dir):
    product = ProductFactory(stock=24)
    started = world_dir / "started"
    cronjobs = [["* * * * *", f"{FAULTS}.update_then_swallow", [product.pk, str(started)], {}, {"timeout": 1}]]
    config = write_config(world_dir, shared_db, CRONJOBS=cronjobs, CRONJOBS_STOP_WAIT=0.5)
    result = manage("crontab", "run", "update_then_swallow", config=config)
    assert result.returncode == 1 and started.exists(), result.stderr
    (run,) = shared_db.runs("update_then_swallow")
    assert run["status"] == "timed_out"
    assert "it did not stop within 0.5s of SIGTERM and was killed (SIGKILL)" in run["result"]
    assert "its database session was ended, which rolled back its open transaction" in run["result"]
    product.refresh_from_db()
    assert product.stock == 24


@pytest.mark.django_db
def test_a_job_that_swallows_its_timeout_is_still_recorded_timed_out(settings, tmp_path):
    settings.CRONJOBS_STOP_WAIT = 0.3
    settings.CRONJOBS = [("* * * * *", f"{JOBS}.swallow_everything", [str(tmp_path / "m")], {}, {"timeout": 0.2})]
    record = runner.run("swallow_everything")
    assert record.status == "timed_out" and "killed (SIGKILL)" in record.result


@pytest.mark.slow
@pytest.mark.parametrize("route", ["crontab run", "crontab work"])
def test_a_job_that_swallows_every_exception_is_stopped_by_its_timeout_on_every_route(shared_db, world_dir, route):
    marker = world_dir / "marker"
    cronjobs = [["* * * * *", f"{JOBS}.swallow_everything", [str(marker)], {}, {"timeout": 3}]]
    config = write_config(world_dir, shared_db, CRONJOBS=cronjobs, CRONJOBS_STOP_WAIT=1)
    if route == "crontab run":
        result = manage("crontab", "run", "swallow_everything", config=config)
        assert result.returncode == 1, result.stderr
    else:
        from tests.cronjobs.procs import start_work

        work = start_work(config)
        try:
            work.wait_for("finish swallow_everything")
        finally:
            work.stop()
    (run,) = [r for r in shared_db.runs("swallow_everything") if r["status"] != "skipped"][:1]
    assert run["status"] == "timed_out" and "killed (SIGKILL)" in run["result"], run
    size = marker.stat().st_size
    time.sleep(0.5)
    assert marker.stat().st_size == size  # nothing of it runs afterwards


# --- Dead and live runs --------------------------------------------------------------------------------
@pytest.mark.django_db
def test_a_live_run_on_this_host_is_never_presumed_dead(settings):
    settings.CRONJOBS = [("* * * * *", f"{JOBS}.succeed", {"timeout": 1})]
    alive = JobRunFactory(
        status="running", host=runner.HOST, pid=os.getpid(), started_at=timezone.now() - timedelta(hours=5)
    )
    alive.started_at = timezone.now() - timedelta(seconds=0.5)  # our own pid, taken just now
    alive.save()
    assert runner.run("succeed").status == "skipped"
    alive.refresh_from_db()
    assert alive.status == "running"


@pytest.mark.django_db
def test_an_outcome_never_overwrites_a_run_already_closed_and_is_kept_beside_it(settings):
    settings.CRONJOBS = [("* * * * *", f"{JOBS}.succeed")]
    closed = JobRunFactory(status="interrupted", result="its lease expired")
    runner.record_outcome(closed, supervisor.Outcome("succeeded", "all good"))
    closed.refresh_from_db()
    assert (closed.status, closed.result) == ("interrupted", "its lease expired")
    assert (closed.late_status, closed.late_result) == ("succeeded", "all good") and closed.late_finished_at


@pytest.mark.slow
def test_a_supervisor_killed_mid_run_leaves_a_run_closed_truthfully_not_running(shared_db, world_dir, client):
    cronjobs, started, release = held_job(world_dir)
    config = write_config(world_dir, shared_db, CRONJOBS=cronjobs)
    process = start_run(config, "wait_for_release")
    try:
        wait_for_file(started, process)
        job_pid = int(started.read_text())
        process.kill()
        process.wait(WAIT)
        # The job dies with its supervisor (parent-death signal): nothing runs unsupervised.
        wait_until(lambda: not _alive(job_pid), "the job dies with its supervisor")
    finally:
        release.touch()
        process.kill()
    # Any later start on this host sees the supervisor gone and closes the run at once.
    again = manage("crontab", "run", "wait_for_release", config=config, timeout=WAIT)
    assert again.returncode == 0, again.stderr
    first = shared_db.runs("wait_for_release")[0]
    assert first["status"] == "interrupted" and "its supervising process" in first["result"]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


# --- Signals -----------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGQUIT])
def test_every_stop_signal_records_the_run_as_interrupted(shared_db, world_dir, signum):
    cronjobs, started, release = held_job(world_dir)
    process = start_run(write_config(world_dir, shared_db, CRONJOBS=cronjobs), "wait_for_release")
    try:
        wait_for_file(started, process)
        process.send_signal(signum)
        out, err = process.communicate(timeout=WAIT)
    finally:
        release.touch()
        process.kill()
    name = signal.Signals(signum).name
    assert process.returncode == 128 + signum, err
    (run,) = shared_db.runs("wait_for_release")
    assert run["status"] == "interrupted" and run["result"].startswith(f"interrupted by {name}")
    # The command's own report is one line (the ERROR log of the alerts may come before it).
    assert err.strip().splitlines()[-1].endswith(f"interrupted by {name}; recorded as interrupted"), err


@pytest.mark.django_db
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT])
def test_a_stop_signal_to_the_supervisor_stops_the_job_records_it_then_raises(settings, signum):
    settings.CRONJOBS = [("* * * * *", f"{FAULTS}.signal_supervisor", [int(signum)])]
    with pytest.raises(runner.Interrupted) as raised, runner.stop_signals_flagged():
        runner.run("signal_supervisor")
    record = JobRun.objects.get(job_name="signal_supervisor")
    assert raised.value.signum == signum and raised.value.record.pk == record.pk
    assert record.status == "interrupted" and record.result.startswith(f"interrupted by {signal.Signals(signum).name}")


def test_crontab_work_names_what_each_exit_code_means():
    from cronjobs.scheduler import exit_meaning

    assert [exit_meaning(code) for code in (143, 129, 130, 131, -9, 3, 4, 5)] == [
        "interrupted by SIGTERM",
        "interrupted by SIGHUP",
        "interrupted by SIGINT",
        "interrupted by SIGQUIT",
        "killed by SIGKILL",
        "database unreachable, not recorded",
        "outcome not recorded",
        "clock too far from the database's, nothing claimed",
    ]


@pytest.mark.django_db
def test_a_run_whose_supervisor_vanished_is_stuck_in_health_not_running(details_client, settings):
    settings.CRONJOBS = [("0 2 * * 0", f"{JOBS}.succeed", {"name": "weekly"})]
    gone = subprocess.Popen(["true"])
    gone.wait()
    run = JobRunFactory(job_name="weekly", status="running", host=runner.HOST, pid=gone.pid)
    response = details_client.get("/health/cron/")
    body = response.json()
    assert response.status_code == 503 and body["stuck"] == ["weekly"]
    problem = body["jobs"][0]["problem"]
    assert problem.startswith(f"stuck: run #{run.pk} on {runner.HOST} pid {gone.pid}")
    assert "its supervising process" in problem


@pytest.mark.django_db
def test_a_zombie_supervisor_is_dead(settings):
    settings.CRONJOBS = [("* * * * *", f"{JOBS}.succeed")]
    zombie = subprocess.Popen(["true"])  # never waited for: it stays a zombie
    wait_until(lambda: Path(f"/proc/{zombie.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z", "zombie")
    try:
        dead = JobRunFactory(status="running", host=runner.HOST, pid=zombie.pid)
        assert runner.run("succeed").status == "succeeded"
    finally:
        zombie.wait()
    dead.refresh_from_db()
    assert dead.status == "interrupted" and "its supervising process" in dead.result


# --- Schedules, timeouts and graces check refuses -------------------------------------------------------
def test_check_refuses_a_schedule_that_never_fires():
    (problem,) = parse_cronjobs([("0 0 30 2 *", f"{JOBS}.succeed")]).all_problems()
    assert problem.id == E003 and "never fires" in problem.msg
    assert not parse_cronjobs([("0 0 29 2 *", f"{JOBS}.succeed")]).all_problems()  # every four years


@pytest.fixture
def unschedulable(settings, monkeypatch, tmp_path):
    """A job check would refuse, slipped past it: every reader must report it, not crash."""
    monkeypatch.setattr(registry_module, "_never_fires", lambda text: None)
    registry_module._schedule_text_error.cache_clear()  # checked once per distinct schedule, then cached
    settings.CRONJOBS = [("0 0 30 2 *", f"{JOBS}.succeed", {"name": "never"}), ("* * * * *", f"{JOBS}.succeed")]
    fake = tmp_path / "crontab"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    settings.CRONTAB_EXECUTABLE = str(fake)
    yield
    registry_module._schedule_text_error.cache_clear()  # what it cached without the check


@pytest.mark.django_db
def test_every_reader_reports_a_job_it_cannot_schedule_instead_of_crashing(unschedulable, admin_client, capsys):
    response = admin_client.get("/health/cron/")
    assert response.status_code == 503  # before: 500
    never = response.json()["jobs"][0]
    assert never["state"] == "failing" and never["problem"].startswith("failing: cannot schedule '0 0 30 2 *'")
    answer = admin_client.post(
        "/graphql", {"query": "{ cronJobs { name nextRun state problem } }"}, content_type="application/json"
    ).json()
    assert "errors" not in answer and answer["data"]["cronJobs"][0]["nextRun"] is None  # before: internal error
    assert admin_client.get("/admin/cronjobs/scheduledjob/").status_code == 200
    call_command("crontab", "show")  # before: exit 1 with CroniterBadDateError
    assert "next run:  cannot be scheduled" in capsys.readouterr().out


@pytest.mark.django_db
def test_work_leaves_out_a_job_it_cannot_schedule_and_fires_the_others(unschedulable):
    from cronjobs.registry import get_registry

    out = io.StringIO()
    scheduler = Scheduler(jobs=get_registry().jobs, out=out, stopping=True)
    scheduler.serve()  # before: CroniterBadDateError, no job fired at all
    assert "never [0 0 30 2 *] CANNOT BE SCHEDULED" in out.getvalue()
    assert [job.name for job in scheduler.jobs] == ["succeed"]


@pytest.mark.parametrize(
    "options", [{"timeout": float("inf")}, {"timeout": 1e300}, {"timeout": 10**400}, {"grace": float("inf")}]
)
def test_check_refuses_non_finite_and_absurd_timeouts_and_graces(options):
    (problem,) = parse_cronjobs([("* * * * *", f"{JOBS}.succeed", options)]).all_problems()
    assert problem.id == E008 and "31 days" in problem.msg


@pytest.mark.parametrize(
    ("schedule", "reason"),
    [
        ("١ * * * *", "not valid cron syntax"),  # ARABIC-INDIC DIGIT ONE: the crontab binary refuses it
        ("0 ５ * * *", "not valid cron syntax"),  # FULLWIDTH DIGIT FIVE
        ("0 5-2 * * *", "runs backwards"),  # cronie refuses it; Vixie cron never fires it; croniter wrapped it
        ("0 0 * * fri-mon", "runs backwards"),
        ("0 0 * dec-jan *", "runs backwards"),
    ],
)
def test_check_refuses_what_cron_refuses_or_reads_differently(schedule, reason):
    (problem,) = parse_cronjobs([(schedule, f"{JOBS}.succeed")]).all_problems()
    assert problem.id == E003 and reason in problem.msg


# --- Database down -------------------------------------------------------------------------------------
def unreachable_database_config(world_dir: Path, **settings) -> Path:
    url = "postgres://postgres@127.0.0.1:1/crm" if on_postgres() else f"sqlite:///{world_dir}/no/such/dir/db.sqlite3"
    path = world_dir / "down.json"
    path.write_text(json.dumps({"DATABASE_URL": url, "settings": {"CRM_LOG_DIR": str(world_dir), **settings}}))
    return path


@pytest.mark.slow
def test_database_down_is_one_line_exit_3_and_the_heartbeat_still_logs_it(world_dir):
    heartbeat = ["*/5 * * * *", "crm.cron.log_crm_heartbeat", {"run_without_history": True}]
    other = ["* * * * *", f"{JOBS}.append_line", [str(world_dir / "ran.txt")]]
    config = unreachable_database_config(world_dir, CRONJOBS=[heartbeat, other])
    result = manage("crontab", "run", "log_crm_heartbeat", "--scheduled", config=config)
    # Before: 94 lines of traceback, exit 1, and no heartbeat line.
    assert result.returncode == 3 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert "run history unreachable" in result.stderr and "ran without the history" in result.stderr
    (line,) = (world_dir / joblog.HEARTBEAT_LOG).read_text().splitlines()
    assert "CRM check failed: database: " in line
    refused = manage("crontab", "run", "append_line", config=config)
    assert refused.returncode == 3 and "the job did not run" in refused.stderr
    assert not (world_dir / "ran.txt").exists()


def test_a_run_without_history_is_supervised_without_spinning(settings):
    # With no record there is no lease to renew: the supervisor waited 0 s on its pipes in a loop
    # (a whole CPU for as long as the job ran). Now it sleeps until the job writes or ends.
    settings.CRONJOBS = [("* * * * *", f"{JOBS}.sleep_then_succeed", [1])]
    job = registry_module.get_job("sleep_then_succeed")
    cpu = time.process_time()
    outcome = supervisor.Supervisor(job, None).execute()
    assert outcome.status == "succeeded", outcome
    assert time.process_time() - cpu < 0.3  # the job slept 1 s in its own process; spinning cost ~1 s here


@pytest.mark.django_db(transaction=True)
def test_an_outcome_the_database_refuses_once_is_saved_on_retry(settings, monkeypatch):
    settings.CRONJOBS = [("* * * * *", f"{JOBS}.succeed")]
    settings.CRONJOBS_SAVE_RETRY_DELAYS = [0, 0]
    update, refusals = QuerySet.update, []

    def flaky(self, **fields):
        if self.model is JobRun and "finished_at" in fields and not refusals:
            refusals.append(fields)
            raise OperationalError("server closed the connection unexpectedly")
        return update(self, **fields)

    monkeypatch.setattr(QuerySet, "update", flaky)
    record = runner.run("succeed")
    assert refusals and JobRun.objects.get(pk=record.pk).status == "succeeded"


# --- Job logs ------------------------------------------------------------------------------------------
class _FullDisk:
    """joblog's `os`, whose writes fail as on a full disk (only joblog's: the engine's own pipes still work)."""

    def __getattr__(self, name):
        return getattr(os, name)

    @staticmethod
    def write(fd, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.django_db(transaction=True)  # the job's own process reads the product: committed, on PostgreSQL
def test_a_restock_whose_log_fails_is_recorded_with_what_it_did(settings, tmp_path, monkeypatch):
    settings.CRM_LOG_DIR, settings.CRM_GRAPHQL_URL = str(tmp_path), None
    settings.CRONJOBS = [("0 */12 * * *", "crm.cron.update_low_stock")]
    ProductFactory(stock=3)
    monkeypatch.setattr(joblog, "os", _FullDisk())
    record = runner.run("update_low_stock")
    path = tmp_path / joblog.LOW_STOCK_LOG
    # Before: "OSError: [Errno 28] No space left on device", no path, no word of the committed restock.
    assert record.status == "failed"
    assert f"restocked 1 products; log not written: cannot write job log {path}: No space left on device" in (
        record.result
    )


@pytest.mark.parametrize("reader", [False, True])
def test_a_fifo_in_place_of_a_log_file_is_refused_at_once(settings, tmp_path, reader):
    settings.CRM_LOG_DIR = str(tmp_path)
    path = tmp_path / joblog.REPORT_LOG
    os.mkfifo(path)
    held = os.open(path, os.O_RDONLY | os.O_NONBLOCK) if reader else None
    outcome = {}

    def write():
        try:
            joblog.append_line(joblog.REPORT_LOG, "x")
        except joblog.JobLogError as exc:
            outcome["error"] = str(exc)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    thread.join(WAIT)
    if held is not None:
        os.close(held)
    assert not thread.is_alive(), "the write hung in open() (before: until the job's timeout)"
    assert outcome["error"].startswith(f"cannot write job log {path}: it is a FIFO")


# --- Cron mails nothing on success -------------------------------------------------------------------
@pytest.mark.django_db
def test_in_process_a_scheduled_success_prints_nothing(settings, capsys):
    settings.CRONJOBS = [("* * * * *", f"{JOBS}.succeed")]
    minute = timezone.now().replace(second=0, microsecond=0).isoformat()
    call_command("crontab", "run", "succeed", "--scheduled-for", minute)
    call_command("crontab", "run", "succeed", "--scheduled-for", minute)  # duplicate
    assert capsys.readouterr() == ("", "")
    call_command("crontab", "run", "succeed")
    assert "succeeded" in capsys.readouterr().out


@pytest.mark.slow
def test_a_scheduled_run_is_silent_unless_it_fails_and_a_hand_run_talks(shared_db, world_dir):
    cronjobs = [["* * * * *", f"{JOBS}.succeed"], ["* * * * *", f"{JOBS}.boom"]]
    config = write_config(world_dir, shared_db, CRONJOBS=cronjobs)
    slot = (timezone.now().replace(second=0, microsecond=0) + timedelta(minutes=1)).isoformat()
    first = manage("crontab", "run", "succeed", "--scheduled-for", slot, config=config)
    duplicate = manage("crontab", "run", "succeed", "--scheduled-for", slot, config=config)
    # Before: "succeed run #1 succeeded in ..." every time: a cron mail per run.
    assert (first.returncode, first.stdout, first.stderr) == (0, "", "")
    assert (duplicate.returncode, duplicate.stdout, duplicate.stderr) == (0, "", "")
    by_hand = manage("crontab", "run", "succeed", config=config)
    assert by_hand.returncode == 0 and "succeeded" in by_hand.stdout
    failed = manage("crontab", "run", "boom", "--scheduled", config=config)
    assert failed.returncode == 1 and failed.stdout == ""
    # The command's own report is one line, without the traceback (the run history has it); the
    # failure's ERROR log record (docs/alerts.md) goes to the logging handlers.
    last = failed.stderr.strip().splitlines()[-1]
    assert "boom run #" in last and "failed: ValueError: boom from a test job" in last
    assert "raise ValueError" not in failed.stderr.split("CommandError:", 1)[1]


# --- Configuration changes -----------------------------------------------------------------------------
@pytest.mark.django_db
def test_show_lists_import_errors_and_exits_2(settings, tmp_path, capsys):
    settings.CRONJOBS = [("* * * * *", "no_such_module.job"), ("* * * * *", f"{JOBS}.succeed")]
    fake = tmp_path / "crontab"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    settings.CRONTAB_EXECUTABLE = str(fake)
    with pytest.raises(CommandError) as raised:
        call_command("crontab", "show")
    # Before: exit 0 and not a word of E004.
    assert raised.value.returncode == 2
    assert "ERROR cronjobs.E004: CRONJOBS[0]: cannot import 'no_such_module.job'" in capsys.readouterr().out


def _edit(config: Path, old: str, new: str) -> None:
    config.write_text(config.read_text().replace(old, new))
    os.utime(config, ns=(time.time_ns(), time.time_ns() + 10**9))  # a change the mtime shows


@pytest.mark.slow
def test_work_survives_a_broken_cronjobs_reports_it_and_picks_up_the_fix(shared_db, world_dir, admin_client):
    from tests.cronjobs.procs import start_work

    ran = world_dir / "ran.txt"
    good = [["* * * * *", f"{JOBS}.append_line", [str(ran)], {}, {"name": "tick"}]]
    config = write_config(world_dir, shared_db, CRONJOBS=good)
    work = start_work(config)
    try:
        work.wait_for("tick [* * * * *] next")
        pid = work.process.pid
        _edit(config, '"* * * * *"', '"61 * * * *"')  # a bad edit, as in settings.py
        # Before: "CommandError: 1 configuration error(s) in CRONJOBS; not starting", and gone for good.
        line = work.wait_for("CRONJOBS REFUSED, still firing the last good configuration")
        assert "cronjobs.E003" in line and "61 * * * *" in line
        assert work.process.poll() is None
        beat = "SELECT config_error FROM cronjobs_schedulerbeat WHERE pid = {} AND config_error <> ''"
        wait_until(lambda: shared_db.query(beat, pid), "reported")
        if shared_db.sqlite_path is None:  # this test's own process reads the same database: its health says so
            body = admin_client.get("/health/cron/").json()
            assert any(p["kind"] == "configuration" and "61 * * * *" in p["problem"] for p in body["problems"]), body
        _edit(config, '"61 * * * *"', '"* * * * *"')
        work.wait_for("the new CRONJOBS is good: restarting")
        lines = len(work.lines)
        work.wait_for("tick [* * * * *] next")
        assert work.process.pid == pid
        # The next minute fires (the database's clock).
        wait_until(lambda: any("finish tick" in line for line in work.lines[lines:]), "the next minute fired")
    finally:
        work.stop()


@pytest.mark.slow
def test_work_started_on_a_broken_cronjobs_fires_nothing_and_starts_firing_once_fixed(shared_db, world_dir):
    from tests.cronjobs.procs import start_work

    config = write_config(world_dir, shared_db, CRONJOBS=[["* * * * *", "no_such_module.job", {"name": "tick"}]])
    work = start_work(config)
    try:
        # Before: exit 2, "not starting".
        work.wait_for("CRONJOBS REFUSED: cronjobs.E004")
        work.wait_for("firing nothing until it is fixed")
        _edit(config, "no_such_module.job", f"{JOBS}.succeed")
        work.wait_for("the new CRONJOBS is good: restarting")
        work.wait_for("tick [* * * * *] next")
    finally:
        work.stop()


@pytest.mark.slow
def test_work_restarts_itself_when_its_cronjobs_change(world_dir):
    from tests.cronjobs.procs import start_work

    config = write_config(world_dir, None, CRONJOBS=[["0 0 1 1 *", f"{JOBS}.succeed", {"name": "before"}]])
    work = start_work(config)
    try:
        work.wait_for("before [0 0 1 1 *] next")
        pid = work.process.pid
        _edit(config, '"before"', '"after"')
        work.wait_for("settings changed")
        # Before: it kept firing "before", whose runs failed with "no job named 'before'".
        work.wait_for("after [0 0 1 1 *] next")
        assert work.process.pid == pid  # re-executed in place: supervisors and `make run` see one process
    finally:
        work.stop()


# --- Missed minutes are alarms ------------------------------------------------------------------------
@pytest.mark.django_db
def test_missed_slot_is_recorded_missed_and_makes_the_job_failing(settings, details_client):
    settings.CRONJOBS = [("* * * * *", f"{JOBS}.succeed", {"grace": 30})]
    late = runner.run("succeed", scheduled_for=timezone.now() - timedelta(minutes=5), trigger="crontab")
    assert late.status == "missed"
    body = details_client.get("/health/cron/").json()
    assert body["failing"] == ["succeed"] and body["jobs"][0]["last_run"]["status"] == "missed"


@pytest.mark.django_db
def test_every_alarm_outcome_is_announced_exactly_once(settings):
    from cronjobs import signals

    settings.CRONJOBS = [
        ("* * * * *", f"{JOBS}.boom"),
        ("* * * * *", f"{JOBS}.loop_forever", {"timeout": 0.1}),
        ("* * * * *", f"{JOBS}.succeed", {"grace": 1}),
    ]
    seen = []

    def on_finished(sender, run, **kwargs):
        seen.append((run.job_name, run.status))

    signals.run_finished.connect(on_finished)
    try:
        runner.run("boom")
        runner.run("loop_forever")
        runner.run("succeed", scheduled_for=timezone.now() - timedelta(minutes=5), trigger="crontab")
        gone = subprocess.Popen(["true"])
        gone.wait()
        JobRunFactory(job_name="boom", status="running", trigger="work", host=runner.HOST, pid=gone.pid)
        reaper.reap()
    finally:
        signals.run_finished.disconnect(on_finished)
    assert seen == [
        ("boom", "failed"),
        ("loop_forever", "timed_out"),
        ("succeed", "missed"),
        ("boom", "interrupted"),
    ]
