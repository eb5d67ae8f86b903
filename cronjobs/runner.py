"""The one runner every trigger calls: claims the slot, refuses overlap, enforces the timeout, records the run.

Triggers (`manage.py crontab run`, `crontab work`, Celery beat, the admin, GraphQL) all end in
`run(job, scheduled_for, trigger)`, so the guarantees below hold whichever fired a job:

* a scheduled minute of a job runs at most once across every process, machine and trigger that
  shares the database (a unique JobRun row per (job name, scheduled minute));
* a job does not start while another run of it is still running (a partial unique index on running
  rows), unless the job sets allow_overlap; the refusal is recorded as a `skipped` row;
* every outcome is recorded once: succeeded (with a summary of the return value), failed (with the
  traceback), timed_out, interrupted (a stop signal), skipped or missed (with the reason);
* a timeout means it: the job's database statement is cancelled and its transaction rolled back
  before `timed_out` is recorded, and a job that swallows the timeout is still recorded timed_out;
* a run whose process died is detected (same host: its pid is gone or a zombie; any host: far past
  its timeout or CRONJOBS_STALE_AFTER) and closed, so it cannot block the job forever; a live run
  on this host is never declared dead: past its timeout it is stopped (SIGTERM, then SIGKILL) first;
* a scheduled run of a paused job (cronjobs.pausing) is recorded as skipped, naming who paused it;
* a failed run of a job with `retries` is retried after a backoff, each attempt its own row linked to
  the first (the slot is claimed once, by attempt 1); what a run prints and logs is kept in `output`.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import logging
import math
import os
import random
import signal
import socket
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone

from cronjobs import pausing, signals
from cronjobs.models import JobRun
from cronjobs.output import capture_output
from cronjobs.registry import Job, JobConfigError, get_job, schedule_timezone

logger = logging.getLogger(__name__)

TRIGGERS = tuple(JobRun.Trigger.values)  # crontab, manual, work, celery, admin, graphql
HOST = socket.gethostname()
# How long after its timeout a run from another host may still be finishing before it is presumed dead.
TIMEOUT_MARGIN = timedelta(seconds=60)
SUMMARY_LIMIT = 2000
# The signals that end `crontab run`; each is recorded as `interrupted` (see stop_signals_interrupt).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGQUIT)
# Seconds between SIGTERM and SIGKILL when a live run on this host is past its timeout, and the
# margin past the timeout before it is stopped (its own process gets that long to record itself).
DEFAULT_STOP_WAIT = 5.0
# Pauses between attempts to save an outcome the database refused (3 attempts after the first).
DEFAULT_SAVE_RETRY_DELAYS = (0.5, 2.0, 5.0)


class JobTimeout(KeyboardInterrupt):
    """Raised inside a job when its timeout expires.

    Not an Exception, so `except Exception` in a job does not swallow it; a KeyboardInterrupt,
    because psycopg cancels the statement in progress on the server when one interrupts a query
    (otherwise the server goes on and commits it after the run was recorded timed_out)."""


class Interrupted(KeyboardInterrupt):
    """Raised inside a job when a stop signal arrives (crontab run); a KeyboardInterrupt for the same
    reason as JobTimeout."""

    def __init__(self, signum: int):
        self.signum = signum
        self.database_state = database_state()  # at the moment the signal arrived
        super().__init__(f"interrupted by {signal.Signals(signum).name}")


class HistoryUnavailable(Exception):
    """The run history's database could not be reached before the run was claimed: nothing recorded.

    `outcome` is (status, result) when the job ran anyway, unrecorded (job option run_without_history);
    None when it did not run."""

    def __init__(self, job: Job, cause: BaseException):
        self.job, self.cause, self.outcome = job, cause, None
        super().__init__(f"run history unreachable ({database_label()}): {one_line(cause)}")


class OutcomeNotRecorded(Exception):
    """The job ran but its outcome could not be saved, even after retries; the row stays `running`."""

    def __init__(self, record: JobRun, cause: BaseException):
        self.record, self.cause = record, cause
        super().__init__(
            f"run #{record.pk} of {record.job_name} {record.status} but its outcome could not be recorded "
            f"({database_label()}): {one_line(cause)}"
        )


def one_line(exc: BaseException) -> str:
    """An exception as one line: its type and the first line of its message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def database_label() -> str:
    """The run history's database as people name it (vendor and name, never credentials)."""
    return f"{connection.vendor} database {connection.settings_dict.get('NAME')!s}"


