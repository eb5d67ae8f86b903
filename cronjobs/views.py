"""Health endpoints: /health/ (database) and /health/cron/ (every job on time)."""

import logging

from django.db import DatabaseError, connection
from django.http import JsonResponse
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
        "jobs": [item.as_dict() for item in jobs],
    }
    return JsonResponse(body, status=503 if unhealthy else 200)
