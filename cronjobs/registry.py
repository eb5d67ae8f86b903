"""The parsed, immutable form of settings.CRONJOBS: one Job per entry, looked up by name or legacy hash.

Entry grammar (django-crontab's two formats, plus an optional trailing options dict):

    (schedule, "module.function")
    (schedule, "module.function", "suffix")                         # format 1
    (schedule, "module.function", [args])
    (schedule, "module.function", [args], {kwargs})
    (schedule, "module.function", [args], {kwargs}, "suffix")       # format 2
    ... any of the above followed by {options}

A dict right after `[args]` is always kwargs (django-crontab's meaning); one whose keys are all option
names is refused as ambiguous, because we cannot know which was meant. Options: name, timeout,
grace, enabled, description, allow_overlap, run_without_history, notify_after, ping_url, retries,
retry_backoff, retry_backoff_max, retry_on_timeout, timezone, jitter: the table OPTIONS below, which
validates and coerces each (see docs/scheduling.md).

Due minutes and daylight saving time: a schedule is read in its job's zone (the `timezone` option,
else settings.TIME_ZONE). The due minutes are croniter's, with cronie's rule for the repeated hour:
a job with a fixed minute and hour (neither field starting with `*`) runs once when the clocks go
back, at the first of the two identical wall times. When the clocks go forward, a time inside the
gap runs at the first minute after it (croniter and cronie agree: 02:30 runs at 03:00).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import cached_property, lru_cache
from importlib import import_module
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

DEFAULT_RETRY_BACKOFF = 1.0  # seconds before the first retry (before jitter); doubles each attempt
DEFAULT_RETRY_BACKOFF_MAX = 600.0  # Celery's own default cap

# The macros Vixie/Debian cron and cronie understand, as croniter reads them. @reboot is left out on
# purpose: it has no minute to claim and no next run.
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

# One cron field as cron itself accepts it: croniter also takes L, W, #, ? and H, which cron rejects
# (and a rejected line makes crontab refuse the user's whole file), so those fail here first.
# ASCII only: \d would also take Arabic-Indic and other Unicode digits, which cron refuses.
_ATOM = r"(?:[0-9]+|[a-z]{3})"
_RANGE = rf"(?:\*|{_ATOM}(?:-{_ATOM})?)(?:/[0-9]+)?"
_FIELD_RE = re.compile(rf"^{_RANGE}(?:,{_RANGE})*$", re.IGNORECASE | re.ASCII)
_SPAN_RE = re.compile(r"^([0-9a-z]+)-([0-9a-z]+)", re.IGNORECASE | re.ASCII)
_NAMES = {
    3: {m: i for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split(), start=1)},
    4: {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())},
}
# A schedule must fire within this many years (`0 0 30 2 *` never does; `0 0 29 2 *` does every four).
FIRES_WITHIN_YEARS = 5
# Longest timeout or grace an option may ask for: a month. Larger is a typo (or inf), and the timers
# the runner arms (setitimer, statement_timeout) overflow long before 1e300.
MAX_SECONDS = 31 * 86400

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,99}$")
LEGACY_HASH_RE = re.compile(r"^[0-9a-f]{32}$")


# Check ids, written out so `grep E003` finds every place that reports one (as django/core/checks does).
E001 = "cronjobs.E001"  # CRONJOBS is not a list
E002 = "cronjobs.E002"  # malformed or ambiguous entry
E003 = "cronjobs.E003"  # invalid schedule
E004 = "cronjobs.E004"  # target cannot be imported
E005 = "cronjobs.E005"  # target is not callable
E006 = "cronjobs.E006"  # duplicate job name
E007 = "cronjobs.E007"  # arguments not JSON serialisable
E008 = "cronjobs.E008"  # invalid option
E009 = "cronjobs.E009"  # invalid job name
E010 = "cronjobs.E010"  # invalid CRONTAB_* setting (cronjobs/system_crontab.py)
E011 = "cronjobs.E011"  # invalid alert setting: CRONJOBS_NOTIFY_*, CRONJOBS_PING_* (cronjobs/alerts.py)


class JobConfigError(Exception):
    """A job exists but cannot be run as configured (bad entry, unimportable target, ambiguous name)."""


class UnknownJob(LookupError):
    """No job in CRONJOBS has this name or legacy hash."""


@dataclass(frozen=True)
class Problem:
    """One configuration error, reported by `manage.py check` under `id`."""

    id: str
    msg: str
    hint: str
    index: int | None = None  # position of the entry in CRONJOBS, when there is one


def legacy_hash(entry: Any) -> str | None:
    """django-crontab's job hash, computed exactly as django_crontab.crontab.Crontab.__hash_job does.

    None when the entry cannot be JSON encoded (django-crontab itself crashes on those).
    """
    try:
        encoded = json.JSONEncoder(sort_keys=True).encode(entry)
    except (TypeError, ValueError):
        return None
    return hashlib.md5(encoded.encode("utf-8")).hexdigest()  # noqa: S324 - compatibility, not security


def schedule_error(schedule: Any) -> str | None:
    """Why `schedule` is not a schedule that both cron and croniter accept, or None when it is."""
    if not isinstance(schedule, str):
        return f"the schedule must be a string, not {type(schedule).__name__}"
    return _schedule_text_error(schedule)


@lru_cache(maxsize=4096)
def _schedule_text_error(schedule: str) -> str | None:
    # Once per distinct schedule: ten thousand jobs share a handful, and croniter's checks are the
    # costliest part of parsing an entry.
    text = schedule.strip()
    if text != schedule or "\n" in schedule or "%" in schedule:
        return "the schedule has surrounding whitespace, a newline or a '%'"
    if text.startswith("@"):
        if text not in MACROS:
            return f"unknown macro {text!r} (one of {', '.join(sorted(MACROS))})"
        return None
    fields = text.split()
    if len(fields) != 5:
        return f"expected 5 fields (minute hour day-of-month month day-of-week), got {len(fields)}"
    for position, value in enumerate(fields):
        if not _FIELD_RE.match(value):
            return f"field {value!r} is not valid cron syntax (ASCII digits 0-9, names, * , - /)"
        reversed_range = _reversed_range(position, value)
        if reversed_range:
            return (
                f"the range {reversed_range!r} runs backwards: cronie refuses it and Vixie cron never fires it "
                "(it does not wrap around); write it as two ranges, e.g. '5-23,0-2'"
            )
    try:
        croniter(text)
    except Exception as exc:  # croniter raises several unrelated types for bad input
        return str(exc)
    return _never_fires(text)


def _reversed_range(position: int, value: str) -> str | None:
    """The first `a-b` in a field whose start is after its end, or None."""
    names = _NAMES.get(position, {})
    for part in value.split(","):
        span = _SPAN_RE.match(part)
        if not span:
            continue
        start, end = (names.get(x.lower()) if x.isalpha() else int(x) for x in span.groups())
        if start is not None and end is not None and start > end:
            return span.group(0)
    return None


def _never_fires(text: str) -> str | None:
    """Why a syntactically valid schedule cannot be run (no fire within FIRES_WITHIN_YEARS), or None."""
    try:
        croniter(text, datetime(2000, 1, 1), max_years_between_matches=FIRES_WITHIN_YEARS).get_next(datetime)
        croniter(text, datetime.now(), max_years_between_matches=FIRES_WITHIN_YEARS).get_next(datetime)
    except Exception:  # CroniterBadDateError, or anything croniter raises for a date it cannot find
        return f"it never fires within {FIRES_WITHIN_YEARS} years (a day that does not exist, like 30 February?)"
    return None


def schedule_timezone() -> ZoneInfo:
    """The zone schedules are read in: settings.TIME_ZONE (DJANGO_TIME_ZONE), like the system cron."""
    return ZoneInfo(settings.TIME_ZONE or "UTC")


@dataclass(frozen=True)
class Job:
    """One CRONJOBS entry, parsed. Immutable; compare and hash by value of the entry.

    `problems` lists what is wrong with the entry itself; a job with problems is never run.
    """

    name: str
    schedule: str
    path: str
    args: tuple = ()
    kwargs: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    suffix: str = ""
    timeout: float | None = None
    grace: float | None = None
    enabled: bool = True
    description: str = ""
    allow_overlap: bool = False
    retries: int = 0
    retry_backoff: float = DEFAULT_RETRY_BACKOFF
    retry_backoff_max: float = DEFAULT_RETRY_BACKOFF_MAX
    retry_on_timeout: bool = False
    timezone: str | None = None  # IANA name; None: settings.TIME_ZONE
    run_without_history: bool = False
    notify_after: int | None = None  # None: settings.CRONJOBS_NOTIFY_AFTER
    ping_url: str | None = None  # None: settings.CRONJOBS_PING_URL_TEMPLATE; "": no pings
    jitter: int = 0  # seconds: the job starts `start_offset` seconds into its minute
    legacy_hashes: tuple[str, ...] = ()
    index: int = 0
    problems: tuple[Problem, ...] = ()

    def __hash__(self) -> int:
        return hash((self.name, self.index, self.legacy_hashes))

    @cached_property
    def timing_key(self) -> tuple:
        """What the job's schedule arithmetic depends on: /health/cron/ does it once per distinct key."""
        return (self.schedule, self.timezone, self.grace)

    @property
    def legacy_hash(self) -> str | None:
        """The hash plain django-crontab would put in its crontab line for this entry."""
        return self.legacy_hashes[0] if self.legacy_hashes else None

    @property
    def start_offset(self) -> int:
        """Seconds after its minute that the job starts: fixed, from its name, within `jitter` (0 without)."""
        if not self.jitter:
            return 0
        digest = hashlib.sha256(self.name.encode()).digest()
        return int.from_bytes(digest[:4], "big") % (self.jitter + 1)

    def start_at(self, minute: datetime) -> datetime:
        """When the run of due `minute` starts: the minute plus `start_offset`, added in UTC (wall-clock
        arithmetic would move a minute of a repeated hour into the other pass), in the job's zone."""
        return (minute.astimezone(UTC) + timedelta(seconds=self.start_offset)).astimezone(self.zone)

    @property
    def cron_expression(self) -> str:
        """The schedule as five fields (macros expanded), for croniter and cron-descriptor."""
        return MACROS.get(self.schedule, self.schedule)

    def resolve(self) -> Callable[..., Any]:
        """Import and return the target callable; JobConfigError says why when that fails."""
        module_path, _, attribute = self.path.rpartition(".")
        try:
            target = getattr(import_module(module_path), attribute)
        except Exception as exc:  # ImportError, AttributeError, or anything the module raises on import
            raise JobConfigError(f"cannot import {self.path!r} for job {self.name!r}: {exc!r}") from exc
        if not callable(target):
            raise JobConfigError(f"{self.path!r} (job {self.name!r}) is not callable")
        return target

    @property
    def zone(self) -> ZoneInfo:
        """The zone the schedule is read in: the job's `timezone` option, else settings.TIME_ZONE."""
        return ZoneInfo(self.timezone) if self.timezone else schedule_timezone()

    @property
    def zoned(self) -> bool:
        """True when the job's zone is not the project's (and so not the system cron's)."""
        return self.zone.key != schedule_timezone().key

    def next_run(self, after: datetime) -> datetime:
        """The first due minute strictly after `after`, aware, in the job's zone."""
        zone = self.zone
        return _next_due(self.cron_expression, zone.key, _utc_minute(after)).astimezone(zone)

    def latest_run(self, at: datetime) -> datetime:
        """The latest due minute at or before `at` (the slot a late-starting cron line belongs to)."""
        zone = self.zone
        return _latest_due(self.cron_expression, zone.key, _utc_minute(at)).astimezone(zone)

    def is_due(self, minute: datetime) -> bool:
        """Whether `minute` (aware, any zone; seconds ignored) is one of the job's due minutes."""
        minute = _utc_minute(minute)
        return _latest_due(self.cron_expression, self.zone.key, minute) == minute

    @property
    def fixed_time(self) -> bool:
        """Minute and hour both fixed (cronie's test for "runs once when the clocks go back")."""
        return _fixed_time(self.cron_expression)


