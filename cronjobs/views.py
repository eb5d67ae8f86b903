"""Health endpoints: /health/ (database), /health/cron/ (every job on time) and /metrics (Prometheus)."""

import logging
from collections import Counter

from django.db import DatabaseError, connection
from django.http import Http404, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from cronjobs import health
from cronjobs.access import may_read_details
from cronjobs.models import JobRun

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
    unhealthy = [item for item in jobs if not item.healthy]
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
    return JsonResponse(body, status=503 if failed else 200)


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
