"""Permissions declared once per GraphQL field or mutation: Django model permissions."""

import functools
from collections.abc import Callable, Iterable

from graphene.utils.str_converters import to_camel_case
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLObjectType,
    InlineFragmentNode,
    OperationDefinitionNode,
)

from alx_backend_graphql_crm.api.errors import NotAuthenticated, PermissionDenied

LOGIN_REQUIRED = "Authentication required: log in (session) or send 'Authorization: Bearer <token>'."


def check_permissions(request, permissions: Iterable[str], *, staff: bool = False, subject: str = "this") -> None:
    """Raise a top-level GraphQL error unless the request's user is authenticated and has every permission
    (and, with ``staff``, is a staff user: for operators' fields, not API clients'). ``subject``
    names what needs them in the message ("filter.customerName needs crm.view_customer").

    ``user.has_perms`` loads a user's permissions once and caches them on the user object, so
    checking a nested field for every row of a page costs no extra query.
    """
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        raise NotAuthenticated(LOGIN_REQUIRED)
    permissions = tuple(permissions)
    if not user.has_perms(permissions):
        missing = ", ".join(p for p in permissions if not user.has_perm(p))
        raise PermissionDenied(f"Permission denied: {subject} needs {missing}.")
    if staff and not user.is_staff:
        raise PermissionDenied(f"Permission denied: {subject} is for staff users only.")


def permission_required(*permissions: str, staff: bool = False) -> Callable:
    """Decorate a resolver ``(root, info, **args)`` so it runs only for a user holding ``permissions``.

    ``permission_required()`` with no permission still requires an authenticated user.
    """

    def decorator(resolver: Callable) -> Callable:
        @functools.wraps(resolver)
        def wrapper(root, info, *args, **kwargs):
            check_permissions(info.context, permissions, staff=staff)
            return resolver(root, info, *args, **kwargs)

        wrapper.required_permissions = permissions
        wrapper.required_staff = staff
        return wrapper

    return decorator


def permission_text(permissions: Iterable[str], *, staff: bool = False) -> str:
    """What a guarded field's description says it needs: "Needs crm.view_order." / "Staff with …"."""
    named = ", ".join(permissions)
    if staff:
        return f"Staff with {named}." if named else "Staff only."
    return f"Needs {named}." if named else "Needs a logged-in user."


def _guard(graphene_type, name: str, field):
    """The object declaring a field's permissions: its permission_required resolver, or its mutation."""
    resolver = getattr(graphene_type, f"resolve_{name}", None) or getattr(field, "resolver", None)
    for candidate in (resolver, getattr(field, "type", None)):
        if hasattr(candidate, "required_permissions"):
            return candidate
    return None


def needs_login(schema, document: DocumentNode, operation: OperationDefinitionNode) -> FieldNode | None:
    """The first root field of ``operation`` declared with permissions (every one but ``hello``), or None.

    Asked before graphql-core coerces the variables, so an anonymous client is refused at once
    instead of after coercing whatever list it sent. Fragments at the root are followed.
    """
    root = schema.get_root_type(operation.operation)
    fragments = {node.name.value: node for node in document.definitions if isinstance(node, FragmentDefinitionNode)}
    pending, seen = [operation.selection_set], set()
    while pending:
        for selection in pending.pop().selections:
            if isinstance(selection, FieldNode):
                field = root.fields.get(selection.name.value) if root is not None else None
                if field is not None and "permissions" in (field.extensions or {}):
                    return selection
            elif isinstance(selection, InlineFragmentNode):
                pending.append(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen:
                seen.add(selection.name.value)
                if selection.name.value in fragments:
                    pending.append(fragments[selection.name.value].selection_set)
    return None


def describe_permissions(schema) -> None:
    """Append to every guarded field's description the permissions it is declared with.

    Permissions are declared once (``permission_required`` on a resolver, ``permissions`` on a
    ServiceMutation); the text clients read in the schema is generated from that declaration,
    as Saleor's BaseMutation does, so the two cannot disagree.
    Call it once per graphene Schema (built with the default camelCase names).
    """
    for graphql_type in schema.graphql_schema.type_map.values():
        graphene_type = getattr(graphql_type, "graphene_type", None)
        if not isinstance(graphql_type, GraphQLObjectType) or graphene_type is None:
            continue
        for name, field in graphene_type._meta.fields.items():
            guard = _guard(graphene_type, name, field)
            if guard is None:
                continue
            graphql_field = graphql_type.fields[getattr(field, "name", None) or to_camel_case(name)]
            # Read before execution (needs_login), where no resolver has run yet.
            graphql_field.extensions = {**(graphql_field.extensions or {}), "permissions": guard.required_permissions}
            text = permission_text(guard.required_permissions, staff=guard.required_staff)
            graphql_field.description = f"{graphql_field.description} {text}" if graphql_field.description else text
