"""Is every job on time? One snapshot of all jobs' state, in a fixed number of queries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import connection
from django.db.models import Max

from cronjobs import dbclock
from cronjobs.models import JobLatest, JobPause, JobRun
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


class JobHealth:
    """One job's state in a snapshot. `last_run` (the JobRun) is read when first asked for: the snapshot
    reads the runs of the jobs whose last run did not succeed eagerly and the others' together, in one
    query, if anyone asks (the admin page, `crontab show`); /health/cron/ and /metrics never do."""

    __slots__ = ("job", "state", "error", "pause", "_row", "_runs", "_timing")

    def __init__(self, job, state, timing, runs, row, error="", pause=None):
        self.job: Job = job
        self.state: str = state
        self.error: str = error  # why the job cannot be scheduled (a broken entry), or why its run is stuck
        self.pause: JobPause | None = pause
        self._row = row  # the job's JobLatest row as _latest_rows reads it, or None
        self._runs: _LastRuns = runs
        self._timing: _Timing = timing

    def __repr__(self) -> str:
        return f"<JobHealth {self.job.name}: {self.state}>"

    @property
    def previous_run(self) -> datetime | None:
        """The job's latest due minute, in its zone."""
        return self._timing.previous_run

    @property
    def next_run(self) -> datetime | None:
        return self._timing.next_run

    @property
    def grace(self) -> timedelta:
        """The start limit of previous_run."""
        return self._timing.grace

    @property
    def last_run(self) -> JobRun | None:
        """The job's last run that was not a skip."""
        return self._runs.get(self.job.name)

    @property
    def last_status(self) -> str | None:
        return self._row[0] if self._row else None

    @property
    def last_success(self) -> datetime | None:
        """When the job's last successful run finished."""
        return from_epoch_us(as_epoch_us(self._row[1])) if self._row else None

    def latest_times(self) -> tuple[int | str | None, int | str | None]:
        """(last success, last start) as _latest_rows reads them (a snapshot taken with `timestamps=True`:
        /metrics): compare them as they are, as_epoch_us() gives their value; None where there is none."""
        return (self._row[1], self._row[2]) if self._row else (None, None)

    @property
    def next_start(self) -> datetime | None:
        """When the job next starts: its next due minute plus its `jitter` offset."""
        return self.job.start_at(self.next_run) if self.next_run else None

    @property
    def healthy(self) -> bool:
        return self.state in HEALTHY

    @property
    def problem(self) -> str:
        if self.state == State.LATE:
            since = self.last_success.isoformat() if self.last_success else "never"
            due = self._timing.overdue.astimezone(self.job.zone).isoformat()
            return f"late: last success {since}, due {due} (+{self._timing.overdue_grace} grace)"
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


HEALTHY = frozenset((State.OK, State.NEW, State.RUNNING, State.DISABLED, State.PAUSED, State.RETRYING))


class _LastRuns:
    """The last run of each job of one snapshot: the unsettled ones (not succeeded) read with it, the
    rest in one query when first asked for, through JobLatest (no list of ids to send)."""

    def __init__(self, names: list[str] | None):
        self.names, self.read, self.complete = names, {}, False

    def _rows(self, latest):
        if self.names is not None:
            latest = latest.filter(job_name__in=self.names)
        return JobRun.objects.filter(id__in=latest.values("last_id"))

    def read_unsettled(self) -> None:
        unsettled = JobLatest.objects.exclude(last_status=JobRun.Status.SUCCEEDED)
        self.read.update((run.job_name, run) for run in with_lease_state(self._rows(unsettled)))

    def get(self, name: str) -> JobRun | None:
        if name not in self.read and not self.complete:
            self.complete = True
            for run in self._rows(JobLatest.objects.all()):
                self.read.setdefault(run.job_name, run)
        return self.read.get(name)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


# Up to this many jobs, the snapshot's queries name them; beyond, they read every row and skip the
# undeclared (a list of thousands of names costs more to send than the few extra rows cost to skip).
NAMED_QUERY_MAX = 200