def run(
    job: Job | str,
    scheduled_for: datetime | None = None,
    trigger: str = "manual",
    *,
    user=None,
    retry: bool = True,
    previous: JobRun | None = None,
    sleep=time.sleep,
) -> JobRun:
    """Run `job` once through the guarantees above and return its JobRun row.

    job: a Job from cronjobs.registry, or a job name / legacy django-crontab hash.
    scheduled_for: the scheduled minute this run is for (seconds are dropped; naive means
        settings.TIME_ZONE). Given, the run claims the (job, minute) slot; None runs now, unclaimed.
    trigger: one of TRIGGERS, recorded in the row.
    user: the saved user who asked for this run (admin "Run now", GraphQL runCronJob), recorded in
        the row's triggered_by; None for scheduled runs.
    retry: retry a failed attempt in this process (sleeping `sleep(seconds)` between attempts) while
        the job's `retries` allow; False makes one attempt (Celery retries with its own countdown).
    previous: the attempt this run retries (Celery's retry); this run is then its next attempt.

    Returns the row of the last attempt: status succeeded / failed / timed_out / skipped / missed. When
    another process already holds the slot, returns that process's row with `.duplicate = True` and
    records nothing. Raises UnknownJob or JobConfigError (recording nothing) for a job that cannot
    run, ValueError for an unknown trigger, HistoryUnavailable when the database cannot be reached
    before the claim, OutcomeNotRecorded when the outcome cannot be saved. Never raises for what the
    job itself does, except that an interruption (KeyboardInterrupt, or Interrupted from a stop signal)
    is recorded as `interrupted` and then re-raised.

    Steps, for each attempt: validate, decide whether the slot is still to run, claim it, execute,
    record. Every recorded outcome (skips included) is announced with the `run_finished` signal. Stop
    signals are held back outside the job itself, so a claim or a record is never cut in half.
    """
    if trigger not in TRIGGERS:
        raise ValueError(f"unknown trigger {trigger!r}; one of {', '.join(TRIGGERS)}")
    job = _runnable(job)
    target = job.resolve()
    slot = _minute(scheduled_for) if scheduled_for is not None else None
    attempt, first = (1, None) if previous is None else (previous.attempt + 1, previous.retry_of or previous)
    record = _attempt(job, target, slot, trigger, user, attempt=attempt, first=first)
    while retry and (delay := retry_delay(job, record)) is not None:
        sleep(delay)
        record = _attempt(job, target, slot, trigger, user, attempt=record.attempt + 1, first=record.retry_of or record)
    return record


def _attempt(job: Job, target, slot: datetime | None, trigger: str, user, *, attempt: int, first) -> JobRun:
    """One attempt: start (skip, or claim), execute with its output captured, record."""
    with _stop_signals_masked(signal.SIG_BLOCK):
        try:
            record, claimed = _start(job, slot, trigger, user, attempt=attempt, first=first)
        except DatabaseError as exc:
            raise _history_unavailable(job, target, exc) from exc
        if not claimed:
            return record
        _announce(signals.run_started, run=record, job=job)
        # cron mails whatever a line prints, so a crontab-fired run only records its output.
        with capture_output(tee=trigger != JobRun.Trigger.CRONTAB) as output:
            status, result, tb, interrupt = _execute(job, target)
        _record_outcome(record, status=status, result=result, traceback_text=tb, output=output.text())
    if interrupt is not None:
        interrupt.record = record
        raise interrupt
    return record


def retry_delay(job: Job, record: JobRun) -> float | None:
    """Seconds to wait before retrying `record`, or None when it is not retried.

    Retried: a failed attempt (a timeout only with retry_on_timeout) while attempts <= retries.
    Delay: retry_backoff doubled for each attempt so far, capped by retry_backoff_max, then "equal
    jitter" (between half and all of it), so that retries of many jobs do not fire in step.
    """
    if record.duplicate or record.attempt > job.retries:
        return None
    retryable = record.status == JobRun.Status.FAILED or (
        record.status == JobRun.Status.TIMED_OUT and job.retry_on_timeout
    )
    if not retryable:
        return None
    delay = min(job.retry_backoff * 2 ** (record.attempt - 1), job.retry_backoff_max)
    return delay / 2 + random.uniform(0, delay / 2)  # noqa: S311 - jitter, not security


