"""Prometheus metrics of the jobs, computed on each scrape from the database (right across processes and hosts).

A custom exposition, not process-local counters: whichever process or machine ran a job, the database
is the one record, so any web process answers the same. Four queries per scrape whatever the number
of jobs and the length of the history: three for the health snapshot, one of the run totals
(RunTotal: per job, status and duration bucket), which database triggers keep as runs finish, so a
scrape never aggregates the history and counters never go down when retention deletes old runs.

Label cardinality (docs/alerts.md, "Prometheus metrics"): the fleet is described by series without a
`job` label (jobs by health state, runs by status, one duration histogram). Per job, a series only
where it carries information: what differs from job to job and what an alert needs present before it
changes (the last success and last run times, the failure counter, the run counts of the statuses
the job has had, its duration's count and sum), and the 0/1 gauges (late, failing, stuck, paused,
the last status) only where they are 1. A healthy job is six lines, whatever its history.

Written in the text format of prometheus-client's `generate_latest`, byte for byte (a test parses our
text with prometheus-client and writes it again with generate_latest): that function validates and
escapes every label of every sample, which at 10,000 jobs cost seconds a scrape.
"""

from __future__ import annotations

import gc
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from prometheus_client.utils import floatToGoString

from cronjobs import health
from cronjobs.alerts import ALERT_STATUSES
from cronjobs.models import JobRun, RunTotal

# Upper bounds (seconds) of the duration histogram: cron jobs take seconds to hours. The database's
# triggers sort runs into these (migration 0008): changing them needs a migration that rewrites those.
DURATION_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)
BOUNDS = tuple(floatToGoString(bound) for bound in DURATION_BUCKETS)
STATUSES = tuple(JobRun.Status.values)
# Runs that executed the job, so have a duration worth a histogram (not skips, not missed slots).
EXECUTED = (JobRun.Status.SUCCEEDED, JobRun.Status.FAILED, JobRun.Status.TIMED_OUT, JobRun.Status.INTERRUPTED)
# Every state /health/cron/ can give a job, in the order cronjobs_jobs lists them.
STATES = (
    health.State.OK,
    health.State.NEW,
    health.State.RUNNING,
    health.State.RETRYING,
    health.State.LATE,
    health.State.FAILING,
    health.State.STUCK,
    health.State.PAUSED,
    health.State.DISABLED,
)
# Per-job 0/1 gauges of the job's health state, written only where they are 1.
FLAGS = {
    health.State.LATE: ("cronjobs_job_late", "1 when /health/cron/ reports the job late (absent: it is not)."),
    health.State.FAILING: ("cronjobs_job_failing", "1 when /health/cron/ reports the job failing (absent: it is not)."),
    health.State.STUCK: ("cronjobs_job_stuck", "1 when /health/cron/ reports the job's run stuck (absent: it is not)."),
}


# --- the text ---------------------------------------------------------------------------------------------
@dataclass
class Family:
    """One metric family: its name as prometheus-client names it (a counter's without `_total`), type,
    help, and its sample lines, already written."""

    name: str
    type: str
    help: str
    lines: list[str] = field(default_factory=list)

    def add(self, suffix: str, labels: str, value: float) -> None:
        """One sample; `labels` is the written label set without braces (names sorted), "" for none."""
        braces = f"{{{labels}}}" if labels else ""
        self.lines.append(f"{self.name}{suffix}{braces} {number(value)}\n")

    def text(self) -> str:
        name = self.name + "_total" if self.type == "counter" else self.name
        helptext = self.help.replace("\\", r"\\").replace("\n", r"\n")
        return f"# HELP {name} {helptext}\n# TYPE {name} {self.type}\n" + "".join(self.lines)


# Counts as number() writes them, the small ones made once: a scrape writes four a job.
_COUNTS = [f"{count}.0" for count in range(1_000)]


def count_text(count: int) -> str:
    """number(count) for a count of runs."""
    return _COUNTS[count] if 0 <= count < 1_000 else number(count)


def number(value: float) -> str:
    """A sample value exactly as prometheus-client writes it (floatToGoString), without its general path for
    the values a scrape writes by the ten thousand: counts, seconds and timestamps."""
    if type(value) is int and -1_000_000 < value < 1_000_000:
        return f"{value}.0"  # repr(float(value)) of a whole number this small, without the float
    if -1e6 < value < 1e6:  # (not NaN, not infinite): Python's repr, as Go writes it
        return repr(float(value))
    if 1e6 <= value < 1e16:  # a timestamp: Go switches to an exponent sooner than Python
        text = repr(float(value))
        dot = text.find(".")
        return f"{text[0]}.{text[1:dot]}{text[dot + 1 :]}".rstrip("0.") + f"e+{dot - 1:02d}"
    return floatToGoString(value)


