"""Bearer-token authentication for API clients (``Authorization: Bearer <token>``)."""

from django.http import JsonResponse
from django.utils.functional import SimpleLazyObject

from crm.models import ApiToken


class BearerTokenMiddleware:
    """Authenticate a request by its bearer token.

    A request carrying a bearer header is authenticated by that header alone (never by a
    session cookie), so it is not exposed to CSRF and is exempt from the CSRF check. A bad
    token is refused with 401 rather than silently treated as anonymous. Placed before
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
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if header[:7].lower() == "bearer ":
            user = ApiToken.authenticate(header[7:].strip())
            if user is None:
                return JsonResponse({"errors": [{"message": "Invalid or revoked API token."}]}, status=401)
            request.user = SimpleLazyObject(lambda: user)
            request._cached_user = user
            request._dont_enforce_csrf_checks = True
        return None
