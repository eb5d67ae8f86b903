"""The scheduling engine in GraphQL (staff only): cronJobs, cronJobRuns, runCronJob, pauseCronJob, resumeCronJob."""

import graphene
from django.core.exceptions import ValidationError
from django.db.models import prefetch_related_objects
from graphene import relay
from graphene_django import DjangoObjectType

from alx_backend_graphql_crm.api.connections import CountableConnection, FilteredConnectionField
from alx_backend_graphql_crm.api.mutations import ServiceMutation
from alx_backend_graphql_crm.api.permissions import permission_required
from cronjobs import health, pausing, runner
from cronjobs.access import may_see_traceback
from cronjobs.dbclock import ClockSkewError
from cronjobs.describe import human_schedule, job_description, outcome_message
from cronjobs.filters import JobRunFilter
from cronjobs.models import JobRun
from cronjobs.registry import JobConfigError, UnknownJob, get_registry

VIEW = "cronjobs.view_jobrun"
RUN = "cronjobs.run_job"
PAUSE = "cronjobs.pause_job"


class CronJobRunNode(DjangoObjectType):
    """One run (or recorded skip) of a job, from the run history."""

    duration = graphene.Float(description="Seconds the run took; null while running.")
    traceback = graphene.String(description="The failure's traceback; null unless you are a superuser.")
    triggered_by = graphene.String(description="Username of who ran it by hand (admin or GraphQL); null otherwise.")
    attempt = graphene.Int(required=True, description="1 for the first attempt of a slot, 2 for its first retry...")
    retry_of = graphene.Field(lambda: CronJobRunNode, description="The first attempt this run retries; null for it.")
    output = graphene.String(
        required=True, description="What the job printed and logged (the last 64 KB; a first line says when cut)."
    )

    class Meta:
        model = JobRun
        name = "CronJobRun"
        interfaces = (relay.Node,)
        connection_class = CountableConnection
        # Plain strings, the same words the database and /health/cron/ use (succeeded, timed_out ...).
        convert_choices_to_enum = False
        fields = (
            "id",
            "job_name",
            "scheduled_for",
            "trigger",
            "status",
            "host",
            "pid",
            "started_at",
            "finished_at",
            "duration",
            "result",
            "traceback",
            "triggered_by",
            "attempt",
            "retry_of",
            "output",
            "lease_expires_at",
            "renewed_at",
            "clock_offset",
            "late_status",
            "late_finished_at",
            "late_result",
            "gap_last",
            "gap_count",
        )

    @staticmethod
    def resolve_duration(run, info):
        return run.duration.total_seconds() if run.duration is not None else None

    @staticmethod
    def resolve_traceback(run, info):
        return run.traceback if may_see_traceback(info.context.user) else None

    @staticmethod
    def resolve_triggered_by(run, info):
        # Read from the cache filled by select_related / prefetch in the root resolvers: no query per row.
        user = run.triggered_by
        return user.get_username() if user is not None else None


class CronJob(graphene.ObjectType):
    """A job declared in CRONJOBS, with its health (the same verdict as /health/cron/)."""

    name = graphene.String(required=True)
    schedule = graphene.String(required=True, description="As declared: five cron fields or a macro (@daily).")
    description = graphene.String(required=True, description="The CRONJOBS description, or else the human schedule.")
    human_schedule = graphene.String(required=True, description='The schedule in words, e.g. "Every 5 minutes".')
    timezone = graphene.String(
        required=True, description="The zone the schedule is read in: the job's `timezone` option, else TIME_ZONE."
    )
    enabled = graphene.Boolean(required=True)
    paused = graphene.Boolean(required=True, description="Paused at run time (pauseCronJob, crontab pause, admin).")
    paused_by = graphene.String(description="Who paused it (username, or user@host for manage.py); null if running.")
    paused_at = graphene.DateTime(description="When it was paused; null if not paused.")
    pause_reason = graphene.String(description="Why it was paused; null if not paused.")
    retries = graphene.Int(required=True, description="Attempts after a failed one (the `retries` option).")
    next_run = graphene.DateTime(
        description="When it next starts (its next scheduled minute plus its `jitter` offset); null if broken."
    )
    start_offset = graphene.Int(required=True, description="Seconds into its minute it starts (the `jitter` option).")
    last_run = graphene.Field(CronJobRunNode, description="The latest run that was not a skip.")
    last_success = graphene.DateTime(description="When the latest successful run finished.")
    healthy = graphene.Boolean(required=True, description="False when the job is late or failing.")
    state = graphene.String(
        required=True, description="One of: ok, new, late, failing, running, stuck, disabled, paused, retrying."
    )
    problem = graphene.String(description="Why the job is late, failing or stuck; null when healthy.")

    @staticmethod
    def resolve_name(item, info):
        return item.job.name

    @staticmethod
    def resolve_schedule(item, info):
        return item.job.schedule

    @staticmethod
    def resolve_description(item, info):
        return job_description(item.job)

    @staticmethod
    def resolve_human_schedule(item, info):
        return human_schedule(item.job)

    @staticmethod
    def resolve_timezone(item, info):
        return item.job.zone.key

    @staticmethod
    def resolve_paused(item, info):
        return item.pause is not None

    @staticmethod
    def resolve_paused_by(item, info):
        return item.pause.paused_by if item.pause else None

    @staticmethod
    def resolve_paused_at(item, info):
        return item.pause.paused_at if item.pause else None

    @staticmethod
    def resolve_pause_reason(item, info):
        return item.pause.reason if item.pause else None

    @staticmethod
    def resolve_retries(item, info):
        return item.job.retries

    @staticmethod
    def resolve_next_run(item, info):
        return item.next_start

    @staticmethod
    def resolve_start_offset(item, info):
        return item.job.start_offset

    @staticmethod
    def resolve_enabled(item, info):
        return item.job.enabled

    @staticmethod
    def resolve_problem(item, info):
        return item.problem or None