def label(name: str, value: str) -> str:
    """`name="value"`, the value escaped as the text format wants."""
    if "\\" in value or "\n" in value or '"' in value:
        value = value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return f'{name}="{value}"'


def exposition() -> bytes:
    """The Prometheus text format of the jobs' metrics (what GET /metrics answers).

    The cyclic garbage collector waits for the scrape: at 10,000 jobs a scrape makes some 70,000 objects
    that live until the text is written (the snapshot, the lines), enough to set off full collections
    that walk every object of the process (Django, the registry): 40 ms of 120. None of them form
    cycles; reference counting frees them as usual."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        return "".join(family.text() for family in collect()).encode()
    finally:
        if collecting:
            gc.enable()


# --- the numbers --------------------------------------------------------------------------------------------
@dataclass
class Totals:
    """Finished runs of one status (of one job, or of every job): count, seconds, and per duration bucket."""

    count: int = 0
    seconds: float = 0.0
    # Runs in each duration bucket (not cumulative): index i holds runs over bound i-1 and at most bound i;
    # the last, runs over the longest bound or without a duration.
    per_bucket: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BUCKETS) + 1))

    def add(self, other: Totals) -> None:
        self.count += other.count
        self.seconds += other.seconds
        self.per_bucket = [a + b for a, b in zip(self.per_bucket, other.per_bucket, strict=True)]


# {job: {status: [finished runs, seconds]}} and {status: Totals} of every job (declared or not).
PerJob = dict[str, dict[str, list]]
Fleet = dict[str, Totals]


def collect() -> list[Family]:
    """Every family, from one health snapshot and the run totals.

    The totals are read whole, not filtered by the declared names: a list of 10,000 names costs more
    to send than the rows of jobs no longer declared cost to skip, and the fleet's counters must not
    fall when a job is removed from CRONJOBS."""
    states = health.snapshot(timestamps=True)
    per_job, fleet = totals()
    return [*_fleet_families(states, fleet), *_job_families(states, per_job)]


def totals() -> tuple[PerJob, Fleet]:
    """Each job's finished runs by status, and the fleet's with their duration buckets: RunTotal, which
    database triggers keep (migration 0008), so this reads a few rows a job, not the history."""
    per_job: PerJob = defaultdict(dict)
    fleet: Fleet = defaultdict(Totals)
    for job_name, status, bucket, count, seconds in RunTotal.objects.values_list(
        "job_name", "status", "bucket", "count", "duration_seconds"
    ):
        into = per_job[job_name].get(status)
        if into is None:
            per_job[job_name][status] = [count, seconds]
        else:
            into[0] += count
            into[1] += seconds
        whole = fleet[status]
        whole.count += count
        whole.seconds += seconds
        whole.per_bucket[bucket] += count
    return per_job, fleet


def _histogram(family: Family, values: Totals) -> None:
    """Cumulative buckets, +Inf, count and sum."""
    running = 0
    for bound, value in zip(BOUNDS, values.per_bucket, strict=False):
        running += value
        family.add("_bucket", f'le="{bound}"', running)
    family.add("_bucket", 'le="+Inf"', values.count)
    family.add("_count", "", values.count)
    family.add("_sum", "", values.seconds)


def _fleet_families(states: list[health.JobHealth], fleet: Fleet) -> list[Family]:
    jobs = Family("cronjobs_jobs", "gauge", "Declared jobs, by the state /health/cron/ gives them.")
    counted = Counter(state.state for state in states)
    for state in STATES:
        jobs.add("", label("state", state), counted.get(state, 0))
    runs = Family("cronjobs_runs", "counter", "Finished runs of every job, by status (skips included).")
    for status in STATUSES:
        runs.add("_total", label("status", status), fleet[status].count if status in fleet else 0)
    duration = Family("cronjobs_run_duration_seconds", "histogram", "How long the executed runs of every job took.")
    executed = Totals()
    for status in EXECUTED:
        if status in fleet:
            executed.add(fleet[status])
    _histogram(duration, executed)
    return [jobs, runs, duration]


# The per-job lines of this process's last scrape: {job: (what they were written from, the lines)}.
_RENDERED: list[dict[str, tuple]] = [{}]
_ORDER = {status: i for i, status in enumerate(STATUSES)}
_ALERTS, _EXECUTED = frozenset(map(str, ALERT_STATUSES)), frozenset(map(str, EXECUTED))


def _job_lines(name: str, success, started, last_status, per_status: dict) -> tuple[str, ...]:
    """One job's label and its lines in each per-job family ("" where it has none): last success, last
    run, last status, runs by status, failures, duration count and sum."""
    job = label("job", name)
    success_us, started_us = health.as_epoch_us(success), health.as_epoch_us(started)
    # int / int: one correctly rounded division, datetime.timestamp()'s value.
    success_line = started_line = status_line = ""
    if success_us is not None:
        success_line = f"cronjobs_job_last_success_timestamp_seconds{{{job}}} {number(success_us / 1_000_000)}\n"
    if started_us is not None:
        started_line = f"cronjobs_job_last_run_timestamp_seconds{{{job}}} {number(started_us / 1_000_000)}\n"
        if last_status != JobRun.Status.SUCCEEDED:
            status_line = f"cronjobs_job_last_status{{{job},{label('status', last_status)}}} 1.0\n"
    failed = executed = 0
    seconds = 0.0
    runs = []
    for status in per_status if len(per_status) < 2 else sorted(per_status, key=_ORDER.__getitem__):
        count, spent = per_status[status]
        runs.append(f'cronjobs_job_runs_total{{{job},status="{status}"}} {count_text(count)}\n')
        if status in _ALERTS:
            failed += count
        if status in _EXECUTED:
            executed += count
            seconds += spent
    return (
        job,
        success_line,
        started_line,
        status_line,
        "".join(runs),
        f"cronjobs_job_failures_total{{{job}}} {count_text(failed)}\n",
        f"cronjobs_job_duration_seconds_count{{{job}}} {count_text(executed)}\n"
        f"cronjobs_job_duration_seconds_sum{{{job}}} {number(seconds)}\n",
    )


def _job_families(states: list[health.JobHealth], per_job: PerJob) -> list[Family]:
    last_success = Family(
        "cronjobs_job_last_success_timestamp_seconds", "gauge", "When the job's last successful run finished."
    )
    last_run = Family(
        "cronjobs_job_last_run_timestamp_seconds", "gauge", "When the job's last run (not a skip) started."
    )
    last_status = Family(
        "cronjobs_job_last_status",
        "gauge",
        "1 for the status of the job's last run (not a skip); absent when it succeeded or the job never ran.",
    )
    runs = Family(
        "cronjobs_job_runs", "counter", "Finished runs, by status (skips included); statuses the job has had."
    )
    failures = Family("cronjobs_job_failures", "counter", "Failed, timed-out, missed and interrupted runs.")
    duration = Family(
        "cronjobs_job_duration_seconds",
        "summary",
        "How long the job's executed runs took: count and sum (buckets: cronjobs_run_duration_seconds).",
    )
    flags = {state: Family(name, "gauge", text) for state, (name, text) in FLAGS.items()}
    paused = Family("cronjobs_job_paused", "gauge", "1 when the job is paused (absent: it is not).")
    # The hot loop of a scrape (once per declared job). A job's lines are written again only when what
    # they say changed since this process's last scrape (most jobs do not run between two scrapes).
    success_lines, run_lines, status_lines, runs_lines = (
        last_success.lines,
        last_run.lines,
        last_status.lines,
        runs.lines,
    )
    failure_lines, duration_lines = failures.lines, duration.lines
    empty: dict[str, list] = {}
    before, rendered = _RENDERED[0], {}
    for state in states:
        name = state.job.name
        key = (*state.latest_times(), state.last_status, per_job.get(name, empty))
        done = before.get(name)
        if done is None or done[0] != key:
            done = (key, _job_lines(name, *key))
        rendered[name] = done
        job, success, started, status, per_status, failed, spent = done[1]
        if success:
            success_lines.append(success)
        if started:
            run_lines.append(started)
        if status:
            status_lines.append(status)
        runs_lines.append(per_status)
        failure_lines.append(failed)
        duration_lines.append(spent)
        if state.state in flags:
            flags[state.state].add("", job, 1)
        if state.pause is not None:
            paused.add("", job, 1)
    _RENDERED[0] = rendered
    return [last_success, last_run, last_status, runs, failures, duration, *flags.values(), paused]
