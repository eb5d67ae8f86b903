"""The engine's HTTP endpoints: /health/, /health/cron/, /metrics, and POST /cron/fire/<name> (external schedulers)."""

import hashlib
import logging
import math
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

from django.core.cache import cache
from django.db import DatabaseError, connection
from django.http import Http404, HttpResponse, JsonResponse
from django.utils.dateparse import parse_datetime
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe

from cronjobs import conf, dbclock, health, pausing, runner
from cronjobs.access import VIEW, may_read_details
from cronjobs.dbclock import ClockSkewError
from cronjobs.describe import format_duration
from cronjobs.models import JobRun
from cronjobs.registry import Job, JobConfigError, UnknownJob, get_job

logger = logging.getLogger(__name__)

# The most job names an anonymous /health/cron/ body lists (late, failing and stuck together); "unhealthy" counts all.
MAX_PUBLIC_NAMES = 50


def _database_unavailable(exc: DatabaseError) -> JsonResponse:
    """503 naming no host, port or credential: the body is public, the log is not."""
    logger.warning("Health check: the database is unavailable: %s", str(exc).strip() or type(exc).__name__)
    return JsonResponse({"status": "error", "database": "unavailable"}, status=503)


@never_cache
@require_safe
def health_view(request):
    """200 when the database answers a query, 503 otherwise."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        return _database_unavailable(exc)
    return JsonResponse({"status": "ok"})


health_view.bearer_token_exempt = True  # needs no credentials: any Authorization header is ignored


@never_cache
@require_safe
def cron_health_view(request):
    """200 when every enabled job is on time and its last run did not fail, and nothing is wrong with
    the engine's configuration or schedulers; 503 naming the jobs otherwise.

    Anyone: the status and the names of the late, failing and stuck jobs (at most MAX_PUBLIC_NAMES,
    with the count of all). Staff with cronjobs.view_jobrun, or the metrics token, also get: the
    engine's problems (configuration, no scheduler, clock, version), the schedulers alive, how many
    jobs are in each state, and the details of every job that is not ok or new (`?jobs=all`: of every
    job), which may name hosts and internals. The body does not grow with healthy jobs.
    """
    try:
        jobs = health.snapshot()
        jobs = _record_gaps_of_late_jobs(jobs)
        found = health.problems(jobs)
    except DatabaseError as exc:
        return _database_unavailable(exc)
    unhealthy = [item for item in jobs if item.state not in health.HEALTHY]
    failed = unhealthy or any(problem.error for problem in found)
    body = {"status": "error" if failed else "ok", **_public_names(unhealthy), "unhealthy": len(unhealthy)}
    if may_read_details(request):
        from cronjobs import liveness

        body["problems"] = [problem.as_dict() for problem in found]
        body["schedulers"] = [liveness.describe(beat) for beat in liveness.alive()]
        body["counts"] = dict(Counter(item.state for item in jobs))
        every = request.GET.get("jobs") == "all"
        quiet = (health.State.OK, health.State.NEW)
        body["jobs"] = [item.as_dict() for item in jobs if every or item.state not in quiet]
    response = JsonResponse(body, status=503 if failed else 200)
    # This 503 is the answer (a job is unhealthy), not a server error: Django would log every poll of a
    # monitor at ERROR ("Service Unavailable"). The failures were logged when they happened.
    response._has_been_logged = True
    return response


def _record_gaps_of_late_jobs(jobs: list) -> list:
    """A late job may have minutes nothing fired: record them now (cronjobs/gaps.py), and say so."""
    from cronjobs import gaps

    late = [item.job for item in jobs if item.state == health.State.LATE]
    if not late or not gaps.sweep(late, trigger=JobRun.Trigger.MANUAL):
        return jobs
    again = {item.job.name: item for item in health.snapshot(late)}
    return [again.get(item.job.name, item) for item in jobs]


# A bearer token here is the metrics token, not an API token: the API-token middleware leaves it alone.
cron_health_view.bearer_token_exempt = True


def _public_names(unhealthy: list) -> dict[str, list[str]]:
    """{"late": [...], "failing": [...], "stuck": [...]}, MAX_PUBLIC_NAMES names at most in all."""
    lists, room = {}, MAX_PUBLIC_NAMES
    for key, state in (("late", health.State.LATE), ("failing", health.State.FAILING), ("stuck", health.State.STUCK)):
        names = [item.job.name for item in unhealthy if item.state == state][: max(room, 0)]
        lists[key], room = names, room - len(names)
    return lists


@never_cache
@require_safe
def metrics_view(request):
    """Prometheus text for every job; 404 unless the caller sends CRONJOBS_METRICS_TOKEN or is staff with
    cronjobs.view_jobrun."""
    from prometheus_client import CONTENT_TYPE_LATEST

    from cronjobs.metrics import exposition

    if not may_read_details(request):
        raise Http404  # off, as if it were not there, for everyone else
    try:
        body = exposition()
    except DatabaseError as exc:
        return HttpResponse(f"# database error: {type(exc).__name__}\n", status=503, content_type="text/plain")
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)


# The view checks its own bearer token: the project's API-token middleware leaves it alone.
metrics_view.bearer_token_exempt = True


# --- POST /cron/fire/<name>: an external scheduler fires a job's current minute -----------------------------
RUN = "cronjobs.run_job"
RATE_WINDOW = 60  # seconds: CRONJOBS_FIRE_RATE_LIMIT counts each token's requests for a job per window
SCHEDULE_TIME_HEADER = "HTTP_X_CLOUDSCHEDULER_SCHEDULETIME"  # X-CloudScheduler-ScheduleTime, RFC 3339 UTC
# How far ahead of the database's clock the scheduler's time may be (two clocks, neither exact).
SCHEDULE_TIME_AHEAD = timedelta(seconds=10)
RETRY_AFTER_UNAVAILABLE = "10"  # seconds, on a 503: curl --retry and Cloud Scheduler's retries honour it
NOT_RUN = (JobRun.Status.SKIPPED, JobRun.Status.MISSED)


class Refusal(Exception):
    """A request the fire endpoint does not act on: its HTTP status, message and code, as JSON."""

    def __init__(self, status: int, message: str, code: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}

    def response(self) -> JsonResponse:
        # The shape of every JSON refusal of this site (/graphql's, the API-token middleware's).
        response = JsonResponse(
            {"errors": [{"message": self.message, "extensions": {"code": self.code}}]}, status=self.status
        )
        for name, value in self.headers.items():
            response[name] = value
        return response


@csrf_exempt  # only requests that carry a bearer token are acted on, and a browser cannot forge that header
@never_cache
def fire_view(request, name: str):
    """Claim job `name`'s current scheduled minute, as `crontab run --scheduled` does, and hand the run to
    a supervising process: 202 with the run; 200 with the run that already holds the minute, or with the
    skip or missed minute recorded instead. docs/deploy.md ("The fire endpoint") lists every answer.

    Authentication is the project's: a bearer token that its middleware turned into request.user (and
    marked request.auth_scheme = "bearer"); a session alone is refused, so CSRF cannot reach this view.
    """
    try:
        return _fire(request, name)
    except Refusal as refusal:
        return refusal.response()


def _fire(request, name: str) -> JsonResponse:
    if request.method != "POST":
        message = f"{request.method} is not allowed: fire a job with POST."
        raise Refusal(405, message, "method_not_allowed", {"Allow": "POST"})
    user = _bearer_user(request)
    try:
        if not (user.is_active and user.has_perm(RUN)):
            raise Refusal(403, f"The token's user may not run jobs: it needs the permission {RUN}.", "forbidden")
        job = _fired_job(name)
        wait = _wait_seconds(request)
        _count_against_rate_limit(request, job)
        run = runner.start(job, JobRun.Trigger.HTTP, user=user, scheduled_for=_minute_to_claim(request, job))
    except DatabaseError as exc:
        logger.warning("Fire endpoint: the database is unavailable: %s", str(exc).strip() or type(exc).__name__)
        message = "The database is unavailable; nothing was run. Try again later."
        raise Refusal(503, message, "database_unavailable", {"Retry-After": RETRY_AFTER_UNAVAILABLE}) from None
    except JobConfigError as exc:  # a broken entry (get_job), or a target that cannot be imported (start)
        raise _cannot_run(name, exc) from None
    except ClockSkewError as exc:
        logger.error("Fire endpoint: %s", exc)
        message = "This server's clock is too far from the database's to claim runs; nothing was run."
        raise Refusal(503, message, "clock_skew", {"Retry-After": RETRY_AFTER_UNAVAILABLE}) from None
    if wait and run.status == JobRun.Status.RUNNING:
        run = runner.wait_for(run, wait)
    return _answer(run, job, user)


def _bearer_user(request):
    """The user the request's bearer token authenticated; 401 for anything else (no token, a session)."""
    scheme = request.META.get("HTTP_AUTHORIZATION", "").strip().partition(" ")[0]
    user = getattr(request, "user", None)
    if (
        scheme.lower() != "bearer"
        or getattr(request, "auth_scheme", None) != "bearer"
        or user is None
        or not user.is_authenticated
    ):
        message = "An API token is required: send Authorization: Bearer <token>."
        raise Refusal(401, message, "unauthenticated", {"WWW-Authenticate": "Bearer"})
    return user


