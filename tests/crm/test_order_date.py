"""`createOrder`'s optional `orderDate` (issue 25, finding 3): the course's shape works; default now;
validated (no later than a few minutes ahead of the server's clock, within what databases hold)."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.exceptions import ValidationError

from crm import services
from crm.models import Order, Product
from tests.crm.gql_helpers import ok, post
from tests.factories import CustomerFactory, ProductFactory

pytestmark = pytest.mark.django_db

# CONTRACT.md section 3, verbatim.
CREATE_ORDER_DATED = """mutation {
  createOrder(input: {customerId: "1", productIds: ["1"], orderDate: "2025-01-01T00:00:00Z"}) {
  order { id orderDate } } }"""
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def create_order(client, order_date, *, customer=None, product=None):
    customer, product = customer or CustomerFactory(), product or ProductFactory(stock=5)
    return ok(
        client,
        "mutation($c: ID!, $p: [ID!]!, $d: DateTime) { createOrder(input: {customerId: $c, productIds: $p, "
        "orderDate: $d}) { order { orderDate } errors fieldErrors { field code } } }",
        {"c": str(customer.pk), "p": [str(product.pk)], "d": order_date},
    )["createOrder"]


@pytest.mark.django_db(transaction=True, reset_sequences=True)
def test_the_contracts_shape_verbatim(client):
    CustomerFactory(), ProductFactory(stock=1)
    order = ok(client, CREATE_ORDER_DATED)["createOrder"]["order"]
    assert order["orderDate"] == "2025-01-01T00:00:00+00:00"
    assert Order.objects.get().order_date == datetime(2025, 1, 1, tzinfo=UTC)
    assert Product.objects.get().stock == 0  # a dated order is an order like any other


def test_default_is_now_and_null_means_now(client):
    with time_machine.travel(NOW, tick=False):
        assert create_order(client, None)["order"] == {"orderDate": "2026-03-02T12:00:00+00:00"}
        data = ok(
            client,
            f'mutation {{ createOrder(input: {{customerId: "{CustomerFactory().pk}", '
            f'productIds: ["{ProductFactory().pk}"]}}) {{ order {{ orderDate }} }} }}',
        )
        assert data["createOrder"]["order"] == {"orderDate": "2026-03-02T12:00:00+00:00"}


def test_without_an_offset_it_is_in_the_projects_time_zone(client, settings):
    settings.TIME_ZONE = "Asia/Tokyo"
    assert create_order(client, "2025-06-01T09:00:00")["errors"] == []
    assert Order.objects.get().order_date == datetime(2025, 6, 1, 0, 0, tzinfo=UTC)


@time_machine.travel(NOW, tick=False)
def test_a_few_minutes_ahead_is_clock_skew_beyond_is_refused(client):
    ahead = (NOW + services.ORDER_DATE_MAX_AHEAD).isoformat()
    assert create_order(client, ahead)["errors"] == []
    product = ProductFactory(stock=5)
    later = (NOW + services.ORDER_DATE_MAX_AHEAD + timedelta(seconds=1)).isoformat()
    data = create_order(client, later, product=product)
    assert data["order"] is None
    assert data["errors"] == [
        f"orderDate: {later} is in the future; an order date may be at most 5 minutes ahead of the server's clock."
    ]
    assert data["fieldErrors"] == [{"field": "orderDate", "code": "max_value"}]
    product.refresh_from_db()
    assert Order.objects.count() == 1 and product.stock == 5


def test_out_of_range_is_a_mistake_in_the_payload_not_a_crash(client):
    data = create_order(client, "0001-01-01T00:00:00+05:00")  # before year 1 in UTC
    assert (
        data["errors"] == ["orderDate: Date-time out of range: it must fall within years 1-9999 in UTC."]
        and not Order.objects.exists()
    )


def test_not_a_date_is_refused_by_the_scalar(client):
    status, body = post(
        client,
        'mutation { createOrder(input: {customerId: "1", productIds: ["1"], orderDate: "yesterday"}) { errors } }',
    )
    assert status == 400 and "DateTime cannot represent value: 'yesterday'" in body["errors"][0]["message"]


def test_the_service_refuses_what_is_not_a_date_time():
    with pytest.raises(ValidationError) as exc:
        services.create_order(
            customer_id=CustomerFactory().pk, product_ids=[ProductFactory().pk], order_date="2025-01-01"
        )
    assert exc.value.message_dict == {"order_date": ["Enter a date-time, not '2025-01-01'."]}
