"""The one runner every trigger calls: claims the run, has the job executed under supervision, records it.

Triggers (`manage.py crontab run`, `crontab work`, Celery, the admin, GraphQL, the fire endpoint) all end
here, so the guarantees below hold whichever fired a job:

* a scheduled minute of a job runs at most once across every process, machine and trigger that shares
  the database (a unique JobRun row per (job name, scheduled minute));
* a job does not start while another run of it is still running (a partial unique index on running
  rows), unless the job sets allow_overlap; the refusal is recorded as a `skipped` row;
* the process that claims a run is never the process that executes the job: the job runs in a child
  process its supervisor watches (cronjobs/supervisor.py: timeout from outside, lease renewal, stop
  signals), and the supervisor records the outcome once: succeeded, failed (with the traceback),
  timed_out, interrupted, skipped or missed (with the reason);
* every time compared across hosts is the database's (cronjobs/dbclock.py), and a running run holds a
  lease; only an expired lease lets another host close it (cronjobs/reaper.py);
* a scheduled run that would start later than the job's start limit (its `grace`, or half its interval,
  1 minute to 1 hour) is recorded `missed` instead;
* a failed run of a job with `retries` is retried after a backoff, each attempt its own row linked to
  the first (the slot is claimed once, by attempt 1).

`run()` claims and supervises in the calling process (`crontab run`, Celery, each run `crontab work`
starts). `start()` claims in the calling process and hands the run to a new supervising process that
outlives the caller (the admin's Run now, GraphQL runCronJob, POST /cron/fire/<name>): a web worker
never executes a job.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta

from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone

from cronjobs import conf, dbclock, gaps, pausing, reaper, signals, supervisor
from cronjobs.models import JobRun
from cronjobs.registry import Job, JobConfigError, get_job, schedule_timezone, start_limit

logger = logging.getLogger(__name__)

TRIGGERS = tuple(JobRun.Trigger.values)  # crontab, manual, work, celery, admin, graphql, http
HOST = socket.gethostname()
SUMMARY_LIMIT = 2000
# The lease of a run claimed for a supervisor that starts as a new process (start()): long enough for a
# cold start on a loaded machine; the supervisor's first renewal replaces it with the usual one.
STARTUP_LEASE = timedelta(minutes=2)
ECHO = object()  # run()'s default `tee`: see run()


class HistoryUnavailable(Exception):
    """The run history's database could not be reached before the run was claimed: nothing recorded.

    `outcome` is (status, result) when the job ran anyway, unrecorded (job option run_without_history);
    None when it did not run."""

    def __init__(self, job: Job, cause: BaseException):
        self.job, self.cause, self.outcome = job, cause, None
        super().__init__(f"run history unreachable ({database_label()}): {one_line(cause)}")


class OutcomeNotRecorded(Exception):
    """The job ran but its outcome could not be saved, even after retries; the row stays `running`
    until its lease expires and another process closes it."""

    def __init__(self, record: JobRun, status: str, cause: BaseException):
        self.record, self.status, self.cause = record, status, cause
        super().__init__(
            f"run #{record.pk} of {record.job_name} {status} but its outcome could not be recorded "
            f"({database_label()}): {one_line(cause)}"
        )


class Interrupted(Exception):
    """The supervising process got a stop signal; the run was recorded `interrupted` first."""

    def __init__(self, signum: int, record: JobRun | None = None):
        self.signum, self.record = signum, record
        super().__init__(f"interrupted by {supervisor.signal_name(signum)}")


class NotAdoptable(Exception):
    """`crontab run --claimed-run ID` names a run that is not waiting for its supervisor."""


def one_line(exc: BaseException) -> str:
    """An exception as one line: its type and the first line of its message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def database_label() -> str:
    """The run history's database as people name it (vendor and name, never credentials)."""
    return f"{connection.vendor} database {connection.settings_dict.get('NAME')!s}"


