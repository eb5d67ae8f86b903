"""Filters carry the permission of what they reveal (issue 12, finding 8): a user holding only
crm.view_order read a customer's name letter by letter through allOrders(filter: {customerName})."""

import pytest

from tests.crm.gql_helpers import error_codes, logged_in, ok, post, user_with
from tests.factories import CustomerFactory, ProductFactory, make_order

pytestmark = pytest.mark.django_db

ORDERS = "query($f: OrderFilterInput) { allOrders(filter: $f) { edges { node { id } } } }"

# filter entry, a value that matches the order below, the permission the entry needs
REVEALING = [
    ("customerName", "Ali", "crm.view_customer"),
    ("productName", "Lap", "crm.view_product"),
    ("productId", None, "crm.view_product"),
]


@pytest.fixture
def order():
    return make_order(customer=CustomerFactory(name="Alice"), products=[ProductFactory(name="Laptop")])


def client_of(*permissions):
    return logged_in(user_with(*permissions))


@pytest.mark.parametrize(("entry", "value", "permission"), REVEALING)
def test_a_revealing_filter_without_its_permission_is_a_top_level_permission_error(order, entry, value, permission):
    value = value or str(order.lines.get().product_id)
    status, body = post(client_of("crm.view_order"), ORDERS, {"f": {entry: value}})
    assert error_codes(body) == ["forbidden"]
    assert body["errors"][0]["message"] == f"Permission denied: filter.{entry} needs {permission}."
    assert body["data"]["allOrders"] is None  # no data, not even an empty page that would tell "no match"


@pytest.mark.parametrize(("entry", "value", "permission"), REVEALING)
def test_with_the_permission_the_filter_works(order, entry, value, permission):
    value = value or str(order.lines.get().product_id)
    data = ok(client_of("crm.view_order", permission), ORDERS, {"f": {entry: value}})
    assert len(data["allOrders"]["edges"]) == 1


def test_filters_revealing_only_orders_need_only_view_order(order):
    data = ok(client_of("crm.view_order"), ORDERS, {"f": {"totalAmountGte": "1", "customerName": None}})
    assert len(data["allOrders"]["edges"]) == 1


def test_the_schema_tells_which_permission_a_filter_needs():
    from alx_backend_graphql_crm.schema import schema

    fields = schema.graphql_schema.get_type("OrderFilterInput").fields
    assert fields["customerName"].description.endswith("Needs crm.view_customer.")
    assert fields["productName"].description.endswith("Needs crm.view_product.")
    assert fields["productId"].description.endswith("Needs crm.view_product.")
