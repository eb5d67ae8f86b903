"""`crontab plan`: the runs that will happen, what an outage costs, and what a CRONJOBS change moves.

Nothing here does cron arithmetic of its own: due minutes come from Job.next_run (croniter with the
registry's daylight-saving rules, in the job's zone), the start second from Job.start_offset (the
`jitter` option), and an outage follows the scheduler's catch-up rule (cronjobs.scheduler.due_slots:
a slot no older than catch-up is fired, one per job) and the runner's grace rule (a scheduled run
starting more than `grace` seconds after its minute is recorded `missed`). Disabled jobs are not
planned, as due_slots skips them; pauses live in the database and are not looked at (a paused job's
runs are listed: each is recorded `skipped` when it comes).

Everything is pure (no database): the lead's gap sweeper calls `outage()` with the time the last
scheduler was seen and now, and records each gap it returns.
"""

from __future__ import annotations

import runpy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from importlib import import_module
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from cronjobs.conf import SETTINGS
from cronjobs.registry import (
    Job,
    Registry,
    UnknownJob,
    parse_cronjobs,
    schedule_timezone,
    start_limit,
    timezone_error,
)

DEFAULT_CATCH_UP = SETTINGS["CRONJOBS_WORK_CATCH_UP"].default  # seconds: `crontab work`'s default catch-up

MAX_RUNS = 10_000  # runs one plan may list: a week of an every-minute job
MAX_WINDOW = timedelta(days=366)
DEFAULT_WINDOW = timedelta(hours=24)
_BEFORE = timedelta(microseconds=1)  # next_run(t - _BEFORE) is t itself when t is a due minute


class PlanError(ValueError):
    """Input a plan cannot be made from; the message is one line saying what is wrong and where."""


# --- due minutes -----------------------------------------------------------------------------------
def due_minutes(job: Job, start: datetime, end: datetime, *, limit: int | None = None) -> list[datetime]:
    """Every due minute of `job` in [start, end), aware, in the job's zone, oldest first.

    Job.next_run's minutes: the registry's rules for the skipped and the repeated hour. `limit`: raise
    PlanError when there are more than this many (the window is too large to list).
    """
    minutes: list[datetime] = []
    moment = job.next_run(start - _BEFORE)
    while moment < end:
        minutes.append(moment.astimezone(UTC).astimezone(job.zone))
        if limit is not None and len(minutes) > limit:
            raise PlanError(too_many(limit, start, end))
        moment = job.next_run(moment)
    return minutes


def too_many(limit: int, start: datetime, end: datetime) -> str:
    zone = schedule_timezone()
    return (
        f"more than {limit} runs from {when(start, zone)} to {when(end, zone)}: too many to list; "
        "narrow the window (--from/--to) or pick jobs (--job)"
    )


def start_of(job: Job, minute: datetime) -> datetime:
    """When a run of `minute` starts: Job.start_offset seconds into it (the `jitter` option)."""
    # In UTC: wall-clock arithmetic would lose the fold of a repeated minute.
    return job.start_at(minute)


@dataclass(frozen=True)
class Run:
    """One planned run: the job and its due minute (aware, in the job's zone)."""

    job: Job
    minute: datetime

    @property
    def start(self) -> datetime:
        return start_of(self.job, self.minute)

    def as_dict(self) -> dict[str, Any]:
        """The run as `crontab plan --format json` prints it (and cronjobs.testing.planned_runs returns it)."""
        return {
            "job": self.job.name,
            "zone": self.job.zone.key,
            "minute": self.minute.isoformat(),
            "minute_utc": self.minute.astimezone(UTC).isoformat(),
            "start": self.start.isoformat(),
            "start_offset": self.job.start_offset,
        }


def planned(jobs: Iterable[Job], start: datetime, end: datetime, *, limit: int | None = None) -> list[Run]:
    """The runs of the enabled `jobs` in [start, end), in the order they start (CRONJOBS order on a tie).

    `limit`: raise PlanError when there are more (the command's cap is MAX_RUNS)."""
    runs: list[Run] = []
    minutes_of = by_schedule(start, end, limit)
    for job in jobs:
        if not job.enabled:
            continue
        runs.extend(Run(job, minute) for minute in minutes_of(job))
        if limit is not None and len(runs) > limit:
            raise PlanError(too_many(limit, start, end))
    return sorted(runs, key=lambda run: (run.start.astimezone(UTC), run.job.index))


