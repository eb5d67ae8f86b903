"""Bearer-token authentication for API clients (``Authorization: Bearer <token>``)."""

from django.http import JsonResponse
from django.utils.functional import SimpleLazyObject

from crm.models import ApiToken


class BearerTokenMiddleware:
    """Authenticate a request by its bearer token.

    A request carrying a bearer header is authenticated by that header alone (never by a
    session cookie), so it is not exposed to CSRF and is exempt from the CSRF check. A bad or
    missing token after ``Bearer`` is refused with 401 JSON rather than silently treated as
    anonymous. Another scheme (``Basic`` from a proxy in front of the site) is not ours and is
    ignored: the request is anonymous or session-authenticated as without it. Placed before
    CsrfViewMiddleware and AuthenticationMiddleware, which leaves ``request.user`` alone once set.
    A view marked ``bearer_token_exempt`` (``/metrics``, which has a token of its own) is left to
    check its header itself.
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
            user = ApiToken.authenticate(token.strip())
            if user is None:
                response = JsonResponse(
                    {
                        "errors": [
                            {"message": "Invalid or revoked API token.", "extensions": {"code": "unauthenticated"}}
                        ]
                    },
                    status=401,
                )
                response["WWW-Authenticate"] = 'Bearer error="invalid_token"'
                return response
            request.user = SimpleLazyObject(lambda: user)
            request._cached_user = user
            request._dont_enforce_csrf_checks = True
        return None