def _start(job: Job, slot: datetime | None, trigger: str, user, *, attempt=1, first=None) -> tuple[JobRun, bool]:
    """Record a skip or missed slot, or claim: (row, True) when this process runs."""
    not_to_start = _reason_not_to_start(job, slot, timezone.now(), attempt=attempt)
    if not_to_start:
        status, reason = not_to_start
        return _record_skip(job, slot, trigger, reason, user, status=status, attempt=attempt, first=first), False
    if job.allow_overlap:
        # Overlapping runs never stand in each other's way, so no refused claim would find a dead one.
        reap_dead_runs(job.name)
    return _claim(job, slot, trigger, user, attempt=attempt, first=first)


def _history_unavailable(job: Job, target, exc: DatabaseError) -> HistoryUnavailable:
    """The error to raise when the history is unreachable; runs the job first if it may run without it."""
    error = HistoryUnavailable(job, exc)  # the caller reports it: `crontab run` in one line
    with contextlib.suppress(DatabaseError):
        connection.close()
    if job.run_without_history:
        status, result, _tb, _interrupt = _execute(job, target)
        error.outcome = (status, result)
    return error


def _runnable(job: Job | str) -> Job:
    if isinstance(job, str):
        return get_job(job)
    if job.problems:
        raise JobConfigError("; ".join(p.msg for p in job.problems))
    return job


def _reason_not_to_start(job: Job, slot: datetime | None, now: datetime, *, attempt: int = 1) -> tuple[str, str] | None:
    """(status, reason) when a scheduled slot is not run (disabled or paused: skipped; too late: missed),
    or None. Runs by hand (no slot) go on: a paused job can still be run now, on purpose.

    A pause is found here only for a late slot (a paused job's slot is a pause, not a miss); otherwise
    the claim finds it: the database refuses to claim a paused job's slot (migration 0006), which
    saves a query on every run."""
    if slot is None:
        return None
    if not job.enabled:
        return JobRun.Status.SKIPPED, "job is disabled (enabled: False)"
    late = (now - slot).total_seconds()
    # Retries are late by design: grace applies to the first attempt.
    if attempt == 1 and job.grace is not None and late > job.grace:
        paused = _paused_reason(job)
        if paused:
            return JobRun.Status.SKIPPED, paused
        return JobRun.Status.MISSED, f"missed: starting {late:.0f}s after its minute, grace is {job.grace:g}s"
    return None


def _paused_reason(job: Job) -> str | None:
    """The skip's reason when the job is paused (who, when, why), else None."""
    pause = pausing.paused(job.name)
    return f"job is {pause.summary}" if pause is not None else None


def _claim(
    job: Job, slot: datetime | None, trigger: str, user, *, attempt=1, first=None, again=False
) -> tuple[JobRun, bool]:
    """Insert the `running` row. (row, True) when this process owns the run; otherwise (the slot's
    holder marked duplicate, or a recorded "paused" or "still running" skip, False).

    The database refuses the row when the slot is taken, the job is paused (a scheduled slot), or
    another run of it is running. Only then are dead runs looked for: a dead run that stood in the
    way is closed and the claim made again, once (`again`).
    """
    try:
        with transaction.atomic():
            record = _insert_row(
                job, slot, trigger, user, attempt, first, status=JobRun.Status.RUNNING, exclusive=not job.allow_overlap
            )
    except IntegrityError:
        claimed = _slot_holder(job, slot, attempt)
        if claimed is not None:
            return claimed, False
        paused = _paused_reason(job) if slot is not None else None
        if paused:
            return _record_skip(job, slot, trigger, paused, user, attempt=attempt, first=first), False
        if not again and reap_dead_runs(job.name):
            return _claim(job, slot, trigger, user, attempt=attempt, first=first, again=True)
        holder = JobRun.objects.filter(job_name=job.name, status=JobRun.Status.RUNNING, exclusive=True).first()
        if holder is None and not again:  # it finished (or the job was resumed) in the meantime
            return _claim(job, slot, trigger, user, attempt=attempt, first=first, again=True)
        where = (
            f"run #{holder.pk} on {holder.host} pid {holder.pid} since {holder.started_at:%Y-%m-%d %H:%M:%S}"
            if holder
            else "another run"
        )
        reason = f"still running: {where}"
        return _record_skip(job, slot, trigger, reason, user, attempt=attempt, first=first), False
    return record, True


