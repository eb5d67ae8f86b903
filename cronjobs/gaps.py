"""No silent gaps: the minutes that nothing fired are recorded, one `missed` row per gap.

A gap is a run of a job's due minutes, each older than the job's start limit (so no route may still
start it: a claim that late is refused as missed) plus MARGIN, that has no row: every scheduler was
down, cron was stopped, the machine was off. The sweeper (`crontab work` and Celery beat each minute;
/health/cron/ for the jobs it finds late) writes one row for it: status `missed`, scheduled_for = its
first minute, gap_last = its last, gap_count = how many, and what was running then if known. A gap
that grows is extended (gap_last, gap_count), not repeated. Across machines the row is written once:
its first minute is claimed like any slot (a unique row per job and minute), and an extension only
applies to the gap as the extender read it. A new gap is announced like a failure (log, mail after
notify_after, ping).

Not counted as gaps: jobs never run yet (nothing says when they started to be due), paused and
disabled jobs, and minutes older than LOOKBACK. A job re-enabled or resumed after a while with no
scheduler skipping its minutes meanwhile shows that while as a gap.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from datetime import datetime, timedelta
from functools import reduce
from operator import or_

from django.db import IntegrityError, transaction
from django.db.models import Q

from cronjobs import dbclock, signals
from cronjobs.models import JobPause, JobRun, SchedulerBeat
from cronjobs.registry import MAX_START_LIMIT, Job, start_limit

logger = logging.getLogger(__name__)

MARGIN = timedelta(seconds=10)  # after the start limit, so a claim deciding at the limit is never overtaken
LOOKBACK = timedelta(days=7)  # older due minutes are not looked for
MAX_COUNT = 100_000  # due minutes counted in one gap; more is written "100000+"


def horizon(job: Job, minute: datetime) -> timedelta:
    """How old a due minute must be before the sweeper may call it missed."""
    return start_limit(job, minute) + MARGIN


def judged_until(job: Job, now: datetime) -> datetime:
    """The job's latest due minute old enough to be judged at `now` (older than its horizon)."""
    cutoff = job.latest_run(now)
    for _step in range(3):  # a regular schedule needs one step back; an irregular one at most a few
        if now - cutoff > horizon(job, cutoff):
            return cutoff
        earlier = job.latest_run(cutoff - timedelta(minutes=1))
        if earlier >= cutoff:
            break
        cutoff = earlier
    widest = timedelta(seconds=job.grace) if job.grace is not None else MAX_START_LIMIT
    return job.latest_run(now - widest - MARGIN)


def sweep(jobs, *, now: datetime | None = None, trigger: str = JobRun.Trigger.WORK) -> list[JobRun]:
    """Record the gaps of `jobs` up to `now` (the database's time); return the rows written or extended."""
    now = now or dbclock.now()
    jobs = [job for job in jobs if job.enabled and not job.problems]
    if not jobs:
        return []
    paused = set(JobPause.objects.filter(job_name__in=[j.name for j in jobs]).values_list("job_name", flat=True))
    # Each job's latest due minute old enough to be judged, and whether a row of that very minute exists.
    latest = {job.name: (job, judged_until(job, now)) for job in jobs if job.name not in paused}
    covered = _covered(latest)
    recorded = []
    for name, (job, cutoff) in latest.items():
        if name not in covered:
            row = _sweep_job(job, cutoff, now, trigger)
            if row is not None:
                recorded.append(row)
    return recorded


def _covered(latest: dict[str, tuple[Job, datetime]]) -> set[str]:
    """The jobs with a row of exactly their latest judged minute: one query, grouped by that minute."""
    by_minute = defaultdict(list)
    for name, (_job, minute) in latest.items():
        by_minute[minute].append(name)
    if not by_minute:
        return set()
    condition = reduce(or_, (Q(scheduled_for=minute, job_name__in=names) for minute, names in by_minute.items()))
    return set(JobRun.objects.filter(condition, attempt=1).values_list("job_name", flat=True))