# --- schedule arithmetic, once per distinct (expression, zone, minute) --------------------------------
# Thousands of jobs share a handful of schedules: every reader (health, the scheduler, the admin,
# metrics) asks the same questions each minute, so the answers are cached by value.
def _utc_minute(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def _fixed_time(expression: str) -> bool:
    minute, hour = expression.split()[:2]
    return not minute.startswith("*") and not hour.startswith("*")


def _repeated_wall_time(expression: str, zone: ZoneInfo, moment: datetime) -> bool:
    # The second occurrence of a wall time repeated when the clocks went back (fold=1).
    if not _fixed_time(expression):
        return False
    local = moment.astimezone(UTC).astimezone(zone)
    return local.fold == 1 and local.utcoffset() != local.replace(fold=0).utcoffset()


@lru_cache(maxsize=65536)
def _next_due(expression: str, zone_key: str, after: datetime) -> datetime:
    """The first due minute strictly after the UTC minute `after`, in UTC."""
    zone = ZoneInfo(zone_key)
    times = croniter(expression, after.astimezone(zone))
    while True:
        moment = times.get_next(datetime)
        if not _repeated_wall_time(expression, zone, moment):
            return moment.astimezone(UTC)


@lru_cache(maxsize=65536)
def _latest_due(expression: str, zone_key: str, end: datetime) -> datetime:
    """The latest due minute at or before the UTC minute `end`, in UTC."""
    zone = ZoneInfo(zone_key)
    backward = croniter(expression, end.astimezone(zone) + timedelta(seconds=1))
    while True:
        # croniter's get_prev skips instants next to a DST change; its get_next does not, so the
        # answer is found walking forward from get_prev's (never later) candidate.
        base = backward.get_prev(datetime).astimezone(UTC)
        latest = None
        forward = croniter(expression, (base - timedelta(seconds=1)).astimezone(zone))
        while (moment := forward.get_next(datetime).astimezone(UTC)) <= end:
            if not _repeated_wall_time(expression, zone, moment):
                latest = moment
        if latest is not None:
            return latest


# Without a `grace`, a scheduled minute may start at most this late: half the interval between the
# job's fires, within these bounds. /health/cron/ calls the job late past the same limit.
MIN_START_LIMIT = timedelta(minutes=1)
MAX_START_LIMIT = timedelta(hours=1)


def start_limit(job: Job, minute: datetime) -> timedelta:
    """How late after its due `minute` a run may still start: the job's `grace`, else half the interval
    from that minute to the job's next fire (1 minute to 1 hour)."""
    if job.grace is not None:
        return timedelta(seconds=job.grace)
    return _default_start_limit(job.cron_expression, job.zone.key, _utc_minute(minute))


@lru_cache(maxsize=65536)
def _default_start_limit(expression: str, zone_key: str, minute: datetime) -> timedelta:
    interval = _next_due(expression, zone_key, minute) - minute
    return max(MIN_START_LIMIT, min(interval / 2, MAX_START_LIMIT))


class Registry:
    """Every job from CRONJOBS plus the problems found while parsing them.

    Parsed lazily, so a process pays for the jobs it touches, not for all of CRONJOBS: `get(name)`
    parses the one entry with that name (finding it costs a dict lookup after one cheap pass over the
    entries' names); `jobs`, `problems` and `all_problems()` parse everything, once.
    """

    def __init__(self, cronjobs: Any) -> None:
        self._source = cronjobs
        self._full: tuple[tuple[Job, ...], tuple[Problem, ...]] | None = None
        self._names: dict[str, int] | None = None  # first entry of each name
        self._parsed: dict[int, Job] = {}
        # Schedule arithmetic of /health/cron/ by Job.timing_key, each valid for a stretch of time
        # (cronjobs/health.py): it lives and dies with these settings.
        self.timings: dict[tuple, Any] = {}

    @classmethod
    def of(cls, jobs, problems=()) -> Registry:
        """A registry of jobs already parsed (and adjusted)."""
        registry = cls(None)
        registry._full = (tuple(jobs), tuple(problems))
        return registry

    @property
    def jobs(self) -> tuple[Job, ...]:
        return self._parse_all()[0]

    @cached_property
    def version(self) -> str:
        """A short hash of the CRONJOBS value read: two processes with the same settings have the same one."""
        return cronjobs_version(self._source)

    @property
    def problems(self) -> tuple[Problem, ...]:
        """Problems of entries too malformed to be a job (a job's own problems are in Job.problems)."""
        return self._parse_all()[1]

    def _parse_all(self) -> tuple[tuple[Job, ...], tuple[Problem, ...]]:
        if self._full is None:
            self._full = _parse_all(self._source)
        return self._full

    def get(self, name_or_hash: str) -> Job:
        """The job with this name or legacy django-crontab hash; UnknownJob when none has it."""
        if self._full is None and not LEGACY_HASH_RE.match(name_or_hash):
            index = self._name_index().get(name_or_hash)
            if index is not None:
                return self._entry(index)
        else:
            for job in self.jobs:
                if job.name == name_or_hash:
                    return job
            for job in self.jobs:
                if name_or_hash in job.legacy_hashes:
                    return job
        raise UnknownJob(f"no job named {name_or_hash!r} in CRONJOBS (known: {_known(self.names())})")

    def _name_index(self) -> dict[str, int]:
        if self._names is None:
            self._names = {}
            for index, entry in enumerate(self._source if isinstance(self._source, (list, tuple)) else ()):
                name = _entry_name(entry)
                if name is not None:
                    self._names.setdefault(name, index)
        return self._names

    def _entry(self, index: int) -> Job:
        if index not in self._parsed:
            job, _problems = _parse_entry(self._source[index], index)
            if job is None:  # malformed: not a job (check names the entry)
                raise UnknownJob(f"CRONJOBS[{index}] is malformed: {'; '.join(p.msg for p in _problems)}")
            self._parsed[index] = job
        return self._parsed[index]

    def names(self) -> list[str]:
        if self._full is None:
            return list(self._name_index())
        return [job.name for job in self.jobs]

    def all_problems(self) -> list[Problem]:
        """Parse problems, each job's own problems, and targets that cannot be imported or called."""
        found = list(self.problems)
        for job in self.jobs:
            found.extend(job.problems)
            if any(p.id == E004 for p in job.problems):
                continue
            try:
                job.resolve()
            except JobConfigError as exc:
                not_callable = "is not callable" in str(exc)
                found.append(
                    Problem(
                        E005 if not_callable else E004,
                        f"CRONJOBS[{job.index}]: {exc}",
                        "Point the entry at a function (module.function)."
                        if not_callable
                        else "Check the dotted path and that the module imports without errors.",
                        job.index,
                    )
                )
        return found


def _known(names: list[str], limit: int = 20) -> str:
    if not names:
        return "none"
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


def _entry_name(entry: Any) -> str | None:
    """The name an entry's job has, worked out without validating the entry (None when malformed)."""
    parts, problems = _split_entry(entry, 0)
    if problems or not isinstance(parts["path"], str):
        return None
    name = parts["options"].get("name", parts["path"].rsplit(".", 1)[-1])
    return name if isinstance(name, str) else None


def _problem(check_id: str, index: int, msg: str, hint: str) -> Problem:
    return Problem(check_id, f"CRONJOBS[{index}]: {msg}", hint, index)


FORMATS_HINT = (
    "Use (schedule, 'module.function'[, 'suffix']) or "
    "(schedule, 'module.function', [args][, {kwargs}[, 'suffix']]), optionally followed by an options dict."
)


def _split_entry(entry: Any, index: int) -> tuple[dict, list[Problem]]:
    """Split one entry into its parts, or say why it is malformed or ambiguous."""
    if not isinstance(entry, (list, tuple)) or len(entry) < 2:
        return {}, [
            _problem(E002, index, f"expected a tuple of at least (schedule, path), got {entry!r}", FORMATS_HINT)
        ]
    parts: dict[str, Any] = {
        "schedule": entry[0],
        "path": entry[1],
        "args": (),
        "kwargs": {},
        "suffix": "",
        "options": {},
    }
    rest = list(entry[2:])
    bad = _problem(E002, index, f"cannot tell what the elements after the path mean in {entry!r}", FORMATS_HINT)
    if rest and isinstance(rest[0], str):  # format 1: a suffix
        parts["suffix"] = rest.pop(0)
    elif rest and isinstance(rest[0], (list, tuple)):  # format 2: args, kwargs, suffix
        parts["args"] = tuple(rest.pop(0))
        if rest and isinstance(rest[0], dict):
            if len(rest) == 1 and rest[0] and set(rest[0]) <= OPTION_KEYS:
                return {}, [
                    _problem(
                        E002,
                        index,
                        f"the dict {rest[0]!r} after the arguments could be kwargs or options",
                        "Write (schedule, path, args, {kwargs}, {options}); an empty {} marks no kwargs.",
                    )
                ]
            parts["kwargs"] = rest.pop(0)
            if rest and isinstance(rest[0], str):
                parts["suffix"] = rest.pop(0)
        elif rest and not isinstance(rest[0], dict):
            return {}, [bad]
    if rest and isinstance(rest[0], dict):
        parts["options"] = rest.pop(0)
    if rest:
        return {}, [bad]
    return parts, []


def _schedule_problems(schedule: Any, index: int) -> list[Problem]:
    error = schedule_error(schedule)
    if not error:
        return []
    hint = "Five cron fields like '*/5 * * * *', or a macro like '@daily'."
    return [_problem(E003, index, f"invalid schedule {schedule!r}: {error}", hint)]


# --- job options: one table that validates, coerces and documents each -----------------------------
@dataclass(frozen=True)
class Option:
    """One key of a job's options dict: its default, what it accepts (an error message otherwise) and an example."""

    key: str
    default: Any
    error: Callable[[Any], str | None]
    hint: str = ""


def _seconds(minimum: float) -> Callable[[Any], str | None]:
    def error(value: Any) -> str | None:
        # `value != value` is NaN; inf and 1e300 fail the maximum (the timers would overflow).
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or value != value
            or not minimum <= value <= MAX_SECONDS
        ):
            return f"must be a number of seconds from {minimum:g} to {MAX_SECONDS} (31 days), got {value!r}"
        return None

    return error