@dataclass(frozen=True)
class _Timing:
    """What a schedule says at the snapshot's `now`: computed once per distinct schedule, zone and grace."""

    previous_run: datetime | None = None  # the latest due minute, in the job's zone
    next_run: datetime | None = None
    grace: timedelta = timedelta(0)  # the start limit of previous_run
    # The latest due minute whose start limit has passed (in UTC), and that limit: a job with no success
    # since that minute is late.
    overdue: datetime | None = None
    overdue_grace: timedelta = timedelta(0)
    overdue_key: int | str = 0  # overdue as _latest_rows writes times (latest_key): compared with them
    error: str = ""
    # Every value above holds for any `now` in [valid_from, valid_until): until the next due minute, or
    # until the start limit of the minute after `overdue` passes, whichever comes first.
    valid_from: datetime = datetime.min.replace(tzinfo=UTC)
    valid_until: datetime = datetime.max.replace(tzinfo=UTC)

    @classmethod
    def of(cls, job: Job, now: datetime) -> _Timing:
        try:
            previous_run = job.latest_run(now)
            next_run = job.next_run(now)
            overdue = _overdue_minute(job, now)
            # Limits never reach past the next fire, so no later minute's limit passes before this one's.
            after = job.next_run(overdue)
            changes = min(next_run.astimezone(UTC), after.astimezone(UTC) + start_limit(job, after))
            return cls(
                previous_run,
                next_run,
                start_limit(job, previous_run),
                overdue.astimezone(UTC),
                start_limit(job, overdue),
                latest_key(overdue),
                valid_from=now,
                valid_until=changes,
            )
        except Exception as exc:  # a schedule croniter cannot place (check refuses these; be safe anyway)
            return cls(error=f"cannot schedule {job.schedule!r}: {exc}")

    @classmethod
    def cached(cls, job: Job, now: datetime, cache: dict) -> _Timing:
        """The job's timing at `now`, from `cache` (the registry's) while it still holds."""
        timing = cache.get(job.timing_key)
        if timing is None or not timing.valid_from <= now < timing.valid_until:
            timing = cache[job.timing_key] = cls.of(job, now)
        return timing


def _overdue_minute(job: Job, now: datetime) -> datetime:
    """The latest due minute `m` with m + start limit(m) < now. Not always the latest due minute: an
    every-minute job's latest minute is always within its limit, the one before need not be."""
    if job.grace is not None:
        return job.latest_run(now - timedelta(seconds=job.grace, microseconds=1))
    minute = job.latest_run(now)
    # The default limit is at most the interval to the next fire, so the second minute back has passed.
    for _ in range(2):
        if minute.astimezone(UTC) + start_limit(job, minute) < now:
            break
        minute = job.latest_run(minute - timedelta(minutes=1))
    return minute


NO_TIMING = _Timing()


def snapshot(
    jobs: list[Job] | None = None, *, now: datetime | None = None, timestamps: bool = False
) -> list[JobHealth]:
    """The health of each job (CRONJOBS order), in two or three queries whatever the number of jobs
    and runs: each job's JobLatest row (kept by triggers), the pauses, and the runs of the jobs whose
    last run did not succeed (failing or running: their details decide the state). `timestamps`: read
    each job's last start too (JobHealth.latest_times(): /metrics)."""
    now = (now or dbclock.now()).astimezone(UTC)
    jobs = list(get_registry().jobs if jobs is None else jobs)
    names = [job.name for job in jobs] if len(jobs) <= NAMED_QUERY_MAX else None
    latest = _latest_rows(names, timestamps)
    pauses = JobPause.objects.all() if names is None else JobPause.objects.filter(job_name__in=names)
    paused = {pause.job_name: pause for pause in pauses}
    succeeded = JobRun.Status.SUCCEEDED
    runs = _LastRuns(names)
    if any(row[0] != succeeded for row in latest.values()):
        runs.read_unsettled()
    timings: dict[tuple, _Timing] = {}  # this snapshot's, checked once each against the registry's
    shared = get_registry().timings
    found = []
    append, get_row, get_timing = found.append, latest.get, timings.get
    ok, late, new, disabled = State.OK, State.LATE, State.NEW, State.DISABLED
    for job in jobs:  # the hot loop (once per declared job): the common case decided inline
        name = job.name
        row, pause = get_row(name), paused.get(name) if paused else None
        timing = get_timing(job.timing_key)
        if timing is None:
            timing = timings[job.timing_key] = _Timing.cached(job, now, shared)
        if job.problems or timing.error or (row is not None and row[0] != succeeded):
            append(_unusual(job, now, timing, row, runs, pause))
            continue
        if not job.enabled:
            state = disabled
        elif pause is not None:
            state = State.PAUSED
        elif row is None:
            state = new
        elif row[1] is None or row[1] < timing.overdue_key:
            state = late
        else:
            state = ok
        append(JobHealth(job, state, timing, runs, row, "", pause))
    return found


