"""GraphQL security: authentication, permissions, CSRF, bearer tokens, limits, introspection, masking."""

import json
import logging

import pytest
from django.test import Client

from crm import services
from crm.models import ApiToken, Customer
from tests.crm.gql_helpers import error_codes, ok, post, user_with
from tests.factories import CustomerFactory, ProductFactory, make_order

pytestmark = pytest.mark.django_db

CREATE = 'mutation { createCustomer(input: {name: "Eve", email: "eve@example.com"}) { customer { id } errors } }'


class TestAuthentication:
    def test_hello_is_public(self):
        assert ok(Client(), "{ hello }") == {"hello": "Hello, GraphQL!"}
        assert Client().get("/graphql", {"query": "{ hello }"}, HTTP_ACCEPT="application/json").json() == {
            "data": {"hello": "Hello, GraphQL!"}
        }

    @pytest.mark.parametrize(
        "query",
        [
            "{ allCustomers { edges { node { id } } } }",
            "{ allProducts { edges { node { id } } } }",
            "{ allOrders { edges { node { id } } } }",
            '{ customer(id: "1") { id } }',
            '{ product(id: "1") { id } }',
            '{ order(id: "1") { id } }',
            "{ totalCustomers }",
            "{ totalOrders }",
            "{ totalRevenue }",
        ],
    )
    def test_anonymous_read_refused_with_no_data(self, query):
        CustomerFactory(pk=1), ProductFactory(pk=1)
        status, body = post(Client(), query)
        assert error_codes(body) == ["unauthenticated"]
        assert "Authentication required" in body["errors"][0]["message"]
        assert all(value is None for value in (body.get("data") or {}).values())

    @pytest.mark.parametrize(
        "mutation",
        [
            CREATE,
            'mutation { bulkCreateCustomers(input: [{name: "E", email: "e@example.com"}]) { errors } }',
            'mutation { createProduct(input: {name: "P", price: 1}) { errors } }',
            "mutation { createOrder(input: {customerId: 1, productIds: [1]}) { errors } }",
            "mutation { updateLowStockProducts { success } }",
        ],
    )
    def test_anonymous_write_refused_and_nothing_written(self, mutation):
        customer, product = CustomerFactory(pk=1), ProductFactory(pk=1, stock=1)
        status, body = post(Client(), mutation)
        assert status == 200 and error_codes(body) == ["unauthenticated"]
        assert list(body["data"].values()) == [None]
        assert list(Customer.objects.all()) == [customer] and not customer.orders.exists()
        product.refresh_from_db()
        assert product.stock == 1

    def test_bad_bearer_token_refused(self):
        status, body = post(Client(), "{ hello }", HTTP_AUTHORIZATION="Bearer not-a-token")
        assert status == 401 and "Invalid or revoked API token" in body["errors"][0]["message"]


class TestPermissions:
    def test_user_without_view_customer_sees_no_customers(self):
        CustomerFactory(name="Secret Sam")
        make_order(customer=CustomerFactory(name="Secret Sue"))
        client = Client()
        client.force_login(user_with("crm.view_order", "crm.view_product"))
        status, body = post(client, "{ allCustomers { edges { node { name } } } }")
        assert error_codes(body) == ["forbidden"] and body["data"] == {"allCustomers": None}
        assert "crm.view_customer" in body["errors"][0]["message"]
        status, body = post(client, "{ totalCustomers }")
        assert error_codes(body) == ["forbidden"] and body["data"] is None
        # Not through an order either: the nested customer needs the same permission.
        status, body = post(client, "{ allOrders { edges { node { totalAmount customer { name } } } } }")
        assert b"Secret" not in json.dumps(body).encode()
        assert error_codes(body) == ["forbidden"]
        assert body["data"]["allOrders"]["edges"][0]["node"] == {"totalAmount": "10.00", "customer": None}

    def test_view_permission_does_not_allow_writing(self):
        client = Client()
        client.force_login(user_with("crm.view_customer"))
        status, body = post(client, CREATE)
        assert error_codes(body) == ["forbidden"] and "crm.add_customer" in body["errors"][0]["message"]
        assert not Customer.objects.exists()

    def test_each_field_needs_its_own_permission(self):
        client = Client()
        client.force_login(user_with("crm.view_product"))
        assert ok(client, "{ allProducts { totalCount } }") == {"allProducts": {"totalCount": 0}}
        status, body = post(client, "{ allOrders { totalCount } }")
        assert error_codes(body) == ["forbidden"]
        status, body = post(client, 'mutation { createProduct(input: {name: "P", price: 1}) { errors } }')
        assert error_codes(body) == ["forbidden"]


