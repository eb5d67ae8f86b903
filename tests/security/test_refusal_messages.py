"""A refusal's `message` states its first reason (issue 12, finding 12): clients that select only
`message` (the most common shape) learned nothing from "Customer not created; see errors."."""

import pytest

from tests.crm.gql_helpers import ALL_CRM_PERMISSIONS, logged_in, ok, staff
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def client():
    return logged_in(staff(*ALL_CRM_PERMISSIONS, "cronjobs.run_job", username="clerk"))


def test_create_customer(client):
    CustomerFactory(email="alice@example.com")
    data = ok(
        client,
        'mutation { createCustomer(input: {name: "A", email: "ALICE@example.com"}) { customer { id } message } }',
    )
    assert data["createCustomer"] == {"customer": None, "message": "Customer not created: email: Email already exists"}


def test_create_product(client):
    data = ok(client, 'mutation { createProduct(input: {name: "P", price: 0}) { product { id } message } }')
    assert (
        data["createProduct"]["message"]
        == "Product not created: price: Ensure this value is greater than or equal to 0.01."
    )


def test_create_order(client):
    customer = CustomerFactory()
    data = ok(
        client, f'mutation {{ createOrder(input: {{customerId: "{customer.pk}", productIds: ["7"]}}) {{ message }} }}'
    )
    assert data["createOrder"]["message"] == "Order not created: productIds: Invalid product ID: 7"


def test_update_low_stock_products(client, settings):
    settings.CRM_RESTOCK_AMOUNT = 0
    data = ok(client, "mutation { updateLowStockProducts { success message updatedProducts { id } } }")
    assert data["updateLowStockProducts"] == {
        "success": False,
        "message": "Nothing restocked: amount: Restock amount must be positive.",
        "updatedProducts": [],
    }


def test_run_cron_job(client, settings):
    settings.CRONJOBS = [("*/5 * * * *", "tests.cronjobs.jobs.succeed", {"name": "fine"})]
    data = ok(client, 'mutation { runCronJob(name: "nope") { run { id } message } }')
    assert data["runCronJob"]["message"] == "Nothing ran: name: no job named 'nope' in CRONJOBS (known: fine)"