def by_schedule(start: datetime, end: datetime, limit: int | None = None):
    """due_minutes(job, start, end) computed once per distinct schedule and zone (all next_run depends on)."""
    cache: dict[tuple[str, str], list[datetime]] = {}

    def minutes_of(job: Job) -> list[datetime]:
        key = (job.cron_expression, job.zone.key)
        if key not in cache:
            cache[key] = due_minutes(job, start, end, limit=limit)
        return cache[key]

    return minutes_of


# --- an outage -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Gap:
    """The due minutes of one job that nothing fires: recorded as one `missed` row."""

    minutes: tuple[datetime, ...]

    @property
    def first(self) -> datetime:
        return self.minutes[0]

    @property
    def last(self) -> datetime:
        return self.minutes[-1]

    @property
    def count(self) -> int:
        return len(self.minutes)


@dataclass(frozen=True)
class OutageEffect:
    """What an outage of the schedulers in [start, end) does to one job, when they start again at `end`.

    fired: the minute fired on starting (the latest due minute of the window no older than catch-up),
        or None. late_missed: that run is recorded `missed` instead of running (it starts more than the
        job's `grace` after its minute). gap: every other due minute of the window, or None.
    """

    job: Job
    fired: datetime | None
    late: timedelta | None  # end - fired
    late_missed: bool
    gap: Gap | None

    @property
    def never_runs(self) -> list[datetime]:
        """The due minutes of the window that never run: the gap's, and a fire that started too late."""
        minutes = list(self.gap.minutes) if self.gap else []
        if self.late_missed:
            minutes.append(self.fired)
        return minutes

    def as_dict(self) -> dict[str, Any]:
        fired = None
        if self.fired is not None:
            fired = {**Run(self.job, self.fired).as_dict(), "late": self.late.total_seconds()}
            fired["missed"] = self.late_missed
        gap = None
        if self.gap is not None:
            gap = {
                "first": self.gap.first.isoformat(),
                "first_utc": self.gap.first.astimezone(UTC).isoformat(),
                "last": self.gap.last.isoformat(),
                "last_utc": self.gap.last.astimezone(UTC).isoformat(),
                "count": self.gap.count,
            }
        never = [minute.isoformat() for minute in self.never_runs]
        return {"job": self.job.name, "zone": self.job.zone.key, "fired": fired, "gap": gap, "never_runs": never}


def late_missed(job: Job, minute: datetime, starting: datetime) -> bool:
    """The runner's rule: a scheduled run starting later than its start limit (the job's `grace`, else
    half its interval, 1 minute to 1 hour) is recorded `missed` (cronjobs.runner, first attempt)."""
    return starting - minute > start_limit(job, minute)


def outage(
    jobs: Iterable[Job], start: datetime, end: datetime, catch_up: timedelta | float, *, limit: int | None = None
) -> list[OutageEffect]:
    """For every enabled job with a due minute in [start, end), nothing firing in that window and a
    scheduler starting at `end`: what it fires, what is recorded `missed` and what never runs.

    The scheduler's catch-up rule (scheduler.due_slots): on starting it fires each job's latest due
    minute of the window if `end - minute` is within both the catch-up and the job's start limit, one
    per job (a minute already too late to start is not fired). Every other due minute of the window
    is one gap (one `missed` row, written by the gap sweeper for a job that has run before).
    """
    if not isinstance(catch_up, timedelta):
        catch_up = timedelta(seconds=catch_up)
    effects = []
    minutes_of = by_schedule(start, end, limit)
    for job in jobs:
        if not job.enabled:
            continue
        minutes = minutes_of(job)
        if not minutes:
            continue
        latest = minutes[-1]
        fired = latest if end - latest <= catch_up and not late_missed(job, latest, end) else None
        rest = minutes[:-1] if fired is not None else minutes
        effects.append(
            OutageEffect(
                job=job,
                fired=fired,
                late=None if fired is None else end - fired,
                late_missed=fired is not None and late_missed(job, fired, end),
                gap=Gap(tuple(rest)) if rest else None,
            )
        )
    return effects


