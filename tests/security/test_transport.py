"""Findings 3 and 11: what reaches /graphql before GraphQL does: the body, the CSRF check, the token.

Every answer of /graphql is JSON. CSRF is enforced for session-authenticated requests only
(Django REST framework's rule): a request carrying no logged-in session cannot be forged to act
as anyone, so anonymous and bearer-token programs POST without a CSRF token.
"""

import json
from urllib.parse import urlencode

import pytest
from django.test import Client

from crm.models import ApiToken, Customer
from tests.crm.gql_helpers import error_codes, post

pytestmark = pytest.mark.django_db

CREATE = 'mutation { createCustomer(input: {name: "Eve", email: "eve@example.com"}) { customer { id } errors } }'


def assert_json(response):
    assert response["Content-Type"] == "application/json", response.content[:200]
    return response.json()


class TestBody:
    @pytest.mark.parametrize("body", ["[" * 100_000, '{"query": ' + "[" * 100_000, '{"a":' * 50_000])
    def test_deeply_nested_json_is_a_400_json_answer(self, anonymous, body):
        response = anonymous.post("/graphql", body, content_type="application/json")  # finding 3: a 500
        assert response.status_code == 400
        assert assert_json(response) == {"errors": [{"message": "POST body sent invalid JSON: nested too deeply."}]}

    def test_deeply_nested_variables_are_refused_without_an_internal_error(self, anonymous):
        body = '{"query": "query($a: [Int]) { hello }", "variables": {"a": ' + "[" * 500 + "]" * 500 + "}}"
        response = anonymous.post("/graphql", body, content_type="application/json")
        assert response.status_code == 400 and "internal_error" not in error_codes(assert_json(response))


class TestCsrf:
    def test_anonymous_post_needs_no_csrf_token(self, program):
        # finding 11: Django's 2.8 KB HTML "CSRF verification failed" page before the fix
        response = program.post("/graphql", json.dumps({"query": "{ hello }"}), content_type="application/json")
        assert response.status_code == 200
        assert assert_json(response) == {"data": {"hello": "Hello, GraphQL!"}}

    @pytest.mark.parametrize("header", ["", "   ", "Basic dXNlcjpwYXNz", "Token abc", "bearer-ish"])
    def test_an_authorization_header_that_is_not_ours_is_anonymous(self, program, header):
        # Not a bearer token (a proxy's Basic credentials, say): the request is anonymous, not refused.
        status, body = post(program, "{ hello }", HTTP_AUTHORIZATION=header)
        assert status == 200 and body == {"data": {"hello": "Hello, GraphQL!"}}

    @pytest.mark.parametrize("header", ["Bearer", "Bearer ", "bearer nope", "BEARER  nope  "])
    def test_a_bad_bearer_token_is_401_json(self, program, header):
        response = program.post(
            "/graphql", json.dumps({"query": "{ hello }"}), content_type="application/json", HTTP_AUTHORIZATION=header
        )
        assert response.status_code == 401 and response["WWW-Authenticate"] == 'Bearer error="invalid_token"'
        body = assert_json(response)
        assert body["errors"][0]["message"] == "Invalid or revoked API token."
        assert error_codes(body) == ["unauthenticated"]

    def test_session_post_without_csrf_token_is_403_json(self, clerk):
        client = Client(enforce_csrf_checks=True)
        client.force_login(clerk)
        response = client.post("/graphql", json.dumps({"query": CREATE}), content_type="application/json")
        assert response.status_code == 403
        body = assert_json(response)
        assert error_codes(body) == ["csrf_failed"] and body["errors"][0]["message"].startswith("CSRF check failed:")
        assert not body["errors"][0]["message"].endswith("..")
        assert not Customer.objects.exists()

    def test_cross_site_form_post_with_the_session_cookie_is_refused(self, clerk):
        client = Client(enforce_csrf_checks=True)
        client.force_login(clerk)
        # What a hostile page's <form> sends: urlencoded by default; multipart is refused before CSRF (F8).
        response = client.post("/graphql", urlencode({"query": CREATE}), "application/x-www-form-urlencoded")
        assert response.status_code == 403 and error_codes(assert_json(response)) == ["csrf_failed"]
        response = client.post("/graphql", {"query": CREATE})  # multipart/form-data
        assert response.status_code == 415 and error_codes(assert_json(response)) == ["unsupported_media_type"]
        assert not Customer.objects.exists()

    def test_session_post_with_the_csrf_token_is_accepted(self, clerk):
        client = Client(enforce_csrf_checks=True)
        client.force_login(clerk)
        client.get("/graphql", HTTP_ACCEPT="text/html")  # sets the csrftoken cookie, as GraphiQL's page does
        status, body = post(client, CREATE, HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value)
        assert status == 200 and body["data"]["createCustomer"]["errors"] == []

    def test_bearer_token_with_a_session_cookie_needs_no_csrf_token(self, clerk):
        client = Client(enforce_csrf_checks=True)
        client.force_login(clerk)
        _, raw = ApiToken.issue(user=clerk)
        status, body = post(client, CREATE, HTTP_AUTHORIZATION=f"Bearer {raw}")
        assert status == 200 and body["data"]["createCustomer"]["errors"] == []

    def test_a_request_without_a_session_cookie_does_not_load_the_session(self, program, django_assert_num_queries):
        # The CSRF check skips loading the session and the user when no session cookie came: no
        # query, and the answer does not vary on Cookie (SessionMiddleware adds it once the session is read).
        with django_assert_num_queries(0):
            response = program.get("/graphql", {"query": "{ hello }"}, HTTP_ACCEPT="application/json")
        assert response.status_code == 200 and "Vary" not in response

    def test_a_stale_session_cookie_is_anonymous_and_needs_no_csrf_token(self, clerk):
        client = Client(enforce_csrf_checks=True)
        client.force_login(clerk)
        client.logout()  # the browser keeps sending a cookie its server side no longer knows
        client.cookies["sessionid"] = "no-such-session"
        status, body = post(client, "{ hello }")
        assert status == 200 and body == {"data": {"hello": "Hello, GraphQL!"}}

    def test_anonymous_mutation_without_csrf_token_is_refused_by_permission_not_csrf(self, program):
        status, body = post(program, CREATE)
        assert status == 200 and error_codes(body) == ["unauthenticated"]
        assert not Customer.objects.exists()
