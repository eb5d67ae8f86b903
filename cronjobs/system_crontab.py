"""System crontab backend: read, plan and write this checkout's lines, leaving every other line as it was.

Jobs with their own `timezone`: cron reads one zone (settings.TIME_ZONE, the project's, is assumed to be
cron's), so such a job's line fires at every minute of that zone that can be a due minute in the job's
zone over this year and the next (each UTC offset difference, plus the end of each spring-forward
gap), and `crontab run --scheduled` quietly does nothing at a minute that is not due in the job's zone.

Each line we install ends with a marker `[cronjobs <instance> <name>]`, where the instance is a hash of
the project directory, so two projects or two checkouts of one project on a host never touch each
other's lines. Lines written by plain django-crontab for this checkout (its comment and our manage.py
path) are recognised as legacy and replaced on `add`.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from croniter import croniter
from django.conf import settings

from cronjobs.registry import E010, Job, Problem, schedule_timezone

MARKER_RE = re.compile(r"\[cronjobs (?P<instance>[0-9a-f]{12}) (?P<name>[A-Za-z0-9_.-]+)\]\s*$")
LEGACY_RUN_RE = re.compile(r"\bcrontab run (?P<hash>[0-9a-f]{32})\b")


class CrontabError(Exception):
    """Reading or writing the crontab failed; nothing was changed."""


@dataclass(frozen=True)
class CrontabConfig:
    """django-crontab's settings as this backend reads them."""

    executable: tuple[str, ...]
    python: str
    manage_path: Path | None
    settings_module: str
    prefix: str
    suffix: str
    comment: str

    @property
    def project_dir(self) -> Path | None:
        return self.manage_path.parent if self.manage_path else None

    @property
    def instance(self) -> str:
        """Identifies this checkout in crontab markers: a hash of its project directory."""
        return hashlib.sha256(str(self.project_dir).encode()).hexdigest()[:12]


def _find_manage_py() -> Path | None:
    # django-crontab imports `manage`; finding its spec gives the same answer without running it.
    explicit = getattr(settings, "CRONTAB_DJANGO_MANAGE_PATH", None)
    if explicit:
        return Path(explicit).resolve()
    spec = importlib.util.find_spec("manage")
    if spec and spec.origin:
        return Path(spec.origin).resolve()
    if sys.argv and Path(sys.argv[0]).name == "manage.py":
        return Path(sys.argv[0]).resolve()
    return None


def _settings_module() -> str:
    return (
        getattr(settings, "CRONTAB_DJANGO_SETTINGS_MODULE", None)
        or os.environ.get("DJANGO_SETTINGS_MODULE")
        or settings.SETTINGS_MODULE
    )


def get_config() -> CrontabConfig:
    """Read the CRONTAB_* settings (django-crontab's names and defaults, except the lock; see docs/scheduling.md)."""
    project_name = getattr(settings, "CRONTAB_DJANGO_PROJECT_NAME", None) or _settings_module().split(".")[0]
    return CrontabConfig(
        executable=tuple(shlex.split(getattr(settings, "CRONTAB_EXECUTABLE", "/usr/bin/crontab"))),
        python=getattr(settings, "CRONTAB_PYTHON_EXECUTABLE", None) or sys.executable,
        manage_path=_find_manage_py(),
        settings_module=_settings_module(),
        prefix=getattr(settings, "CRONTAB_COMMAND_PREFIX", "") or "",
        suffix=getattr(settings, "CRONTAB_COMMAND_SUFFIX", "") or "",
        comment=getattr(settings, "CRONTAB_COMMENT", None) or f"django-cronjobs for {project_name}",
    )


def settings_problems() -> list[Problem]:
    """CRONTAB_* settings that would produce a broken crontab (reported as cronjobs.E010)."""
    problems = []

    def bad(msg: str, hint: str = "") -> None:
        problems.append(Problem(E010, msg, hint))

    executable = getattr(settings, "CRONTAB_EXECUTABLE", "/usr/bin/crontab")
    try:
        if not isinstance(executable, str) or not shlex.split(executable):
            bad(f"CRONTAB_EXECUTABLE must be a command line, got {executable!r}", "e.g. '/usr/bin/crontab -u deploy'")
    except ValueError as exc:
        bad(f"CRONTAB_EXECUTABLE cannot be parsed: {exc}", "Quote it as you would in a shell.")
    for name in ("CRONTAB_COMMAND_PREFIX", "CRONTAB_COMMAND_SUFFIX", "CRONTAB_COMMENT", "CRONTAB_PYTHON_EXECUTABLE"):
        value = getattr(settings, name, "") or ""
        if not isinstance(value, str) or "\n" in value or "\r" in value:
            bad(f"{name} must be a one-line string, got {value!r}", "A newline would split the crontab line.")
    explicit = getattr(settings, "CRONTAB_DJANGO_MANAGE_PATH", None)
    if explicit and not Path(explicit).is_file():
        bad(f"CRONTAB_DJANGO_MANAGE_PATH {explicit!r} is not a file", "Point it at the project's manage.py.")
    return problems


