"""Helpers of the GraphQL and admin tests: post a document, make users with chosen permissions, log them in."""

import json

from django.contrib.auth.models import Permission
from django.test import Client

from tests.factories import UserFactory

ALL_CRM_PERMISSIONS = [
    f"crm.{action}_{model}"
    for model in ("customer", "product", "order")
    for action in ("view", "add", "change", "delete")
]


def user_with(*permissions: str, username: str | None = None):
    """A user holding exactly ``permissions`` ("app.codename")."""
    user = UserFactory(**({"username": username} if username else {}))
    for permission in permissions:
        app_label, codename = permission.split(".", 1)
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return type(user).objects.get(pk=user.pk)  # fresh object: no stale permission cache


def staff(*permissions: str, superuser: bool = False, username: str | None = None):
    """A staff user (may enter the admin) holding ``permissions``."""
    user = user_with(*permissions, username=username)
    user.is_staff = True
    user.is_superuser = superuser
    user.save()
    return type(user).objects.get(pk=user.pk)


def logged_in(user, **client_kwargs) -> Client:
    """A test client with ``user`` logged in."""
    client = Client(**client_kwargs)
    client.force_login(user)
    return client


def post(client, query: str, variables: dict | None = None, **extra):
    """POST a document to /graphql; returns (status code, parsed JSON body or None)."""
    body = {"query": query}
    if variables is not None:
        body["variables"] = variables
    response = client.post("/graphql", json.dumps(body), content_type="application/json", **extra)
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, None


def ok(client, query: str, variables: dict | None = None) -> dict:
    """The data of a request that must succeed without any top-level error."""
    status, body = post(client, query, variables)
    assert status == 200 and "errors" not in body, body
    return body["data"]


def error_codes(body) -> list[str]:
    return [error.get("extensions", {}).get("code") for error in body.get("errors", [])]
