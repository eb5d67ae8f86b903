"""/graphql parses and validates a repeated document once per worker, and never serves it past changed limits;
only GraphiQL's page mints a CSRF cookie."""

import pytest
from django.test import Client

from alx_backend_graphql_crm.api import documents, views


@pytest.fixture
def parses(monkeypatch):
    monkeypatch.setattr(documents, "DOCUMENTS", documents.DocumentCache(size=2))
    calls = []
    real = views._parse_and_measure

    def counting(query, *args, **kwargs):
        calls.append(query)
        return real(query, *args, **kwargs)

    monkeypatch.setattr(views, "_parse_and_measure", counting)
    return calls


def post(query: str) -> dict:
    return Client().post("/graphql", {"query": query}, content_type="application/json").json()


def test_a_repeated_document_is_parsed_once(parses):
    for _ in range(3):
        assert post("{ hello }") == {"data": {"hello": "Hello, GraphQL!"}}
    assert parses == ["{ hello }"]


def test_least_recently_used_documents_are_dropped(parses):
    for query in ["{ hello }", "{ a: hello }", "{ b: hello }", "{ hello }"]:
        post(query)
    assert parses == ["{ hello }", "{ a: hello }", "{ b: hello }", "{ hello }"]


def test_changed_limits_validate_the_document_again(parses, settings):
    deep = "{ __typename a: hello b: hello c: hello }"
    assert "errors" not in post(deep)
    settings.GRAPHQL_MAX_ALIASES = 2
    assert "alias" in post(deep)["errors"][0]["message"].lower()


def test_syntax_errors_and_get_mutations_answer_as_before(parses):
    assert post("{ hello")["errors"][0]["message"].startswith("Syntax Error")
    response = Client().get("/graphql", {"query": "mutation { updateLowStockProducts { success } }"})
    assert response.status_code == 405


def test_only_graphiqls_page_sets_the_csrf_cookie():
    client = Client()
    assert "csrftoken" not in client.get("/graphql", {"query": "{ hello }"}, HTTP_ACCEPT="application/json").cookies
    assert "csrftoken" in client.get("/graphql", HTTP_ACCEPT="text/html").cookies
