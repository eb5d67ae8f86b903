"""Run a GraphQL document for the jobs: in-process by default, over HTTP when CRM_GRAPHQL_URL is set."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import transaction
from django.http import HttpRequest

# The identity jobs act as in-process, with exactly the permissions their documents need.
SERVICE_USERNAME = "crm-jobs"
SERVICE_PERMISSIONS = ("crm.view_customer", "crm.view_product", "crm.change_product", "crm.view_order")
DEFAULT_TIMEOUT = 30


class GraphQLClientError(RuntimeError):
    """A GraphQL call failed: a transport problem or errors in the response. Never empty data."""


def execute(document: str, variables: dict | None = None) -> dict:
    """Execute ``document`` and return its ``data``; raise GraphQLClientError on any error."""
    if settings.CRM_GRAPHQL_URL:
        return _execute_http(document, variables, url=settings.CRM_GRAPHQL_URL, token=settings.CRM_API_TOKEN)
    return _execute_in_process(document, variables)


def service_user():
    """The dedicated job identity: no password, only SERVICE_PERMISSIONS."""
    User = get_user_model()
    with transaction.atomic():
        user, created = User.objects.get_or_create(username=SERVICE_USERNAME, defaults={"is_active": True})
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        wanted = {tuple(name.split(".", 1)) for name in SERVICE_PERMISSIONS}
        have = set(user.user_permissions.values_list("content_type__app_label", "codename"))
        if have != wanted:
            permissions = [
                Permission.objects.get(content_type__app_label=app, codename=codename) for app, codename in wanted
            ]
            user.user_permissions.set(permissions)
            user = User.objects.get(pk=user.pk)  # drop the cached permissions
    return user


def _execute_in_process(document: str, variables: dict | None) -> dict:
    from alx_backend_graphql_crm.schema import schema

    request = HttpRequest()
    request.method = "POST"
    request.user = service_user()
    result = schema.execute(document, variable_values=variables or {}, context_value=request)
    if result.errors:
        raise GraphQLClientError("GraphQL errors: " + "; ".join(error.message for error in result.errors))
    return _checked(result.data)


def _execute_http(document: str, variables: dict | None, *, url: str, token: str | None) -> dict:
    # gql is imported here, not at module level, to keep it off the in-process path.
    from gql import Client, gql
    from gql.transport.exceptions import TransportError, TransportQueryError, TransportServerError
    from gql.transport.requests import RequestsHTTPTransport

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    transport = RequestsHTTPTransport(url=url, headers=headers, timeout=DEFAULT_TIMEOUT, retries=0, verify=True)
    client = Client(transport=transport, fetch_schema_from_transport=False, execute_timeout=DEFAULT_TIMEOUT)
    try:
        return _checked(client.execute(gql(document), variable_values=variables))
    except TransportQueryError as exc:
        messages = [error.get("message", str(error)) for error in (exc.errors or [])] or [str(exc)]
        raise GraphQLClientError(f"GraphQL errors from {url}: " + "; ".join(messages)) from exc
    except TransportServerError as exc:
        hint = " (check CRM_API_TOKEN)" if exc.code in (401, 403) else ""
        raise GraphQLClientError(f"HTTP {exc.code} from {url}{hint}: {exc}") from exc
    except (TransportError, OSError) as exc:
        raise GraphQLClientError(f"cannot reach {url}: {exc}") from exc


def _checked(data) -> dict:
    if not data:
        raise GraphQLClientError("GraphQL response has no data")
    return data
