"""The run history (read-only) and the "Scheduled jobs" page with Run now, Pause and Resume, in the Django admin."""

# The page's rows are written in Python (ScheduledJobAdmin._row) with the standard library's escape,
# the one Django's wraps, without the lazy-string and SafeString handling it adds to every call.
from html import escape
from urllib.parse import quote

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import DatabaseError
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.middleware.csrf import get_token
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import mark_safe
from django.utils.timezone import localtime

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


def _help_line(text: str) -> str:
    """`<br><span class="help">text</span>`, or "" without text."""
    return f'<br><span class="help">{escape(text)}</span>' if text else ""


def _when(moment, fmt: str) -> str:
    """As the template's `date` filter writes these numeric formats: in the current time zone."""
    return localtime(moment).strftime(fmt) if moment else ""


def _schedule_cell(job) -> str:
    zone = f" ({escape(job.timezone)})" if job.timezone else ""
    retries = f"<br>retries: {job.retries}" if job.retries else ""
    human = escape(human_schedule(job))
    return f'<td><code>{escape(job.schedule)}</code><br><span class="help">{human}{zone}{retries}</span></td>'


def _next_run_cell(item) -> str:
    if not item.next_run:
        return "<td>—</td>"
    when, offset = _when(item.next_run, "%Y-%m-%d %H:%M"), item.job.start_offset
    if offset:
        return f'<td>{when}:{offset:02d}<br><span class="help">jitter: +{offset} s</span></td>'
    return f"<td>{when}</td>"


def _state_cell(item) -> str:
    state = escape(item.state)
    pause = f'<br><span class="help pause-summary">{escape(item.pause.summary)}</span>' if item.pause else ""
    return (
        f'<td><span class="job-state job-state-{state}" data-state="{state}">{state}</span>'
        f"{_help_line(item.problem)}{pause}</td>"
    )


def _last_run_cell(last, links) -> str:
    if last is None:
        return '<td class="last-run">never</td>'
    details = [_when(last.started_at, "%Y-%m-%d %H:%M:%S"), last.get_trigger_display()]
    if last.attempt > 1:
        details.append(f"attempt {last.attempt}")
    if last.gap_count:
        plural = "" if last.gap_count == 1 else "s"
        details.append(f"gap of {last.gap_count} minute{plural} to {_when(last.gap_last, '%H:%M')}")
    if last.late_status:
        details.append(f"then {last.late_status} (late outcome)")
    status = escape(last.status)
    return (
        f'<td class="last-run"><a href="{escape(links.run_page(last.pk))}"><span class="run-status run-{status}">'
        f'{status}</span></a><br><span class="help">{escape(" · ".join(details))}</span></td>'
    )


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
        can_run, can_pause = request.user.has_perm(RUN), request.user.has_perm(PAUSE)
        csrf = f'<input type="hidden" name="csrfmiddlewaretoken" value="{escape(get_token(request))}">'
        context = {
            **self.admin_site.each_context(request),
            "title": "Scheduled jobs",
            "subtitle": None,
            "opts": self.opts,
            "rows": [self._row(item, links, csrf, can_run, can_pause) for item in snapshot],
            "page": page,
            "query": query,
            "total": len(jobs),
            "schedulers": [liveness.describe(beat) for beat in liveness.alive()],
            "problems": health.problems(snapshot),
            "timezone": schedule_timezone().key,
            "can_run": can_run,
            "can_pause": can_pause,
            "history_url": history,
            **(extra_context or {}),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/cronjobs/scheduledjob/scheduled_jobs.html", context)

    @staticmethod
    def _row(item, links: _Links, csrf: str, can_run: bool, can_pause: bool) -> str:
        """One job's <tr>, written here rather than by the template language (0.2 ms a row there: a page
        of a hundred rows cost three times one of ten). Every value is escaped."""
        job, name = item.job, escape(item.job.name)
        cells = [
            f'<th scope="row">{name}{_help_line(job.description)}</th>',
            _schedule_cell(job),
            _next_run_cell(item),
            _state_cell(item),
            _last_run_cell(item.last_run, links),
            f"<td>{escape(format_duration(item.last_run) or '—')}</td>",
            f'<td><a href="{escape(links.history(job.name))}">History</a></td>',
        ]
        if can_run and job.problems:
            cells.append('<td><span class="help">broken entry: see manage.py check</span></td>')
        elif can_run:
            cells.append(
                f'<td><form method="post" action="{escape(links.action("run", job.name))}">{csrf}'
                f'<input type="submit" class="button" value="Run now" aria-label="Run {name} now"></form></td>'
            )
        if can_pause and item.pause:
            cells.append(
                f'<td><form method="post" action="{escape(links.action("resume", job.name))}">{csrf}'
                f'<input type="submit" class="button" value="Resume" aria-label="Resume {name}"></form></td>'
            )
        elif can_pause:
            cells.append(
                f'<td><form method="post" action="{escape(links.action("pause", job.name))}">{csrf}'
                f'<input type="text" name="reason" placeholder="reason" aria-label="Why pause {name}">'
                f'<input type="submit" class="button" value="Pause" aria-label="Pause {name}"></form></td>'
            )
        return mark_safe(f'<tr id="job-{name}" data-job="{name}">{"".join(cells)}</tr>')  # noqa: S308 - escaped above

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
