"""The query shapes `make bench` relies on: constant query counts and lookups that can use an index."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from crm import services
from crm.models import Customer
from tests.factories import CustomerFactory, make_order

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
