"""The /graphql view: limits from settings, masked errors, JSON answers, GraphiQL from our own static files."""

import json
import logging
import re

from django.conf import settings
from django.http import HttpResponseBadRequest, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware, get_token
from graphene_django.settings import graphene_settings
from graphene_django.views import GraphQLView, HttpError
from graphql import DocumentNode, ExecutionResult, GraphQLError, validate

from alx_backend_graphql_crm.api.documents import execute_document
from alx_backend_graphql_crm.api.errors import MASKED_MESSAGE, QueryRejected, format_error
from alx_backend_graphql_crm.api.execution import ExecutionContext
from alx_backend_graphql_crm.api.limits import limit_errors, parse_within_limits, validation_rules, variables_error

logger = logging.getLogger("alx_backend_graphql_crm.api")

# graphql-core appends " Did you mean 'a', 'b', or 'c'?" to errors naming an unknown field,
# argument, type or enum value: a map of the schema for whoever may not introspect it.
_SUGGESTION = re.compile(r" ?Did you mean [^?]*\?")


def introspection_enabled(request=None) -> bool:
    """Read per request, so settings (and DEBUG, which enables introspection) take effect at once.

    GRAPHQL_INTROSPECTION None (the default): on with DEBUG, and for a logged-in staff user always, so
    GraphiQL's schema explorer works in production for operators and for nobody else (issue 25).
    """
    if settings.GRAPHQL_INTROSPECTION is not None:
        return settings.GRAPHQL_INTROSPECTION
    return settings.DEBUG or (request is not None and _staff(request))


def _staff(request) -> bool:
    # Without a session cookie or a token there is no user to load (and no session to touch).
    if settings.SESSION_COOKIE_NAME not in request.COOKIES and not hasattr(request, "_cached_user"):
        return False
    user = request.user
    return bool(user.is_active and user.is_staff)


def _errors_response(status: int, message: str, code: str) -> JsonResponse:
    return JsonResponse({"errors": [{"message": message, "extensions": {"code": code}}]}, status=status)


class _CsrfCheck(CsrfViewMiddleware):
    """Django's CSRF check, answering the reason of a failure instead of its HTML page."""

    def _reject(self, request, reason):
        return reason


class ApiGraphQLView(GraphQLView):
    """graphene-django's view with our limits, error masking and JSON answers.

    CSRF is checked here, for session-authenticated requests only (Django REST framework's rule:
    a request that carries no logged-in session cannot be forged to act as anyone), and refused
    with 403 JSON. Anonymous and bearer-token requests (``crm.auth.BearerTokenMiddleware``) need
    no token. GraphiQL sends the token, from the cookie this view sets.
    GraphiQL renders ``templates/graphene/graphiql.html``, which loads vendored assets.
    """

    execution_context_class = ExecutionContext

    def dispatch(self, request, *args, **kwargs):
        refusal = _body_refusal(request)  # before anything (the CSRF check too) reads the body
        if refusal:
            return refusal
        reason = self._csrf_failure(request)
        if reason:
            return _errors_response(403, f"CSRF check failed: {reason.rstrip('.')}.", "csrf_failed")
        try:
            # graphene-django wraps dispatch in ensure_csrf_cookie, which mints a CSRF cookie for every
            # answer; only GraphiQL's page needs one (render_graphiql), so API answers skip that work.
            return GraphQLView.dispatch.__wrapped__(self, request, *args, **kwargs)
        except RecursionError:  # a traceback thousands of frames long would flood the log
            logger.error("RecursionError answering a GraphQL request from %s", request.META.get("REMOTE_ADDR"))
        except Exception:
            logger.exception("Unexpected error answering a GraphQL request")
        return _errors_response(500, MASKED_MESSAGE, "internal_error")

    # csrf_exempt as an attribute, which as_view() copies onto the view: method_decorator would
    # build its wrappers again on every request.
    dispatch.csrf_exempt = True

    def render_graphiql(self, request, **data):
        get_token(request)  # the CSRF cookie GraphiQL sends back with its POSTs
        return super().render_graphiql(request, **data)

    @staticmethod
    def _csrf_failure(request) -> str | None:
        if getattr(request, "_dont_enforce_csrf_checks", False):
            return None
        # Without a session cookie there is no session to ride on: skip loading the session and user.
        if settings.SESSION_COOKIE_NAME not in request.COOKIES or not request.user.is_authenticated:
            return None
        check = _CsrfCheck(lambda _request: None)
        check.process_request(request)
        return check.process_view(request, None, (), {})

    def parse_body(self, request):
        try:
            return super().parse_body(request)
        except RecursionError:  # json.loads of a deeply nested body; graphene catches only ValueError
            raise HttpError(HttpResponseBadRequest("POST body sent invalid JSON: nested too deeply.")) from None

    @staticmethod
    def format_error(error):
        if isinstance(error, HttpError):
            return {"message": str(error)}  # our own refusals of a malformed request (400, 405)
        formatted = format_error(error)
        if not introspection_enabled() and "message" in formatted:
            formatted["message"] = _SUGGESTION.sub("", formatted["message"])
        return formatted

    def execute_graphql_request(self, request, data, query, variables, operation_name, show_graphiql=False):
        """graphene-django's steps, with the limits checked while parsing and before validation.

        The limits refuse a document at a cost linear in its length, before graphql-core's
        validation rules (some quadratic in the fields) or any resolver runs. A prepared document
        (parsed, measured, validated) is kept per worker by its text and the settings it was checked
        against (api/documents.py), so a repeated request skips all three.
        """
        _check_params(query, variables, operation_name)
        if not query:  # GraphiQL's page, or "Must provide query string."
            return super().execute_graphql_request(request, data, query, variables, operation_name, show_graphiql)
        too_large = variables_error(
            variables,
            max_values=settings.GRAPHQL_MAX_VARIABLE_VALUES,
            max_depth=settings.GRAPHQL_MAX_VARIABLE_DEPTH,
            max_string=settings.GRAPHQL_MAX_VARIABLE_STRING,
        )
        if too_large:
            logger.warning("GraphQL variables refused: %s", too_large)  # one line: no traceback
            return ExecutionResult(errors=[QueryRejected(too_large)])
        schema, introspection = self.schema.graphql_schema, introspection_enabled(request)
        # The cost limit reads the variables (page sizes), so they are part of what was checked.
        variables_key = json.dumps(variables, sort_keys=True, default=str) if variables else ""
        settings_key = (
            None if len(variables_key) > settings.GRAPHQL_MAX_QUERY_CHARS else (_limits(introspection), variables_key)
        )
        return execute_document(
            self,
            request,
            query,
            variables,
            operation_name,
            show_graphiql=show_graphiql,
            settings_key=settings_key,
            prepare=lambda text: _prepare(text, schema, variables, introspection),
        )