def _whole(minimum: int, maximum: int | None, unit: str) -> Callable[[Any], str | None]:
    def error(value: Any) -> str | None:
        if type(value) is not int or value < minimum or (maximum is not None and value > maximum):
            span = f"from {minimum} to {maximum}" if maximum is not None else f">= {minimum}"
            return f"must be a whole number of {unit} {span}, got {value!r}"
        return None

    return error


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"must be True or False, got {value!r}"


def _text(value: Any) -> str | None:
    return None if isinstance(value, str) else f"must be a string, got {type(value).__name__}"


def _ping_url(value: Any) -> str | None:
    return None if value == "" or is_http_url(value) else f"must be an http(s) URL, got {value!r}"


MAX_RETRIES = 100
MAX_JITTER = 59  # seconds: a job's start stays inside its minute, so its slot is still that minute

OPTIONS: dict[str, Option] = {
    option.key: option
    for option in (
        Option("name", None, lambda value: None),  # None: the function's name; checked as a name (E009)
        Option("timeout", None, _seconds(0.001), "e.g. {'timeout': 600}"),
        Option("grace", None, _seconds(0), "e.g. {'grace': 120}"),
        Option("enabled", True, _boolean),
        Option("description", "", _text),
        Option("allow_overlap", False, _boolean),  # default: CRONTAB_LOCK_JOBS = False makes it True
        Option("retries", 0, _whole(0, MAX_RETRIES, "attempts"), "e.g. {'retries': 3, 'retry_backoff': 30}"),
        Option("retry_backoff", DEFAULT_RETRY_BACKOFF, _seconds(0), "e.g. {'retry_backoff': 30}"),
        Option("retry_backoff_max", DEFAULT_RETRY_BACKOFF_MAX, _seconds(0), "e.g. {'retry_backoff_max': 600}"),
        Option("retry_on_timeout", False, _boolean),
        Option("timezone", None, lambda v: timezone_error(v), "An IANA name such as 'Europe/Berlin'."),
        Option("run_without_history", False, _boolean),
        Option("notify_after", None, _whole(1, None, "failures"), "e.g. {'notify_after': 3}"),
        Option("ping_url", None, _ping_url, "e.g. {'ping_url': 'https://hc-ping.com/<uuid>'}; '' for none"),
        Option("jitter", 0, _whole(0, MAX_JITTER, "seconds"), "e.g. {'jitter': 30}: a fixed start offset up to 30 s"),
    )
}
OPTION_KEYS = frozenset(OPTIONS)


