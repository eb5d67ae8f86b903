"""Huge orders (issue 12, finding 7): a capped productIds list, totals kept in linear work, and a
cost limit that counts the entries a page of nested lists may return."""

from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from crm import services
from crm.models import Order, Product
from tests.crm.gql_helpers import error_codes, ok, post
from tests.factories import CustomerFactory, ProductFactory

pytestmark = pytest.mark.django_db

CREATE_ORDER = """mutation($c: ID!, $p: [ID!]!) { createOrder(input: {customerId: $c, productIds: $p}) {
  order { id } message errors fieldErrors { field code } } }"""


# --- the cap ------------------------------------------------------------------------------------


def test_product_ids_are_capped_by_the_setting(client, settings):
    assert settings.CRM_MAX_ORDER_ITEMS == 100  # the contract's default
    product = ProductFactory(stock=10_000)
    customer = CustomerFactory()
    data = ok(client, CREATE_ORDER, {"c": str(customer.pk), "p": [str(product.pk)] * 101})["createOrder"]
    assert data["order"] is None
    assert data["fieldErrors"] == [{"field": "productIds", "code": "too_many"}]
    assert data["errors"] == ["productIds: At most 100 products per order; got 101."]
    assert data["message"] == "Order not created: productIds: At most 100 products per order; got 101."
    assert not Order.objects.exists() and Product.objects.get().stock == 10_000
    # Exactly the cap is an order.
    assert ok(client, CREATE_ORDER, {"c": str(customer.pk), "p": [str(product.pk)] * 100})["createOrder"]["order"]


def test_the_cap_follows_the_setting(client, settings):
    settings.CRM_MAX_ORDER_ITEMS = 3
    products = [str(ProductFactory().pk) for _ in range(4)]
    data = ok(client, CREATE_ORDER, {"c": str(CustomerFactory().pk), "p": products})["createOrder"]
    assert data["errors"] == ["productIds: At most 3 products per order; got 4."]


# --- the total: linear work, still equal to the lines ------------------------------------------------


def _work_to_order(lines: int) -> int:
    """Database work (not time) to create an order of ``lines`` distinct products.

    SQLite: virtual-machine instructions executed (its progress handler, called every 10);
    PostgreSQL: order-line rows the statement read (pg_stat_xact_user_tables), which is where
    re-summing every line per inserted line showed.
    """
    customer, products = CustomerFactory(), [ProductFactory() for _ in range(lines)]
    with transaction.atomic():
        if connection.vendor == "sqlite":
            connection.ensure_connection()
            steps = [0]

            def count():
                steps[0] += 1
                return 0

            connection.connection.set_progress_handler(count, 10)
            try:
                services.create_order(customer_id=customer.pk, product_ids=[p.pk for p in products])
            finally:
                connection.connection.set_progress_handler(None, 10)
            return steps[0]
        with connection.cursor() as cursor:

            def lines_read():
                cursor.execute(
                    "SELECT COALESCE(seq_tup_read, 0) + COALESCE(idx_tup_fetch, 0) "
                    "FROM pg_stat_xact_user_tables WHERE relname = 'crm_orderline'"
                )
                row = cursor.fetchone()
                return row[0] if row else 0

            before = lines_read()
            services.create_order(customer_id=customer.pk, product_ids=[p.pk for p in products])
            return lines_read() - before


def test_order_total_costs_linear_work_in_its_lines():
    # Before: each inserted line re-summed all the order's lines (quadratic: 10,000 lines took 36 s).
    small, large = _work_to_order(10), _work_to_order(80)
    assert large <= 8 * max(small, 1) * 1.5, (small, large)


def test_totals_still_equal_the_lines_after_a_large_order():
    products = [ProductFactory(price=Decimal(f"{i}.{i:02d}"), stock=5) for i in range(1, 51)]
    order = services.create_order(
        customer_id=CustomerFactory().pk, product_ids=[p.pk for p in products] + [products[0].pk]
    )
    order.refresh_from_db()
    assert order.total_amount == sum((line.line_total for line in order.lines.all()), start=Decimal(0))
    assert order.total_amount == sum((p.price for p in products), start=Decimal(0)) + products[0].price


# --- the cost limit counts nested list items ---------------------------------------------------------

PRODUCTS_OF_A_PAGE = "{ allOrders%s { edges { node { id products { name } } } } }"


@pytest.mark.parametrize(("first", "refused"), [(10, True), (9, False)])
def test_a_page_is_counted_with_every_entry_its_lists_may_hold(client, settings, first, refused):
    # allOrders + edges + first x (node + id + products + 100 x name): 1,032 for 10, 929 for 9.
    settings.GRAPHQL_MAX_COST = 1000
    with CaptureQueriesContext(connection) as queries:
        status, body = post(client, PRODUCTS_OF_A_PAGE % f"(first: {first})")
    if refused:
        assert error_codes(body) == ["query_rejected"]
        assert "may return 1032 entries" in body["errors"][0]["message"]
        assert not [q for q in queries.captured_queries if "crm_order" in q["sql"]]  # refused before running
    else:
        assert status == 200 and "errors" not in body, body


def test_a_variable_page_length_is_counted_as_sent(client, settings):
    settings.GRAPHQL_MAX_COST = 1000
    query = "query($n: Int) { allOrders(first: $n) { edges { node { id products { name } } } } }"
    assert post(client, query, {"n": 9})[1].get("errors") is None
    assert error_codes(post(client, query, {"n": 10})[1]) == ["query_rejected"]
    assert error_codes(post(client, query)[1]) == ["query_rejected"]  # no `first`: a full page


def test_aliased_pages_of_nested_lists_are_refused_with_the_default_limit(client):
    # Within the field and alias limits, yet up to 150,000 entries: the cost limit refuses it.
    page = "allOrders { edges { node { products { id name price stock createdAt } } } }"
    status, body = post(client, "{ " + " ".join(f"a{i}: {page}" for i in range(3)) + " }")
    assert error_codes(body) == ["query_rejected"], body


def test_the_contract_queries_stay_within_the_default_limit(client):
    ok(
        client,
        """query { allOrders(filter: {customerName: "Alice", productName: "Laptop", totalAmountGte: 500}) {
        edges { node { id customer { name } products { name } totalAmount orderDate } } } }""",
    )
