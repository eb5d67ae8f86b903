"""Is every job on time? One snapshot of all jobs' state, in a fixed number of queries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Max, Q

from cronjobs import dbclock
from cronjobs.models import JobPause, JobRun
from cronjobs.reaper import dead_reason, with_lease_state
from cronjobs.registry import Job, get_registry, start_limit
from cronjobs.runner import retry_delay

# A missed slot is a run that should have happened; an interrupted one did not finish: alarms both.
FAILED_STATUSES = (JobRun.Status.FAILED, JobRun.Status.TIMED_OUT, JobRun.Status.INTERRUPTED, JobRun.Status.MISSED)


class State:
    OK = "ok"
    NEW = "new"  # never ran yet: like healthchecks' "new" checks, not an alarm
    LATE = "late"
    FAILING = "failing"
    RUNNING = "running"
    STUCK = "stuck"  # recorded as running, but its process is gone or it is past its timeout
    DISABLED = "disabled"
    PAUSED = "paused"  # paused at run time (crontab pause, admin, GraphQL): not an alarm
    RETRYING = "retrying"  # the last attempt failed and a retry is due within its backoff: not yet an alarm


# How long after a failed attempt its retry may still come (beyond the backoff) before it is an alarm.
RETRY_MARGIN = timedelta(seconds=60)


@dataclass(frozen=True)
class JobHealth:
    job: Job
    state: str
    next_run: datetime | None
    previous_run: datetime | None
    grace: timedelta
    last_run: JobRun | None
    last_success: datetime | None
    error: str = ""  # why the job cannot be scheduled (a broken entry), or why its run is stuck
    pause: JobPause | None = None

    @property
    def next_start(self) -> datetime | None:
        """When the job next starts: its next due minute plus its `jitter` offset."""
        return self.job.start_at(self.next_run) if self.next_run else None

    @property
    def healthy(self) -> bool:
        return self.state in (State.OK, State.NEW, State.RUNNING, State.DISABLED, State.PAUSED, State.RETRYING)

    @property
    def problem(self) -> str:
        if self.state == State.LATE:
            since = self.last_success.isoformat() if self.last_success else "never"
            return f"late: last success {since}, due {self.previous_run.isoformat()} (+{self.grace} grace)"
        if self.error:
            return f"{self.state}: {self.error}"
        if self.state == State.FAILING:
            return f"failing: last run #{self.last_run.pk} {self.last_run.status}: {self.last_run.result[:200]}"
        return ""

    def as_dict(self) -> dict:
        last = self.last_run
        return {
            "name": self.job.name,
            "schedule": self.job.schedule,
            "enabled": self.job.enabled,
            "timezone": self.job.zone.key,
            "retries": self.job.retries,
            "paused": self.pause is not None,
            "paused_by": self.pause.paused_by if self.pause else None,
            "paused_at": _iso(self.pause.paused_at) if self.pause else None,
            "pause_reason": self.pause.reason if self.pause else None,
            "state": self.state,
            "healthy": self.healthy,
            "problem": self.problem or None,
            "next_run": _iso(self.next_start),
            "last_success": _iso(self.last_success),
            "last_run": None
            if last is None
            else {
                "id": last.pk,
                "status": last.status,
                "started_at": _iso(last.started_at),
                "finished_at": _iso(last.finished_at),
                "trigger": last.trigger,
                "attempt": last.attempt,
            },
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def job_grace(job: Job, now: datetime) -> timedelta:
    """How late the job's latest minute may be run before the job is late: its start limit."""
    return start_limit(job, job.latest_run(now))


def snapshot(jobs: list[Job] | None = None, *, now: datetime | None = None) -> list[JobHealth]:
    """The health of each job (CRONJOBS order). Three queries, whatever the number of jobs and runs."""
    now = now or dbclock.now()
    jobs = list(get_registry().jobs if jobs is None else jobs)
    names = [job.name for job in jobs]
    latest = {
        row["job_name"]: row
        for row in JobRun.objects.filter(job_name__in=names)
        .values("job_name")
        .annotate(
            last_success=Max("finished_at", filter=Q(status=JobRun.Status.SUCCEEDED)),
            last_id=Max("id", filter=~Q(status=JobRun.Status.SKIPPED)),
        )
    }
    last_ids = [row["last_id"] for row in latest.values() if row["last_id"]]
    rows = with_lease_state(JobRun.objects.filter(id__in=last_ids)) if last_ids else []
    last_runs = {run.job_name: run for run in rows}
    paused = {pause.job_name: pause for pause in JobPause.objects.filter(job_name__in=names)}
    return [_health(job, now, latest.get(job.name, {}), last_runs.get(job.name), paused.get(job.name)) for job in jobs]


