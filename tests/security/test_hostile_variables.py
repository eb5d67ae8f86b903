"""Issue 24, F5 and F8: what a request's body and variables may cost before any permission is checked.

F5: graphql-core coerced every item of a list variable before any resolver ran: an anonymous
`createOrder` with 1.3 million `productIds` cost seconds of CPU before "Authentication required".
F8: a multipart/form-data body was parsed (its file part spooled to disk) and answered 200.
"""

import importlib
import json

import pytest

from bench.hostile import hostile_variables
from crm.models import Customer
from tests.crm.gql_helpers import error_codes, post

pytestmark = pytest.mark.django_db
graphql_execute = importlib.import_module("graphql.execution.execute")  # the module, not the function

CREATE_ORDER = "mutation($ids: [ID!]!) { createOrder(input: {customerId: 1, productIds: $ids}) { errors } }"
BULK = "mutation($rows: [CustomerInput!]!) { bulkCreateCustomers(input: $rows) { customers { id } errors } }"


@pytest.fixture
def coerced(monkeypatch):
    """How many times graphql-core coerced a request's variables."""
    calls = []
    original = graphql_execute.get_variable_values

    def counting(schema, definitions, inputs, max_errors=None):
        calls.append(inputs)
        return original(schema, definitions, inputs, max_errors=max_errors)

    monkeypatch.setattr(graphql_execute, "get_variable_values", counting)
    return calls


class TestBody:
    def test_a_body_over_the_limit_is_413_json_before_it_is_read(self, anonymous, settings):
        body = json.dumps({"query": "{ hello }", "variables": {"pad": "x" * settings.GRAPHQL_MAX_BODY_BYTES}})
        response = anonymous.post("/graphql", body, content_type="application/json")
        assert response.status_code == 413 and response["Content-Type"] == "application/json"
        assert error_codes(response.json()) == ["body_too_large"]
        assert response.json()["errors"][0]["message"] == (
            f"The request body is {len(body)} bytes; the limit is {settings.GRAPHQL_MAX_BODY_BYTES}."
        )

    def test_multipart_is_415_json_and_no_file_is_spooled(self, anonymous, settings, tmp_path):
        settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path)
        settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 10  # any file part would be written there
        upload = tmp_path / "upload.bin"
        upload.write_bytes(b"x" * 100_000)
        with upload.open("rb") as file:
            response = anonymous.post("/graphql", {"query": "{ hello }", "file": file})  # finding 8: 200
        assert response.status_code == 415 and error_codes(response.json()) == ["unsupported_media_type"]
        assert [path.name for path in tmp_path.iterdir()] == ["upload.bin"]

    def test_a_1000_row_bulk_create_fits(self, client):
        rows = [
            {"name": f"Customer number {i}", "email": f"customer{i}@example.com", "phone": "+1234567890"}
            for i in range(1000)
        ]
        assert len(json.dumps({"query": BULK, "variables": {"rows": rows}})) < 100_000
        status, body = post(client, BULK, {"rows": rows})
        assert status == 200 and body["data"]["bulkCreateCustomers"]["errors"] == []
        assert Customer.objects.count() == 1000


class TestVariables:
    def test_anonymous_is_refused_before_its_variables_are_coerced(self, anonymous, coerced, settings):
        ids = list(range(settings.GRAPHQL_MAX_VARIABLE_VALUES - 1))  # with `ids` itself, the most values allowed
        status, body = post(anonymous, CREATE_ORDER, {"ids": ids})
        assert status == 200 and error_codes(body) == ["unauthenticated"]  # finding 5: the same, after coercing
        assert body["data"] == {"createOrder": None} and body["errors"][0]["path"] == ["createOrder"]
        assert coerced == []

    def test_public_fields_still_coerce_their_variables(self, anonymous, coerced):
        status, body = post(anonymous, "query($yes: Boolean!) { hello @include(if: $yes) }", {"yes": True})
        assert status == 200 and body == {"data": {"hello": "Hello, GraphQL!"}} and coerced == [{"yes": True}]

    @pytest.mark.parametrize(
        ("variables", "message"),
        [
            ({"ids": list(range(10_001))}, "The variables hold more than 10000 values; the limit is 10000."),
            ({"ids": [[[[[[[[[1]]]]]]]]]}, "The variables nest 9 levels deep; the limit is 8."),
            ({"ids": ["x" * 10_001]}, "A variable holds a string of 10001 characters; the limit is 10000."),
            ({"a": {str(i): i for i in range(6000)}, "b": list(range(6000))}, "The variables hold more than 10000"),
        ],
    )
    def test_variables_over_a_limit_are_refused_before_coercion(self, client, coerced, caplog, variables, message):
        status, body = post(client, CREATE_ORDER, variables)  # logged in: the limits hold for everyone
        assert status == 400 and error_codes(body) == ["query_rejected"], body
        assert body["errors"][0]["message"].startswith(message) and "data" not in body
        assert coerced == []
        assert [r.getMessage() for r in caplog.records if r.name == "alx_backend_graphql_crm.api"] == [
            f"GraphQL variables refused: {body['errors'][0]['message']}"
        ]

    @pytest.mark.parametrize("name", list(hostile_variables()))
    def test_benchmark_corpus_is_refused_cheaply(self, anonymous, coerced, name):
        document, variables = hostile_variables()[name]
        status, body = post(anonymous, document, variables)
        assert status in (200, 400, 413) and set(error_codes(body)) <= {
            "unauthenticated",
            "query_rejected",
            "body_too_large",
        }, body
        assert coerced == []
