"""Who may see what of the engine's records: one rule each, used by the admin, GraphQL and the HTTP endpoints."""

import hmac

from django.conf import settings

VIEW = "cronjobs.view_jobrun"


def may_see_traceback(user) -> bool:
    """Tracebacks show paths, settings and data: superusers only (admin and GraphQL alike)."""
    return bool(user is not None and user.is_active and user.is_superuser)


def may_read_details(request) -> bool:
    """Whether a request may read the engine's details (/health/cron/'s jobs, /metrics):
    the CRONJOBS_METRICS_TOKEN bearer, or a staff session holding cronjobs.view_jobrun."""
    scheme, _, token = request.META.get("HTTP_AUTHORIZATION", "").strip().partition(" ")
    if scheme.lower() == "bearer":
        expected = getattr(settings, "CRONJOBS_METRICS_TOKEN", None)
        return bool(expected) and hmac.compare_digest(token.strip().encode(), expected.encode())
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_active and user.is_staff and user.has_perm(VIEW))