class TestCsrfAndBearer:
    def test_session_post_without_csrf_token_refused(self, clerk):
        client = Client(enforce_csrf_checks=True)
        client.force_login(clerk)
        status, _ = post(client, CREATE)
        assert status == 403
        assert not Customer.objects.exists()

    def test_session_post_with_csrf_token_accepted(self, clerk):
        client = Client(enforce_csrf_checks=True)
        client.force_login(clerk)
        client.get("/graphql", HTTP_ACCEPT="text/html")  # sets the csrftoken cookie, as GraphiQL's page does
        token = client.cookies["csrftoken"].value
        status, body = post(client, CREATE, HTTP_X_CSRFTOKEN=token)
        assert status == 200 and body["data"]["createCustomer"]["errors"] == []

    def test_bearer_token_post_accepted_without_csrf_token(self, clerk):
        _, raw = ApiToken.issue(user=clerk)
        status, body = post(Client(enforce_csrf_checks=True), CREATE, HTTP_AUTHORIZATION=f"Bearer {raw}")
        assert status == 200 and body["data"]["createCustomer"]["errors"] == []
        assert Customer.objects.filter(email="eve@example.com").exists()

    def test_bearer_token_carries_its_users_permissions(self):
        _, raw = ApiToken.issue(user=user_with("crm.view_product"))
        status, body = post(Client(), CREATE, HTTP_AUTHORIZATION=f"Bearer {raw}")
        assert error_codes(body) == ["forbidden"]


class TestLimits:
    def test_query_deeper_than_the_limit_refused(self, client, settings):
        settings.GRAPHQL_MAX_DEPTH = 4
        query = "{ allOrders { edges { node { customer { name } } } } }"  # depth 5
        status, body = post(client, query)
        assert status == 400 and body["errors"][0]["message"] == "The operation is 5 levels deep; the limit is 4."
        assert "data" not in body
        settings.GRAPHQL_MAX_DEPTH = 5
        assert ok(client, query) == {"allOrders": {"edges": []}}

    def test_depth_counts_through_fragments(self, client, settings):
        settings.GRAPHQL_MAX_DEPTH = 4
        query = """query Deep { ...Orders } fragment Orders on Query { allOrders { edges { ...Node } } }
                   fragment Node on OrderEdge { node { customer { name } } }"""
        status, body = post(client, query)
        assert status == 400 and "Operation 'Deep' is 5 levels deep" in body["errors"][0]["message"]

    def test_default_depth_limit_is_ten(self, client):
        nested = "a " + "{ a " * 11 + "}" * 11  # depth 12, unknown fields: refused before anything runs
        status, body = post(client, "{ " + nested + " }")
        assert status == 400 and any("the limit is 10" in e["message"] for e in body["errors"])

    def test_aliases_limited(self, client):
        query = "{ " + " ".join(f"a{i}: allOrders {{ totalCount }}" for i in range(21)) + " }"
        status, body = post(client, query)
        assert status == 400 and "uses 21 aliases; the limit is 20" in body["errors"][0]["message"]

    def test_fields_counted_at_each_fragment_use(self, client, settings):
        settings.GRAPHQL_MAX_FIELDS = 50
        # Each level doubles the fields; 2**6 uses of a 1-field fragment = 64 fields.
        fragments = "fragment F0 on Query { hello } " + " ".join(
            f"fragment F{i} on Query {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, 7)
        )
        status, body = post(client, "{ ...F6 } " + fragments)
        assert status == 400 and "selects 64 fields" in body["errors"][0]["message"]

    def test_query_size_limited(self, client, settings):
        settings.GRAPHQL_MAX_QUERY_CHARS = 100
        status, body = post(client, "{ hello }" + " " * 200)
        assert status == 400 and body["errors"][0]["message"] == "The query is 209 characters long; the limit is 100."

    def test_page_size_capped(self, client):
        ProductFactory.create_batch(101)
        data = ok(
            client, "{ allProducts(first: 100000) { totalCount pageInfo { hasNextPage } edges { node { id } } } }"
        )
        assert len(data["allProducts"]["edges"]) == 100
        assert data["allProducts"]["totalCount"] == 101 and data["allProducts"]["pageInfo"]["hasNextPage"] is True
        data = ok(client, "{ allProducts { edges { node { id } } } }")  # no `first`: the default page size
        assert len(data["allProducts"]["edges"]) == 100
        data = ok(client, "{ allProducts(last: 100000) { edges { node { id } } } }")
        assert len(data["allProducts"]["edges"]) == 100

    @pytest.mark.parametrize(
        ("arguments", "message"),
        [
            ("first: -1", "'first' must be zero or more; got -1."),
            ("last: -5", "'last' must be zero or more; got -5."),
            ("offset: -2", "'offset' must be zero or more; got -2."),
            ("offset: 10001", "'offset' is at most 10000; got 10001. Narrow the filter to page deeper."),
            ('offset: 1, before: "YXJyYXljb25uZWN0aW9uOjE="', "'offset' and 'before' cannot be used together."),
        ],
    )
    def test_bad_pagination_arguments_refused_clearly(self, client, arguments, message):
        status, body = post(client, f"{{ allProducts({arguments}) {{ edges {{ node {{ id }} }} }} }}")
        assert status == 200 and body["errors"][0]["message"] == message
        assert error_codes(body) == ["bad_user_input"] and body["data"] == {"allProducts": None}

    def test_introspection_refused_with_debug_off(self, client, settings):
        settings.DEBUG = False
        status, body = post(client, "{ __schema { types { name } } }")
        assert status == 400 and "introspection" in body["errors"][0]["message"].lower()
        status, body = post(client, '{ __type(name: "Customer") { name } }')
        assert status == 400
        # __typename is not introspection of the schema: Relay and Apollo clients need it.
        assert ok(client, "{ __typename hello }") == {"__typename": "Query", "hello": "Hello, GraphQL!"}

    def test_introspection_allowed_with_debug_on(self, client, settings):
        settings.DEBUG = True
        data = ok(client, '{ __type(name: "Customer") { name } }')
        assert data == {"__type": {"name": "Customer"}}

    def test_introspection_setting_overrides_debug(self, client, settings):
        settings.DEBUG, settings.GRAPHQL_INTROSPECTION = True, False
        status, _ = post(client, "{ __schema { queryType { name } } }")
        assert status == 400