# --- running ------------------------------------------------------------------------------------------
def run(
    job: Job | str,
    scheduled_for: datetime | None = None,
    trigger: str = "manual",
    *,
    user=None,
    retry: bool = True,
    previous: JobRun | None = None,
    sleep=time.sleep,
    tee=ECHO,
    prefix: str = "",
) -> JobRun:
    """Run `job` once through the guarantees above, in this process as its supervisor; return its JobRun.

    job: a Job from cronjobs.registry, or a job name / legacy django-crontab hash.
    scheduled_for: the scheduled minute this run is for (seconds are dropped; naive means
        settings.TIME_ZONE). Given, the run claims the (job, minute) slot; None runs now, unclaimed.
    trigger: one of TRIGGERS, recorded in the row.
    user: the saved user who asked for this run, recorded in triggered_by; None for scheduled runs.
    retry: retry a failed attempt in this process (sleeping `sleep(seconds)` between attempts) while
        the job's `retries` allow; False makes one attempt (Celery retries with its own countdown).
    previous: the attempt this run retries (Celery's retry); this run is then its next attempt.
    tee, prefix: echo the job's output to `tee` as it comes, each line after `prefix` (default: to
        sys.stdout, except for a run fired by the system crontab, whose output cron would mail).

    Returns the row of the last attempt. When another process already holds the slot, returns that
    process's row with `.duplicate = True` and records nothing. Raises UnknownJob or JobConfigError
    (recording nothing) for a job that cannot run, ValueError for an unknown trigger, HistoryUnavailable
    when the database cannot be reached before the claim, dbclock.ClockSkewError when this host's clock
    is too far off to claim, OutcomeNotRecorded when the outcome cannot be saved, and Interrupted (after
    recording the run) when this process got a stop signal (see stop_signals_flagged).
    """
    if trigger not in TRIGGERS:
        raise ValueError(f"unknown trigger {trigger!r}; one of {', '.join(TRIGGERS)}")
    if tee is ECHO:  # cron mails whatever a line prints: a crontab-fired run only records its output
        tee = None if trigger == JobRun.Trigger.CRONTAB else sys.stdout
    job = _runnable(job)
    slot = _minute(scheduled_for) if scheduled_for is not None else None
    attempt, first = (1, None) if previous is None else (previous.attempt + 1, previous.retry_of or previous)
    record = _attempt(job, slot, trigger, user, attempt, first, tee, prefix)
    return _retried(job, record, tee=tee, prefix=prefix, sleep=sleep) if retry else record


def run_claimed(
    job: Job, record: JobRun, *, retry: bool = True, tee=None, prefix: str = "", sleep=time.sleep
) -> JobRun:
    """Supervise a run claimed with claim() (by `crontab work`), then its retries; like run()."""
    record = supervise(job, record, tee=tee, prefix=prefix)
    return _retried(job, record, tee=tee, prefix=prefix, sleep=sleep) if retry else record


def _retried(job: Job, record: JobRun, *, tee, prefix: str, sleep) -> JobRun:
    """Retry a failed attempt while the job's `retries` allow, each attempt claimed and supervised here."""
    while (delay := retry_delay(job, record)) is not None:
        sleep(delay)
        first = record.retry_of or record
        record = _attempt(
            job, record.scheduled_for, record.trigger, record.triggered_by, record.attempt + 1, first, tee, prefix
        )
    return record


def _attempt(job: Job, slot, trigger: str, user, attempt: int, first, tee, prefix: str) -> JobRun:
    try:
        record, claimed = claim(job, slot, trigger, user, attempt=attempt, first=first)
    except DatabaseError as exc:
        raise _history_unavailable(job, exc) from exc
    if not claimed:
        return record
    return supervise(job, record, tee=tee, prefix=prefix)


def supervise(job: Job, record: JobRun, *, tee=None, prefix: str = "") -> JobRun:
    """Execute the claimed run's job in a supervised child process and record its outcome."""
    pending = supervisor.pending_stop()
    if pending is not None:  # a stop signal arrived while the run was being claimed: do not start it
        outcome = supervisor.Outcome(JobRun.Status.INTERRUPTED, f"interrupted by {supervisor.signal_name(pending)} "
                                     "before the job started", stop_signal=pending)  # fmt: skip
    else:
        _announce(signals.run_started, run=record, job=job)
        outcome = supervisor.Supervisor(job, record, tee=tee, prefix=prefix).execute()
    record_outcome(record, outcome)
    if outcome.stop_signal is not None:
        raise Interrupted(outcome.stop_signal, record)
    return record


