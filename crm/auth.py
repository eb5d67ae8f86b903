"""Bearer-token authentication for API clients (``Authorization: Bearer <token>``)."""

import logging

from django.db import DatabaseError
from django.http import JsonResponse
from django.utils.functional import SimpleLazyObject

from crm.models import ApiToken

logger = logging.getLogger(__name__)


def _refusal(status: int, message: str, code: str) -> JsonResponse:
    return JsonResponse({"errors": [{"message": message, "extensions": {"code": code}}]}, status=status)


class BearerTokenMiddleware:
    """Authenticate a request by its bearer token.

    A request carrying a bearer header is authenticated by that header alone (never by a
    session cookie), so it is not exposed to CSRF and is exempt from the CSRF check. A bad or
    missing token after ``Bearer`` is refused with 401 JSON rather than silently treated as
    anonymous; a database that cannot be asked about the token, with 503 JSON. Another scheme
    (``Basic`` from a proxy in front of the site) is not ours and is ignored: the request is
    anonymous or session-authenticated as without it. Placed before CsrfViewMiddleware and
    AuthenticationMiddleware, which leaves ``request.user`` alone once set. A request it
    authenticated carries ``request.auth_scheme = "bearer"``, which views that take bearer tokens
    only (the engine's ``POST /cron/fire/<name>``) read without importing this app. A view marked
    ``bearer_token_exempt`` (``/metrics``, which has a token of its own) is left to check its
    header itself.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        if getattr(view_func, "bearer_token_exempt", False):
            return None
        scheme, _, token = request.META.get("HTTP_AUTHORIZATION", "").strip().partition(" ")
        if scheme.lower() == "bearer":
            try:
                user = ApiToken.authenticate(token.strip())
            except DatabaseError as exc:
                # The body names no host or credential; the log does, for the operator.
                logger.warning("API token check: the database is unavailable: %s", str(exc).strip() or exc)
                response = _refusal(503, "The database is unavailable; try again later.", "database_unavailable")
                response["Retry-After"] = "10"
                return response
            if user is None:
                response = _refusal(401, "Invalid or revoked API token.", "unauthenticated")
                response["WWW-Authenticate"] = 'Bearer error="invalid_token"'
                return response
            request.user = SimpleLazyObject(lambda: user)
            request._cached_user = user
            request._dont_enforce_csrf_checks = True
            request.auth_scheme = "bearer"
        return None