# --- two versions of CRONJOBS ----------------------------------------------------------------------
@dataclass(frozen=True)
class Changes:
    """The runs one CRONJOBS has and another has not, over one window."""

    added: tuple[Run, ...]
    removed: tuple[Run, ...]
    moved: tuple[tuple[Run, Run], ...]  # (before, after) of one job

    def as_dict(self) -> dict[str, Any]:
        return {
            "added": [run.as_dict() for run in self.added],
            "removed": [run.as_dict() for run in self.removed],
            "moved": [{"job": a.job.name, "from": a.as_dict(), "to": b.as_dict()} for a, b in self.moved],
        }


def compare(before: Sequence[Run], after: Sequence[Run]) -> Changes:
    """What changes from the runs `before` to the runs `after` (one window).

    A run is the same when its job (by name) starts at the same instant. A job's runs that are only
    before and only after are paired in order as moved; what is left over is removed or added.
    """
    added, removed, moved = [], [], []
    by_name: dict[str, tuple[list[Run], list[Run]]] = {}
    for side, runs in enumerate((before, after)):
        for run in runs:
            by_name.setdefault(run.job.name, ([], []))[side].append(run)
    for old, new in by_name.values():
        old_starts = {_instant(run) for run in old}
        new_starts = {_instant(run) for run in new}
        only_old = [run for run in old if _instant(run) not in new_starts]
        only_new = [run for run in new if _instant(run) not in old_starts]
        moved.extend(zip(only_old, only_new, strict=False))
        pairs = min(len(only_old), len(only_new))
        removed.extend(only_old[pairs:])
        added.extend(only_new[pairs:])
    return Changes(
        added=tuple(sorted(added, key=_instant)),
        removed=tuple(sorted(removed, key=_instant)),
        moved=tuple(sorted(moved, key=lambda pair: _instant(pair[0]))),
    )


def _instant(run: Run) -> datetime:
    return run.start.astimezone(UTC)


def other_registry(other: str) -> Registry:
    """The CRONJOBS of `other`: a settings module (dotted name) or a Python file defining CRONJOBS.

    A schedule without its own `timezone` is read in the other's TIME_ZONE when it sets one.
    PlanError says why when it cannot be read or is invalid (as `manage.py check` would).
    """
    namespace = _load(other)
    if "CRONJOBS" not in namespace:
        raise PlanError(f"--against {other}: defines no CRONJOBS")
    zone = namespace.get("TIME_ZONE")
    if zone is not None and timezone_error(zone):
        raise PlanError(f"--against {other}: TIME_ZONE {timezone_error(zone)}")
    registry = parse_cronjobs(namespace["CRONJOBS"])
    problems = registry.all_problems()
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise PlanError(f"--against {other}: {problems[0].msg}{more}")
    if zone is None or zone == schedule_timezone().key:
        return registry
    jobs = tuple(job if job.timezone else replace(job, timezone=zone) for job in registry.jobs)
    return Registry.of(jobs, registry.problems)


def _load(other: str) -> dict[str, Any]:
    if other.endswith(".py") or "/" in other or Path(other).is_file():
        path = Path(other)
        if not path.is_file():
            raise PlanError(f"--against {other}: no such file")
        try:
            return runpy.run_path(str(path))
        except Exception as exc:  # the file is the user's: any error it raises is the answer
            raise PlanError(f"--against {other}: the file raised {exc!r}") from exc
    try:
        return vars(import_module(other))
    except Exception as exc:  # ModuleNotFoundError, or anything the module raises on import
        raise PlanError(f"--against {other}: cannot import it as a settings module: {exc!r}") from exc


