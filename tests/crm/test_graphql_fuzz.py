"""Property-based fuzz of the whole schema: generated operations never cause a 500 or an unhandled error."""

import json
import logging
from datetime import UTC

import pytest
from django.test import Client
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import from_schema, nodes

from alx_backend_graphql_crm.schema import schema
from tests.crm.gql_helpers import ALL_CRM_PERMISSIONS, user_with
from tests.factories import CustomerFactory, ProductFactory, make_order

CUSTOM_SCALARS = {
    # Both well-formed values and junk: a scalar's own parser must refuse junk cleanly.
    "DateTime": st.one_of(
        st.datetimes(timezones=st.sampled_from([None, UTC])).map(lambda d: nodes.String(d.isoformat())),
        st.text(max_size=12).map(nodes.String),
    ),
    "Decimal": st.one_of(
        st.decimals(allow_nan=False, allow_infinity=False, places=2).map(lambda d: nodes.String(str(d))),
        st.floats(allow_nan=False, allow_infinity=False).map(lambda f: nodes.Float(repr(f))),
        st.integers().map(nodes.Int),
        st.text(max_size=8).map(nodes.String),
    ),
}


@pytest.mark.django_db
def test_generated_operations_never_fail_the_server(caplog):
    user = user_with(*ALL_CRM_PERMISSIONS, username="fuzzer")
    customers = CustomerFactory.create_batch(3)
    products = ProductFactory.create_batch(3, stock=10_000)
    make_order(customers[0], products[:2])
    client = Client()
    client.force_login(user)
    sent = []
    examples = settings.default.max_examples  # the profile's: 50 for make test, 1,000 in CI (tests/conftest.py)

    @settings(
        database=None,  # a fuzz run is reproducible from its seed; keep no example store
        phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure prints its document
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )
    @given(document=from_schema(schema.graphql_schema, custom_scalars=CUSTOM_SCALARS))
    def send(document):
        response = client.post("/graphql", json.dumps({"query": document}), content_type="application/json")
        sent.append(response.status_code)
        assert response.status_code in (200, 400), (response.status_code, document)
        body = response.json()
        codes = [error.get("extensions", {}).get("code") for error in body.get("errors", [])]
        assert "internal_error" not in codes, (body, document)
        # 400: refused before running (our limits, or a custom scalar value its parser refused).
        if response.status_code == 400:
            assert "data" not in body and body["errors"], (body, document)
        else:
            assert "data" in body, (body, document)

    with caplog.at_level(logging.ERROR):
        send()
    assert len(sent) >= examples
    print(f"fuzz: {len(sent)} operations, {sent.count(200)} executed, {sent.count(400)} refused before running")
    assert sent.count(200) >= examples // 2  # most documents really run, not only get refused
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert errors == [], [record.getMessage() for record in errors]