def _coerce_options(options: dict, index: int) -> tuple[dict[str, Any], list[Problem]]:
    """Every option's value (its default where absent or invalid) and a Problem for each invalid one."""
    problems = []
    unknown = set(options) - OPTION_KEYS
    if unknown:
        problems.append(
            _problem(E008, index, f"unknown option(s) {sorted(unknown)}", f"Options are {sorted(OPTION_KEYS)}.")
        )
    values = {}
    for key, option in OPTIONS.items():
        value = options.get(key, option.default)
        error = option.error(value) if key in options and value is not None else None
        if error:
            problems.append(_problem(E008, index, f"option {key!r}: {error}", option.hint))
            value = option.default
        values[key] = value
    return values, problems


def _name_problems(name: Any, index: int) -> list[Problem]:
    if not isinstance(name, str) or not NAME_RE.match(name) or LEGACY_HASH_RE.match(name):
        hint = "Names are letters, digits, '_', '.', '-' (not a 32-hex hash)."
        return [_problem(E009, index, f"invalid job name {name!r}", hint)]
    return []


def timezone_error(value: Any) -> str | None:
    """Why `value` is not an IANA time zone name zoneinfo knows, or None when it is."""
    if not isinstance(value, str) or not value or value != value.strip():
        return f"must be an IANA time zone name, got {value!r}"
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone {value!r}"
    return None