def _sweep_job(job: Job, cutoff: datetime, now: datetime, trigger: str) -> JobRun | None:
    """One job whose latest judged minute has no row of its own: find and record the gap before it."""
    # The last row at or before the judged minute (a later one, a minute fired after the gap, does not
    # close the gap before it).
    last = (
        JobRun.objects.filter(job_name=job.name, attempt=1, scheduled_for__lte=cutoff)
        .order_by("-scheduled_for")
        .only("id", "scheduled_for", "gap_last", "gap_count", "status")
        .first()
    )
    if last is None:
        return None  # never run: a new job, not a gap
    covered_until = max(last.scheduled_for, last.gap_last or last.scheduled_for)
    start = max(covered_until, now - LOOKBACK)
    minutes = _due_between(job, start, cutoff)
    if not minutes:
        return None
    first, final, count = minutes[0], minutes[-1], len(minutes)
    if last.gap_last is not None and _due_between(job, last.gap_last, first) == [first]:  # it continues that gap
        return _extend(last, job, final, count)
    return _insert_gap(job, first, final, count, trigger)


def _due_between(job: Job, after: datetime, until: datetime) -> list[datetime]:
    """The job's due minutes in (after, until], at most MAX_COUNT + 1."""
    found = []
    moment = job.next_run(after)
    while moment <= until and len(found) <= MAX_COUNT:
        found.append(moment)
        moment = job.next_run(moment)
    return found


def _count_text(count: int) -> str:
    return f"{MAX_COUNT}+" if count > MAX_COUNT else str(count)


def _gap_text(job: Job, first: datetime, final: datetime, count: int) -> str:
    zone = job.zone
    span = f"{first.astimezone(zone):%Y-%m-%d %H:%M}" + (
        f" to {final.astimezone(zone):%Y-%m-%d %H:%M}" if final != first else ""
    )
    return (
        f"missed {_count_text(count)} scheduled minute(s), {span} ({zone.key}): nothing fired them; {_context(first)}"
    )


def _context(first: datetime) -> str:
    """What was running when the gap began, as far as the schedulers' heartbeats say."""
    before = SchedulerBeat.objects.filter(last_tick__lte=first).order_by("-last_tick").first()
    if before is None:
        return "no crontab work or Celery beat had ticked before it"
    how = f"stopped at {before.stopped_at.isoformat(timespec='seconds')}" if before.stopped_at else "then went silent"
    tick = before.last_tick.isoformat(timespec="seconds")
    who = f"{before.get_route_display()} on {before.host} pid {before.pid}"
    return f"the last scheduler seen before it, {who}, ticked at {tick} and {how}"


def _insert_gap(job: Job, first: datetime, final: datetime, count: int, trigger: str) -> JobRun | None:
    from cronjobs.runner import HOST

    try:
        with transaction.atomic():
            row = JobRun.objects.create(
                job_name=job.name,
                scheduled_for=first,
                trigger=trigger,
                status=JobRun.Status.MISSED,
                exclusive=False,
                host=HOST,
                pid=os.getpid(),
                duration=timedelta(0),
                result=_gap_text(job, first, final, count),
                gap_last=final,
                gap_count=min(count, MAX_COUNT + 1),
                **_now_to_now(),
            )
    except IntegrityError:
        return None  # another sweeper (or a late claim) took the gap's first minute
    row.finished_at = row.started_at
    for _receiver, response in signals.run_finished.send_robust(sender=JobRun, run=row):
        if isinstance(response, Exception):
            logger.error("cronjobs: a receiver of run_finished failed: %r", response, exc_info=response)
    return row


def _now_to_now() -> dict:
    """started_at and finished_at of a row that takes no time: the same moment (see dbclock.started_now)."""
    fields = dbclock.started_now()
    return {**fields, "finished_at": fields.get("started_at", dbclock.sql_now())}


def _extend(row: JobRun, job: Job, final: datetime, more: int) -> JobRun | None:
    total = (row.gap_count or 1) + more
    updated = JobRun.objects.filter(pk=row.pk, gap_last=row.gap_last).update(
        gap_last=final, gap_count=min(total, MAX_COUNT + 1), result=_gap_text(job, row.scheduled_for, final, total)
    )
    if not updated:
        return None  # another sweeper extended it first
    row.refresh_from_db()
    return row


def covering_gap(job_name: str, slot: datetime) -> JobRun | None:
    """The gap row that already records `slot` as missed, if any (a claim that late then records nothing)."""
    return (
        JobRun.objects.filter(job_name=job_name, attempt=1, scheduled_for__lte=slot, gap_last__gte=slot)
        .order_by("-scheduled_for")
        .first()
    )
