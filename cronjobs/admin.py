"""The run history (read-only) and the "Scheduled jobs" page with Run now, Pause and Resume, in the Django admin."""

from urllib.parse import quote

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import DatabaseError
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.http import urlencode

from cronjobs import health, pausing, runner
from cronjobs.access import may_see_traceback
from cronjobs.dbclock import ClockSkewError
from cronjobs.describe import format_duration, human_schedule, outcome_message
from cronjobs.models import JobRun, ScheduledJob
from cronjobs.registry import JobConfigError, UnknownJob, schedule_timezone

VIEW = "cronjobs.view_jobrun"
RUN = "cronjobs.run_job"
PAUSE = "cronjobs.pause_job"


class ReadOnlyAdmin(admin.ModelAdmin):
    """Views only: no add, change or delete."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(JobRun)
class JobRunAdmin(ReadOnlyAdmin):
    """History is evidence: nobody edits or deletes it by hand; prune_job_runs handles retention."""

    list_display = (
        "job_name",
        "status",
        "trigger",
        "scheduled_for",
        "attempt",
        "started_at",
        "duration",
        "triggered_by",
        "host",
        "pid",
    )
    list_filter = (("job_name", admin.AllValuesFieldListFilter), "status", "trigger", "started_at")
    list_select_related = ("triggered_by",)
    search_fields = ("job_name", "result")
    date_hierarchy = "started_at"
    readonly_fields = [field.name for field in JobRun._meta.fields if field.name != "output"] + ["captured_output"]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # A run still going is shown as such, and the page reloads itself until it ends.
        run = JobRun.objects.filter(pk=object_id).only("status").first() if object_id.isdigit() else None
        extra_context = {**(extra_context or {}), "run_in_progress": run is not None and run.status == "running"}
        return super().change_view(request, object_id, form_url, extra_context)

    def get_fields(self, request, obj=None):
        # The traceback for superusers only, as in GraphQL (cronjobs.access.may_see_traceback).
        fields = super().get_fields(request, obj)
        return fields if may_see_traceback(request.user) else [name for name in fields if name != "traceback"]

    @admin.display(description="output")
    def captured_output(self, run):
        # <pre>: the output as the job wrote it (escaped), in a box that scrolls instead of a wall of text.
        if not run.output:
            return "—"
        return format_html('<pre class="job-output" style="max-height:40em;overflow:auto">{}</pre>', run.output)


JOBS_PER_PAGE = 100


def _matches(job, query: str) -> bool:
    """The page's search: the query in the job's name, path or description (any case)."""
    if not query:
        return True
    query = query.casefold()
    return any(query in text.casefold() for text in (job.name, job.path, job.description))


MESSAGE_LEVELS = {
    JobRun.Status.SUCCEEDED: messages.SUCCESS,
    JobRun.Status.SKIPPED: messages.WARNING,
    JobRun.Status.RUNNING: messages.WARNING,
}


class _Links:
    """A page's links for each job: the URL patterns reversed once, each job's filled in (100 rows)."""

    MARK = "0cronjobs0"

    def __init__(self, history: str):
        self._history = history
        self._run_page = reverse("admin:cronjobs_jobrun_change", args=[self.MARK])
        self._actions = {
            action: reverse(f"admin:cronjobs_scheduledjob_{action}", args=[self.MARK])
            for action in ("run", "pause", "resume")
        }

    def run_page(self, pk: int) -> str:
        return self._run_page.replace(self.MARK, str(pk))

    def history(self, name: str) -> str:
        return f"{self._history}?{urlencode({'job_name': name})}"

    def action(self, action: str, name: str) -> str:
        return self._actions[action].replace(self.MARK, quote(name, safe=""))


@admin.register(ScheduledJob)
class ScheduledJobAdmin(ReadOnlyAdmin):
    """Every CRONJOBS job: schedule, next run, last run, history link, Run now. Not a model list:
    the jobs come from settings, so the page replaces every view the admin would generate."""

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm(VIEW)

    def get_urls(self):
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path("", self.admin_site.admin_view(self.changelist_view), name=f"{prefix}_changelist"),
            # admin_view adds the staff login check and csrf_protect, so a POST without the token is refused.
            path("run/<str:name>/", self.admin_site.admin_view(self.run_now_view), name=f"{prefix}_run"),
            path("pause/<str:name>/", self.admin_site.admin_view(self.pause_view), name=f"{prefix}_pause"),
            path("resume/<str:name>/", self.admin_site.admin_view(self.resume_view), name=f"{prefix}_resume"),
        ]

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        from django.core.paginator import Paginator

        from cronjobs import liveness
        from cronjobs.registry import get_registry

        query = request.GET.get("q", "").strip()
        jobs = [job for job in get_registry().jobs if _matches(job, query)]
        page = Paginator(jobs, JOBS_PER_PAGE).get_page(request.GET.get("p"))
        # Health of this page's jobs only: the page costs the same with ten jobs or ten thousand.
        snapshot = health.snapshot(list(page.object_list))
        history = reverse("admin:cronjobs_jobrun_changelist")
        links = _Links(history)
        context = {
            **self.admin_site.each_context(request),
            "title": "Scheduled jobs",
            "subtitle": None,
            "opts": self.opts,
            "rows": [self._row(item, links) for item in snapshot],
            "page": page,
            "query": query,
            "total": len(jobs),
            "schedulers": [liveness.describe(beat) for beat in liveness.alive()],
            "problems": health.problems(snapshot),
            "timezone": schedule_timezone().key,
            "can_run": request.user.has_perm(RUN),
            "can_pause": request.user.has_perm(PAUSE),
            "history_url": history,
            **(extra_context or {}),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/cronjobs/scheduledjob/scheduled_jobs.html", context)

    @staticmethod
    def _row(item, links: _Links) -> dict:
        job, last = item.job, item.last_run
        return {
            "health": item,
            "job": job,
            "human_schedule": human_schedule(job),
            "last_run": last,
            "last_duration": format_duration(last),
            "last_run_url": links.run_page(last.pk) if last else "",
            "history_url": links.history(job.name),
            "run_url": links.action("run", job.name),
            "pause_url": links.action("pause", job.name),
            "resume_url": links.action("resume", job.name),
            "runnable": not job.problems,
            "start_offset": job.start_offset,
        }

    def run_now_view(self, request, name):
        refusal = self._refuse_unless_post_with(request, RUN)
        if refusal:
            return refusal
        back = reverse("admin:cronjobs_scheduledjob_changelist")
        try:
            # The run starts in a process of its own (never in this web worker); the page of the run
            # shows it running, then its outcome. One attempt: `retries` serve schedules.
            run = runner.start(name, JobRun.Trigger.ADMIN, user=request.user)
        except UnknownJob as exc:
            messages.error(request, f"Nothing ran: {exc}")
            return HttpResponseRedirect(back)
        except JobConfigError as exc:
            messages.error(request, f"Nothing ran: {name} cannot run: {exc}")
            return HttpResponseRedirect(back)
        except (DatabaseError, ClockSkewError) as exc:
            messages.error(request, f"Nothing ran: {name}: {exc}")
            return HttpResponseRedirect(back)
        messages.add_message(request, MESSAGE_LEVELS.get(run.status, messages.ERROR), outcome_message(run))
        return HttpResponseRedirect(reverse("admin:cronjobs_jobrun_change", args=[run.pk]))

    def pause_view(self, request, name):
        refusal = self._refuse_unless_post_with(request, PAUSE)
        if refusal:
            return refusal
        try:
            reason = request.POST.get("reason", "")
            pause, created = pausing.pause_job(name, by=request.user.get_username(), reason=reason)
        except (UnknownJob, ValueError) as exc:
            messages.error(request, f"Nothing changed: {exc}")
        else:
            state = "Paused" if created else "Already paused"
            messages.success(request, f"{state} {pause.job_name} ({pause.summary}); scheduled runs are skipped.")
        return HttpResponseRedirect(reverse("admin:cronjobs_scheduledjob_changelist"))

    def resume_view(self, request, name):
        refusal = self._refuse_unless_post_with(request, PAUSE)
        if refusal:
            return refusal
        try:
            pause = pausing.resume_job(name)
        except UnknownJob as exc:
            messages.error(request, f"Nothing changed: {exc}")
        else:
            if pause is None:
                messages.info(request, f"{name} was not paused.")
            else:
                messages.success(request, f"Resumed {pause.job_name} (was {pause.summary}).")
        return HttpResponseRedirect(reverse("admin:cronjobs_scheduledjob_changelist"))

    @staticmethod
    def _refuse_unless_post_with(request, permission):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not request.user.has_perm(permission):
            raise PermissionDenied
        return None