def is_http_url(value: Any) -> bool:
    """An absolute http:// or https:// URL with a host and no whitespace."""
    if not isinstance(value, str) or any(c.isspace() for c in value):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _argument_problems(parts: dict, index: int) -> list[Problem]:
    """Arguments must survive JSON: django-crontab hashes entries with it and the history stores them."""
    problems = []
    if not isinstance(parts["kwargs"], dict) or not all(isinstance(k, str) for k in parts["kwargs"]):
        problems.append(_problem(E007, index, "kwargs must be a dict with string keys", FORMATS_HINT))
    else:
        try:
            json.dumps([list(parts["args"]), parts["kwargs"]], allow_nan=False)
        except (TypeError, ValueError) as exc:
            hint = "Pass strings, numbers, lists, dicts, True/False/None."
            problems.append(_problem(E007, index, f"arguments are not JSON serialisable: {exc}", hint))
    if "\n" in parts["suffix"] or "\r" in parts["suffix"]:
        problems.append(_problem(E002, index, "the suffix contains a newline, which would split the crontab line", ""))
    return problems


def _legacy_hashes(entry: Any, options: dict) -> tuple[str, ...]:
    hashes = [h for h in (legacy_hash(entry),) if h]
    if options:
        # The same entry without our options dict is what plain django-crontab installed before it was added.
        stripped = legacy_hash(list(entry)[:-1])
        if stripped and stripped not in hashes:
            hashes.append(stripped)
    return tuple(hashes)


