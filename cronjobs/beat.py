"""Celery route: a beat schedule from CRONJOBS, a beat scheduler stamping each message with its minute, the task.

Imported only by Celery processes (the app in alx_backend_graphql_crm/celery.py, and the worker's
task autodiscovery through cronjobs/tasks.py), so plain Django processes never import Celery.

How a task learns its scheduled minute: beat computes it when it sends the message
(`CronJobScheduler.apply_async`: the job's latest scheduled minute at that moment, which is the
minute beat is firing for, since beat sends when the minute is due) and passes it as the
`scheduled_for_iso` argument. The alternative, `job.latest_run(now)` in the worker, is wrong
whenever the worker is late: a message for 12:00 executed at 12:01:10 would claim 12:01, so 12:00
would never run and the real 12:01 message would find its minute taken. Carried in the message,
a late delivery still claims its own minute (and the runner records it as missed when it is later
than the job's `grace`), and a redelivered message finds its minute claimed and does nothing.
Messages from another beat scheduler (no argument, but Celery's `celery_beat_task` header) fall
back to the latest minute at execution; a call by hand (`run_cronjob.delay(name)`) has neither and
runs now without claiming a minute, like `crontab run <name>`.

Retries (the job's `retries` option) use Celery's own retry: a failed attempt ends the task with
`self.retry(countdown=<the runner's backoff>)`, and the retried message carries the minute and the
id of the attempt it retries (`previous_run`), so the next attempt is recorded linked to the first.

Time zones: each job's schedule is a `zoned_crontab` in the job's own zone (its `timezone` option).
Beat's firing instants are only a trigger: the minute stamped into the message is the registry's
latest due minute (with its daylight-saving rules), so a minute beat fires twice when the clocks
go back is claimed once.
"""

from __future__ import annotations

import copy
import logging
import sys
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from celery import shared_task
from celery.beat import PersistentScheduler
from celery.schedules import BaseSchedule, crontab
from croniter import croniter

from cronjobs.registry import Job, get_job, get_registry

logger = logging.getLogger(__name__)

TASK_NAME = "cronjobs.run_cronjob"
ENTRY_PREFIX = "cronjob:"  # beat entry names: "cronjob:<job name>"


class CronJobFailed(Exception):
    """The job's run failed or timed out: the task fails with the run's summary."""