# --- input -----------------------------------------------------------------------------------------
def moment(value: datetime | str, what: str) -> datetime:
    """An aware datetime from an ISO 8601 string or a datetime; naive ones are read in settings.TIME_ZONE
    (a wall time the clocks skip or repeat: PEP 495's reading, the offset before the change)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise PlanError(
                f"{what} {value!r} is not an ISO 8601 time (e.g. 2026-03-29T02:00 or 2026-03-29T02:00+01:00)"
            ) from None
    if not isinstance(value, datetime):
        raise PlanError(f"{what} must be a datetime or an ISO 8601 string, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        value = value.replace(tzinfo=schedule_timezone())
    return value


def window(start: datetime | str | None, end: datetime | str | None, now: datetime) -> tuple[datetime, datetime]:
    """[start, end) from --from / --to: defaults now and start + 24 h; refused backwards or over MAX_WINDOW."""
    first = "--from" if start is not None else "now (the default --from)"
    start = moment(start, "--from") if start is not None else now
    end = moment(end, "--to") if end is not None else start + DEFAULT_WINDOW
    return checked(start, end, first, "--to")


def checked(start: datetime, end: datetime, first: str, second: str) -> tuple[datetime, datetime]:
    zone = schedule_timezone()
    if start > end:
        raise PlanError(f"{first} {when(start, zone)} is after {second} {when(end, zone)}")
    if end - start > MAX_WINDOW:
        raise PlanError(
            f"the window from {when(start, zone)} to {when(end, zone)} is longer than {MAX_WINDOW.days} days: "
            "too large to list; narrow it"
        )
    return start, end


def outage_window(text: str) -> tuple[datetime, datetime]:
    """--outage FROM..TO as [start, end)."""
    parts = text.split("..")
    if len(parts) != 2 or not all(part.strip() for part in parts):
        raise PlanError(
            f"--outage {text!r}: expected FROM..TO, two ISO 8601 times (e.g. 2026-03-29T02:00..2026-03-29T04:00)"
        )
    start, end = moment(parts[0], "--outage FROM"), moment(parts[1], "--outage TO")
    return checked(start, end, "--outage FROM", "TO")


def select(registries: Sequence[Registry], names: Iterable[str | Job] | None) -> list[str] | None:
    """The job names asked for, each known to at least one registry; None for every job."""
    if names is None:
        return None
    chosen = []
    for name in names:
        if isinstance(name, Job):
            name = name.name
        for registry in registries:
            try:
                chosen.append(registry.get(name).name)
                break
            except UnknownJob as exc:
                error = exc
        else:
            raise PlanError(f"--job: {error}")
    return chosen


def jobs_of(registry: Registry, names: list[str] | None) -> tuple[Job, ...]:
    if names is None:
        return registry.jobs
    return tuple(job for job in registry.jobs if job.name in names)


# --- text --------------------------------------------------------------------------------------------
def when(moment_: datetime, zone: ZoneInfo) -> str:
    """`2026-03-29 03:00 CEST (01:00 UTC)`: a time in `zone` and in UTC (seconds when it has any)."""
    local = moment_.astimezone(UTC).astimezone(zone)
    utc = moment_.astimezone(UTC)
    clock = "%H:%M:%S" if local.second or local.microsecond else "%H:%M"
    same_day = local.date() == utc.date()
    return f"{local:%Y-%m-%d {clock} %Z} ({utc:{'' if same_day else '%Y-%m-%d '}{clock}} UTC)"


def count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def run_line(run: Run) -> str:
    text = f"{when(run.minute, run.job.zone)}  {run.job.name}"
    if run.job.jitter:
        text += f"  starts {run.start:%H:%M:%S} (jitter {run.job.jitter} s: +{run.job.start_offset} s)"
    return text


def plan_lines(runs: Sequence[Run], jobs: Sequence[Job], start: datetime, end: datetime) -> list[str]:
    zone = schedule_timezone()
    lines = [f"{count(len(runs), 'run')} from {when(start, zone)} to {when(end, zone)}:"]
    lines += [f"  {run_line(run)}" for run in runs]
    disabled = [job.name for job in jobs if not job.enabled]
    if disabled:
        lines.append(f"Not planned (enabled: False): {', '.join(disabled)}")
    return lines


def outage_lines(
    effects: Sequence[OutageEffect], jobs: Sequence[Job], start: datetime, end: datetime, catch_up: float
) -> list[str]:
    zone = schedule_timezone()
    lines = [
        f"Every scheduler down from {when(start, zone)} to {when(end, zone)}.",
        f"`crontab work` starting then fires each job's latest due minute of the outage if at most {catch_up:g} s "
        "old and not past its start limit:",
    ]
    for effect in effects:
        lines += _effect_lines(effect, end, catch_up)
    hit = {effect.job.name for effect in effects}
    quiet = [job.name for job in jobs if job.enabled and job.name not in hit]
    if quiet:
        lines.append(f"No due minute in the outage: {', '.join(quiet)}")
    return lines


def _effect_lines(effect: OutageEffect, end: datetime, catch_up: float) -> list[str]:
    job, zone = effect.job, effect.job.zone
    lines = [f"  {job.name}  [{job.schedule}]" + (f"  {job.timezone}" if job.timezone else "")]
    if effect.fired is None:
        age = (end - effect.gap.last).total_seconds()
        limit = start_limit(job, effect.gap.last).total_seconds()
        why = f"past the catch-up, {catch_up:g} s" if age > catch_up else f"past its start limit, {limit:g} s"
        lines.append(f"    fires on start:   nothing (its latest due minute is {age:g} s old: {why})")
    else:
        limit = start_limit(job, effect.fired).total_seconds()
        outcome = f"recorded missed (later than its start limit, {limit:g} s)" if effect.late_missed else "runs"
        late = effect.late.total_seconds()
        lines.append(f"    fires on start:   {when(effect.fired, zone)}, {late:g} s after its minute: {outcome}")
    gap = effect.gap
    if gap is None:
        lines.append("    recorded missed:  no gap")
    else:
        span = when(gap.first, zone) if gap.count == 1 else f"{when(gap.first, zone)} .. {when(gap.last, zone)}"
        lines.append(f"    recorded missed:  {span}: {count(gap.count, 'minute')}, one row")
    late_start = " (with the late start)" if effect.late_missed else ""
    lines.append(f"    never runs:       {count(len(effect.never_runs), 'minute')}{late_start}")
    return lines


def changes_lines(changes: Changes, other: str, start: datetime, end: datetime) -> list[str]:
    zone = schedule_timezone()
    counts = f"{len(changes.added)} added, {len(changes.removed)} removed, {len(changes.moved)} moved"
    lines = [f"Runs from {when(start, zone)} to {when(end, zone)}, {other} -> this CRONJOBS: {counts}"]
    lines += [f"  + {run_line(run)}" for run in changes.added]
    lines += [f"  - {run_line(run)}" for run in changes.removed]
    for before, after in changes.moved:
        lines.append(f"  ~ {before.job.name}: {_start_text(before)} -> {_start_text(after)}")
    return lines


def _start_text(run: Run) -> str:
    return when(run.start if run.job.jitter else run.minute, run.job.zone)


# --- the command -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Request:
    """What `crontab plan` was asked, as typed (strings), plus the catch-up in seconds and now."""

    now: datetime
    start: str | None = None
    end: str | None = None
    names: Sequence[str] | None = None
    fmt: str = "text"
    outage: str | None = None
    against: str | None = None
    catch_up: float = DEFAULT_CATCH_UP


def reading(text: str | None) -> str | None:
    """How a naive time that the clocks skip or repeat in settings.TIME_ZONE was read, or None."""
    try:
        naive = datetime.fromisoformat(text.strip()) if text else None
    except ValueError:
        return None
    if naive is None or naive.tzinfo is not None:
        return None
    zone = schedule_timezone()
    read = moment(naive, "")
    if read.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != naive:
        return f"{text} does not exist in {zone.key} (the clocks skip it): read as {when(read, zone)}"
    if naive.replace(tzinfo=zone, fold=1).utcoffset() != read.utcoffset():
        return f"{text} happens twice in {zone.key}: read as the first, {when(read, zone)}"
    return None


def report(registry: Registry, request: Request) -> tuple[Any, list[str]]:
    """(what --format json prints, the text lines) for one request; PlanError on bad input."""
    if request.outage is not None and (request.start or request.end or request.against):
        raise PlanError("--outage FROM..TO is a window of its own: leave out --from, --to and --against")
    if request.outage is not None:
        start, end = outage_window(request.outage)
    else:
        start, end = window(request.start, request.end, request.now)
    other = other_registry(request.against) if request.against else None
    names = select([registry, *([other] if other else [])], request.names)
    jobs = jobs_of(registry, names)
    typed = request.outage.split("..") if request.outage is not None else [request.start, request.end]
    notes = [f"Note: {note}" for note in map(reading, typed) if note]
    if request.outage is not None:
        effects = outage(jobs, start, end, request.catch_up, limit=MAX_RUNS)
        lines = outage_lines(effects, jobs, start, end, request.catch_up)
        return [effect.as_dict() for effect in effects], notes + lines
    runs = planned(jobs, start, end, limit=MAX_RUNS)
    if other is None:
        return [run.as_dict() for run in runs], notes + plan_lines(runs, jobs, start, end)
    changes = compare(planned(jobs_of(other, names), start, end, limit=MAX_RUNS), runs)
    return changes.as_dict(), notes + changes_lines(changes, request.against, start, end)