def _parse_entry(entry: Any, index: int) -> tuple[Job | None, list[Problem]]:
    """One entry -> (Job, []) with the job's own problems inside it, or (None, problems) when unusable."""
    parts, problems = _split_entry(entry, index)
    if not parts:
        return None, problems
    schedule, path, options = parts["schedule"], parts["path"], parts["options"]
    if not isinstance(path, str) or not re.match(r"^[A-Za-z_][\w]*(\.[A-Za-z_]\w*)+$", path):
        msg = f"the target must be a dotted path 'module.function', got {path!r}"
        return None, [_problem(E002, index, msg, FORMATS_HINT)]
    values, option_problems = _coerce_options(options, index)
    name = options.get("name", path.rsplit(".", 1)[1])
    problems = [
        *_schedule_problems(schedule, index),
        *option_problems,
        *_name_problems(name, index),
        *_argument_problems(parts, index),
    ]
    kwargs = parts["kwargs"] if isinstance(parts["kwargs"], dict) else {}
    # Runs never overlap unless a job allows it; CRONTAB_LOCK_JOBS = False (set explicitly) makes
    # overlap the default, as in django-crontab where locking was opt-in.
    if "allow_overlap" not in options:
        values["allow_overlap"] = getattr(settings, "CRONTAB_LOCK_JOBS", True) is False
    job = Job(
        name=str(name),
        schedule=str(schedule),
        path=path,
        args=parts["args"],
        kwargs=MappingProxyType(dict(kwargs)),
        suffix=parts["suffix"],
        timeout=None if values["timeout"] is None else float(values["timeout"]),
        grace=None if values["grace"] is None else float(values["grace"]),
        enabled=values["enabled"],
        description=values["description"],
        allow_overlap=values["allow_overlap"],
        retries=values["retries"],
        retry_backoff=float(values["retry_backoff"]),
        retry_backoff_max=float(values["retry_backoff_max"]),
        retry_on_timeout=values["retry_on_timeout"],
        timezone=values["timezone"],
        run_without_history=values["run_without_history"],
        notify_after=values["notify_after"],
        ping_url=values["ping_url"],
        jitter=values["jitter"],
        legacy_hashes=_legacy_hashes(entry, options),
        index=index,
        problems=tuple(problems),
    )
    return job, []