def _latest_rows(names: list[str] | None, timestamps: bool) -> dict[str, tuple]:
    """{job: (last status, last success, [last start])} from JobLatest, the times as the database hands
    them over cheapest, in a form that sorts as they do: integer microseconds since the epoch on
    PostgreSQL, UTC text 'YYYY-MM-DD HH:MM:SS[.ffffff]' on SQLite (stored so). Most are only compared
    (latest_key), and the driver's conversion to aware datetimes costs more per value than the rest."""
    if connection.vendor == "postgresql":
        time = "(EXTRACT(EPOCH FROM {}) * 1000000)::bigint"
    else:  # as text, or the driver would convert them
        time = "CAST({} AS TEXT)"
    columns = ["job_name", "last_status", time.format("last_success_at")]
    if timestamps:
        columns.append(time.format("last_started_at"))
    sql = f"SELECT {', '.join(columns)} FROM {JobLatest._meta.db_table}"
    params: list = []
    if names is not None:
        if not names:
            return {}
        sql += f" WHERE job_name IN ({', '.join(['%s'] * len(names))})"
        params = names
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {row[0]: row[1:] for row in cursor.fetchall()}


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def latest_key(minute: datetime) -> int | str:
    """A whole minute written as _latest_rows writes times. As text without a fraction: a time at that
    very minute, written with or without one (SQLite leaves a zero fraction out), is not before it."""
    if connection.vendor == "postgresql":
        return epoch_us(minute)
    return minute.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def epoch_us(moment: datetime) -> int:
    """`moment` in integer microseconds since the epoch, exactly."""
    return (moment - EPOCH) // timedelta(microseconds=1)


def as_epoch_us(value: int | str | None) -> int | None:
    """A time as _latest_rows reads it, in integer microseconds since the epoch."""
    if value is None or isinstance(value, int):
        return value
    return epoch_us(datetime.fromisoformat(value).replace(tzinfo=UTC))


def from_epoch_us(value: int | None) -> datetime | None:
    return EPOCH + timedelta(microseconds=value) if value is not None else None


def _unusual(job: Job, now: datetime, timing: _Timing, row, runs: _LastRuns, pause: JobPause | None) -> JobHealth:
    """A job that cannot run, whose schedule cannot be placed, or whose last run did not succeed."""
    if job.problems:
        error = "cannot run: " + "; ".join(p.msg for p in job.problems)
        return JobHealth(job, State.FAILING, NO_TIMING, runs, row, error, pause)
    if timing.error:
        return JobHealth(job, State.FAILING, NO_TIMING, runs, row, timing.error, pause)
    last_run = runs.get(job.name)
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
        return JobHealth(job, State.STUCK, timing, runs, row, stuck, pause)
    elif last_run is not None and last_run.status == JobRun.Status.RUNNING:
        state = State.RUNNING
    elif timing.overdue is not None and (row[1] is None or row[1] < timing.overdue_key):
        state = State.LATE
    else:
        state = State.OK
    return JobHealth(job, state, timing, runs, row, pause=pause)


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
    late_state = State.LATE
    late = [item.job.name for item in jobs if item.state == late_state]
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
