"""The /graphql view: limits from settings, masked errors, GraphiQL from our own static files."""

import json

from django.conf import settings
from django.http import HttpResponseBadRequest
from django.middleware.csrf import get_token
from graphene_django.views import GraphQLView, HttpError

from alx_backend_graphql_crm.api.documents import execute_document
from alx_backend_graphql_crm.api.errors import format_error
from alx_backend_graphql_crm.api.limits import validation_rules


class ApiGraphQLView(GraphQLView):
    """graphene-django's view with our limits and error masking.

    CSRF stays on (the view is not csrf_exempt): a session-authenticated POST needs the token,
    which GraphiQL sends; bearer-token requests are exempted by ``crm.auth.BearerTokenMiddleware``.
    GraphiQL renders ``templates/graphene/graphiql.html``, which loads vendored assets.
    """

    def dispatch(self, request, *args, **kwargs):
        # graphene-django wraps dispatch in ensure_csrf_cookie, which mints a CSRF cookie for every
        # answer; only GraphiQL's page needs one (render_graphiql), so API answers skip that work.
        return GraphQLView.dispatch.__wrapped__(self, request, *args, **kwargs)

    def render_graphiql(self, request, **data):
        get_token(request)  # the CSRF cookie GraphiQL sends back with its POSTs
        return super().render_graphiql(request, **data)

    @staticmethod
    def format_error(error):
        if isinstance(error, HttpError):
            return {"message": str(error)}  # our own refusals of a malformed request (400, 405)
        return format_error(error)

    def execute_graphql_request(self, request, data, query, variables, operation_name, show_graphiql=False):
        # Checked here, before parsing: the size limit protects the parser itself.
        if query is not None and not isinstance(query, str):
            raise HttpError(HttpResponseBadRequest("'query' must be a string."))
        if variables is not None and not isinstance(variables, dict):
            raise HttpError(HttpResponseBadRequest("'variables' must be a JSON object."))
        if operation_name is not None and not isinstance(operation_name, str):
            raise HttpError(HttpResponseBadRequest("'operationName' must be a string."))
        max_chars = settings.GRAPHQL_MAX_QUERY_CHARS
        if query and len(query) > max_chars:
            raise HttpError(
                HttpResponseBadRequest(f"The query is {len(query)} characters long; the limit is {max_chars}.")
            )
        # Read per request, so settings (and DEBUG, which enables introspection) take effect at once.
        limits = {
            "max_depth": settings.GRAPHQL_MAX_DEPTH,
            "max_fields": settings.GRAPHQL_MAX_FIELDS,
            "max_aliases": settings.GRAPHQL_MAX_ALIASES,
            "max_cost": settings.GRAPHQL_MAX_COST,
            "page_size": settings.GRAPHENE["RELAY_CONNECTION_MAX_LIMIT"],
            "introspection": settings.DEBUG
            if settings.GRAPHQL_INTROSPECTION is None
            else settings.GRAPHQL_INTROSPECTION,
        }
        # The cost rule reads the variables (page sizes), so they are part of what was validated.
        variables_key = json.dumps(variables, sort_keys=True, default=str) if variables else ""
        if not query or len(variables_key) > settings.GRAPHQL_MAX_QUERY_CHARS:  # GraphiQL's page; bulk inputs
            self.validation_rules = validation_rules(**limits, variables=variables)
            return super().execute_graphql_request(request, data, query, variables, operation_name, show_graphiql)
        # Parsed and validated documents are reused (api/documents.py): a repeated request skips both.
        return execute_document(
            self,
            request,
            query,
            variables,
            operation_name,
            show_graphiql=show_graphiql,
            rules_key=(*limits.values(), variables_key),
            rules=lambda: validation_rules(**limits, variables=variables),
        )
