"""The query shapes `make bench` relies on: constant query counts and lookups that can use an index."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from crm import services
from crm.models import Customer
from tests.factories import CustomerFactory, ProductFactory, make_order

pytestmark = pytest.mark.django_db


def test_cleanup_query_count_does_not_grow_with_customers():
    old = timezone.now() - timedelta(days=400)
    CustomerFactory.create_batch(30, created_at=old)
    make_order(customer=CustomerFactory(created_at=old), order_date=old)
    with CaptureQueriesContext(connection) as queries:
        result = services.clean_inactive_customers()
    assert result == services.CleanupResult(deleted=30, archived=1)
    statements = [q["sql"] for q in queries.captured_queries if q["sql"].split()[0] in {"SELECT", "DELETE", "UPDATE"}]
    # One DELETE and one UPDATE: no per-customer SELECTs from Django's delete collector.
    assert len(statements) == 2, statements


def test_email_uniqueness_check_looks_up_the_email_key_column():
    CustomerFactory(email="Taken@Example.com")
    customer = Customer(name="X", email="TAKEN@example.COM")
    with CaptureQueriesContext(connection) as queries, pytest.raises(Exception, match="Email already exists"):
        customer.validate_constraints()
    sql = queries.captured_queries[-1]["sql"]
    # An equality on the unique email_key column uses its index; LIKE / UPPER() / LOWER() could not.
    assert '"crm_customer"."email_key" = ' in sql
    assert "LIKE" not in sql and "UPPER" not in sql and "LOWER" not in sql


def test_bulk_create_finds_existing_emails_whatever_their_case():
    CustomerFactory(email="Ann@Example.com")
    result = services.bulk_create_customers(
        rows=[{"name": "Ann", "email": "ann@example.COM"}, {"name": "Bo", "email": "bo@example.com"}]
    )
    assert [str(error) for error in result.errors] == ["row 0: email: Email already exists"]
    assert [c.email for c in result.customers] == ["bo@example.com"]


def _order_queries(product_count: int) -> list[str]:
    products = ProductFactory.create_batch(product_count, stock=5)
    customer = CustomerFactory()
    with CaptureQueriesContext(connection) as queries:
        services.create_order(customer_id=customer.pk, product_ids=[p.pk for p in products] + [products[0].pk])
    return [q["sql"] for q in queries.captured_queries if q["sql"].split()[0] in {"SELECT", "INSERT", "UPDATE"}]


def test_order_query_count_does_not_grow_with_its_products():
    one, many = _order_queries(1), _order_queries(20)
    assert len(many) == len(one), many
    # Stock is taken in one guarded UPDATE for every product of the order.
    assert sum(sql.startswith('UPDATE "crm_product"') for sql in many) == 1


def test_order_takes_each_quantity_in_its_one_update():
    first, second = ProductFactory(stock=5), ProductFactory(stock=5)
    services.create_order(customer_id=CustomerFactory().pk, product_ids=[first.pk, second.pk, first.pk])
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.stock, second.stock) == (3, 4)