def retry_delay(job: Job, record: JobRun) -> float | None:
    """Seconds to wait before retrying `record`, or None when it is not retried.

    Retried: a failed attempt (a timeout only with retry_on_timeout) while attempts <= retries.
    Delay: retry_backoff doubled for each attempt so far, capped by retry_backoff_max, then "equal
    jitter" (between half and all of it), so that retries of many jobs do not fire in step.
    """
    if record.duplicate or record.attempt > job.retries or getattr(record, "late", False):
        return None
    retryable = record.status == JobRun.Status.FAILED or (
        record.status == JobRun.Status.TIMED_OUT and job.retry_on_timeout
    )
    if not retryable:
        return None
    delay = min(job.retry_backoff * 2 ** (record.attempt - 1), job.retry_backoff_max)
    return delay / 2 + random.uniform(0, delay / 2)  # noqa: S311 - jitter, not security


def _history_unavailable(job: Job, exc: DatabaseError) -> HistoryUnavailable:
    """The error to raise when the history is unreachable; runs the job first if it may run without it."""
    error = HistoryUnavailable(job, exc)  # the caller reports it: `crontab run` in one line
    with contextlib.suppress(DatabaseError):
        connection.close()
    if job.run_without_history:
        outcome = supervisor.Supervisor(job, None).execute()
        error.outcome = (outcome.status, outcome.result)
    return error


def _runnable(job: Job | str) -> Job:
    if isinstance(job, str):
        job = get_job(job)
    elif job.problems:
        raise JobConfigError("; ".join(p.msg for p in job.problems))
    job.resolve()  # an unimportable job is refused before anything is claimed
    return job


# --- claiming -----------------------------------------------------------------------------------------
def claim(
    job: Job,
    slot: datetime | None,
    trigger: str,
    user=None,
    *,
    attempt: int = 1,
    first: JobRun | None = None,
    detached: bool = False,
) -> tuple[JobRun, bool]:
    """Record a skip or a missed slot, or insert the `running` row: (row, True) when the caller owns it.

    The database refuses the row when the slot is taken, the job is paused (a scheduled slot), or
    another run of it is running; only then are dead runs looked for (the reaper), and the claim made
    again once. `detached`: the run is claimed for a supervisor that starts as a new process (start()).
    """
    offset = dbclock.check_claim_allowed()
    not_to_start = _reason_not_to_start(job, slot, dbclock.now(), attempt=attempt)
    if not_to_start:
        status, reason = not_to_start
        gap = gaps.covering_gap(job.name, slot) if status == JobRun.Status.MISSED else None
        if gap is not None:  # the sweeper recorded this minute as missed already
            gap.duplicate = True
            return gap, False
        return _record_skip(job, slot, trigger, reason, user, status=status, attempt=attempt, first=first), False
    if job.allow_overlap:
        # Overlapping runs never stand in each other's way, so no refused claim would find a dead one.
        reaper.reap(job.name)
    return _claim(job, slot, trigger, user, attempt=attempt, first=first, offset=offset, detached=detached)


def _reason_not_to_start(job: Job, slot: datetime | None, now: datetime, *, attempt: int = 1) -> tuple[str, str] | None:
    """(status, reason) when a scheduled slot is not run (disabled or paused: skipped; too late: missed),
    or None. Runs by hand (no slot) go on: a paused job can still be run now, on purpose.

    A pause is found here only for a late slot (a paused job's slot is a pause, not a miss); otherwise
    the claim finds it: the database refuses to claim a paused job's slot (migration 0006)."""
    if slot is None:
        return None
    if not job.enabled:
        return JobRun.Status.SKIPPED, "job is disabled (enabled: False)"
    late = (now - slot).total_seconds()
    limit = start_limit(job, slot).total_seconds()
    # Retries are late by design: the limit applies to the first attempt.
    if attempt == 1 and late > limit:
        paused = _paused_reason(job)
        if paused:
            return JobRun.Status.SKIPPED, paused
        what = f"grace is {job.grace:g}s" if job.grace is not None else f"its start limit is {limit:g}s (no grace set)"
        return JobRun.Status.MISSED, f"missed: starting {late:.0f}s after its minute, {what}"
    return None


