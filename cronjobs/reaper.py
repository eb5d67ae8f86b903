"""Dead runs: closing a `running` run whose supervising process is gone, so it stops blocking its job.

Two ways a run is known dead, and no other:

* its lease expired on the database's clock (its supervisor renews it every CRONJOBS_LEASE_SECONDS;
  three missed renewals and it expires): any host may close it, naming the host and the last renewal;
* on the host that runs it, its supervising process no longer exists (or is a zombie, or its pid now
  belongs to a process started later): closed at once, without waiting for the lease.

A run whose lease is current is never closed by another host, whatever its start time, its timeout or
the other host's clock. Supervisors stop their job before the lease expires (cronjobs/supervisor.py)
and the job dies with its supervisor (parent-death signal), so a closed run's job is no longer running;
a supervisor that comes back from a partition writes its real outcome beside the record (runner.py).
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import UTC, datetime, timedelta

from django.db.models import BooleanField, Case, DurationField, ExpressionWrapper, F, Q, Value, When

from cronjobs import dbclock, signals
from cronjobs.models import JobRun

logger = logging.getLogger(__name__)

HOST = socket.gethostname()
# A pid is the run's supervisor only if that process started before it took the run (this much slack).
PID_START_SLACK = timedelta(seconds=5)


def with_lease_state(rows):
    """`rows` annotated with `lease_expired`, compared on the database's clock."""
    return rows.annotate(
        lease_expired=Case(
            When(lease_expires_at__lt=dbclock.sql_now(), then=Value(True)),
            default=Value(False),
            output_field=BooleanField(),
        )
    )


def running_runs(job_name: str | None = None):
    """Running rows annotated with `lease_expired`."""
    rows = JobRun.objects.filter(status=JobRun.Status.RUNNING)
    if job_name is not None:
        rows = rows.filter(job_name=job_name)
    return with_lease_state(rows)


def reap(job_name: str | None = None) -> list[JobRun]:
    """Close every dead running run (of one job, or all). Returns the closed rows, as recorded."""
    closed = []
    for record in running_runs(job_name).filter(Q(lease_expires_at__lt=dbclock.sql_now()) | Q(host=HOST)):
        reason, still = death(record)
        if reason is None:
            continue
        updated = JobRun.objects.filter(still, pk=record.pk, status=JobRun.Status.RUNNING).update(
            status=JobRun.Status.INTERRUPTED,
            finished_at=dbclock.sql_now(),
            duration=ExpressionWrapper(dbclock.sql_now() - F("started_at"), output_field=DurationField()),
            result=reason,
        )
        if updated:
            logger.warning("cronjobs: closed run #%s of %s: %s", record.pk, record.job_name, reason)
            record.refresh_from_db()
            closed.append(record)
            for _receiver, response in signals.run_finished.send_robust(sender=JobRun, run=record):
                if isinstance(response, Exception):
                    logger.error("cronjobs: a receiver of run_finished failed: %r", response, exc_info=response)
    return closed


def death(record: JobRun) -> tuple[str | None, Q]:
    """(why the running row is dead, the condition that must still hold to close it), or (None, _)."""
    if getattr(record, "lease_expired", False):
        renewed = record.renewed_at or record.started_at
        reason = (
            f"its lease expired at {_iso(record.lease_expires_at)}: no renewal from {record.host} "
            f"pid {record.pid or '?'} since {_iso(renewed)}; its supervising process died or lost the database, "
            "so its job was stopped with it (or finished without its outcome recorded)"
        )
        return reason, Q(lease_expires_at__lt=dbclock.sql_now())
    if record.host == HOST and record.pid and not process_alive(record.pid, record.renewed_at or record.started_at):
        reason = (
            f"its supervising process {record.pid} on {record.host} ended while the job ran; "
            "the job was stopped with it"
        )
        return reason, Q(pid=record.pid)
    return None, Q()


def dead_reason(record: JobRun) -> str:
    """Why a running row is dead (for /health/cron/'s `stuck`), or "" while it may be alive."""
    reason, _ = death(record)
    return reason or ""


def _iso(moment: datetime | None) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds") if moment else "?"


def process_alive(pid: int, took_run_at: datetime) -> bool:
    """Whether `pid` on this host is a live process that existed when the run was taken."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    state, age = _process_stat(pid)
    if state in ("Z", "X"):
        return False  # a zombie has ended; only its exit status waits for its parent
    if age is None or took_run_at is None:
        return True
    # A pid can be reused. The process's age is on the kernel's boot clock, which no wall clock (this
    # host's, or the one this process reads: a libfaketime shim) can skew; its start on the database's
    # clock is the database's now less that age.
    process_start = dbclock.now() - timedelta(seconds=age)
    return process_start <= took_run_at + PID_START_SLACK


def _process_stat(pid: int) -> tuple[str | None, float | None]:
    """(state letter, seconds since it started) of a process from /proc, (None, None) where /proc cannot tell."""
    try:
        with open(f"/proc/{pid}/stat") as stat_file:
            fields = stat_file.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime") as uptime_file:
            uptime = float(uptime_file.read().split()[0])
        ticks = int(fields[19])  # field 22 of stat(5), counted from the state field (3)
        return fields[0], max(0.0, uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None, None
