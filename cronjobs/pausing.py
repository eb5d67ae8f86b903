"""Pause and resume a job without a deploy: one JobPause row per paused job, read by every route's runner."""

from __future__ import annotations

import getpass
import socket

from django.core.exceptions import ValidationError
from django.utils import timezone

from alx_backend_graphql_crm.validation import validate_text
from cronjobs.models import JobPause
from cronjobs.registry import get_registry

REASON_LIMIT = 1000


def pause_job(name: str, *, by: str, reason: str = "") -> tuple[JobPause, bool]:
    """Pause job `name` (a name or legacy hash in CRONJOBS). Returns (pause, created).

    Pausing a paused job keeps who paused it first and when, and returns created=False.
    Raises UnknownJob for a job not in CRONJOBS and ValueError for a reason over REASON_LIMIT or one that
    breaks the text rule (alx_backend_graphql_crm.validation.validate_text, shared with the CRM).
    """
    job = get_registry().get(name)
    reason = (reason or "").strip()
    if len(reason) > REASON_LIMIT:
        raise ValueError(f"the reason is {len(reason)} characters; at most {REASON_LIMIT}")
    try:
        validate_text(reason)  # the one text rule of every stored text (no NUL, controls, line breaks)
    except ValidationError as exc:
        raise ValueError(f"the reason: {exc.messages[0]}") from None
    return JobPause.objects.get_or_create(
        job_name=job.name, defaults={"paused_at": timezone.now(), "paused_by": by[:255], "reason": reason}
    )


def resume_job(name: str) -> JobPause | None:
    """Resume job `name`; returns the pause it ended, or None when it was not paused. UnknownJob if unknown."""
    job = get_registry().get(name)
    pause = JobPause.objects.filter(job_name=job.name).first()
    if pause is not None:
        pause.delete()
    return pause


def paused(job_name: str) -> JobPause | None:
    """The pause of this job, or None when it runs as scheduled."""
    return JobPause.objects.filter(job_name=job_name).first()


def pauses(names: list[str]) -> dict[str, JobPause]:
    """The pauses of these jobs by name, in one query."""
    return {pause.job_name: pause for pause in JobPause.objects.filter(job_name__in=names)}


def command_line_user() -> str:
    """Who runs `manage.py crontab pause` when there is no Django user: user@host."""
    try:
        user = getpass.getuser()
    except Exception:  # no login name in a bare container
        user = "unknown"
    return f"{user}@{socket.gethostname()} (manage.py)"
