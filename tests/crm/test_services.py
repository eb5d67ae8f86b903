"""Business rules of crm.services."""

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from crm import services
from crm.models import Customer, Order, Product
from tests.factories import CustomerFactory, ProductFactory, make_order

pytestmark = pytest.mark.django_db


def messages(exc: ValidationError) -> dict[str, list[str]]:
    return {field: list(errors) for field, errors in exc.message_dict.items()}


class TestCreateCustomer:
    def test_creates(self):
        customer = services.create_customer(name="Alice", email="alice@example.com", phone="+1234567890")
        assert Customer.objects.get(pk=customer.pk).phone == "+1234567890"

    def test_email_unique_whatever_the_case(self):
        services.create_customer(name="Alice", email="alice@example.com")
        with pytest.raises(ValidationError) as exc:
            services.create_customer(name="Alice 2", email="ALICE@Example.com")
        assert messages(exc.value) == {"email": ["Email already exists"]}
        assert Customer.objects.count() == 1

    @pytest.mark.parametrize("phone", ["+1234567", "+123456789012345", "123-456-7890", "", None])
    def test_valid_phones(self, phone):
        services.create_customer(name="P", email=f"p{abs(hash(phone))}@example.com", phone=phone)

    @pytest.mark.parametrize("phone", ["12345", "+123456", "+1234567890123456", "1234567890", "123-4567-890", "abc"])
    def test_invalid_phones(self, phone):
        with pytest.raises(ValidationError) as exc:
            services.create_customer(name="P", email="p@example.com", phone=phone)
        assert "phone" in exc.value.message_dict
        assert not Customer.objects.exists()

    def test_invalid_email_and_missing_name(self):
        with pytest.raises(ValidationError) as exc:
            services.create_customer(name="", email="not-an-email")
        assert set(exc.value.message_dict) == {"name", "email"}


class TestBulkCreateCustomers:
    def test_valid_rows_created_invalid_reported_with_index(self):
        CustomerFactory(email="taken@example.com")
        result = services.bulk_create_customers(
            rows=[
                {"name": "Bob", "email": "bob@example.com", "phone": "123-456-7890"},
                {"name": "Bad", "email": "nope"},
                {"name": "Carol", "email": "carol@example.com"},
                {"name": "Dup", "email": "CAROL@example.com"},
                {"name": "Taken", "email": "Taken@example.com"},
            ]
        )
        assert [c.name for c in result.customers] == ["Bob", "Carol"]
        assert all(c.pk for c in result.customers)
        assert [str(e) for e in result.errors] == [
            "row 1: email: Enter a valid email address.",
            "row 3: email: Duplicate email in this batch",
            "row 4: email: Email already exists",
        ]
        assert Customer.objects.count() == 3

    def test_constant_number_of_queries(self):
        def rows(n, start):
            return [{"name": f"C{i}", "email": f"c{i}@example.com"} for i in range(start, start + n)]

        with CaptureQueriesContext(connection) as small:
            services.bulk_create_customers(rows=rows(10, 0))
        with CaptureQueriesContext(connection) as large:
            result = services.bulk_create_customers(rows=rows(1000, 10))
        assert len(result.customers) == 1000 and not result.errors
        if connection.vendor == "sqlite":
            # Django splits an INSERT at SQLite's assumed 999-parameter limit: 6 fields -> 166 rows each.
            inserts = [q for q in large.captured_queries if q["sql"].startswith("INSERT")]
            assert len(inserts) == -(-1000 // (999 // 6))
            assert len(large) - len(inserts) == len(small) - 1
        else:
            assert len(large) == len(small)

    def test_too_many_rows_refused_whole(self):
        result = services.bulk_create_customers(
            rows=[{"name": "x", "email": f"x{i}@example.com"} for i in range(services.MAX_BULK_CUSTOMERS + 1)]
        )
        assert not result.customers and result.errors[0].field == "input"
        assert not Customer.objects.exists()


class TestCreateProduct:
    def test_float_price_stored_exactly(self):
        product = services.create_product(name="Laptop", price=999.99, stock=10)
        product.refresh_from_db()
        assert product.price == Decimal("999.99")

    def test_stock_defaults_to_zero(self):
        assert services.create_product(name="X", price="1.50").stock == 0

    @pytest.mark.parametrize("price", [0, -1, "abc", float("nan")])
    def test_bad_price_refused(self, price):
        with pytest.raises(ValidationError) as exc:
            services.create_product(name="X", price=price)
        assert "price" in exc.value.message_dict
        assert not Product.objects.exists()

    def test_negative_stock_refused(self):
        with pytest.raises(ValidationError) as exc:
            services.create_product(name="X", price=1, stock=-1)
        assert messages(exc.value) == {"stock": ["Stock cannot be negative."]}


class TestCreateOrder:
    def test_total_computed_and_stock_taken(self):
        laptop = ProductFactory(price=Decimal("999.99"), stock=5)
        mouse = ProductFactory(price=Decimal("20.01"), stock=5)
        order = services.create_order(customer_id=CustomerFactory().pk, product_ids=[laptop.pk, mouse.pk, mouse.pk])
        assert order.total_amount == Decimal("1040.01")
        assert {(line.product_id, line.quantity) for line in order.lines.all()} == {(laptop.pk, 1), (mouse.pk, 2)}
        laptop.refresh_from_db()
        mouse.refresh_from_db()
        assert (laptop.stock, mouse.stock) == (4, 3)

    def test_invalid_product_refused_all_or_nothing(self):
        product = ProductFactory(stock=5)
        with pytest.raises(ValidationError) as exc:
            services.create_order(customer_id=CustomerFactory().pk, product_ids=[product.pk, 7777])
        assert messages(exc.value) == {"product_ids": ["Invalid product ID: 7777"]}
        product.refresh_from_db()
        assert product.stock == 5 and not Order.objects.exists()

    def test_invalid_customer_and_empty_products(self):
        with pytest.raises(ValidationError) as exc:
            services.create_order(customer_id=999, product_ids=[ProductFactory().pk])
        assert "customer_id" in exc.value.message_dict
        with pytest.raises(ValidationError) as exc:
            services.create_order(customer_id=CustomerFactory().pk, product_ids=[])
        assert "product_ids" in exc.value.message_dict

    def test_total_beyond_what_the_database_holds_refused(self, settings):
        settings.CRM_MAX_ORDER_ITEMS = 101
        dear = ProductFactory(price=Decimal("9999999999.99"), stock=1000)
        with pytest.raises(ValidationError) as exc:
            services.create_order(customer_id=CustomerFactory().pk, product_ids=[dear.pk] * 101)
        assert "exceeds the maximum of 999999999999.99" in messages(exc.value)["product_ids"][0]
        dear.refresh_from_db()
        assert dear.stock == 1000 and not Order.objects.exists()

    def test_short_stock_refused_naming_the_product(self):
        plenty, short = ProductFactory(stock=5), ProductFactory(name="Rare", stock=1)
        with pytest.raises(ValidationError) as exc:
            services.create_order(customer_id=CustomerFactory().pk, product_ids=[plenty.pk, short.pk, short.pk])
        assert "Rare" in messages(exc.value)["product_ids"][0]
        plenty.refresh_from_db()
        assert plenty.stock == 5 and not Order.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_orders_cannot_oversell():
    """Many threads, each its own PostgreSQL connection, order the last units at once."""
    product = ProductFactory(stock=3)
    customer = CustomerFactory()
    barrier = threading.Barrier(8)
    outcomes = []

    def order():
        try:
            barrier.wait()
            services.create_order(customer_id=customer.pk, product_ids=[product.pk])
            outcomes.append("ok")
        except ValidationError:
            outcomes.append("refused")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=order) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    product.refresh_from_db()
    assert outcomes.count("ok") == 3 and outcomes.count("refused") == 5
    assert product.stock == 0
    assert Order.objects.count() == 3


