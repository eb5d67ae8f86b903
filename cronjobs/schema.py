"""The scheduling engine in GraphQL (staff only): cronJobs, cronJobRuns and the runCronJob mutation."""

import graphene
from django.core.exceptions import ValidationError
from django.db.models import prefetch_related_objects
from graphene import relay
from graphene_django import DjangoObjectType

from alx_backend_graphql_crm.api.connections import CountableConnection, FilteredConnectionField
from alx_backend_graphql_crm.api.mutations import ServiceMutation
from alx_backend_graphql_crm.api.permissions import permission_required
from cronjobs import health, runner
from cronjobs.describe import human_schedule, job_description, outcome_message
from cronjobs.filters import JobRunFilter
from cronjobs.models import JobRun
from cronjobs.registry import JobConfigError, UnknownJob, schedule_timezone

VIEW = "cronjobs.view_jobrun"
RUN = "cronjobs.run_job"


class CronJobRunNode(DjangoObjectType):
    """One run (or recorded skip) of a job, from the run history."""

    duration = graphene.Float(description="Seconds the run took; null while running.")
    traceback = graphene.String(description="The failure's traceback; null unless you are a superuser.")
    triggered_by = graphene.String(description="Username of who ran it by hand (admin or GraphQL); null otherwise.")

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
        )

    @staticmethod
    def resolve_duration(run, info):
        return run.duration.total_seconds() if run.duration is not None else None

    @staticmethod
    def resolve_traceback(run, info):
        # Tracebacks show paths, settings and data; superusers only.
        return run.traceback if info.context.user.is_superuser else None

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
    timezone = graphene.String(required=True, description="The zone the schedule is read in (TIME_ZONE).")
    enabled = graphene.Boolean(required=True)
    next_run = graphene.DateTime(description="Next scheduled minute; null when the entry is broken.")
    last_run = graphene.Field(CronJobRunNode, description="The latest run that was not a skip.")
    last_success = graphene.DateTime(description="When the latest successful run finished.")
    healthy = graphene.Boolean(required=True, description="False when the job is late or failing.")
    state = graphene.String(required=True, description="One of: ok, new, late, failing, running, stuck, disabled.")
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
        return schedule_timezone().key

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
        prefetch_related_objects([item.last_run for item in snapshot if item.last_run is not None], "triggered_by")
        return snapshot

    @staticmethod
    @permission_required(VIEW, staff=True)
    def resolve_cron_job_runs(root, info, **kwargs):
        return JobRun.objects.select_related("triggered_by").order_by("-started_at", "-id")


class RunCronJob(ServiceMutation):
    """Runs a job now through the runner (trigger "graphql", you recorded as its user) and returns the run.

    An unknown or broken job is reported in `errors`; the job's own failure is the run's status."""

    permissions = (RUN,)
    staff_only = True
    failure_message = "Nothing ran"

    class Arguments:
        name = graphene.String(required=True, description="The job's name (or its django-crontab hash).")

    run = graphene.Field(CronJobRunNode, description="The run just recorded; null when the job could not start.")
    message = graphene.String(required=True, description="What happened, in one sentence.")

    @classmethod
    def perform(cls, info, name):
        try:
            run = runner.run(name, trigger=JobRun.Trigger.GRAPHQL, user=info.context.user)
        except UnknownJob as exc:
            raise ValidationError({"name": ValidationError(str(exc), code="not_found")}) from None
        except JobConfigError as exc:
            raise ValidationError({"name": ValidationError(f"cannot run: {exc}", code="invalid_config")}) from None
        return {"run": run, "message": outcome_message(run)}


class Mutation(graphene.ObjectType):
    run_cron_job = RunCronJob.Field(description="Run a job now.")