def _insert_row(job: Job, slot, trigger: str, user, attempt: int, first, *, finished=False, **fields) -> JobRun:
    """One new history row of this process; `finished` rows (skips) start and end now, in no time."""
    now = timezone.now()
    if finished:
        fields.update(finished_at=now, duration=timedelta(0))
    return JobRun.objects.create(
        job_name=job.name,
        scheduled_for=slot,
        trigger=trigger,
        host=HOST,
        pid=os.getpid(),
        started_at=now,
        triggered_by=user,
        attempt=attempt,
        retry_of=first,
        **fields,
    )


def _record_outcome(record: JobRun, *, status: str, result: str, traceback_text: str, output: str = "") -> None:
    finished = timezone.now()
    fields = {
        "status": status,
        "finished_at": finished,
        "duration": finished - record.started_at,
        "result": result[:SUMMARY_LIMIT],
        "traceback": traceback_text,
        "output": output,
    }
    if _save_outcome(record, fields):
        _announce(signals.run_finished, run=record)


def reap_dead_runs(job_name: str | None = None) -> list[JobRun]:
    """Close `running` rows whose process is gone, so they stop blocking their job. Returns them.

    Same host: the pid no longer exists, is a zombie, or now belongs to a process started after the
    run. A live process is never declared dead: past its timeout (+ CRONJOBS_STOP_WAIT) it is first
    stopped, SIGTERM then SIGKILL, and then recorded timed_out (unless it recorded itself).
    Another host: no outcome recorded by timeout + 60 s, or, for jobs without a timeout, by
    settings.CRONJOBS_STALE_AFTER seconds (default 86400): presumed dead, and the record says so.
    """
    running = JobRun.objects.filter(status=JobRun.Status.RUNNING)
    if job_name is not None:
        running = running.filter(job_name=job_name)
    now = timezone.now()
    closed = []
    for record in running:
        verdict = run_verdict(record, now)
        if verdict is None:
            continue
        status, reason = verdict
        if status == "overdue":
            status, reason = _stop_overdue(record, reason)
        now = timezone.now()
        updated = JobRun.objects.filter(pk=record.pk, status=JobRun.Status.RUNNING).update(
            status=status, finished_at=now, duration=now - record.started_at, result=reason
        )
        if updated:
            logger.warning("cronjobs: closed run #%s of %s: %s", record.pk, record.job_name, reason)
            record.refresh_from_db()
            closed.append(record)
            _announce(signals.run_finished, run=record)
    return closed


def _announce(signal, **kwargs) -> None:
    # A receiver's failure (a mail server down, a bug) must never change or lose the recorded outcome.
    for receiver, response in signal.send_robust(sender=JobRun, **kwargs):
        if isinstance(response, Exception):
            logger.error("cronjobs: receiver %r of a run signal failed: %r", receiver, response, exc_info=response)


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
    try:
        with transaction.atomic():
            record = _insert_row(
                job, slot, trigger, user, attempt, first, status=status, exclusive=False, result=reason, finished=True
            )
    except IntegrityError:
        claimed = _slot_holder(job, slot, attempt)
        if claimed is None:
            raise
        return claimed
    _announce(signals.run_finished, run=record)
    return record


# --- executing a job: timeout, stop signals, the database work it leaves behind -------------------
@dataclass
class _Deadline:
    seconds: float | None
    fired_at: float | None = None  # time.monotonic() when the timeout fired
    database_state: str = "idle"  # the job's connection when it fired (see database_state)