def _paused_reason(job: Job) -> str | None:
    """The skip's reason when the job is paused (who, when, why), else None."""
    pause = pausing.paused(job.name)
    return f"job is {pause.summary}" if pause is not None else None


def _claim(job: Job, slot, trigger: str, user, *, attempt, first, offset, detached, again=False) -> tuple[JobRun, bool]:
    lease = STARTUP_LEASE if detached else timedelta(seconds=conf.lease_ttl())
    try:
        with transaction.atomic():
            before, leased = time.time(), time.monotonic()
            record = _insert_row(
                job,
                slot,
                trigger,
                user,
                attempt,
                first,
                status=JobRun.Status.RUNNING,
                exclusive=not job.allow_overlap,
                pid=None if detached else os.getpid(),
                lease_expires_at=dbclock.sql_now_plus(lease),
                clock_offset=offset,
            )
            dbclock.calibrate(before, time.time(), record.started_at)  # the insert returned the database's time
            record.lease_expires_at = record.started_at + lease
            record.leased_at = leased  # the lease runs from no later than this (time.monotonic())
    except IntegrityError:
        claimed = _slot_holder(job, slot, attempt)
        if claimed is not None:
            return claimed, False
        paused = _paused_reason(job) if slot is not None else None
        if paused:
            return _record_skip(job, slot, trigger, paused, user, attempt=attempt, first=first), False
        again_kwargs = {"attempt": attempt, "first": first, "offset": offset, "detached": detached, "again": True}
        if not again and reaper.reap(job.name):
            return _claim(job, slot, trigger, user, **again_kwargs)
        holder = JobRun.objects.filter(job_name=job.name, status=JobRun.Status.RUNNING, exclusive=True).first()
        if holder is None and not again:  # it finished (or the job was resumed) in the meantime
            return _claim(job, slot, trigger, user, **again_kwargs)
        where = (
            f"run #{holder.pk} on {holder.host} pid {holder.pid} since {_when(holder.started_at)}"
            if holder
            else "another run"
        )
        return _record_skip(job, slot, trigger, f"still running: {where}", user, attempt=attempt, first=first), False
    return record, True


def _when(moment: datetime) -> str:
    return f"{timezone.localtime(moment, schedule_timezone()):%Y-%m-%d %H:%M:%S}"


def _insert_row(job: Job, slot, trigger: str, user, attempt: int, first, *, finished=False, **fields) -> JobRun:
    """One new history row; its start is the database's now (the column's default, read back)."""
    fields.setdefault("pid", os.getpid())
    fields.update(dbclock.started_now())
    if finished:  # a skip starts and ends at the same moment, in no time
        fields.update(finished_at=fields.get("started_at", dbclock.sql_now()), duration=timedelta(0))
    return JobRun.objects.create(
        job_name=job.name,
        scheduled_for=slot,
        trigger=trigger,
        host=HOST,
        triggered_by=user,
        attempt=attempt,
        retry_of=first,
        **fields,
    )


def _minute(value: datetime) -> datetime:
    if timezone.is_naive(value):
        value = value.replace(tzinfo=schedule_timezone())
    return value.replace(second=0, microsecond=0)


def _slot_holder(job: Job, slot: datetime | None, attempt: int = 1) -> JobRun | None:
    if slot is None:
        return None
    existing = JobRun.objects.filter(job_name=job.name, scheduled_for=slot, attempt=attempt).first()
    if existing is not None:
        existing.duplicate = True
    return existing