def parse_cronjobs(cronjobs: Any) -> Registry:
    """A registry of a CRONJOBS value. Never raises: everything wrong becomes a Problem."""
    return Registry(cronjobs)


def _parse_all(cronjobs: Any) -> tuple[tuple[Job, ...], tuple[Problem, ...]]:
    if not isinstance(cronjobs, (list, tuple)):
        problem = Problem(
            E001,
            f"CRONJOBS must be a list of tuples, got {type(cronjobs).__name__}",
            "CRONJOBS = [('*/5 * * * *', 'app.cron.function')]",
        )
        return (), (problem,)
    jobs: list[Job] = []
    problems: list[Problem] = []
    for index, entry in enumerate(cronjobs):
        job, entry_problems = _parse_entry(entry, index)
        problems.extend(entry_problems)
        if job is not None:
            jobs.append(job)
    seen: dict[str, Job] = {}
    for i, job in enumerate(jobs):
        if job.name in seen:
            duplicate = _problem(
                E006,
                job.index,
                f"job name {job.name!r} is already used by CRONJOBS[{seen[job.name].index}]",
                "Give one of them an options dict: {'name': 'a_unique_name'}.",
            )
            jobs[i] = replace(job, problems=job.problems + (duplicate,))
        else:
            seen[job.name] = job
    return tuple(jobs), tuple(problems)


_registry: Registry | None = None


def cronjobs_version(cronjobs: Any) -> str:
    """A short hash of a CRONJOBS value (the scheduler's heartbeat says which one it runs)."""
    text = json.dumps(cronjobs, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def get_registry() -> Registry:
    """The registry for the current settings.CRONJOBS, parsed once and rebuilt when settings change."""
    global _registry
    if _registry is None:
        _registry = parse_cronjobs(getattr(settings, "CRONJOBS", []))
    return _registry


def get_job(name_or_hash: str) -> Job:
    """The job with this name or legacy hash. UnknownJob if none; JobConfigError if it cannot run."""
    job = get_registry().get(name_or_hash)
    if job.problems:
        raise JobConfigError("; ".join(p.msg for p in job.problems))
    return job


@receiver(setting_changed)
def _reset_registry(*, setting: str, **kwargs: Any) -> None:
    # override_settings / the pytest-django `settings` fixture change CRONJOBS at runtime.
    global _registry
    if setting in ("CRONJOBS", "TIME_ZONE", "CRONTAB_LOCK_JOBS"):
        _registry = None
