"""Health endpoints: /health/ (database), /health/cron/ (every job on time) and /metrics (Prometheus)."""

import hmac
import logging

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import Http404, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from cronjobs import health

logger = logging.getLogger(__name__)


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


@never_cache
@require_safe
def cron_health_view(request):
    """200 when every enabled job is on time and its last run did not fail; 503 naming the others."""
    try:
        jobs = health.snapshot()
    except DatabaseError as exc:
        return _database_unavailable(exc)
    unhealthy = [item for item in jobs if not item.healthy]
    body = {
        "status": "ok" if not unhealthy else "error",
        "late": [item.job.name for item in unhealthy if item.state == health.State.LATE],
        "failing": [item.job.name for item in unhealthy if item.state == health.State.FAILING],
        "stuck": [item.job.name for item in unhealthy if item.state == health.State.STUCK],
        "jobs": [item.as_dict() for item in jobs],
    }
    return JsonResponse(body, status=503 if unhealthy else 200)


@never_cache
@require_safe
def metrics_view(request):
    """Prometheus text for every job; 404 unless the caller is staff or sends CRONJOBS_METRICS_TOKEN."""
    from prometheus_client import CONTENT_TYPE_LATEST

    from cronjobs.metrics import exposition

    if not _may_read_metrics(request):
        raise Http404  # off, as if it were not there, for everyone else
    try:
        body = exposition()
    except DatabaseError as exc:
        return HttpResponse(f"# database error: {type(exc).__name__}\n", status=503, content_type="text/plain")
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)


# The view checks its own bearer token: the project's API-token middleware leaves it alone.
metrics_view.bearer_token_exempt = True


def _may_read_metrics(request) -> bool:
    token = getattr(settings, "CRONJOBS_METRICS_TOKEN", None)
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header[:7].lower() == "bearer ":
        return bool(token) and hmac.compare_digest(header[7:].strip().encode(), token.encode())
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_active and user.is_staff)