def _record_skip(
    job: Job,
    slot: datetime | None,
    trigger: str,
    reason: str,
    user=None,
    *,
    status: str = JobRun.Status.SKIPPED,
    attempt: int = 1,
    first=None,
) -> JobRun:
    """A row that starts and ends now, in no time: a skip or a missed slot."""
    try:
        with transaction.atomic():
            record = _insert_row(
                job,
                slot,
                trigger,
                user,
                attempt,
                first,
                status=status,
                exclusive=False,
                result=reason,
                finished=True,
            )
            record.finished_at = record.started_at
    except IntegrityError:
        claimed = _slot_holder(job, slot, attempt)
        if claimed is None:
            raise
        return claimed
    _announce(signals.run_finished, run=record)
    return record


# --- runs started for someone else: the admin, GraphQL, the fire endpoint --------------------------------
def start(job: Job | str, trigger: str, *, user=None, scheduled_for: datetime | None = None) -> JobRun:
    """Claim a run here and hand it to a new supervising process (`crontab run --claimed-run ID`) that
    outlives this one; return at once with the row (`running`), or with the skip, the missed slot or
    the slot's holder (`.duplicate`) when nothing was started. Raises like run() before the claim."""
    if trigger not in TRIGGERS:
        raise ValueError(f"unknown trigger {trigger!r}; one of {', '.join(TRIGGERS)}")
    job = _runnable(job)
    slot = _minute(scheduled_for) if scheduled_for is not None else None
    record, claimed = claim(job, slot, trigger, user, detached=True)
    if not claimed:
        return record
    try:
        spawn_supervisor(record)
    except OSError as exc:
        reason = f"its supervising process could not be started: {exc}"
        record_outcome(record, supervisor.Outcome(JobRun.Status.FAILED, reason))
    return record


# Longest a web request may wait for a run it started (GraphQL runCronJob's `wait`): well below the
# production server's worker timeout (gunicorn: 30 s).
RUN_WAIT_MAX = 20


def wait_for(record: JobRun, seconds: float, poll: float = 0.25) -> JobRun:
    """The run, read again until it is no longer running or `seconds` have passed."""
    deadline = time.monotonic() + seconds
    while True:
        record.refresh_from_db()
        if record.status != JobRun.Status.RUNNING or time.monotonic() >= deadline:
            return record
        time.sleep(poll)


def supervisor_command(record: JobRun) -> list[str]:
    """The command that supervises a run claimed by start(): this project's manage.py, these settings."""
    from cronjobs.system_crontab import get_config

    config = get_config()
    if config.manage_path is None:
        raise OSError("cannot find manage.py; set CRONTAB_DJANGO_MANAGE_PATH")
    return [
        sys.executable,
        str(config.manage_path),
        "crontab",
        "run",
        record.job_name,
        "--claimed-run",
        str(record.pk),
        f"--settings={config.settings_module}",
    ]


def spawn_supervisor(record: JobRun) -> None:
    """Start the supervising process in a session of its own (a web worker's restart does not stop it)."""
    argv = supervisor_command(record)
    process = subprocess.Popen(  # noqa: S603 - our own manage.py, no shell
        argv,
        cwd=os.path.dirname(argv[1]),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )
    # Collected when it ends, so it never lingers as a zombie of a long-lived web worker.
    threading.Thread(target=process.wait, name=f"cronjobs-run-{record.pk}", daemon=True).start()


def adopt(run_id: int) -> tuple[Job, JobRun]:
    """In the process started by start(): take the run over (its pid, its first lease) and return it."""
    record = JobRun.objects.filter(pk=run_id).first()
    if record is None:
        raise NotAdoptable(f"there is no run #{run_id}")
    if record.status != JobRun.Status.RUNNING or record.pid is not None:
        raise NotAdoptable(f"run #{run_id} of {record.job_name} is {record.status}, not waiting for its supervisor")
    job = _runnable(record.job_name)
    lease = dbclock.sql_now_plus(timedelta(seconds=conf.lease_ttl()))
    leased = time.monotonic()
    taken = JobRun.objects.filter(pk=run_id, status=JobRun.Status.RUNNING, pid__isnull=True).update(
        pid=os.getpid(), host=HOST, lease_expires_at=lease, renewed_at=dbclock.sql_now()
    )
    if not taken:
        raise NotAdoptable(f"run #{run_id} of {record.job_name} was taken over or closed meanwhile")
    record.pid, record.host, record.leased_at = os.getpid(), HOST, leased
    return job, record


