"""Words for people: a schedule in plain English, a job's description, the outcome of a run."""

from __future__ import annotations

from functools import lru_cache

from cron_descriptor import ExpressionDescriptor, Options

from cronjobs.models import JobRun
from cronjobs.registry import Job


@lru_cache(maxsize=512)
def _describe_expression(expression: str) -> str:
    options = Options()
    options.use_24hour_time_format = True
    return ExpressionDescriptor(expression, options).get_description()


def human_schedule(job: Job) -> str:
    """cron-descriptor's reading of the schedule ("Every 5 minutes"), or a note when it cannot read it."""
    try:
        return _describe_expression(job.cron_expression)
    except Exception as exc:  # cron-descriptor raises its own types for expressions it cannot read
        return f"(cannot describe {job.schedule!r}: {exc})"


def job_description(job: Job) -> str:
    """The description given in CRONJOBS, or else the human schedule."""
    return job.description or human_schedule(job)


def format_duration(run: JobRun | None) -> str:
    """A run's duration as people read it ("0.25 s", "3 min 2 s"); "" while unknown."""
    if run is None or run.duration is None:
        return ""
    seconds = run.duration.total_seconds()
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, seconds = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def outcome_message(run: JobRun) -> str:
    """One sentence on what a run just did, for the admin's message and GraphQL's payload."""
    # Starts with "Run", not the job name: the admin capitalises a message's first letter.
    label = f"Run #{run.pk} of {run.job_name}"
    if run.status == JobRun.Status.SUCCEEDED:
        summary = f": {run.result[:200]}" if run.result else ""
        return f"{label} succeeded in {format_duration(run)}{summary}"
    if run.status == JobRun.Status.SKIPPED:
        return f"{label} was skipped: {run.result}"
    if run.status == JobRun.Status.RUNNING:
        return f"{label} is running"
    return f"{label} {run.status.replace('_', ' ')} after {format_duration(run)}: {run.result[:500]}"
