"""Run history: one JobRun row per run, which is also the lock that keeps a minute from running twice.

Every time written here that another host compares (a run's start, end, lease; a scheduler's tick) is
the database's clock, never the writing host's (cronjobs/dbclock.py)."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now


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
        # Ended by a signal (TERM, HUP, INT, QUIT) before the job finished.
        INTERRUPTED = "interrupted"
        # A scheduled minute that started later than its grace: not run, and an alarm (not a plain skip).
        MISSED = "missed"

    class Trigger(models.TextChoices):
        CRONTAB = "crontab", "system crontab"
        MANUAL = "manual", "by hand"
        WORK = "work", "crontab work"
        CELERY = "celery", "Celery beat"
        ADMIN = "admin", "admin"
        GRAPHQL = "graphql", "GraphQL"
        HTTP = "http", "fire endpoint"

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
    # The database's clock at the claim (DEFAULT now(), read back with the insert).
    started_at = models.DateTimeField(db_default=Now())
    finished_at = models.DateTimeField(null=True, blank=True)
    duration = models.DurationField(null=True, blank=True)
    result = models.TextField(blank=True, help_text="What the job returned, or why it was skipped or failed.")
    traceback = models.TextField(blank=True)
    # Who pressed "Run now" (admin) or called runCronJob (GraphQL); empty for scheduled runs. SET_NULL:
    # deleting a user must not delete the evidence of what ran.
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The user who started this run by hand (admin or GraphQL).",
    )
    # Retries (the job's `retries` option): attempt 1 claims the slot; each later attempt is its own row
    # pointing at attempt 1. SET_NULL: retention may delete an old first attempt before its retries.
    attempt = models.PositiveSmallIntegerField(default=1, help_text="1 for the first attempt, 2 for the first retry...")
    retry_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="retries",
        help_text="The first attempt of the slot this retry belongs to.",
    )
    output = models.TextField(
        blank=True, help_text="What the job wrote to stdout, stderr and logging (the last 64 KB; says so when cut)."
    )
    # Leases (cronjobs/reaper.py): the supervising process renews a running run's lease; once it has
    # expired on the database's clock any host may close the run, and none may before.
    lease_expires_at = models.DateTimeField(null=True, blank=True, help_text="A running run is alive until then.")
    renewed_at = models.DateTimeField(null=True, blank=True, help_text="The lease's last renewal.")
    clock_offset = models.FloatField(
        null=True, blank=True, help_text="Seconds the claiming host's clock was ahead of the database's."
    )
    # The real outcome of a run that another host had already closed (its lease expired while the host
    # was cut off): kept beside the record, never over it.
    late_status = models.CharField(max_length=20, blank=True)
    late_finished_at = models.DateTimeField(null=True, blank=True)
    late_result = models.TextField(blank=True)
    # A gap (a `missed` row written by the sweeper, cronjobs/gaps.py): scheduled_for is its first minute.
    gap_last = models.DateTimeField(null=True, blank=True, help_text="The gap's last missed minute.")
    gap_count = models.PositiveIntegerField(null=True, blank=True, help_text="Due minutes in the gap.")

    class Meta:
        ordering = ["-started_at", "-id"]
        permissions = [("run_job", "Can run a scheduled job now")]
        constraints = [
            # One row per (slot, attempt): the slot itself is claimed by attempt 1, so it still runs once;
            # a redelivered Celery retry finds its attempt taken.
            models.UniqueConstraint(
                fields=["job_name", "scheduled_for", "attempt"],
                condition=Q(scheduled_for__isnull=False),
                name="cronjobs_jobrun_one_run_per_slot_attempt",
            ),
            models.UniqueConstraint(
                fields=["job_name"],
                condition=Q(status="running", exclusive=True),
                name="cronjobs_jobrun_one_running_per_job",
            ),
            models.CheckConstraint(
                condition=Q(
                    status__in=["running", "succeeded", "failed", "skipped", "timed_out", "interrupted", "missed"]
                ),
                name="cronjobs_jobrun_status_valid",
            ),
        ]
        indexes = [
            models.Index(fields=["job_name", "-started_at"], name="cronjobs_jobrun_job_latest"),
            # The reaper's question, "which running runs' leases have expired?", reads only running rows.
            models.Index(
                fields=["lease_expires_at"], condition=Q(status="running"), name="cronjobs_jobrun_running_lease"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.job_name} {self.status} at {self.started_at:%Y-%m-%d %H:%M:%S}"

    # Set on the instance the runner returns when another process already holds the slot.
    duplicate = False


class JobPause(models.Model):
    """A paused job: its scheduled runs are recorded as skipped, naming who paused it, when and why.

    Stored in the database (not CRONJOBS) so pausing needs no deploy and every route sees it at
    its next minute. No row: the job is not paused.
    """

    job_name = models.CharField(max_length=100, unique=True)
    paused_at = models.DateTimeField()
    # Text, not a user key: `manage.py crontab pause` has no Django user, and deleting a user must
    # not lose who paused the job.
    paused_by = models.CharField(max_length=255, help_text="Username (admin, GraphQL) or user@host (manage.py).")
    reason = models.TextField(blank=True)

    class Meta:
        default_permissions = ("view",)
        permissions = [("pause_job", "Can pause and resume a scheduled job")]

    def __str__(self) -> str:
        return f"{self.job_name} paused by {self.paused_by} at {self.paused_at:%Y-%m-%d %H:%M:%S}"

    @property
    def summary(self) -> str:
        """One line for skips, show, health and the admin: who, when (UTC ISO), why."""
        text = f"paused by {self.paused_by} at {self.paused_at.isoformat(timespec='seconds')}"
        return f"{text}: {self.reason}" if self.reason else text


class ScheduledJob(JobRun):
    """No data of its own: gives the admin's "Scheduled jobs" page (every CRONJOBS job, with a Run
    now button) its place in the admin index under this app. The jobs live in settings, not here."""

    class Meta:
        proxy = True
        verbose_name = "scheduled job"
        verbose_name_plural = "scheduled jobs"
        # The page is governed by cronjobs.view_jobrun and cronjobs.run_job; no permissions of its own.
        default_permissions = ()


class RunTotal(models.Model):
    """Finished runs of a job, per status and duration bucket: the totals /metrics reads, so a scrape costs
    the number of jobs, not the length of the history.

    Kept by database triggers on cronjobs_jobrun (migration 0008), in the statement that inserts a
    finished run or finishes a running one, whichever process or host writes it; no Python writes here.
    Deleting history (retention) leaves the totals as they are, so counters never go down.
    """

    job_name = models.CharField(max_length=100)
    status = models.CharField(max_length=20)
    # Index in cronjobs.metrics.DURATION_BUCKETS of the first bound the run's duration is at or under;
    # len(DURATION_BUCKETS) for longer runs and runs without a duration.
    bucket = models.PositiveSmallIntegerField()
    count = models.BigIntegerField(default=0)
    duration_seconds = models.FloatField(default=0.0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["job_name", "status", "bucket"], name="cronjobs_runtotal_one_per_bucket")
        ]

    def __str__(self) -> str:
        return f"{self.job_name} {self.status} bucket {self.bucket}: {self.count}"


class JobLatest(models.Model):
    """Each job's last run (not a skip) and last success: what /health/cron/, the admin, `crontab show`
    and /metrics read for every declared job, so they cost a row a job, not a scan of the history.

    Kept by database triggers on cronjobs_jobrun (migration 0009), in the statement that inserts, updates
    or deletes a run, whichever process or host writes it; no Python writes here. It always equals what
    the history says: a change that takes the last run or the last success away looks them up again,
    and a job with no run left (skips aside) has no row.
    """

    job_name = models.CharField(max_length=100, primary_key=True)
    last_id = models.BigIntegerField()  # the newest run that is not a skip
    last_status = models.CharField(max_length=20)  # its status, start and
    last_started_at = models.DateTimeField()
    last_success_at = models.DateTimeField(null=True)  # the latest finish of a succeeded run

    def __str__(self) -> str:
        return f"{self.job_name}: last run #{self.last_id}"


class SchedulerBeat(models.Model):
    """A scheduler process (`crontab work` or Celery beat) saying it is alive: one row per process, its
    last tick on the database's clock, the CRONJOBS it runs, and what is wrong with a newer one."""

    class Route(models.TextChoices):
        WORK = "work", "crontab work"
        BEAT = "beat", "Celery beat"

    instance = models.CharField(max_length=32, unique=True, help_text="Random id of the process.")
    route = models.CharField(max_length=10, choices=Route.choices)
    host = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField(db_default=Now())
    last_tick = models.DateTimeField(db_default=Now())
    stopped_at = models.DateTimeField(null=True, blank=True, help_text="Set when it stopped cleanly.")
    cronjobs_version = models.CharField(max_length=16, help_text="Hash of the CRONJOBS it fires.")
    jobs = models.PositiveIntegerField(default=0, help_text="Jobs it fires.")
    clock_offset = models.FloatField(null=True, blank=True, help_text="Its clock minus the database's, seconds.")
    config_error = models.TextField(blank=True, help_text="Why it refuses the CRONJOBS now in its settings.")

    class Meta:
        ordering = ["-last_tick"]
        default_permissions = ("view",)

    def __str__(self) -> str:
        return f"{self.get_route_display()} on {self.host} pid {self.pid}"
