"""Findings 9 and 10: what an anonymous caller learns that it should not: the schema, the database's address."""

import json
import logging

import pytest
from django.test import Client

from crm.models import ApiToken
from cronjobs import health, views
from tests.conftest import database_down
from tests.crm.gql_helpers import post, user_with

pytestmark = pytest.mark.django_db

# Each names something close to a real name, which graphql-core would suggest.
MISTAKES = [
    ("{ allCustomer { totalCount } }", None, "allCustomers"),
    ("{ allProducts(fist: 1) { totalCount } }", None, "first"),
    ("query($n: Strin) { hello }", None, "String"),
    ('{ allCustomers(filter: {nameIcontain: "a"}) { totalCount } }', None, "nameIcontains"),
    (
        "query($f: CustomerFilterInput) { allCustomers(filter: $f) { totalCount } }",
        {"f": {"nameIcontain": "a"}},
        "nameIcontains",
    ),
]


class TestSuggestions:
    @pytest.mark.parametrize(("query", "variables", "suggestion"), MISTAKES)
    def test_no_suggestions_while_introspection_is_off(self, client, settings, query, variables, suggestion):
        # Logged in (the clerk): an anonymous request for allCustomers is refused before its variables are read.
        settings.DEBUG, settings.GRAPHQL_INTROSPECTION = False, None
        status, body = post(client, query, variables)  # finding 9: "Did you mean 'allCustomers', ..."
        assert status == 400 and body["errors"], body
        text = json.dumps(body)
        assert "Did you mean" not in text and f"'{suggestion}'" not in text

    @pytest.mark.parametrize(("query", "variables", "suggestion"), MISTAKES)
    def test_suggestions_kept_while_introspection_is_on(self, client, settings, query, variables, suggestion):
        # Logged in: an anonymous request for allCustomers is refused before its variables are read (F5).
        settings.GRAPHQL_INTROSPECTION = True
        status, body = post(client, query, variables)
        assert f"Did you mean '{suggestion}'" in json.dumps(body)


def leaked(body: str, port: int) -> list[str]:
    return [secret for secret in ("127.0.0.1", str(port), "crm_secret", "s3cret") if secret in body]


class TestHealthDuringAnOutage:
    def test_health_names_no_host_port_or_credential(self, anonymous, monkeypatch, unreachable_database, caplog):
        connection, port = unreachable_database
        monkeypatch.setattr(views, "connection", connection)
        with caplog.at_level(logging.WARNING, logger="cronjobs.views"):
            response = anonymous.get("/health/")  # finding 10: the driver's message, host and port, before
        assert response.status_code == 503
        assert response.json() == {"status": "error", "database": "unavailable"}
        assert leaked(response.content.decode(), port) == []
        assert str(port) in caplog.text  # the operator still sees where it failed

    def test_cron_health_names_no_host_port_or_credential(self, anonymous, monkeypatch, unreachable_database):
        connection, port = unreachable_database

        def snapshot():
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")

        monkeypatch.setattr(health, "snapshot", snapshot)
        response = anonymous.get("/health/cron/")
        assert response.status_code == 503
        assert response.json() == {"status": "error", "database": "unavailable"}
        assert leaked(response.content.decode(), port) == []


def test_a_bearer_request_during_an_outage_is_503_naming_no_host(unreachable_database, caplog):
    """The API-token middleware cannot check the token: 503 JSON, not a 500 page; the log has the detail."""
    _, raw = ApiToken.issue(user=user_with("crm.view_customer"))
    connection, port = unreachable_database
    with database_down(connection), caplog.at_level(logging.WARNING, logger="crm.auth"):
        status, body = post(Client(), "{ totalCustomers }", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert status == 503 and body["errors"][0]["extensions"]["code"] == "database_unavailable", body
    assert leaked(json.dumps(body), port) == []
    assert str(port) in caplog.text