def _execute(job: Job, target) -> tuple[str, str, str, BaseException | None]:
    """Call the job; return (status, result summary, traceback, interrupt to re-raise)."""
    # Copies, so a job that mutates its arguments cannot change the next run's.
    args, kwargs = copy.deepcopy(list(job.args)), copy.deepcopy(dict(job.kwargs))
    deadline = _Deadline(job.timeout)
    outcome = _call(target, args, kwargs, deadline)
    if deadline.fired_at is not None and outcome[0] != JobRun.Status.TIMED_OUT:
        # The job caught the timeout and carried on: it still did not finish in time.
        late = time.monotonic() - deadline.fired_at
        status, result, tb, interrupt = outcome
        ended = "then was interrupted" if status == JobRun.Status.INTERRUPTED else f"then {status}"
        summary = f"timed out after {job.timeout:g}s; the job caught the timeout, ran on {late:.1f}s and {ended}"
        outcome = (JobRun.Status.TIMED_OUT, f"{summary}: {result}" if result else summary, tb, interrupt)
    return outcome


def _call(target, args, kwargs, deadline: _Deadline) -> tuple[str, str, str, BaseException | None]:
    try:
        with _database_limit(deadline.seconds), _deadline(deadline), _stop_signals_masked(signal.SIG_UNBLOCK):
            value = target(*args, **kwargs)
    except JobTimeout:
        undo = _abandon_database_work(deadline.database_state)
        return JobRun.Status.TIMED_OUT, f"timed out after {deadline.seconds:g}s; {undo}", traceback.format_exc(), None
    except Interrupted as exc:
        undo = _abandon_database_work(exc.database_state)
        return JobRun.Status.INTERRUPTED, f"{exc}; {undo}", traceback.format_exc(), exc
    except KeyboardInterrupt as exc:
        undo = _abandon_database_work("idle")
        return (
            JobRun.Status.INTERRUPTED,
            f"interrupted by SIGINT (KeyboardInterrupt); {undo}",
            traceback.format_exc(),
            exc,
        )
    except BaseException as exc:  # noqa: B036 - SystemExit from a job is a failure to record, too
        return JobRun.Status.FAILED, f"{type(exc).__name__}: {exc}", traceback.format_exc(), None
    if value is None:
        return JobRun.Status.SUCCEEDED, "", "", None
    return JobRun.Status.SUCCEEDED, value if isinstance(value, str) else repr(value), "", None


def _abandon_database_work(state_when_stopped: str) -> str:
    """Cancel the statement the job left running and roll back its transaction; say what that undid.

    Django's atomic blocks roll back as the exception leaves them, and psycopg cancels a statement a
    KeyboardInterrupt breaks into; this catches what is left (a connection still busy or in a
    transaction) and then starts the recording on a fresh connection. Inside a caller's own
    transaction (a test, a request) only the statement is cancelled: the transaction is its owner's.
    """
    raw = connection.connection
    if raw is None:
        return "no database connection was open"
    now = _pg_transaction_status(raw)
    with contextlib.suppress(Exception):
        if now == "active":
            raw.cancel()
    # psycopg may have cancelled the statement already, as the interruption went through it.
    busy = "active" if "active" in (now, state_when_stopped) else now
    if busy == "idle" and state_when_stopped in ("intrans", "inerror", "in transaction"):
        busy = state_when_stopped
    if not connection.in_atomic_block:
        with contextlib.suppress(Exception):
            connection.close()  # closing rolls back whatever the job left open
    if busy == "active":
        return "its database statement was cancelled and its transaction rolled back; work it committed before stays"
    if busy in ("intrans", "inerror", "in transaction"):
        return "its open database transaction was rolled back; work it committed before stays"
    return "no database statement was running; work it committed before stays"


def database_state() -> str:
    """The state of this thread's database connection (see _pg_transaction_status); "idle" when none."""
    raw = connection.connection
    return _pg_transaction_status(raw) if raw is not None else "idle"


def _pg_transaction_status(raw) -> str:
    """psycopg's view of a connection: idle, active (a statement running), intrans, inerror, unknown."""
    info = getattr(raw, "info", None)
    if info is None or not hasattr(info, "transaction_status"):
        return "in transaction" if connection.in_atomic_block else "idle"
    return info.transaction_status.name.lower()


@contextlib.contextmanager
def _database_limit(seconds: float | None) -> Iterator[None]:
    """On PostgreSQL, no statement of the job may outlive its timeout on the server, even if this
    process is killed: statement_timeout is set to the timeout for the job's connection."""
    if not seconds or connection.vendor != "postgresql":
        yield
        return
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('statement_timeout', %s, false)", [f"{math.ceil(seconds * 1000)}ms"])
    except DatabaseError:
        pass  # the database is unreachable (a run without history): the job finds that out itself
    try:
        yield
    finally:
        if connection.connection is not None and not connection.needs_rollback:
            with contextlib.suppress(Exception), connection.cursor() as cursor:
                cursor.execute("RESET statement_timeout")