# --- schedules -------------------------------------------------------------------------------------
class zoned_crontab(crontab):  # noqa: N801 - named like celery.schedules.crontab, which it extends
    """Celery's crontab read in a fixed zone (the schedule's), whatever the Celery app's timezone is."""

    def __init__(self, *args: Any, zone: str = "UTC", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.zone = zone

    @property
    def tz(self):  # overrides a cached_property of BaseSchedule
        return ZoneInfo(self.zone)

    def __reduce__(self):
        cls, args, state = super().__reduce__()
        return cls, args, {**state, "zone": self.zone}

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        state = dict(state)
        self.zone = state.pop("zone", "UTC")
        super().__setstate__(state)

    def __repr__(self) -> str:
        return f"<zoned_crontab: {super().__repr__()[10:-1]} {self.zone}>"


class any_crontab(BaseSchedule):  # noqa: N801
    """Due when any of its crontabs is due: cron's rule when both day-of-month and day-of-week are set.

    Cron (and croniter) fire on a day matching *either* field; Celery's crontab requires both, so
    such a schedule becomes the union of (day-of-month, any weekday) and (any day, day-of-week).
    """

    def __init__(self, *parts: crontab, nowfun=None, app=None) -> None:
        self.parts = parts
        super().__init__(nowfun=nowfun, app=app)  # sets nowfun through the property below

    @property
    def app(self):
        return self._app or self.parts[0].app

    @app.setter
    def app(self, app) -> None:
        self._app = app
        for part in self.parts:
            part.app = app

    @property
    def nowfun(self):
        return self._nowfun

    @nowfun.setter
    def nowfun(self, value) -> None:
        self._nowfun = value
        for part in self.parts:
            part.nowfun = value

    def remaining_estimate(self, last_run_at: datetime):
        return min(part.remaining_estimate(last_run_at) for part in self.parts)

    def is_due(self, last_run_at: datetime):
        states = [part.is_due(last_run_at) for part in self.parts]
        due = any(state.is_due for state in states)
        return type(states[0])(due, min(state.next for state in states))

    def __reduce__(self):
        return self.__class__, tuple(self.parts)

    def __eq__(self, other: Any) -> bool:
        if isinstance(other, any_crontab):
            return self.parts == other.parts
        return NotImplemented

    def __repr__(self) -> str:
        return f"<any_crontab: {' | '.join(map(repr, self.parts))}>"


def _field(values: list) -> str:
    # croniter's expansion (numbers, names resolved, weekday 7 folded to 0) written back as a plain
    # list, so Celery reads exactly the values cron does: no names, ranges or steps left to
    # interpret differently (Celery wraps reversed ranges and refuses weekday 7).
    if "*" in values:  # croniter sorts a '*' inside a list ("1,*") first and reads the field as '*'
        return "*"
    return ",".join(str(v) for v in sorted(set(values)))


def celery_schedule(job: Job) -> BaseSchedule:
    """The Celery schedule firing at exactly the minutes croniter gives for the job's expression."""
    minute, hour, day, month, weekday = (_field(values) for values in croniter(job.cron_expression).expanded)
    zone = job.zone.key

    def make(day_of_month: str, day_of_week: str) -> zoned_crontab:
        return zoned_crontab(
            minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month, day_of_week=day_of_week, zone=zone
        )

    if day != "*" and weekday != "*":
        return any_crontab(make(day, "*"), make("*", weekday))
    return make(day, weekday)


def beat_schedule(tasks: Mapping[str, str] | None = None) -> dict[str, dict]:
    """One beat entry per enabled job, named "cronjob:<name>".

    tasks maps a job name to the Celery task that runs it (default: the generic run_cronjob); such
    a task takes `scheduled_for_iso`, the argument beat adds to every entry's message.
    """
    tasks = dict(tasks or {})
    jobs = {job.name: job for job in get_registry().jobs}
    for name in tasks.keys() - jobs.keys():
        logger.warning("cronjobs: Celery task %s is mapped to job %r, which is not in CRONJOBS", tasks[name], name)
    schedule = {}
    for job in jobs.values():
        if not job.enabled or job.problems:
            continue
        task = tasks.get(job.name, TASK_NAME)
        schedule[ENTRY_PREFIX + job.name] = {
            "task": task,
            "schedule": celery_schedule(job),
            "args": (job.name,) if task == TASK_NAME else (),
            # A message not consumed before the next minute of an every-minute job is still run
            # (its minute is in the message); expiry is left to the job's grace in the runner.
            "options": {},
        }
    return schedule


class CronJobScheduler(PersistentScheduler):
    """Beat's default scheduler, plus: every CRONJOBS entry's message carries the minute it fires for,
    an entry is also due at a due minute Celery's crontab skips over a daylight-saving change, a job
    with `jitter` is sent its start offset into the minute (countdown), and once a minute beat says it
    is alive (cronjobs/liveness.py), records the gaps nothing fired (cronjobs/gaps.py) and closes runs
    whose lease expired (cronjobs/reaper.py)."""

    _minute = None
    _beat = None

    def tick(self, *args, **kwargs):
        self._housekeeping()
        return super().tick(*args, **kwargs)

    def _housekeeping(self) -> None:
        from django.db import DatabaseError

        from cronjobs import dbclock, gaps, liveness, reaper
        from cronjobs.models import JobRun, SchedulerBeat

        try:
            minute = dbclock.now().replace(second=0, microsecond=0)
            if minute == self._minute:
                return
            self._minute = minute
            jobs = [job for job in get_registry().jobs if not job.problems]
            if self._beat is None:
                self._beat = liveness.Heartbeat(SchedulerBeat.Route.BEAT, len(jobs))
            self._beat.tick()
            gaps.sweep(jobs, trigger=JobRun.Trigger.CELERY)
            reaper.reap()
        except DatabaseError as exc:  # the database is down: beat keeps sending; try again next minute
            logger.warning("cronjobs: beat's housekeeping failed: %s", exc)

    def is_due(self, entry):
        state = super().is_due(entry)
        if not entry.name.startswith(ENTRY_PREFIX):
            return state
        return due_by_registry(get_job(entry.name[len(ENTRY_PREFIX) :]), entry, state)

    def apply_async(self, entry, producer=None, advance=True, **kwargs):
        if not entry.name.startswith(ENTRY_PREFIX):
            return super().apply_async(entry, producer, advance, **kwargs)
        entry = self.reserve(entry) if advance else entry
        job_name = entry.name[len(ENTRY_PREFIX) :]
        sending = copy.copy(entry)
        sending.kwargs = {**(entry.kwargs or {}), "scheduled_for_iso": scheduled_minute(job_name)}
        offset = get_job(job_name).start_offset
        if offset:  # jitter: the task waits for its second; the minute it claims stays the minute
            sending.options = {**(entry.options or {}), "countdown": max(0.0, offset - _seconds_into_minute())}
        return super().apply_async(sending, producer, False, **kwargs)


def due_by_registry(job: Job, entry, state):
    """Celery's verdict, corrected by the registry's due minutes (its DST rules are cronie's).

    Celery's crontab fires a time inside the spring-forward gap an hour late (02:30 at 03:30); the
    registry says 03:00. Due when the registry has a due minute after the entry's last run; the next
    check is no later than the registry's next due minute. A Celery fire the registry does not have
    (the second 02:30 when the clocks go back) is stamped with the registry's latest minute, which
    is already claimed, so it runs nothing.
    """
    now = entry.default_now()
    last_run_at = entry.schedule.maybe_make_aware(entry.last_run_at)
    due = state.is_due or job.latest_run(now) > last_run_at
    wait = max(0.0, (job.next_run(now) - now).total_seconds())
    return type(state)(due, min(state.next, wait))


def scheduled_minute(job_name: str, now: datetime | None = None) -> str:
    """The minute a firing at `now` (default: the database's now) is for: the job's latest scheduled
    minute, ISO 8601 with offset."""
    from cronjobs import dbclock

    return get_job(job_name).latest_run(now or dbclock.now()).isoformat()


def _seconds_into_minute() -> float:
    from cronjobs import dbclock

    now = dbclock.now()
    return now.second + now.microsecond / 1e6


# --- the task ----------------------------------------------------------------------------------------
def run_job_task(task, job_name: str, scheduled_for_iso: str | None, previous_run: int | None = None) -> dict:
    """Run a job through the runner for a Celery task; raises CronJobFailed when the run fails, or
    Celery's Retry while the job's `retries` allow another attempt."""
    from cronjobs.models import JobRun
    from cronjobs.runner import retry_delay, run

    job = get_job(job_name)  # UnknownJob / JobConfigError: the task fails, nothing recorded
    scheduled_for = _scheduled_for(task, job, scheduled_for_iso)
    previous = JobRun.objects.filter(pk=previous_run, job_name=job.name).first() if previous_run else None
    # The job runs in a child of this worker process, which supervises it (timeout, lease): Celery's own
    # time limits would kill this process, and with it the record of what happened.
    record = run(job, scheduled_for=scheduled_for, trigger="celery", retry=False, previous=previous, tee=sys.stdout)
    outcome = {
        "job": job.name,
        "run": record.pk,
        "status": record.status,
        "attempt": record.attempt,
        "scheduled_for": record.scheduled_for.isoformat() if record.scheduled_for else None,
        "duplicate": record.duplicate,
        "result": record.result[:200],
    }
    if not record.duplicate and record.status in (JobRun.Status.FAILED, JobRun.Status.TIMED_OUT):
        delay = retry_delay(job, record)
        if delay is not None:
            kwargs = {**(getattr(task.request, "kwargs", None) or {}), "previous_run": record.pk}
            kwargs["scheduled_for_iso"] = outcome["scheduled_for"]
            raise task.retry(countdown=delay, kwargs=kwargs, max_retries=job.retries)
        raise CronJobFailed(f"{job.name} run #{record.pk} {record.status}: {record.result}")
    return outcome


def _scheduled_for(task, job: Job, scheduled_for_iso: str | None) -> datetime | None:
    from django.utils.dateparse import parse_datetime

    if scheduled_for_iso:
        scheduled_for = parse_datetime(scheduled_for_iso)
        if scheduled_for is None:
            raise ValueError(f"scheduled_for_iso {scheduled_for_iso!r} is not an ISO datetime")
        return scheduled_for
    if _from_beat(task):
        from cronjobs import dbclock

        return job.latest_run(dbclock.now())
    return None


def _from_beat(task) -> bool:
    request = getattr(task, "request", None)
    if request is None:
        return False
    headers = getattr(request, "headers", None) or {}
    return bool(getattr(request, "celery_beat_task", None) or headers.get("celery_beat_task"))


@shared_task(bind=True, name=TASK_NAME)
def run_cronjob(self, name: str, scheduled_for_iso: str | None = None, previous_run: int | None = None) -> dict:
    """Run CRONJOBS job `name` for the minute `scheduled_for_iso` (see the module docstring)."""
    return run_job_task(self, name, scheduled_for_iso, previous_run)