class TestErrors:
    def test_unexpected_exception_masked_and_logged(self, client, monkeypatch, caplog):
        def broken():
            raise RuntimeError("UNIQUE constraint failed: secret_table.secret_column")

        monkeypatch.setattr(services, "crm_report", broken)
        with caplog.at_level(logging.ERROR, logger="alx_backend_graphql_crm.api"):
            status, body = post(client, "{ totalOrders }")
        assert status == 200 and "secret" not in json.dumps(body)
        assert body["errors"][0]["message"] == "Internal server error. It has been logged."
        assert error_codes(body) == ["internal_error"] and body["errors"][0]["path"] == ["totalOrders"]
        assert "secret_table" in caplog.text

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            ({"query": 42}, "'query' must be a string."),
            ({"query": "{ hello }", "variables": [1]}, "'variables' must be a JSON object."),
            ({"query": "{ hello }", "operationName": 3}, "'operationName' must be a string."),
            ({}, "Must provide query string."),
        ],
    )
    def test_malformed_requests_are_400_with_a_reason(self, client, body, message):
        response = client.post("/graphql", json.dumps(body), content_type="application/json")
        assert response.status_code == 400 and response.json()["errors"][0]["message"] == message

    def test_invalid_json_and_syntax_errors(self, client):
        response = client.post("/graphql", "{not json", content_type="application/json")
        assert response.status_code == 400
        status, body = post(client, "{ hello ")
        assert status == 400 and body["errors"][0]["message"].startswith("Syntax Error")

    def test_mutation_over_get_refused(self, client):
        response = client.get("/graphql", {"query": CREATE}, HTTP_ACCEPT="application/json")
        assert response.status_code == 405 and not Customer.objects.exists()

    @pytest.mark.parametrize(
        ("filter_", "message"),
        [
            ('{createdAtGte: "yesterday"}', "DateTime cannot represent value"),
            ('{nameIcontains: "a\\u0000b"}', "filter.nameIcontains: Null characters are not allowed."),
        ],
    )
    def test_bad_filter_values_are_clear_errors(self, client, filter_, message):
        status, body = post(client, f"{{ allCustomers(filter: {filter_}) {{ edges {{ node {{ id }} }} }} }}")
        assert status in (200, 400) and message in body["errors"][0]["message"]
        assert "internal_error" not in error_codes(body)
