"""Every field mistake of an input in one answer (issue 25, finding 2): services check every field before
refusing; `errors`/`fieldErrors` carry them all, in the input's order; `message` states the first."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from crm import services
from crm.models import Customer, Order, Product
from tests.crm.gql_helpers import ok
from tests.factories import CustomerFactory, ProductFactory

pytestmark = pytest.mark.django_db


def refusal(call, **kwargs) -> list[tuple[str, list[str]]]:
    """The (field, messages) of the service's refusal, in the order it reports them."""
    with pytest.raises(ValidationError) as exc:
        call(**kwargs)
    return [(field, list(messages)) for field, messages in exc.value.message_dict.items()]


class TestServices:
    def test_product_every_field(self):
        assert refusal(services.create_product, name="", price="-5", stock=-1) == [
            ("name", ["This field cannot be blank."]),
            ("price", ["Ensure this value is greater than or equal to 0.01."]),
            ("stock", ["Stock cannot be negative."]),
        ]
        # A price that is not a number at all is reported with the others too.
        fields = [field for field, _ in refusal(services.create_product, name="", price="abc", stock=-1)]
        assert fields == ["name", "price", "stock"]
        assert not Product.objects.exists()

    def test_customer_every_field_and_a_taken_email(self):
        CustomerFactory(email="taken@example.com")
        assert refusal(services.create_customer, name="", email="TAKEN@example.com", phone="12") == [
            ("name", ["This field cannot be blank."]),
            ("email", ["Email already exists"]),  # Django's full_clean finds it last: reported in the input's order
            ("phone", ["Enter a valid phone number: + and 7 to 15 digits, or 123-456-7890."]),
        ]
        assert Customer.objects.count() == 1

    def test_bulk_row_with_a_bad_field_and_a_taken_email(self):
        CustomerFactory(email="taken@example.com")
        result = services.bulk_create_customers(
            rows=[
                {"name": "", "email": "taken@example.com", "phone": "12"},
                {"name": "Ok", "email": "ok@example.com"},
                {"name": "", "email": "later@example.com"},  # refused: its email is no clash for row 3
                {"name": "Later", "email": "later@example.com"},
            ]
        )
        assert [str(error) for error in result.errors] == [
            "row 0: name: This field cannot be blank.",
            "row 0: email: Email already exists",
            "row 0: phone: Enter a valid phone number: + and 7 to 15 digits, or 123-456-7890.",
            "row 2: name: This field cannot be blank.",
        ]
        assert [customer.name for customer in result.customers] == ["Ok", "Later"]

    def test_order_customer_products_and_date(self):
        product = ProductFactory(stock=5)
        future = timezone.now() + timedelta(days=1)
        assert refusal(
            services.create_order, customer_id="abc", product_ids=["x!", 7777, product.pk, 7777], order_date=future
        ) == [
            ("customer_id", ["Invalid customer ID: abc"]),
            ("product_ids", ["Invalid product ID: x!", "Invalid product ID: 7777"]),
            (
                "order_date",
                [
                    f"{future.isoformat()} is in the future; an order date may be at most 5 minutes ahead of the "
                    "server's clock."
                ],
            ),
        ]
        product.refresh_from_db()
        assert product.stock == 5 and not Order.objects.exists()

    def test_order_every_short_product_and_the_customer(self):
        rare, scarce = ProductFactory(name="Rare", stock=1), ProductFactory(name="Scarce", stock=0)
        assert refusal(services.create_order, customer_id=424242, product_ids=[scarce.pk, rare.pk, rare.pk]) == [
            ("customer_id", ["Invalid customer ID: 424242"]),
            (
                "product_ids",
                [
                    f"Insufficient stock for Rare (ID {rare.pk}): 2 ordered, 1 in stock",
                    f"Insufficient stock for Scarce (ID {scarce.pk}): 1 ordered, 0 in stock",
                ],
            ),
        ]

    def test_order_total_and_stock_together(self, settings):
        settings.CRM_MAX_ORDER_ITEMS = 101
        dear = ProductFactory(price=Decimal("9999999999.99"), stock=1)
        [(field, messages)] = refusal(
            services.create_order, customer_id=CustomerFactory().pk, product_ids=[dear.pk] * 101
        )
        assert field == "product_ids"
        assert [message.split(" ", 2)[:2] for message in messages] == [
            ["Order", "total"],
            ["Insufficient", "stock"],
        ]


class TestPayloads:
    def test_create_product_as_the_issue_sent_it(self, client):
        data = ok(
            client,
            'mutation { createProduct(input: {name: "Cheap", price: "-5", stock: -1}) '
            "{ product { id } message errors fieldErrors { field code } } }",
        )["createProduct"]
        assert data["errors"] == [
            "price: Ensure this value is greater than or equal to 0.01.",
            "stock: Stock cannot be negative.",
        ]
        assert data["fieldErrors"] == [{"field": "price", "code": "min_value"}, {"field": "stock", "code": "min_value"}]
        assert data["message"] == "Product not created: price: Ensure this value is greater than or equal to 0.01."
        assert data["product"] is None and not Product.objects.exists()

    def test_create_order_ids_it_cannot_read_and_ids_it_cannot_find(self, client):
        product = ProductFactory(stock=5)
        data = ok(
            client,
            "mutation($c: ID!, $p: [ID!]!) { createOrder(input: {customerId: $c, productIds: $p, "
            'orderDate: "2999-01-01T00:00:00Z"}) { order { id } message errors fieldErrors { field index } } }',
            {"c": "garbage", "p": ["7777", str(product.pk), "x!"]},
        )["createOrder"]
        assert data["errors"] == [
            "customerId: Invalid customer ID: garbage",
            "productIds: Invalid product ID: 7777",
            "productIds: Invalid product ID: x!",
            "orderDate: 2999-01-01T00:00:00+00:00 is in the future; an order date may be at most 5 minutes "
            "ahead of the server's clock.",
        ]
        assert [error["field"] for error in data["fieldErrors"]] == [
            "customerId",
            "productIds",
            "productIds",
            "orderDate",
        ]
        assert data["message"] == "Order not created: customerId: Invalid customer ID: garbage"
        assert data["order"] is None and not Order.objects.exists()