def abandon_claimed_run(run_id: int, reason: str) -> None:
    """Close a run claimed by start() that its supervising process cannot take: failed, saying why."""
    record = JobRun.objects.filter(pk=run_id, status=JobRun.Status.RUNNING, pid__isnull=True).first()
    if record is not None:
        record_outcome(record, supervisor.Outcome(JobRun.Status.FAILED, reason))


# --- recording the outcome ------------------------------------------------------------------------------
def record_outcome(record: JobRun, outcome: supervisor.Outcome) -> None:
    """Write the outcome on the database's clock, unless another process closed the run first: then
    keep it beside theirs (late_status, late_result) and mark the record `.late`. Retries on a fresh
    connection when the database refuses (CRONJOBS_SAVE_RETRY_DELAYS); OutcomeNotRecorded when all fail."""
    # The end is the database's clock as this process reads it (its offset measured at the claim), so
    # the row and what the alerts report from it hold the same time and duration, in one statement.
    finished = max(dbclock.now(), record.started_at)
    fields = {
        "status": outcome.status,
        "finished_at": finished,
        "duration": finished - record.started_at,
        "result": outcome.result[:SUMMARY_LIMIT],
        "traceback": outcome.traceback,
        "output": outcome.output,
    }
    if _saved(
        record,
        outcome.status,
        lambda: JobRun.objects.filter(pk=record.pk, status=JobRun.Status.RUNNING).update(**fields),
    ):
        for name, value in fields.items():
            setattr(record, name, value)
        _announce(signals.run_finished, run=record)
        return
    late = {
        "late_status": outcome.status,
        "late_finished_at": dbclock.sql_now(),
        "late_result": outcome.result[:SUMMARY_LIMIT],
    }
    _saved(record, outcome.status, lambda: JobRun.objects.filter(pk=record.pk, late_status="").update(**late))
    record.refresh_from_db()
    record.late = True
    logger.warning(
        "cronjobs: run #%s of %s had already been closed as %s (%s); its own outcome, %s, is kept beside it",
        record.pk,
        record.job_name,
        record.status,
        record.result,
        outcome.status,
    )


def _saved(record: JobRun, status: str, write) -> int:
    delays = list(conf.get("CRONJOBS_SAVE_RETRY_DELAYS"))
    while True:
        try:
            return write()
        except DatabaseError as exc:
            if connection.in_atomic_block or not delays:
                raise OutcomeNotRecorded(record, status, exc) from exc
            logger.warning("cronjobs: saving the outcome of run #%s failed (%s); retrying", record.pk, one_line(exc))
            with contextlib.suppress(DatabaseError):
                connection.close()
            time.sleep(delays.pop(0))


def _announce(signal_, **kwargs) -> None:
    # A receiver's failure (a mail server down, a bug) must never change or lose the recorded outcome.
    for receiver, response in signal_.send_robust(sender=JobRun, **kwargs):
        if isinstance(response, Exception):
            logger.error("cronjobs: receiver %r of a run signal failed: %r", receiver, response, exc_info=response)


# --- stop signals -----------------------------------------------------------------------------------------
@contextlib.contextmanager
def stop_signals_flagged() -> Iterator[None]:
    """While inside, TERM, HUP, INT and QUIT only set a flag: a claim or a record is never cut in half,
    a running job is stopped by its supervisor and recorded `interrupted`, and run() then raises
    Interrupted. `crontab run` and each run `crontab work` starts use it; Celery and web servers keep
    their own signal handling."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {
        sig: signal.signal(sig, lambda signum, frame: supervisor.request_stop(signum))
        for sig in supervisor.STOP_SIGNALS
    }
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        supervisor.clear_stop()