def _wait_seconds(request) -> float:
    """`?wait=N`: seconds to wait for the outcome, 0 to runner.RUN_WAIT_MAX (absent: 0, answer at once)."""
    raw = request.GET.get("wait")
    if raw is None:
        return 0.0
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds <= runner.RUN_WAIT_MAX:  # NaN fails too
        message = f"wait: must be a number of seconds from 0 to {runner.RUN_WAIT_MAX}, got {raw[:40]!r}"
        raise Refusal(400, message, "invalid")
    return seconds


def _fired_job(name: str) -> Job:
    try:
        return get_job(name)
    except UnknownJob:
        raise Refusal(404, f"No job named {name[:100]!r} in CRONJOBS.", "not_found") from None


def _cannot_run(job_name: str, exc: JobConfigError) -> Refusal:
    # The detail names modules and paths: for the operator's log, not for the scheduler's.
    logger.error("Fire endpoint: job %r cannot run: %s", job_name, exc)
    message = f"Job {job_name!r} cannot run as configured; `manage.py check` says why. Nothing was run."
    return Refusal(409, message, "cannot_run")


def _count_against_rate_limit(request, job: Job) -> None:
    """429 past CRONJOBS_FIRE_RATE_LIMIT requests of this token for this job in this RATE_WINDOW.

    Counted in Django's default cache: with the local-memory cache (this project's), each server process
    counts for itself; a shared cache (Redis, memcached) makes it one count for the site."""
    limit = conf.get("CRONJOBS_FIRE_RATE_LIMIT")
    token = request.META.get("HTTP_AUTHORIZATION", "").strip().partition(" ")[2].strip()
    now = time.time()
    window = int(now // RATE_WINDOW)
    key = f"cronjobs:fire:{hashlib.sha256(token.encode()).hexdigest()[:32]}:{job.name}:{window}"
    cache.add(key, 0, timeout=RATE_WINDOW + 1)
    try:
        count = cache.incr(key)
    except ValueError:  # the key expired between add() and incr()
        count = 1
        cache.set(key, count, timeout=RATE_WINDOW + 1)
    if count > limit:
        retry_after = max(1, math.ceil((window + 1) * RATE_WINDOW - now))
        message = (
            f"Too many requests for {job.name}: at most {limit} a minute per token (CRONJOBS_FIRE_RATE_LIMIT); "
            f"nothing was run. Try again in {retry_after} s."
        )
        raise Refusal(429, message, "rate_limited", {"Retry-After": str(retry_after)})


def _minute_to_claim(request, job: Job) -> datetime:
    """The job's latest due minute on the database's clock, in its zone (what `crontab run --scheduled`
    claims), or the minute Cloud Scheduler names in X-CloudScheduler-ScheduleTime, when that is one of
    the job's due minutes and not in the future (a retry then claims the minute of its first attempt)."""
    now = dbclock.now()
    header = request.META.get(SCHEDULE_TIME_HEADER)
    if header is None:
        return job.latest_run(now)
    shown = header[:60]
    try:
        moment = parse_datetime(header.strip())
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        message = f"X-CloudScheduler-ScheduleTime {shown!r} is not an RFC 3339 time with its UTC offset."
        raise Refusal(400, message, "invalid")
    if moment > now + SCHEDULE_TIME_AHEAD:
        message = f"X-CloudScheduler-ScheduleTime {shown!r} is in the future (the database's clock says {_iso(now)})."
        raise Refusal(400, message, "invalid")
    if not job.is_due(moment):
        message = (
            f"X-CloudScheduler-ScheduleTime {shown!r} is not a due minute of {job.name} ({job.schedule!r} in "
            f"{job.zone.key}): the scheduler's definition is out of date; export and apply it again."
        )
        raise Refusal(400, message, "invalid")
    return moment


def _answer(run: JobRun, job: Job, user) -> JsonResponse:
    """202 for a run this request started; 200 for a minute already held, or recorded as not run."""
    body = {"run": _run_fields(run, detail=user.has_perm(VIEW))}
    if run.duplicate:
        done = "recorded" if run.status in NOT_RUN else "run"
        message = f"already {done} by run #{run.pk} ({run.status})"
        return JsonResponse({"started": False, "duplicate": True, "message": message, **body})
    if run.status in NOT_RUN:
        message = f"run #{run.pk} of {run.job_name} {run.status}: {_why_not_run(job, run)}; the job did not run"
        return JsonResponse({"started": False, "duplicate": False, "message": message, **body})
    if run.status == JobRun.Status.RUNNING:
        message = f"run #{run.pk} of {run.job_name} started for {_iso(run.scheduled_for)}"
    else:
        message = f"run #{run.pk} of {run.job_name} {run.status.replace('_', ' ')} in {format_duration(run)}"
    return JsonResponse({"started": True, "duplicate": False, "message": message, **body}, status=202)


def _why_not_run(job: Job, run: JobRun) -> str:
    """Why a minute was recorded without running, in words that name no person, host or pause reason
    (a scheduler's log may be public); the row's `result` holds the details for cronjobs.view_jobrun."""
    if run.status == JobRun.Status.MISSED:
        return "too late to start it (past the job's grace or start limit)"
    if not job.enabled:
        return "the job is disabled"
    if pausing.paused(job.name) is not None:
        return "the job is paused"
    return "another run of the job is still running"


def _run_fields(run: JobRun, *, detail: bool) -> dict:
    fields = {
        "id": run.pk,
        "job": run.job_name,
        "status": run.status,
        "scheduled_for": _iso(run.scheduled_for),
        "trigger": run.trigger,
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
    }
    if detail:  # what the job or the engine wrote: a traceback's last line, a pause's reason, a host
        fields["result"] = run.result
    return fields


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()