class TestRestock:
    def test_restocks_only_low_products_in_one_statement(self):
        low = ProductFactory(stock=2)
        edge = ProductFactory(stock=10)
        with CaptureQueriesContext(connection) as queries:
            changed = services.restock_low_stock(threshold=10, amount=10)
        assert changed == [(low.pk, low.name, 12)]
        assert [q["sql"].split()[0] for q in queries.captured_queries if "crm_product" in q["sql"]] == ["UPDATE"]
        edge.refresh_from_db()
        assert edge.stock == 10

    def test_returns_every_changed_product_by_id(self):
        products = [ProductFactory(stock=stock) for stock in (5, 0, 11, 9)]
        changed = services.restock_low_stock(threshold=10, amount=3)
        expected = [(p.pk, p.stock + 3) for p in products if p.stock < 10]
        assert [(row_id, stock) for row_id, _, stock in changed] == expected

    def test_defaults_from_settings(self, settings):
        settings.CRM_LOW_STOCK_THRESHOLD, settings.CRM_RESTOCK_AMOUNT = 3, 7
        product = ProductFactory(stock=2)
        assert [stock for _, _, stock in services.restock_low_stock()] == [9]
        assert product.pk

    def test_non_positive_amount_refused(self):
        with pytest.raises(ValidationError):
            services.restock_low_stock(amount=0)


class TestCleanup:
    def test_rules(self):
        now = timezone.now()
        old = now - timedelta(days=400)
        never_ordered_old = CustomerFactory(created_at=old)
        new = CustomerFactory(created_at=now - timedelta(days=10))
        recent_buyer = CustomerFactory(created_at=old)
        make_order(customer=recent_buyer, order_date=now - timedelta(days=30))
        old_buyer = CustomerFactory(created_at=old)
        old_order = make_order(customer=old_buyer, order_date=old)

        assert services.clean_inactive_customers(dry_run=True) == services.CleanupResult(deleted=1, archived=1)
        assert Customer.objects.count() == 4
        assert services.clean_inactive_customers() == services.CleanupResult(deleted=1, archived=1)
        assert not Customer.objects.filter(pk=never_ordered_old.pk).exists()
        assert Customer.objects.active().filter(pk__in=[new.pk, recent_buyer.pk]).count() == 2
        old_buyer.refresh_from_db()
        assert old_buyer.archived_at is not None
        assert Order.objects.filter(pk=old_order.pk).exists()
        # Running again finds nothing more to do.
        assert services.clean_inactive_customers() == services.CleanupResult(deleted=0, archived=0)


def test_crm_report_in_sql():
    make_order(products=[ProductFactory(price=Decimal("10.50"))])
    make_order(products=[ProductFactory(price=Decimal("4.25"))])
    with CaptureQueriesContext(connection) as queries:
        report = services.crm_report()
    assert report == services.CrmReport(customers=2, orders=2, revenue=Decimal("14.75"))
    assert len(queries) == 2
