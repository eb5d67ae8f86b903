"""The GraphQL errors we raise on purpose, and masking of every other exception."""

import logging

from graphql import GraphQLError

logger = logging.getLogger("alx_backend_graphql_crm.api")

MASKED_MESSAGE = "Internal server error. It has been logged."


class ApiError(GraphQLError):
    """Base of the errors whose message is meant for the client; anything else is masked."""

    code = "error"

    def __init__(self, message: str, **kwargs):
        extensions = {"code": self.code, **(kwargs.pop("extensions", None) or {})}
        super().__init__(message, extensions=extensions, **kwargs)


class NotAuthenticated(ApiError):
    code = "unauthenticated"


class PermissionDenied(ApiError):
    code = "forbidden"


class UserInputError(ApiError):
    """A query argument a client got wrong (queries have no payload to carry errors in)."""

    code = "bad_user_input"


class QueryRejected(ApiError):
    """A document refused by a limit (size, depth, cost) before it runs."""

    code = "query_rejected"


def is_client_safe(error: BaseException) -> bool:
    """Whether an error's message may reach the client as it is.

    GraphQL's own errors (syntax, validation, variable coercion) carry no original
    exception, or one that is itself a GraphQLError; an error raised inside a resolver that is
    not ours (an IntegrityError, an AssertionError, a bug) carries the raw exception, whose
    text can leak SQL and internals, so it is masked.
    """
    if not isinstance(error, GraphQLError):
        return False
    original = error.original_error
    return original is None or isinstance(original, GraphQLError)


def format_error(error: BaseException) -> dict:
    """The JSON of one error, with unexpected exceptions masked and logged with their traceback."""
    if is_client_safe(error):
        return error.formatted
    original = getattr(error, "original_error", None) or error
    logger.error(
        "Unexpected error in a GraphQL request: %r",
        original,
        exc_info=(type(original), original, original.__traceback__),
    )
    formatted = {"message": MASKED_MESSAGE, "extensions": {"code": "internal_error"}}
    if isinstance(error, GraphQLError):
        if error.locations:
            formatted["locations"] = [location._asdict() for location in error.locations]
        if error.path is not None:
            formatted["path"] = error.path
    return formatted
