"""Retention of the run history: `prune_job_runs`, itself a CRONJOBS target."""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from cronjobs.models import JobRun

DEFAULT_RETENTION_DAYS = 30
BATCH = 500  # rows per transaction: bounded locks and query parameters, however much history there is


def prune_job_runs(days: int | None = None) -> str:
    """Delete finished runs that started more than `days` ago (default settings.CRONJOBS_RUN_RETENTION_DAYS, 30).

    Rows still `running` are kept whatever their age: they are closed by the runner's dead-run
    detection, not by retention. The /metrics counters are the run totals the database keeps as runs
    finish (cronjobs.models.RunTotal), which deleting history leaves alone. Returns a one-line summary,
    which the run history records.
    """
    if days is None:
        days = getattr(settings, "CRONJOBS_RUN_RETENTION_DAYS", DEFAULT_RETENTION_DAYS)
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise ValueError(f"retention must be a whole number of days >= 1, got {days!r}")
    cutoff = timezone.now() - timedelta(days=days)
    old = JobRun.objects.filter(started_at__lt=cutoff).exclude(status=JobRun.Status.RUNNING)
    deleted = 0
    while True:
        with transaction.atomic():
            ids = list(old.order_by("id").values_list("id", flat=True)[:BATCH])
            if not ids:
                break
            deleted += JobRun.objects.filter(id__in=ids).delete()[0]
    return f"Deleted {deleted} job runs older than {days} days"
