"""Run history: one JobRun row per run, which is also the lock that keeps a minute from running twice."""

from django.db import models
from django.db.models import Q


class JobRun(models.Model):
    """One run (or recorded skip) of a CRONJOBS job.

    Two database constraints carry the runner's guarantees, whatever machine or trigger inserts:
    a scheduled minute of a job has at most one row, and a job has at most one exclusive row in
    `running` status.
    """

    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        SKIPPED = "skipped"
        TIMED_OUT = "timed_out"

    class Trigger(models.TextChoices):
        CRONTAB = "crontab", "system crontab"
        MANUAL = "manual", "by hand"
        WORK = "work", "crontab work"
        CELERY = "celery", "Celery beat"
        ADMIN = "admin", "admin"
        GRAPHQL = "graphql", "GraphQL"

    job_name = models.CharField(max_length=100, db_index=True)
    scheduled_for = models.DateTimeField(
        null=True, blank=True, help_text="The scheduled minute this run claimed; empty for runs started by hand."
    )
    trigger = models.CharField(max_length=20, choices=Trigger.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RUNNING)
    # False for skips and for jobs that allow overlap, so only real exclusive runs hold the lock.
    exclusive = models.BooleanField(default=True)
    host = models.CharField(max_length=255)
    pid = models.PositiveIntegerField(null=True, blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    duration = models.DurationField(null=True, blank=True)
    result = models.TextField(blank=True, help_text="What the job returned, or why it was skipped or failed.")
    traceback = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["job_name", "scheduled_for"],
                condition=Q(scheduled_for__isnull=False),
                name="cronjobs_jobrun_one_run_per_slot",
            ),
            models.UniqueConstraint(
                fields=["job_name"],
                condition=Q(status="running", exclusive=True),
                name="cronjobs_jobrun_one_running_per_job",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["running", "succeeded", "failed", "skipped", "timed_out"]),
                name="cronjobs_jobrun_status_valid",
            ),
        ]
        indexes = [models.Index(fields=["job_name", "-started_at"], name="cronjobs_jobrun_job_latest")]

    def __str__(self) -> str:
        return f"{self.job_name} {self.status} at {self.started_at:%Y-%m-%d %H:%M:%S}"

    # Set on the instance the runner returns when another process already holds the slot.
    duplicate = False
