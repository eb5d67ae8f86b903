"""Invariants hold in the database itself: a raw write that breaks one fails."""

from decimal import Decimal

import pytest
from django.db import DatabaseError, IntegrityError, transaction

from crm.models import Customer, Order, OrderLine, Product
from tests.factories import CustomerFactory, ProductFactory, make_order

pytestmark = pytest.mark.django_db


def refused(callable_):
    with pytest.raises((IntegrityError, DatabaseError)), transaction.atomic():
        callable_()


def test_email_unique_case_insensitively_in_the_database():
    CustomerFactory(email="alice@example.com")
    refused(lambda: Customer.objects.bulk_create([Customer(name="A", email="ALICE@example.com")]))


def test_price_must_be_positive_in_the_database():
    product = ProductFactory()
    refused(lambda: Product.objects.filter(pk=product.pk).update(price=Decimal("0")))
    refused(lambda: Product.objects.filter(pk=product.pk).update(price=Decimal("-1")))


def test_stock_cannot_go_negative_in_the_database():
    product = ProductFactory(stock=1)
    refused(lambda: Product.objects.filter(pk=product.pk).update(stock=-1))


def test_order_lines_keep_the_unit_price_paid():
    product = ProductFactory(price=Decimal("20.00"))
    order = make_order(products=[product])
    refused(lambda: OrderLine.objects.filter(order=order).update(unit_price=Decimal("1.00")))
    refused(lambda: OrderLine.objects.filter(order=order).update(quantity=5))
    # A later price change never alters the old order.
    Product.objects.filter(pk=product.pk).update(price=Decimal("99.00"))
    order.refresh_from_db()
    assert order.total_amount == Decimal("20.00")
    assert order.lines.get().unit_price == Decimal("20.00")


def test_order_total_equals_sum_of_lines_in_the_database():
    order = make_order(products=[ProductFactory(price=Decimal("1.10")), ProductFactory(price=Decimal("2.20"))])
    assert order.total_amount == Decimal("3.30")
    refused(lambda: Order.objects.filter(pk=order.pk).update(total_amount=Decimal("1.00")))
    customer = CustomerFactory()
    refused(lambda: Order.objects.create(customer=customer, total_amount=Decimal("5.00")))
    # Writing the correct total is allowed (e.g. a plain save()).
    order.save()
    order.refresh_from_db()
    assert order.total_amount == Decimal("3.30")


def test_deleting_a_line_recomputes_the_total():
    first, second = ProductFactory(price=Decimal("5.00")), ProductFactory(price=Decimal("7.00"))
    order = make_order(products=[first, second])
    OrderLine.objects.filter(order=order, product=first).delete()
    order.refresh_from_db()
    assert order.total_amount == Decimal("7.00")


def test_customer_with_orders_cannot_be_deleted():
    order = make_order()
    refused(lambda: Customer.objects.filter(pk=order.customer_id).delete())
    assert Order.objects.filter(pk=order.pk).exists()


def test_raw_delete_of_a_customer_with_orders_fails_in_the_database():
    from django.db import connection

    order = make_order()
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("PRAGMA foreign_keys")
            assert cursor.fetchone()[0] == 1

        def raw_delete():
            cursor.execute("DELETE FROM crm_customer WHERE id = %s", [order.customer_id])
            connection.check_constraints()  # Django's foreign keys are deferred to commit

        refused(raw_delete)