def _cron_quote(value: str) -> str:
    # cron turns an unescaped % into a newline before the shell sees the command.
    return shlex.quote(value).replace("%", "\\%")


def command_for(job: Job, config: CrontabConfig) -> str:
    """The shell command of the job's crontab line: a scheduled run from the project directory."""
    if config.manage_path is None:
        raise CrontabError("cannot find manage.py; set CRONTAB_DJANGO_MANAGE_PATH")
    parts = [
        "cd",
        _cron_quote(str(config.project_dir)),
        "&&",
        config.prefix,  # after `cd &&`, so `VAR=value` prefixes reach python, not cd
        _cron_quote(config.python),
        _cron_quote(str(config.manage_path)),
        "crontab",
        "run",
        job.name,
        "--scheduled",
        f"--settings={_cron_quote(config.settings_module)}",
        job.suffix,
        config.suffix,
    ]
    return " ".join(part for part in parts if part)


def render_line(job: Job, config: CrontabConfig) -> str:
    """The whole crontab line for a job, newline included."""
    comment = config.comment.replace("%", "\\%")
    schedule = cron_schedule(job)
    return f"{schedule} {command_for(job, config)} # {comment} [cronjobs {config.instance} {job.name}]\n"


def cron_schedule(job: Job, year: int | None = None) -> str:
    """The schedule of the job's line, in cron's zone: the job's own for a job in the project's zone;
    for a zoned job, every cron-zone minute that can be due in its zone (the runner decides which is).

    year: the first of the two years covered (default: this year), so the line is the same all year.
    """
    if not job.zoned:
        return job.schedule
    minute, hour, day, month, weekday = job.cron_expression.split()
    expanded = croniter(job.cron_expression).expanded
    minutes_local = range(60) if "*" in expanded[0] else expanded[0]
    hours_local = range(24) if "*" in expanded[1] else expanded[1]
    local = {(h, m) for h in hours_local for m in minutes_local}
    shifts, gap_ends = _offset_shifts(job, year or datetime.now(UTC).year)
    wall = {((h * 60 + m - shift) // 60, (h * 60 + m - shift) % 60) for h, m in local for shift in shifts}
    wall |= gap_ends
    hours = _cron_field(sorted({h % 24 for h, _ in wall}), 24)
    minutes = _cron_field(sorted({m for _, m in wall}), 60)
    # A shift across midnight or a gap's end moves a due minute to another cron-zone day: every day.
    crosses_midnight = any(not 0 <= h < 24 for h, _ in wall)
    days = ("*", "*", "*") if crosses_midnight or gap_ends else (day, month, weekday)
    return " ".join([minutes, hours, *days])


def _cron_field(values: list[int], size: int) -> str:
    return "*" if len(values) == size else ",".join(map(str, values))


ZONED_FIRE_TOLERANCE = timedelta(minutes=1)  # cron starts a line within its minute; python may spill over


def scheduled_slot(job: Job, now: datetime) -> datetime | None:
    """The minute a scheduled (`--scheduled`) run started at `now` is for: the latest due minute.

    None, for a zoned job, when its crontab line fired at a minute that is not due in the job's zone
    (the line fires at every minute that can be due, see cron_schedule): the run then quietly does
    nothing. A run started late at a minute the line never fires at (a Kubernetes pod whose image took
    minutes to pull) is late, not extra: it claims the latest due minute.
    """
    slot = job.latest_run(now)
    minute = now.astimezone(UTC).replace(second=0, microsecond=0)
    if job.zoned and minute - slot > ZONED_FIRE_TOLERANCE and _line_fired(job, minute):
        return None
    return slot


def _line_fired(job: Job, minute: datetime) -> bool:
    """Whether the job's crontab line fires at `minute` or the one before (a run may spill over)."""
    expression, zone = cron_schedule(job, minute.year), schedule_timezone()
    return any(
        croniter.match(expression, (minute - back).astimezone(zone).replace(tzinfo=None))
        for back in (timedelta(0), ZONED_FIRE_TOLERANCE)
    )


def _offset_shifts(job: Job, year: int) -> tuple[set[int], set[tuple[int, int]]]:
    """Over `year` and the next: the differences (minutes) between the job's zone and cron's, and
    the cron-zone (hour, minute) of each end of a spring-forward gap in the job's zone."""
    job_zone, cron_zone = job.zone, schedule_timezone()
    shifts, gap_ends = set(), set()
    moment, end = datetime(year, 1, 1, tzinfo=UTC), datetime(year + 2, 1, 1, tzinfo=UTC)
    previous = None
    while moment < end:
        offset = moment.astimezone(job_zone).utcoffset()
        shifts.add(int((offset - moment.astimezone(cron_zone).utcoffset()).total_seconds() // 60))
        if previous is not None and offset > previous:
            change = _change_instant(job_zone, moment - timedelta(hours=1), moment)
            at = change.astimezone(cron_zone)
            gap_ends.add((at.hour, at.minute))
        previous = offset
        moment += timedelta(hours=1)
    return shifts, gap_ends


def _change_instant(zone, before: datetime, after: datetime) -> datetime:
    """The first minute in (before, after] at the UTC offset `after` has (offsets change on a minute)."""
    target = after.astimezone(zone).utcoffset()
    low, high = before, after
    while high - low > timedelta(minutes=1):
        middle = low + (high - low) / 2
        middle = middle.replace(second=0, microsecond=0)
        if middle.astimezone(zone).utcoffset() == target:
            high = middle
        else:
            low = middle
    return high


# The first line `add` writes into a crontab it creates (the user had none): how `remove` knows it may
# delete the crontab again once nothing else is left. A user who deletes the line keeps the crontab.
CREATED_LINE = "# crontab created by `manage.py crontab add`; `crontab remove` deletes it when nothing else is left\n"


@dataclass(frozen=True)
class LineInfo:
    """What a crontab line is, as far as this checkout is concerned."""

    # "ours", "legacy" (plain django-crontab, this checkout), "foreign" (another install), "created"
    # (CREATED_LINE, whichever checkout wrote it), "other"
    kind: str
    name: str = ""  # job name for "ours", hash for "legacy"


def classify(line: str, config: CrontabConfig) -> LineInfo:
    """Say whose line this is; never raises, whatever the line holds."""
    if line.rstrip() == CREATED_LINE.rstrip():
        return LineInfo("created")
    if line.lstrip().startswith("#"):
        return LineInfo("other")
    marker = MARKER_RE.search(line)
    if marker:
        if marker["instance"] == config.instance:
            return LineInfo("ours", marker["name"])
        return LineInfo("foreign", marker["name"])
    legacy = LEGACY_RUN_RE.search(line)
    if legacy:
        tokens = line.split()
        ours = (
            config.manage_path is not None
            and str(config.manage_path) in tokens
            and line.rstrip().endswith(f"# {config.comment}")
        )
        return LineInfo("legacy" if ours else "foreign", legacy["hash"])
    return LineInfo("other")


@dataclass
class Plan:
    """The crontab before and after (None: the user has none) and what changed, by job name."""

    before: str | None
    text: str | None = None
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)

    def report(self) -> list[str]:
        lines = [
            f"{label}: {', '.join(names) if names else '-'}"
            for label, names in (
                ("added", self.added),
                ("changed", self.changed),
                ("removed", self.removed),
                ("kept", self.kept),
            )
        ]
        if self.before is None and self.text is not None:
            lines.append("the crontab itself: created (there was none; `crontab remove` deletes it again)")
        elif self.before is not None and self.text is None:
            lines.append("the crontab itself: deleted (`crontab add` had created it and nothing else is left)")
        return lines

    def diff(self) -> list[str]:
        """The exact lines added, changed and removed, as a unified diff without context lines (the
        user's other lines are neither shown nor changed)."""
        if self.text == self.before:
            return []
        lines = difflib.unified_diff(
            (self.before or "").splitlines(keepends=True),
            (self.text or "").splitlines(keepends=True),
            fromfile="crontab now" if self.before is not None else "no crontab now",
            tofile="crontab after" if self.text is not None else "no crontab after (deleted: `crontab -r`)",
            n=0,
        )
        return [line.rstrip("\n") for line in lines]


def _settle(plan: Plan, lines: list[str]) -> Plan:
    """Set the plan's new text: None (no crontab) if only CREATED_LINE and blank lines would be left, or
    if nothing would be written where there was no crontab; CREATED_LINE first in a crontab created now."""
    text = "".join(lines)
    if plan.before is None and text:
        text = CREATED_LINE + text
    leftover = [line for line in text.splitlines(keepends=True) if line.strip()]
    created_only = leftover and all(line.rstrip() == CREATED_LINE.rstrip() for line in leftover)
    plan.text = None if created_only or (plan.before is None and not text) else text
    return plan


def plan_add(current: str | None, jobs: list[Job], config: CrontabConfig) -> Plan:
    """Replace this checkout's lines by one line per enabled job; every other line stays byte for byte.

    Lines are updated in place; new ones go after the last of ours (or at the end). ``current`` None:
    the user has no crontab (see CREATED_LINE).
    """
    desired = {job.name: render_line(job, config) for job in jobs if job.enabled}
    lines = (current or "").splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"  # crontab refuses a file without a final newline anyway
    plan = Plan(before=current)
    out: list[str] = []
    insert_at: int | None = None
    for line in lines:
        info = classify(line, config)
        if info.kind == "ours" and info.name in desired and info.name not in plan.kept + plan.changed:
            new = desired[info.name]
            out.append(new)
            (plan.kept if new == line else plan.changed).append(info.name)
            insert_at = len(out)
        elif info.kind in ("ours", "legacy"):
            plan.removed.append(info.name if info.kind == "ours" else f"legacy {info.name}")
            insert_at = len(out)
        else:
            out.append(line)
    missing = [name for name in desired if name not in plan.kept + plan.changed]
    position = len(out) if insert_at is None else insert_at
    out[position:position] = [desired[name] for name in missing]
    plan.added.extend(missing)
    return _settle(plan, out)


def plan_remove(current: str | None, config: CrontabConfig) -> Plan:
    """Drop this checkout's lines (and its plain django-crontab lines); keep everything else, or no
    crontab at all if `add` created it and nothing else is left."""
    plan = Plan(before=current)
    out = []
    for line in (current or "").splitlines(keepends=True):
        info = classify(line, config)
        if info.kind in ("ours", "legacy"):
            plan.removed.append(info.name if info.kind == "ours" else f"legacy {info.name}")
        else:
            out.append(line)
    return _settle(plan, out)


def _crontab(config: CrontabConfig, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    # argv, never a shell: CRONTAB_EXECUTABLE may carry arguments (`crontab -u deploy`) and paths.
    # LC_ALL=C keeps "no crontab for" in English whatever the locale.
    try:
        return subprocess.run(
            [*config.executable, *args],
            input=stdin,
            capture_output=True,
            timeout=60,
            env={**os.environ, "LC_ALL": "C"},
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise CrontabError(f"cannot run {shlex.join(config.executable)}: {exc}") from exc


def read_existing_crontab(config: CrontabConfig) -> str | None:
    """The current crontab text; None when the user has none. Any other failure raises CrontabError."""
    result = _crontab(config, "-l")
    stderr = result.stderr.decode("utf-8", "replace").strip()
    if result.returncode == 0:
        return result.stdout.decode("utf-8", "surrogateescape")
    if re.search(r"^(crontab: )?no crontab for ", stderr, re.MULTILINE) and not result.stdout.strip():
        return None
    raise CrontabError(
        f"`{shlex.join([*config.executable, '-l'])}` failed (exit {result.returncode}): {stderr or 'no message'}"
    )


def read_crontab(config: CrontabConfig) -> str:
    """The current crontab text; '' when the user has none. Any other failure raises CrontabError."""
    return read_existing_crontab(config) or ""


def write_crontab(config: CrontabConfig, text: str | None) -> None:
    """Install `text` through `crontab -` (None: delete the crontab, `crontab -r`), then read it back
    to make sure cron holds exactly that."""
    if text is None:
        result = _crontab(config, "-r", stdin=b"")
    else:
        result = _crontab(config, "-", stdin=text.encode("utf-8", "surrogateescape"))
    if result.returncode != 0:
        stderr = result.stderr.decode("utf-8", "replace").strip()
        refused = "refused the new file" if text is not None else "could not delete the crontab"
        raise CrontabError(f"crontab {refused} (exit {result.returncode}), nothing changed: {stderr}")
    installed = read_existing_crontab(config)
    if installed != text:
        wanted = "what was written" if text is not None else "no crontab"
        raise CrontabError(f"the crontab read back differs from {wanted}; check it with `crontab -l`")
