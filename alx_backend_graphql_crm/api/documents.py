"""Parsed and validated GraphQL documents, kept per worker by query text and rules.

Parsing and validating a document costs more than executing a small one (for `{ hello }`, ~4/5 of
the view's time), and clients send the same few documents again and again. graphene-django's view
parses and validates on every request; `execute_document` is its `execute_graphql_request` with
both looked up here first. Documents are never changed by execution, so one may serve many requests.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

from django.db import connection, transaction
from django.http import HttpResponseNotAllowed
from graphene_django.constants import MUTATION_ERRORS_FLAG
from graphene_django.settings import graphene_settings
from graphene_django.views import HttpError
from graphql import (
    ExecutionResult,
    FieldNode,
    OperationType,
    execute,
    get_operation_ast,
    is_non_null_type,
    validate_schema,
)

from alx_backend_graphql_crm.api.errors import NotAuthenticated
from alx_backend_graphql_crm.api.permissions import LOGIN_REQUIRED, needs_login

SIZE = 256  # documents per worker process; queries are at most GRAPHQL_MAX_QUERY_CHARS long


class DocumentCache:
    """A small LRU of (document or None, validation errors) by (query text, rules key)."""

    def __init__(self, size: int = SIZE):
        self.size = size
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, query: str, settings_key: Hashable | None, prepare: Callable[[str], tuple]):
        """``prepare(query)``: (document or None, errors), kept by query text and ``settings_key``.

        ``settings_key`` None: prepared every time (the key would be too large to keep).
        """
        if settings_key is None:
            return prepare(query)
        key = (query, settings_key)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        entry = prepare(query)
        with self._lock:
            self._items[key] = entry
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return entry


DOCUMENTS = DocumentCache()


def execute_document(
    view, request, query, variables, operation_name, *, show_graphiql, settings_key, prepare
) -> ExecutionResult | None:
    """graphene-django's `GraphQLView.execute_graphql_request` (3.2.3) for a non-empty query, cache first.

    ``prepare(query)`` parses and validates: (document or None, errors).
    """
    schema = view.schema.graphql_schema
    schema_errors = validate_schema(schema)  # computed once, then kept by graphql-core
    if schema_errors:
        return ExecutionResult(data=None, errors=schema_errors)
    try:
        document, errors = DOCUMENTS.get(query, settings_key, prepare)
    except Exception as exc:  # noqa: BLE001 - as graphene: an unparsable document is an error result
        return ExecutionResult(errors=[exc])
    if document is None:
        return ExecutionResult(errors=errors)
    operation_ast = get_operation_ast(document, operation_name)
    if request.method.lower() == "get" and operation_ast is not None and operation_ast.operation != OperationType.QUERY:
        if show_graphiql:
            return None  # GraphiQL's page, with the mutation in its editor
        raise HttpError(
            HttpResponseNotAllowed(
                ["POST"], f"Can only perform a {operation_ast.operation.value} operation from a POST request."
            )
        )
    if errors:
        return ExecutionResult(data=None, errors=errors)
    guarded = needs_login(schema, document, operation_ast) if operation_ast is not None else None
    if guarded is not None and not _authenticated(request):
        # Refused before graphql-core coerces the variables, as the field's resolver would refuse it.
        path = [(guarded.alias or guarded.name).value]
        error = NotAuthenticated(LOGIN_REQUIRED, nodes=[guarded], path=path)
        return ExecutionResult(data=_all_null(schema, operation_ast), errors=[error])
    options = {
        "root_value": view.get_root_value(request),
        "context_value": view.get_context(request),
        "variable_values": variables,
        "operation_name": operation_name,
        "middleware": view.get_middleware(request),
    }
    if view.execution_context_class:
        options["execution_context_class"] = view.execution_context_class
    try:
        if operation_ast is not None and operation_ast.operation == OperationType.MUTATION and _atomic_mutations():
            with transaction.atomic():
                result = execute(schema, document, **options)
                if getattr(request, MUTATION_ERRORS_FLAG, False) is True:
                    transaction.set_rollback(True)
            return result
        return execute(schema, document, **options)
    except Exception as exc:  # noqa: BLE001 - as graphene: reported in the result
        return ExecutionResult(errors=[exc])


def _all_null(schema, operation) -> dict | None:
    """The data of an operation none of whose root fields ran: each null, or null itself if one may not be."""
    root = schema.get_root_type(operation.operation)
    data = {}
    for selection in operation.selection_set.selections:
        if isinstance(selection, FieldNode) and selection.name.value in root.fields:
            if is_non_null_type(root.fields[selection.name.value].type):
                return None
            data[(selection.alias or selection.name).value] = None
    return data


def _authenticated(request) -> bool:
    user = getattr(request, "user", None)
    return user is not None and user.is_authenticated


def _atomic_mutations() -> bool:
    return graphene_settings.ATOMIC_MUTATIONS is True or connection.settings_dict.get("ATOMIC_MUTATIONS") is True