class Query(graphene.ObjectType):
    cron_jobs = graphene.List(
        graphene.NonNull(CronJob),
        required=True,
        description="Every job in CRONJOBS, in declaration order, with its health.",
    )
    cron_job_runs = FilteredConnectionField(
        CronJobRunNode,
        filterset_class=JobRunFilter,
        filter_input_name="CronJobRunFilterInput",
        description="The run history, newest first.",
    )

    @staticmethod
    @permission_required(VIEW, staff=True)
    def resolve_cron_jobs(root, info):
        snapshot = health.snapshot()
        # One query for every last run's user, whatever the number of jobs (none when no run has one).
        last_runs = [item.last_run for item in snapshot if item.last_run is not None]
        prefetch_related_objects(last_runs, "triggered_by", "retry_of")
        return snapshot

    @staticmethod
    @permission_required(VIEW, staff=True)
    def resolve_cron_job_runs(root, info, **kwargs):
        return JobRun.objects.select_related("triggered_by", "retry_of").order_by("-started_at", "-id")


class RunCronJob(ServiceMutation):
    """Starts a job now (trigger "graphql", you recorded as its user) and returns the run at once, `running`.

    The job runs in a process of its own, never in the web server; `wait` (seconds, at most
    RUN_WAIT_MAX) waits for its outcome when a script wants it, and the run goes on either way.
    An unknown or broken job is reported in `errors`; the job's own failure is the run's status."""

    permissions = (RUN,)
    staff_only = True
    failure_message = "Nothing ran"

    class Arguments:
        name = graphene.String(required=True, description="The job's name (or its django-crontab hash).")
        wait = graphene.Int(
            description=f"Seconds to wait for the outcome, 0 to {runner.RUN_WAIT_MAX} (default 0: answer at once)."
        )

    run = graphene.Field(CronJobRunNode, description="The run just started; null when the job could not start.")
    message = graphene.String(required=True, description="What happened, in one sentence.")

    @classmethod
    def perform(cls, info, name, wait=0):
        if wait is None or not 0 <= wait <= runner.RUN_WAIT_MAX:
            message = f"must be a number of seconds from 0 to {runner.RUN_WAIT_MAX}, got {wait}"
            raise ValidationError({"wait": ValidationError(message, code="invalid")})
        try:
            run = runner.start(name, JobRun.Trigger.GRAPHQL, user=info.context.user)
        except UnknownJob as exc:
            raise _unknown(exc) from None
        except JobConfigError as exc:
            raise ValidationError({"name": ValidationError(f"cannot run: {exc}", code="invalid_config")}) from None
        except ClockSkewError as exc:
            raise ValidationError({"name": ValidationError(str(exc), code="clock")}) from None
        if wait and run.status == JobRun.Status.RUNNING:
            run = runner.wait_for(run, wait)
        return {"run": run, "message": outcome_message(run)}


def _job_state(name: str):
    """The health snapshot item of one job (what cronJobs shows for it)."""
    return health.snapshot([get_registry().get(name)])[0]


def _unknown(exc: UnknownJob) -> ValidationError:
    return ValidationError({"name": ValidationError(str(exc), code="not_found")})


JOB_NAME = "The job's name (or its django-crontab hash)."


class JobPauseMutation(ServiceMutation):
    """What pauseCronJob and resumeCronJob share: the permission, the refusal, the payload."""

    class Meta:
        abstract = True

    permissions = (VIEW, PAUSE)
    staff_only = True
    failure_message = "Nothing changed"

    cron_job = graphene.Field(CronJob, description="The job as cronJobs now shows it; null on errors.")
    message = graphene.String(required=True, description="What happened, in one sentence.")


class PauseCronJob(JobPauseMutation):
    """Pauses a job on every route: its scheduled runs are recorded as skipped, naming you, until resumed.

    Runs by hand (runCronJob, the admin's Run now, `crontab run <name>`) still run a paused job."""

    class Arguments:
        name = graphene.String(required=True, description=JOB_NAME)
        reason = graphene.String(description="Why; shown with every skipped run.")

    @classmethod
    def perform(cls, info, name, reason=""):
        try:
            pause, created = pausing.pause_job(name, by=info.context.user.get_username(), reason=reason or "")
        except UnknownJob as exc:
            raise _unknown(exc) from None
        except ValueError as exc:
            raise ValidationError({"reason": ValidationError(str(exc), code="max_length")}) from None
        state = "paused" if created else "already paused"
        return {"cron_job": _job_state(pause.job_name), "message": f"{pause.job_name} {state}: {pause.summary}"}


class ResumeCronJob(JobPauseMutation):
    """Resumes a paused job: it runs again at its next scheduled minute, on every route."""

    class Arguments:
        name = graphene.String(required=True, description=JOB_NAME)

    @classmethod
    def perform(cls, info, name):
        try:
            pause = pausing.resume_job(name)
        except UnknownJob as exc:
            raise _unknown(exc) from None
        job_name = get_registry().get(name).name
        message = f"{job_name} resumed (was {pause.summary})" if pause else f"{job_name} was not paused"
        return {"cron_job": _job_state(job_name), "message": message}


class Mutation(graphene.ObjectType):
    run_cron_job = RunCronJob.Field(description="Run a job now.")
    pause_cron_job = PauseCronJob.Field(description="Pause a job's scheduled runs on every route.")
    resume_cron_job = ResumeCronJob.Field(description="Resume a paused job.")
