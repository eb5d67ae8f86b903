"""The CRONJOBS targets in crm/cron.py write exactly the contract's log lines (time frozen)."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command

from crm import cron, graphql_client, joblog
from crm.models import Customer, Order, Product
from tests.clock import travel
from tests.factories import CustomerFactory, ProductFactory, make_order

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 3, 2, 6, 0, 5, tzinfo=UTC)


@pytest.fixture(autouse=True)
def log_dir(tmp_path, settings):
    settings.CRM_LOG_DIR = str(tmp_path)
    settings.CRM_GRAPHQL_URL = None
    return tmp_path


@pytest.fixture
def frozen():
    with travel(NOW, tick=False) as traveller:
        yield traveller


def read(log_dir, name):
    return (log_dir / name).read_text().splitlines()


def test_heartbeat(log_dir, frozen):
    assert cron.log_crm_heartbeat() == "CRM is alive"
    cron.log_crm_heartbeat()
    assert read(log_dir, "crm_heartbeat_log.txt") == ["02/03/2026-06:00:05 CRM is alive"] * 2


def test_heartbeat_timestamp_in_django_time_zone(log_dir, frozen, settings):
    settings.TIME_ZONE = "Asia/Tokyo"
    cron.log_crm_heartbeat()
    assert read(log_dir, "crm_heartbeat_log.txt") == ["02/03/2026-15:00:05 CRM is alive"]


def test_heartbeat_failure_logged_and_raised(log_dir, frozen, settings):
    settings.CRM_GRAPHQL_URL = "http://127.0.0.1:9/graphql"  # nothing listens on the discard port
    with pytest.raises(graphql_client.GraphQLClientError, match="cannot reach http://127.0.0.1:9/graphql"):
        cron.log_crm_heartbeat()
    [line] = read(log_dir, "crm_heartbeat_log.txt")
    assert line.startswith("02/03/2026-06:00:05 CRM check failed: graphql: cannot reach http://127.0.0.1:9/graphql")


def test_update_low_stock(log_dir, frozen):
    ProductFactory(name="Mouse", stock=3)
    ProductFactory(name="Cable", stock=0)
    ProductFactory(name="Laptop", stock=10)
    assert cron.update_low_stock() == "restocked 2 products"
    assert read(log_dir, "low_stock_updates_log.txt") == [
        "2026-03-02 06:00:05 - Mouse: new stock 13",
        "2026-03-02 06:00:05 - Cable: new stock 10",
    ]
    assert Product.objects.get(name="Laptop").stock == 10


def test_update_low_stock_logs_every_product_in_one_append(log_dir, frozen, monkeypatch):
    """A restock of many products opens the log once: one append_lines batch, not one per product."""
    ProductFactory.create_batch(25, stock=1)
    batches = []
    append_lines = joblog.append_lines
    monkeypatch.setattr(joblog, "append_lines", lambda name, lines: batches.append(lines) or append_lines(name, lines))
    cron.update_low_stock()
    assert [len(lines) for lines in batches] == [25]
    assert len(read(log_dir, "low_stock_updates_log.txt")) == 25


def test_update_low_stock_none_low(log_dir, frozen):
    ProductFactory(stock=50)
    cron.update_low_stock()
    assert read(log_dir, "low_stock_updates_log.txt") == ["2026-03-02 06:00:05 - No low-stock products"]


def test_clean_inactive_customers(log_dir, frozen):
    old = NOW - timedelta(days=400)
    never_ordered_old = CustomerFactory(created_at=old)
    new_customer = CustomerFactory(created_at=NOW - timedelta(days=3))
    recent_buyer = CustomerFactory(created_at=old)
    make_order(customer=recent_buyer, order_date=NOW - timedelta(days=20))
    old_buyer = CustomerFactory(created_at=old)
    old_order = make_order(customer=old_buyer, order_date=NOW - timedelta(days=380))

    cron.clean_inactive_customers()

    assert read(log_dir, "customer_cleanup_log.txt") == [
        "2026-03-02 06:00:05 - Deleted 1 inactive customers",
        "2026-03-02 06:00:05 - Archived 1 inactive customers with order history",
    ]
    assert not Customer.objects.filter(pk=never_ordered_old.pk).exists()
    assert Customer.objects.active().filter(pk__in=[new_customer.pk, recent_buyer.pk]).count() == 2
    old_buyer.refresh_from_db()
    assert old_buyer.archived_at == NOW
    assert Order.objects.filter(pk=old_order.pk, customer=old_buyer).exists()


def test_clean_inactive_customers_command_dry_run(log_dir, frozen, capsys):
    CustomerFactory(email="gone@example.com", created_at=NOW - timedelta(days=400))
    call_command("clean_inactive_customers", "--dry-run")
    out = capsys.readouterr().out
    assert "Would delete 1 and archive 0 inactive customers." in out and "gone@example.com" in out
    assert Customer.objects.count() == 1
    assert not (log_dir / "customer_cleanup_log.txt").exists()
    call_command("clean_inactive_customers")
    assert Customer.objects.count() == 0
    assert read(log_dir, "customer_cleanup_log.txt") == ["2026-03-02 06:00:05 - Deleted 1 inactive customers"]


def test_send_order_reminders(log_dir, frozen):
    alice = CustomerFactory(email="alice@example.com")
    bob = CustomerFactory(email="bob@example.com")
    recent = make_order(customer=alice, order_date=NOW - timedelta(days=2))
    later = make_order(customer=bob, order_date=NOW - timedelta(hours=1))
    make_order(customer=bob, order_date=NOW - timedelta(days=8))
    assert cron.send_order_reminders() == "2 reminders"
    assert read(log_dir, "order_reminders_log.txt") == [
        f"2026-03-02 06:00:05 - Order ID: {recent.pk}, Customer email: alice@example.com",
        f"2026-03-02 06:00:05 - Order ID: {later.pk}, Customer email: bob@example.com",
    ]


def test_send_order_reminders_reads_every_page(log_dir, frozen):
    customer = CustomerFactory()
    product = ProductFactory(stock=1000)
    for _ in range(130):
        make_order(customer=customer, products=[product], order_date=NOW - timedelta(days=1))
    assert cron.send_order_reminders() == "130 reminders"
    assert len(read(log_dir, "order_reminders_log.txt")) == 130


def test_generate_crm_report(log_dir, frozen):
    make_order(products=[ProductFactory(price=Decimal("999.99"))])
    make_order(products=[ProductFactory(price=Decimal("0.51")), ProductFactory(price=Decimal("10.00"))])
    CustomerFactory()
    assert cron.generate_crm_report() == "Report: 3 customers, 2 orders, 1010.50 revenue"
    assert read(log_dir, "crm_report_log.txt") == [
        "2026-03-02 06:00:05 - Report: 3 customers, 2 orders, 1010.50 revenue"
    ]


def test_graphql_error_is_a_job_failure(log_dir, monkeypatch):
    monkeypatch.setattr(cron, "REPORT_QUERY", "query { totalCustomers noSuchField }")
    with pytest.raises(graphql_client.GraphQLClientError, match="noSuchField"):
        cron.generate_crm_report()
    assert not (log_dir / "crm_report_log.txt").exists()


def test_service_identity_has_exactly_the_job_permissions():
    user = graphql_client.service_user()
    assert not user.has_usable_password() and not user.is_staff and not user.is_superuser
    assert user.get_all_permissions() == set(graphql_client.SERVICE_PERMISSIONS)
    assert graphql_client.service_user().pk == user.pk