def _body_refusal(request) -> JsonResponse | None:
    """415 for multipart/form-data (no uploads here), 413 for a body over GRAPHQL_MAX_BODY_BYTES; else None.

    Decided on the headers alone: a multipart body is spooled to disk as Django parses it (a 3 GB file
    part used 2 GB of disk), and nothing of ours needs more than a few hundred KB.
    """
    if request.method != "POST":
        return None
    content_type = request.META.get("CONTENT_TYPE", "").partition(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        message = "multipart/form-data is not accepted (no uploads here): send application/json."
        return _errors_response(415, message, "unsupported_media_type")
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0  # Django reads no body then
    limit = settings.GRAPHQL_MAX_BODY_BYTES
    if length > limit:
        logger.warning("GraphQL request refused: a body of %s bytes (GRAPHQL_MAX_BODY_BYTES: %s)", length, limit)
        return _errors_response(413, f"The request body is {length} bytes; the limit is {limit}.", "body_too_large")
    return None


def _limits(introspection: bool) -> tuple:
    """Every setting a prepared document was checked against: read per request, so changes apply at once."""
    return (
        settings.GRAPHQL_MAX_TOKENS,
        settings.GRAPHQL_MAX_NESTING,
        settings.GRAPHQL_MAX_DEPTH,
        settings.GRAPHQL_MAX_FIELDS,
        settings.GRAPHQL_MAX_ALIASES,
        settings.GRAPHQL_MAX_REPEATS,
        settings.GRAPHQL_MAX_COST,
        settings.GRAPHENE["RELAY_CONNECTION_MAX_LIMIT"],
        introspection,
    )


def _prepare(query: str, schema, variables, introspection: bool) -> tuple[DocumentNode | None, list[GraphQLError]]:
    """(document, errors): the limits first, then graphql-core's validation only if they pass."""
    document, errors = _parse_and_measure(query, schema, variables)
    if document is None or errors:
        return document, errors
    rules = validation_rules(introspection=introspection)
    return document, validate(schema, document, rules, graphene_settings.MAX_VALIDATION_ERRORS)


def _parse_and_measure(query: str, schema, variables) -> tuple[DocumentNode | None, list[GraphQLError]]:
    """The document and no error, or the errors refusing it: syntax, then the limits, in one linear pass each."""
    try:
        document = parse_within_limits(
            query, max_tokens=settings.GRAPHQL_MAX_TOKENS, max_nesting=settings.GRAPHQL_MAX_NESTING
        )
        errors = limit_errors(
            document,
            schema,
            max_depth=settings.GRAPHQL_MAX_DEPTH,
            max_fields=settings.GRAPHQL_MAX_FIELDS,
            max_aliases=settings.GRAPHQL_MAX_ALIASES,
            max_repeats=settings.GRAPHQL_MAX_REPEATS,
            max_cost=settings.GRAPHQL_MAX_COST,
            page_size=settings.GRAPHENE["RELAY_CONNECTION_MAX_LIMIT"],
            variables=variables,
        )
    except QueryRejected as error:  # the token or nesting limit, met while parsing
        document, errors = None, [error]
    except GraphQLError as error:  # a syntax error
        return None, [error]
    if errors:
        logger.warning("GraphQL document refused: %s", errors[0].message)  # one line: no traceback
    return document, errors


def _check_params(query, variables, operation_name) -> None:
    """Refuse malformed parameters with a 400 before parsing: the size limit protects the parser itself."""
    if query is not None and not isinstance(query, str):
        raise HttpError(HttpResponseBadRequest("'query' must be a string."))
    if variables is not None and not isinstance(variables, dict):
        raise HttpError(HttpResponseBadRequest("'variables' must be a JSON object."))
    if operation_name is not None and not isinstance(operation_name, str):
        raise HttpError(HttpResponseBadRequest("'operationName' must be a string."))
    max_chars = settings.GRAPHQL_MAX_QUERY_CHARS
    if query and len(query) > max_chars:
        raise HttpError(HttpResponseBadRequest(f"The query is {len(query)} characters long; the limit is {max_chars}."))