def _health(job: Job, now: datetime, row: dict, last_run: JobRun | None, pause: JobPause | None = None) -> JobHealth:
    last_success = row.get("last_success")
    if job.problems:
        error = "cannot run: " + "; ".join(p.msg for p in job.problems)
        return JobHealth(job, State.FAILING, None, None, timedelta(0), last_run, last_success, error, pause)
    try:
        grace = job_grace(job, now)
        previous_run = job.latest_run(now)
        next_run = job.next_run(now)
    except Exception as exc:  # a schedule croniter cannot place (check refuses these; be safe anyway)
        error = f"cannot schedule {job.schedule!r}: {exc}"
        return JobHealth(job, State.FAILING, None, None, timedelta(0), last_run, last_success, error, pause)
    stuck = _stuck(last_run, now)
    if not job.enabled:
        state = State.DISABLED
    elif pause is not None:
        state = State.PAUSED
    elif last_run is not None and _retry_pending(job, last_run, now):
        state = State.RETRYING
    elif last_run is not None and last_run.status in FAILED_STATUSES:
        state = State.FAILING
    elif stuck:
        return JobHealth(job, State.STUCK, next_run, previous_run, grace, last_run, last_success, stuck, pause)
    elif last_run is not None and last_run.status == JobRun.Status.RUNNING:
        state = State.RUNNING
    elif last_run is None:
        state = State.NEW
    elif previous_run + grace < now and (last_success is None or last_success < previous_run):
        state = State.LATE
    else:
        state = State.OK
    return JobHealth(job, state, next_run, previous_run, grace, last_run, last_success, pause=pause)


def _retry_pending(job: Job, last_run: JobRun, now: datetime) -> bool:
    """The last attempt failed, the job retries it, and the longest backoff has not passed yet."""
    if last_run.status not in FAILED_STATUSES or last_run.finished_at is None:
        return False
    if retry_delay(job, last_run) is None:
        return False
    longest = timedelta(seconds=min(job.retry_backoff * 2 ** (last_run.attempt - 1), job.retry_backoff_max))
    return now <= last_run.finished_at + longest + RETRY_MARGIN


def _stuck(last_run: JobRun | None, now: datetime) -> str:
    """Why a `running` last run is not really running (process gone, past its timeout), or ""."""
    if last_run is None or last_run.status != JobRun.Status.RUNNING:
        return ""
    reason = dead_reason(last_run)
    if not reason:
        return ""
    since = last_run.started_at.isoformat()
    return f"run #{last_run.pk} on {last_run.host} pid {last_run.pid} since {since}: {reason}"


# --- what is wrong beyond single jobs ------------------------------------------------------------------
@dataclass(frozen=True)
class SystemProblem:
    """A problem of the whole engine, not of one job: `kind` is configuration, no scheduler, clock or
    version; an error makes /health/cron/ answer 503, a warning does not."""

    kind: str
    text: str
    error: bool

    def as_dict(self) -> dict:
        return {"kind": self.kind, "problem": self.text, "severity": "error" if self.error else "warning"}


RECENT_RUNS = timedelta(hours=1)  # runs whose recorded clock offset still says something about a host


def problems(jobs: list[JobHealth], *, now: datetime | None = None) -> list[SystemProblem]:
    """Configuration errors (this process's CRONJOBS, or one a scheduler refuses), `no scheduler` when
    jobs are late and no scheduler is alive, hosts whose clock is off, schedulers firing another
    CRONJOBS. A few queries, whatever the number of jobs."""
    from cronjobs import conf, liveness
    from cronjobs.registry import get_registry

    now = now or dbclock.now()
    found = [SystemProblem("configuration", f"{p.id}: {p.msg}", True) for p in get_registry().problems]
    found += [SystemProblem("configuration", f"{p.id}: {p.msg}", True) for p in conf.problems()]
    schedulers = liveness.alive()
    for kind, text in liveness.problems(schedulers):
        found.append(SystemProblem(kind, text, kind == "configuration"))
    late = [item.job.name for item in jobs if item.state == State.LATE]
    if late and not schedulers:
        shown = ", ".join(late[:5]) + (f" and {len(late) - 5} more" if len(late) > 5 else "")
        text = (
            f"{len(late)} job(s) are late ({shown}) and no `crontab work` or Celery beat is alive; "
            "if the system crontab fires them, check the cron daemon and `crontab -l`"
        )
        found.append(SystemProblem("no scheduler", text, True))
    reported = {beat.host for beat in schedulers if dbclock.is_skewed(beat.clock_offset)}
    for host, offset in _skewed_hosts(now):
        if host not in reported:
            found.append(SystemProblem("clock", dbclock.skew_text(offset, host) + " (its recent runs)", False))
    return found


def _skewed_hosts(now: datetime) -> list[tuple[str, float]]:
    """(host, the offset furthest from zero) of hosts whose recent runs recorded a skewed clock."""
    from django.db.models import Min

    rows = (
        JobRun.objects.filter(started_at__gte=now - RECENT_RUNS, clock_offset__isnull=False)
        .values("host")
        .annotate(low=Min("clock_offset"), high=Max("clock_offset"))
        .order_by("host")
    )
    found = []
    for row in rows:
        offset = row["high"] if abs(row["high"]) >= abs(row["low"]) else row["low"]
        if dbclock.is_skewed(offset):
            found.append((row["host"], offset))
    return found
