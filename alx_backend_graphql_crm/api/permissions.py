"""Permissions declared once per GraphQL field or mutation: Django model permissions."""

import functools
from collections.abc import Callable, Iterable

from alx_backend_graphql_crm.api.errors import NotAuthenticated, PermissionDenied


def check_permissions(request, permissions: Iterable[str], *, staff: bool = False) -> None:
    """Raise a top-level GraphQL error unless the request's user is authenticated and has every permission
    (and, with ``staff``, is a staff user: for operators' fields, not API clients').

    ``user.has_perms`` loads a user's permissions once and caches them on the user object, so
    checking a nested field for every row of a page costs no extra query.
    """
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        raise NotAuthenticated("Authentication required: log in (session) or send 'Authorization: Bearer <token>'.")
    permissions = tuple(permissions)
    if not user.has_perms(permissions):
        missing = ", ".join(p for p in permissions if not user.has_perm(p))
        raise PermissionDenied(f"Permission denied: this needs {missing}.")
    if staff and not user.is_staff:
        raise PermissionDenied("Permission denied: this is for staff users only.")


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
        return wrapper

    return decorator
