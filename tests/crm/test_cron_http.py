"""The jobs' HTTP route (CRM_GRAPHQL_URL set) against a live server with a real token."""

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from crm import cron, graphql_client
from crm.models import ApiToken, Product
from tests.factories import CustomerFactory, ProductFactory, UserFactory, make_order

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def logs(tmp_path, settings):
    settings.CRM_LOG_DIR = str(tmp_path)
    return tmp_path


@pytest.fixture
def token():
    user = UserFactory(username="reporter")
    from django.contrib.auth.models import Permission

    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="crm",
            codename__in=["view_customer", "view_product", "change_product", "view_order"],
        )
    )
    _, raw = ApiToken.issue(user=user)
    return raw


@pytest.fixture
def data():
    alice = CustomerFactory(email="alice@example.com")
    laptop = ProductFactory(name="Laptop", price="999.99", stock=20)
    make_order(customer=alice, products=[laptop], order_date=timezone.now() - timedelta(days=1))
    make_order(
        customer=CustomerFactory(email="old@example.com"),
        products=[laptop],
        order_date=timezone.now() - timedelta(days=30),
    )
    ProductFactory(name="Cable", stock=2)
    ProductFactory(name="Mouse", stock=9)


def run_both_routes(settings, logs, live_server, token, job, log_name):
    settings.CRM_GRAPHQL_URL = None
    in_process = job()
    settings.CRM_GRAPHQL_URL = f"{live_server.url}/graphql"
    settings.CRM_API_TOKEN = token
    over_http = job()
    lines = [line.split(" - ", 1)[1] for line in (logs / log_name).read_text().splitlines()]
    return in_process, over_http, lines


def test_reminders_and_report_same_over_http(settings, logs, live_server, token, data):
    a, b, lines = run_both_routes(
        settings, logs, live_server, token, cron.send_order_reminders, "order_reminders_log.txt"
    )
    assert a == b == "1 reminders"
    assert lines[0] == lines[1] and lines[0].endswith("Customer email: alice@example.com")
    a, b, lines = run_both_routes(settings, logs, live_server, token, cron.generate_crm_report, "crm_report_log.txt")
    assert a == b == "Report: 2 customers, 2 orders, 1999.98 revenue"
    assert lines == [a, a]


def test_restock_same_over_http(settings, logs, live_server, token, data):
    settings.CRM_GRAPHQL_URL = f"{live_server.url}/graphql"
    settings.CRM_API_TOKEN = token
    assert cron.update_low_stock() == "restocked 2 products"
    over_http = (logs / "low_stock_updates_log.txt").read_text().splitlines()
    Product.objects.filter(name="Cable").update(stock=2)
    Product.objects.filter(name="Mouse").update(stock=9)
    settings.CRM_GRAPHQL_URL = None
    assert cron.update_low_stock() == "restocked 2 products"
    in_process = (logs / "low_stock_updates_log.txt").read_text().splitlines()[len(over_http) :]
    strip = [line.split(" - ", 1)[1] for line in over_http]
    assert strip == [line.split(" - ", 1)[1] for line in in_process] == ["Cable: new stock 12", "Mouse: new stock 19"]


def test_wrong_token_fails_the_job_clearly(settings, logs, live_server, data):
    settings.CRM_GRAPHQL_URL = f"{live_server.url}/graphql"
    settings.CRM_API_TOKEN = "not-a-real-token"
    with pytest.raises(graphql_client.GraphQLClientError) as exc:
        cron.generate_crm_report()
    message = str(exc.value)
    assert f"from {live_server.url}/graphql" in message and "Invalid or revoked API token" in message
    assert not (logs / "crm_report_log.txt").exists()


def test_token_without_permission_fails_the_job(settings, logs, live_server, data):
    _, raw = ApiToken.issue(user=UserFactory(username="nobody-special"))
    settings.CRM_GRAPHQL_URL = f"{live_server.url}/graphql"
    settings.CRM_API_TOKEN = raw
    with pytest.raises(graphql_client.GraphQLClientError, match="GraphQL errors from"):
        cron.send_order_reminders()


def test_standalone_reminders_script(logs, live_server, token, data):
    env = {
        **os.environ,
        "DJANGO_SECRET_KEY": "tests-only",
        "CRM_GRAPHQL_URL": f"{live_server.url}/graphql",
        "CRM_API_TOKEN": token,
        "CRM_LOG_DIR": str(logs),
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    result = subprocess.run(
        [sys.executable, str(ROOT / "crm" / "cron_jobs" / "send_order_reminders.py")],
        cwd="/",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Order reminders processed!"
    [line] = (logs / "order_reminders_log.txt").read_text().splitlines()
    assert line.endswith("Customer email: alice@example.com")


def test_standalone_reminders_script_bad_token(logs, live_server, data):
    env = {
        **os.environ,
        "DJANGO_SECRET_KEY": "tests-only",
        "CRM_GRAPHQL_URL": f"{live_server.url}/graphql",
        "CRM_API_TOKEN": "wrong",
        "CRM_LOG_DIR": str(logs),
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    result = subprocess.run(
        [sys.executable, str(ROOT / "crm" / "cron_jobs" / "send_order_reminders.py")],
        cwd="/",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "Invalid or revoked API token" in result.stderr and "Order reminders processed!" not in result.stdout