@contextlib.contextmanager
def _deadline(deadline: _Deadline | float | None) -> Iterator[_Deadline]:
    """Raise JobTimeout in the calling thread after `deadline.seconds`; `fired_at` says it fired.

    In the main thread a SIGALRM timer interrupts even a blocking sleep or read. Elsewhere (a
    thread of `crontab work`, say) the exception is injected into the thread and fires at its next
    Python instruction, and the thread's database statement is cancelled so that it returns.
    """
    if not isinstance(deadline, _Deadline):
        deadline = _Deadline(deadline)
    seconds = deadline.seconds
    if not seconds:
        yield deadline
        return
    if threading.current_thread() is threading.main_thread():

        def on_alarm(signum, frame):
            deadline.fired_at = time.monotonic()
            deadline.database_state = database_state()
            raise JobTimeout(f"timed out after {seconds:g}s")

        previous = signal.signal(signal.SIGALRM, on_alarm)
        try:
            try:
                signal.setitimer(signal.ITIMER_REAL, seconds)
                yield deadline
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        finally:
            signal.signal(signal.SIGALRM, previous)
        return
    with _thread_deadline(deadline):
        yield deadline


@contextlib.contextmanager
def _thread_deadline(deadline: _Deadline) -> Iterator[None]:
    thread_id = ctypes.c_ulong(threading.get_ident())
    database = connection._connections[connection._alias]  # this thread's own DatabaseWrapper  # noqa: SLF001
    lock = threading.Lock()
    state = {"in_job": True}

    def fire() -> None:
        with lock:
            if state["in_job"]:
                deadline.fired_at = time.monotonic()
                if database.connection is not None:
                    deadline.database_state = _pg_transaction_status(database.connection)
                ctypes.pythonapi.PyThreadState_SetAsyncExc(thread_id, ctypes.py_object(JobTimeout))
                with contextlib.suppress(Exception):
                    if database.connection is not None and _pg_transaction_status(database.connection) == "active":
                        database.connection.cancel()

    timer = threading.Timer(deadline.seconds, fire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        with lock:
            state["in_job"] = False
            if deadline.fired_at is not None:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(thread_id, None)  # drop it if not yet delivered
        if deadline.fired_at is not None:
            raise JobTimeout(f"timed out after {deadline.seconds:g}s")


# --- stop signals -----------------------------------------------------------------------------------
@contextlib.contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """While inside, TERM, HUP, INT and QUIT raise Interrupted (in the main thread): the runner records
    the run as `interrupted` and re-raises it. `crontab run` wraps its run in this; other callers
    (Celery, the web server) keep their own signal handling."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signum, frame):
        raise Interrupted(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def _stop_signals_masked(how: int) -> Iterator[None]:
    """SIG_BLOCK: stop signals wait in the kernel, delivered when unblocked (inside the job, or right
    after the run is recorded). SIG_UNBLOCK: let them through (around the job itself)."""
    previous = signal.pthread_sigmask(how, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


# --- saving an outcome ----------------------------------------------------------------------------
def _save_outcome(record: JobRun, fields: dict) -> bool:
    """Write the outcome unless another process closed the row first (then keep theirs: False).

    A database error is retried on a fresh connection (CRONJOBS_SAVE_RETRY_DELAYS); when every try
    fails, OutcomeNotRecorded."""
    for attribute, value in fields.items():
        setattr(record, attribute, value)
    delays = list(getattr(settings, "CRONJOBS_SAVE_RETRY_DELAYS", DEFAULT_SAVE_RETRY_DELAYS))
    while True:
        try:
            updated = JobRun.objects.filter(pk=record.pk, status=JobRun.Status.RUNNING).update(**fields)
            break
        except DatabaseError as exc:
            # The job may have left the connection broken, or the database went away: a fresh one.
            if connection.in_atomic_block or not delays:
                raise OutcomeNotRecorded(record, exc) from exc
            logger.warning("cronjobs: saving the outcome of run #%s failed (%s); retrying", record.pk, one_line(exc))
            with contextlib.suppress(DatabaseError):
                connection.close()
            time.sleep(delays.pop(0))
    if updated:
        return True
    own = record.status
    record.refresh_from_db()
    logger.warning(
        "cronjobs: run #%s of %s was already closed as %s (%s); its own outcome %s was not written",
        record.pk,
        record.job_name,
        record.status,
        record.result,
        own,
    )
    return False


# --- dead or overdue runs -------------------------------------------------------------------------
def run_verdict(record: JobRun, now: datetime) -> tuple[str, str] | None:
    """What to do with a `running` row: None (it may still be running), ("overdue", reason) for a
    live run on this host past its timeout, or (status, reason) to close it with."""
    timeout = _job_timeout(record.job_name)
    if record.host == HOST and record.pid:
        if not _pid_alive(record.pid, record.started_at):
            return JobRun.Status.FAILED, f"process {record.pid} on {record.host} ended without recording an outcome"
        if timeout is not None and now > record.started_at + timedelta(seconds=timeout + _stop_wait()):
            return "overdue", f"process {record.pid} still running {(now - record.started_at).total_seconds():.0f}s"
        return None  # alive: never declared dead
    if timeout is not None:
        if now > record.started_at + timedelta(seconds=timeout) + TIMEOUT_MARGIN:
            return (
                JobRun.Status.TIMED_OUT,
                f"no outcome {timeout:g}s (its timeout) + 60s after the start; presumed dead "
                f"(host {record.host} cannot be checked from {HOST})",
            )
        return None
    stale_after = getattr(settings, "CRONJOBS_STALE_AFTER", 86400)
    if now > record.started_at + timedelta(seconds=stale_after):
        return JobRun.Status.FAILED, f"no outcome {stale_after}s after the start (CRONJOBS_STALE_AFTER); presumed dead"
    return None


def _job_timeout(name: str) -> float | None:
    try:
        return get_job(name).timeout
    except Exception:  # a job since removed or broken in CRONJOBS: fall back to the stale limit
        return None


def _stop_wait() -> float:
    return float(getattr(settings, "CRONJOBS_STOP_WAIT", DEFAULT_STOP_WAIT))


def _stop_overdue(record: JobRun, situation: str) -> tuple[str, str]:
    """Stop a live run on this host that is past its timeout: SIGTERM, then SIGKILL. (status, reason)."""
    timeout = _job_timeout(record.job_name)
    sent = []
    for signum in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(record.pid, signum)
        except ProcessLookupError:
            break
        except PermissionError:
            return JobRun.Status.TIMED_OUT, f"timed out: {situation}, past its {timeout:g}s timeout; not ours to stop"
        sent.append(signal.Signals(signum).name)
        if _wait_until_gone(record, _stop_wait()):
            break
    how = " then ".join(sent) or "nothing (it ended meanwhile)"
    return JobRun.Status.TIMED_OUT, f"timed out: {situation}, past its {timeout:g}s timeout; stopped with {how}"


def _wait_until_gone(record: JobRun, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _pid_alive(record.pid, record.started_at):
            return True
        time.sleep(0.05)
    return not _pid_alive(record.pid, record.started_at)


def _pid_alive(pid: int, started_at: datetime) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    state, process_start = _process_stat(pid)
    if state in ("Z", "X"):
        return False  # a zombie has ended; only its exit status waits for its parent
    # A pid can be reused: a process that started after the run began is not the run's process.
    return process_start is None or process_start <= started_at + timedelta(seconds=5)


def _process_stat(pid: int) -> tuple[str | None, datetime | None]:
    """(state letter, start time) of a process from /proc, (None, None) where /proc cannot tell."""
    try:
        with open(f"/proc/{pid}/stat") as stat_file:
            fields = stat_file.read().rsplit(")", 1)[1].split()
        with open("/proc/stat") as system_stat:
            boot = next(int(line.split()[1]) for line in system_stat if line.startswith("btime "))
        ticks = int(fields[19])  # field 22 of stat(5), counted from the state field (3)
        return fields[0], datetime.fromtimestamp(boot + ticks / os.sysconf("SC_CLK_TCK"), tz=UTC)
    except (OSError, ValueError, IndexError, StopIteration):
        return None, None
