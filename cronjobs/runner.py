"""The one runner every trigger calls: claims the slot, refuses overlap, enforces the timeout, records the run.

Triggers (`manage.py crontab run`, `crontab work`, Celery beat, the admin, GraphQL) all end in
`run(job, scheduled_for, trigger)`, so the guarantees below hold whichever fired a job:

* a scheduled minute of a job runs at most once across every process, machine and trigger that
  shares the database (a unique JobRun row per (job name, scheduled minute));
* a job does not start while another run of it is still running (a partial unique index on running
  rows), unless the job sets allow_overlap; the refusal is recorded as a `skipped` row;
* every outcome is recorded: succeeded (with a summary of the return value), failed (with the
  traceback), timed_out, skipped (with the reason);
* a run whose process died is detected (same host: its pid is gone; any host: far past its timeout or
  CRONJOBS_STALE_AFTER) and closed, so it cannot block the job forever;
* a scheduled run of a paused job (cronjobs.pausing) is recorded as skipped, naming who paused it;
* a failed run of a job with `retries` is retried after a backoff, each attempt its own row linked to
  the first (the slot is claimed once, by attempt 1); what a run prints and logs is kept in `output`.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import logging
import os
import random
import signal
import socket
import threading
import time
import traceback
from collections.abc import Iterator
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


class JobTimeout(BaseException):
    """Raised inside a job when its timeout expires. A BaseException so `except Exception` in a job
    does not swallow it."""


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

    Returns the row of the last attempt: status succeeded / failed / timed_out / skipped. When another
    process already holds the slot, returns that process's row with `.duplicate = True` and records
    nothing. Raises UnknownJob or JobConfigError (recording nothing) for a job that cannot run, and
    ValueError for an unknown trigger. Never raises for what the job itself does, except that a
    KeyboardInterrupt is recorded and then re-raised.
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
    """One attempt: decide whether the slot is still to run, claim it, execute, record. Every recorded
    outcome (skips included) is announced with the `run_finished` signal."""
    reason = _reason_not_to_start(job, slot, timezone.now(), attempt=attempt)
    if reason:
        return _record_skip(job, slot, trigger, reason, user, attempt=attempt, first=first)
    reap_dead_runs(job.name)
    record, claimed = _claim(job, slot, trigger, user, attempt=attempt, first=first)
    if not claimed:
        return record
    _announce(signals.run_started, run=record, job=job)
    # cron mails whatever a line prints, so a crontab-fired run only records its output.
    with capture_output(tee=trigger != JobRun.Trigger.CRONTAB) as output:
        status, result, tb, interrupt = _execute(job, target)
    _record_outcome(record, status=status, result=result, traceback_text=tb, output=output.text())
    if interrupt is not None:
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


def _runnable(job: Job | str) -> Job:
    if isinstance(job, str):
        return get_job(job)
    if job.problems:
        raise JobConfigError("; ".join(p.msg for p in job.problems))
    return job


def _reason_not_to_start(job: Job, slot: datetime | None, now: datetime, *, attempt: int = 1) -> str:
    """Why a scheduled slot is skipped without running (disabled, paused, too late), or "" to go on.

    Runs by hand (no slot) go on: a paused job can still be run now, on purpose."""
    if slot is None:
        return ""
    if not job.enabled:
        return "job is disabled (enabled: False)"
    pause = pausing.paused(job.name)
    if pause is not None:
        return f"job is {pause.summary}"
    late = (now - slot).total_seconds()
    # Retries are late by design: grace applies to the first attempt.
    if attempt == 1 and job.grace is not None and late > job.grace:
        return f"missed: starting {late:.0f}s after its minute, grace is {job.grace:g}s"
    return ""


def _claim(job: Job, slot: datetime | None, trigger: str, user, *, attempt=1, first=None) -> tuple[JobRun, bool]:
    """Insert the `running` row. (row, True) when this process owns the run; otherwise (the slot's
    holder marked duplicate, or a recorded "still running" skip, False)."""
    try:
        with transaction.atomic():
            record = JobRun.objects.create(
                job_name=job.name,
                scheduled_for=slot,
                trigger=trigger,
                status=JobRun.Status.RUNNING,
                exclusive=not job.allow_overlap,
                host=HOST,
                pid=os.getpid(),
                started_at=timezone.now(),
                triggered_by=user,
                attempt=attempt,
                retry_of=first,
            )
    except IntegrityError:
        claimed = _slot_holder(job, slot, attempt)
        if claimed is not None:
            return claimed, False
        holder = JobRun.objects.filter(job_name=job.name, status=JobRun.Status.RUNNING, exclusive=True).first()
        where = (
            f"run #{holder.pk} on {holder.host} pid {holder.pid} since {holder.started_at:%Y-%m-%d %H:%M:%S}"
            if holder
            else "another run"
        )
        reason = f"still running: {where}"
        return _record_skip(job, slot, trigger, reason, user, attempt=attempt, first=first), False
    return record, True


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
    _save_outcome(record, fields)
    _announce(signals.run_finished, run=record)


def reap_dead_runs(job_name: str | None = None) -> list[JobRun]:
    """Close `running` rows whose process is gone, so they stop blocking their job. Returns them.

    Same host: the pid no longer exists (or now belongs to a process started after the run).
    Any host: no outcome recorded by timeout + 60 s, or, for jobs without a timeout, by
    settings.CRONJOBS_STALE_AFTER seconds (default 86400).
    """
    running = JobRun.objects.filter(status=JobRun.Status.RUNNING)
    if job_name is not None:
        running = running.filter(job_name=job_name)
    now = timezone.now()
    closed = []
    for record in running:
        verdict = _death_verdict(record, now)
        if verdict is None:
            continue
        status, reason = verdict
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
    job: Job, slot: datetime | None, trigger: str, reason: str, user=None, *, attempt: int = 1, first=None
) -> JobRun:
    now = timezone.now()
    try:
        with transaction.atomic():
            record = JobRun.objects.create(
                job_name=job.name,
                scheduled_for=slot,
                trigger=trigger,
                status=JobRun.Status.SKIPPED,
                exclusive=False,
                host=HOST,
                pid=os.getpid(),
                started_at=now,
                finished_at=now,
                duration=timedelta(0),
                result=reason,
                triggered_by=user,
                attempt=attempt,
                retry_of=first,
            )
    except IntegrityError:
        claimed = _slot_holder(job, slot, attempt)
        if claimed is None:
            raise
        return claimed
    _announce(signals.run_finished, run=record)
    return record


def _execute(job: Job, target) -> tuple[str, str, str, BaseException | None]:
    """Call the job; return (status, result summary, traceback, interrupt to re-raise)."""
    # Copies, so a job that mutates its arguments cannot change the next run's.
    args, kwargs = copy.deepcopy(list(job.args)), copy.deepcopy(dict(job.kwargs))
    try:
        with _deadline(job.timeout):
            value = target(*args, **kwargs)
    except JobTimeout:
        return JobRun.Status.TIMED_OUT, f"timed out after {job.timeout:g}s", traceback.format_exc(), None
    except KeyboardInterrupt as exc:
        return JobRun.Status.FAILED, "interrupted (KeyboardInterrupt)", traceback.format_exc(), exc
    except BaseException as exc:  # noqa: B036 - SystemExit from a job is a failure to record, too
        return JobRun.Status.FAILED, f"{type(exc).__name__}: {exc}", traceback.format_exc(), None
    if value is None:
        return JobRun.Status.SUCCEEDED, "", "", None
    return JobRun.Status.SUCCEEDED, value if isinstance(value, str) else repr(value), "", None


@contextlib.contextmanager
def _deadline(seconds: float | None) -> Iterator[None]:
    """Raise JobTimeout in the calling thread after `seconds`.

    In the main thread a SIGALRM timer interrupts even a blocking sleep or read. Elsewhere (a
    thread of `crontab work`, say) the exception is injected into the thread and fires at its next
    Python instruction.
    """
    if not seconds:
        yield
        return
    if threading.current_thread() is threading.main_thread():

        def on_alarm(signum, frame):
            raise JobTimeout(f"timed out after {seconds:g}s")

        previous = signal.signal(signal.SIGALRM, on_alarm)
        try:
            try:
                signal.setitimer(signal.ITIMER_REAL, seconds)
                yield
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        finally:
            signal.signal(signal.SIGALRM, previous)
        return

    thread_id = ctypes.c_ulong(threading.get_ident())
    lock = threading.Lock()
    state = {"in_job": True, "fired": False}

    def fire() -> None:
        with lock:
            if state["in_job"]:
                state["fired"] = True
                ctypes.pythonapi.PyThreadState_SetAsyncExc(thread_id, ctypes.py_object(JobTimeout))

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        with lock:
            state["in_job"] = False
            if state["fired"]:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(thread_id, None)  # drop it if not yet delivered
        if state["fired"]:
            raise JobTimeout(f"timed out after {seconds:g}s")


def _save_outcome(record: JobRun, fields: dict) -> None:
    for attribute, value in fields.items():
        setattr(record, attribute, value)
    try:
        JobRun.objects.filter(pk=record.pk).update(**fields)
    except DatabaseError:
        # The job may have left the connection broken; a fresh one records the outcome.
        if connection.in_atomic_block:
            raise
        connection.close()
        JobRun.objects.filter(pk=record.pk).update(**fields)


def _death_verdict(record: JobRun, now: datetime) -> tuple[str, str] | None:
    if record.host == HOST and record.pid and not _pid_alive(record.pid, record.started_at):
        return JobRun.Status.FAILED, f"process {record.pid} on {record.host} ended without recording an outcome"
    try:
        timeout = get_job(record.job_name).timeout
    except Exception:  # a job since removed or broken in CRONJOBS: fall back to the stale limit
        timeout = None
    if timeout is not None:
        if now > record.started_at + timedelta(seconds=timeout) + TIMEOUT_MARGIN:
            return (
                JobRun.Status.TIMED_OUT,
                f"no outcome {timeout:g}s (its timeout) + 60s after the start; presumed dead",
            )
        return None
    stale_after = getattr(settings, "CRONJOBS_STALE_AFTER", 86400)
    if now > record.started_at + timedelta(seconds=stale_after):
        return JobRun.Status.FAILED, f"no outcome {stale_after}s after the start (CRONJOBS_STALE_AFTER); presumed dead"
    return None


def _pid_alive(pid: int, started_at: datetime) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    # A pid can be reused: a process that started after the run began is not the run's process.
    process_start = _process_start(pid)
    return process_start is None or process_start <= started_at + timedelta(seconds=5)


def _process_start(pid: int) -> datetime | None:
    try:
        with open(f"/proc/{pid}/stat") as stat_file:
            fields = stat_file.read().rsplit(")", 1)[1].split()
        with open("/proc/stat") as system_stat:
            boot = next(int(line.split()[1]) for line in system_stat if line.startswith("btime "))
        ticks = int(fields[19])  # field 22 of stat(5), counted from the state field (3)
        return datetime.fromtimestamp(boot + ticks / os.sysconf("SC_CLK_TCK"), tz=UTC)
    except (OSError, ValueError, IndexError, StopIteration):
        return None
