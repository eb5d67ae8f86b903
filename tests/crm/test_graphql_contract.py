"""CONTRACT section 3: every operation, verbatim, on a fresh database, and the rules' refusals."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone
from graphql_relay import to_global_id

from crm import services
from crm.models import Customer, Order, Product
from tests.crm.gql_helpers import ok, post
from tests.factories import CustomerFactory, ProductFactory

# The operations exactly as CONTRACT.md section 3 prints them.
CREATE_CUSTOMER = """mutation {
  createCustomer(input: {name: "Alice", email: "alice@example.com", phone: "+1234567890"}) {
  customer { id name email phone } message errors } }"""
BULK_CREATE_CUSTOMERS = """mutation {
  bulkCreateCustomers(input: [{name: "Bob", email: "bob@example.com", phone: "123-456-7890"},
  {name: "Carol", email: "carol@example.com"}]) { customers { id name email } errors } }"""
CREATE_PRODUCT = """mutation { createProduct(input: {name: "Laptop", price: 999.99, stock: 10}) {
  product { id name price stock } } }"""
CREATE_ORDER = """mutation { createOrder(input: {customerId: "1", productIds: ["1", "2"]}) {
  order { id customer { name } products { name price } totalAmount orderDate } } }"""
UPDATE_LOW_STOCK = """mutation { updateLowStockProducts { success message updatedProducts { id name stock } } }"""
ALL_CUSTOMERS = """query { allCustomers(filter: {nameIcontains: "Ali", createdAtGte: "2025-01-01"}) {
  edges { node { id name email createdAt } } } }"""
ALL_PRODUCTS = """query { allProducts(filter: {priceGte: 100, priceLte: 1000}, orderBy: "-stock") {
  edges { node { id name price stock } } } }"""
ALL_ORDERS = """query { allOrders(filter: {customerName: "Alice", productName: "Laptop", totalAmountGte: 500}) {
  edges { node { id customer { name } products { name } totalAmount orderDate } } } }"""
TOTALS = """query { totalCustomers totalOrders totalRevenue }"""
# `query { cronJobs { ... } }` belongs to the scheduling engine (cronjobs/schema.py) and is tested there.

# An order's mutation payload also carries `errors`; the contract's shape does not select it.
CREATE_ORDER_WITH_ERRORS = CREATE_ORDER.replace("orderDate } } }", "orderDate } errors } }")


def nodes(connection):
    return [edge["node"] for edge in connection["edges"]]


@pytest.mark.django_db(transaction=True, reset_sequences=True)
def test_every_contract_operation_verbatim_on_a_fresh_database(client):
    data = ok(client, CREATE_CUSTOMER)["createCustomer"]
    assert data["errors"] == [] and data["message"]
    assert data["customer"] == {
        "id": to_global_id("Customer", 1),
        "name": "Alice",
        "email": "alice@example.com",
        "phone": "+1234567890",
    }

    data = ok(client, BULK_CREATE_CUSTOMERS)["bulkCreateCustomers"]
    assert data["errors"] == []
    assert [(c["name"], c["email"]) for c in data["customers"]] == [
        ("Bob", "bob@example.com"),
        ("Carol", "carol@example.com"),
    ]
    assert all(c["id"] for c in data["customers"])

    product = ok(client, CREATE_PRODUCT)["createProduct"]["product"]
    assert product == {"id": to_global_id("Product", 1), "name": "Laptop", "price": "999.99", "stock": 10}
    assert Product.objects.get(pk=1).price == Decimal("999.99")

    # On a fresh database product 2 does not exist yet: the order is refused as a whole.
    data = ok(client, CREATE_ORDER_WITH_ERRORS)["createOrder"]
    assert data == {"order": None, "errors": ["productIds: Invalid product ID: 2"]}
    assert not Order.objects.exists() and Product.objects.get(pk=1).stock == 10

    ok(client, 'mutation { createProduct(input: {name: "Phone", price: "499.50", stock: 50}) { product { id } } }')
    order = ok(client, CREATE_ORDER)["createOrder"]["order"]
    assert order["customer"] == {"name": "Alice"}
    assert order["products"] == [{"name": "Laptop", "price": "999.99"}, {"name": "Phone", "price": "499.50"}]
    assert order["totalAmount"] == "1499.49"
    assert order["id"] == to_global_id("Order", 1) and order["orderDate"]
    assert Product.objects.get(pk=1).stock == 9 and Product.objects.get(pk=2).stock == 49

    data = ok(client, UPDATE_LOW_STOCK)["updateLowStockProducts"]
    assert data["success"] is True and data["message"]
    assert data["updatedProducts"] == [{"id": to_global_id("Product", 1), "name": "Laptop", "stock": 19}]

    customers = nodes(ok(client, ALL_CUSTOMERS)["allCustomers"])
    assert [(c["name"], c["email"]) for c in customers] == [("Alice", "alice@example.com")]
    assert customers[0]["createdAt"].startswith(str(timezone.now().year))

    products = nodes(ok(client, ALL_PRODUCTS)["allProducts"])
    assert [(p["name"], p["price"], p["stock"]) for p in products] == [
        ("Phone", "499.50", 49),
        ("Laptop", "999.99", 19),
    ]

    orders = nodes(ok(client, ALL_ORDERS)["allOrders"])
    assert orders == [
        {
            "id": to_global_id("Order", 1),
            "customer": {"name": "Alice"},
            "products": [{"name": "Laptop"}, {"name": "Phone"}],
            "totalAmount": "1499.49",
            "orderDate": order["orderDate"],
        }
    ]

    assert ok(client, TOTALS) == {"totalCustomers": 3, "totalOrders": 1, "totalRevenue": "1499.49"}


@pytest.mark.django_db
class TestRules:
    """The refusals CONTRACT section 3 lists: in the payload, never a top-level error or a 500."""

    def test_email_unique_whatever_the_case(self, client):
        ok(client, CREATE_CUSTOMER)
        data = ok(client, CREATE_CUSTOMER.replace("alice@example.com", "ALICE@Example.COM"))["createCustomer"]
        assert data["customer"] is None and data["errors"] == ["email: Email already exists"]
        assert Customer.objects.count() == 1

    def test_field_errors_for_programs(self, client):
        data = ok(
            client,
            """mutation { createCustomer(input: {name: "", email: "nope", phone: "12"}) {
            customer { id } message errors fieldErrors { field message code index } } }""",
        )["createCustomer"]
        assert data["customer"] is None and data["message"]
        fields = {error["field"]: error for error in data["fieldErrors"]}
        assert set(fields) == {"name", "email", "phone"}
        assert fields["email"] == {
            "field": "email",
            "message": "Enter a valid email address.",
            "code": "invalid",
            "index": None,
        }
        assert sorted(data["errors"]) == sorted(f"{e['field']}: {e['message']}" for e in data["fieldErrors"])

    @pytest.mark.parametrize("phone", ["+1234567", "+123456789012345", "123-456-7890"])
    def test_valid_phones(self, client, phone):
        data = ok(
            client,
            'mutation($p: String) { createCustomer(input: {name: "P", email: "p@example.com", phone: $p}) { errors } }',
            {"p": phone},
        )
        assert data["createCustomer"]["errors"] == []

    def test_phone_optional(self, client):
        data = ok(
            client,
            'mutation { createCustomer(input: {name: "P", email: "p@example.com"}) { customer { phone } errors } }',
        )
        assert data["createCustomer"] == {"customer": {"phone": ""}, "errors": []}

    @pytest.mark.parametrize("phone", ["12345", "+123456", "1234567890", "abc"])
    def test_invalid_phones(self, client, phone):
        data = ok(
            client,
            'mutation($p: String) { createCustomer(input: {name: "P", email: '
            '"p@example.com", phone: $p}) { errors fieldErrors { field code } } }',
            {"p": phone},
        )
        assert data["createCustomer"]["fieldErrors"] == [{"field": "phone", "code": "invalid_phone"}]
        assert not Customer.objects.exists()

    def test_bulk_creates_valid_rows_and_names_each_invalid_row(self, client):
        CustomerFactory(email="taken@example.com")
        data = ok(
            client,
            """mutation { bulkCreateCustomers(input: [
            {name: "Bob", email: "bob@example.com"}, {name: "Dup", email: "TAKEN@example.com"},
            {name: "Bad", email: "not-an-email"}, {name: "Bob again", email: "bob@example.com"}]) {
            customers { name } errors fieldErrors { field message code index } } }""",
        )["bulkCreateCustomers"]
        assert data["customers"] == [{"name": "Bob"}]
        assert data["errors"] == [
            "row 1: email: Email already exists",
            "row 2: email: Enter a valid email address.",
            "row 3: email: Duplicate email in this batch",
        ]
        assert [(e["index"], e["code"]) for e in data["fieldErrors"]] == [
            (1, "unique"),
            (2, "invalid"),
            (3, "duplicate"),
        ]

    def test_bulk_too_many_rows(self, client):
        rows = [{"name": f"C{i}", "email": f"c{i}@example.com"} for i in range(1001)]
        data = ok(
            client,
            "mutation($rows: [CustomerInput!]!) { bulkCreateCustomers(input: $rows) { customers { id } errors } }",
            {"rows": rows},
        )
        assert data["bulkCreateCustomers"]["customers"] == []
        assert data["bulkCreateCustomers"]["errors"] == ["input: At most 1000 customers per call; got 1001."]
        assert not Customer.objects.exists()

    @pytest.mark.parametrize("literal", ["999.99", '"999.99"'])
    def test_price_literal_stored_exactly(self, client, literal):
        ok(client, f'mutation {{ createProduct(input: {{name: "L", price: {literal}}}) {{ product {{ id }} }} }}')
        assert Product.objects.get().price == Decimal("999.99")

    @pytest.mark.parametrize("value", [999.99, 0.1, "19.90", 5])
    def test_price_variable_stored_exactly(self, client, value):
        data = ok(
            client,
            "mutation($p: Decimal!) { createProduct(input: {name: "
            '"L", price: $p}) { product { price stock } errors } }',
            {"p": value},
        )
        assert data["createProduct"]["errors"] == []
        assert Product.objects.get().price == Decimal(str(value))
        assert data["createProduct"]["product"]["stock"] == 0  # the default

    @pytest.mark.parametrize(
        ("price", "field_error"),
        [
            ("0", "price: Ensure this value is greater than or equal to 0.01."),
            ("-1", "price: Ensure this value is greater than or equal to 0.01."),
            ("1.001", "price: Ensure that there are no more than 2 decimal places."),
        ],
    )
    def test_bad_price_in_payload(self, client, price, field_error):
        data = ok(
            client,
            f'mutation {{ createProduct(input: {{name: "L", price: {price}}}) {{ product {{ id }} message errors }} }}',
        )
        assert data["createProduct"]["product"] is None
        assert field_error in data["createProduct"]["errors"]
        assert not Product.objects.exists()

    def test_negative_stock_in_payload(self, client):
        data = ok(
            client, 'mutation { createProduct(input: {name: "L", price: 1, stock: -1}) { product { id } errors } }'
        )
        assert data["createProduct"] == {"product": None, "errors": ["stock: Stock cannot be negative."]}

    def test_unknown_product_names_it_and_creates_nothing(self, client):
        customer, product = CustomerFactory(), ProductFactory(stock=5)
        data = ok(
            client,
            f"mutation {{ createOrder(input: {{customerId: {customer.pk}, productIds: "
            f"[{product.pk}, 7777]}}) {{ order {{ id }} errors fieldErrors {{ field code }} }} }}",
        )
        assert data["createOrder"]["errors"] == ["productIds: Invalid product ID: 7777"]
        assert data["createOrder"]["fieldErrors"] == [{"field": "productIds", "code": "invalid"}]
        assert not Order.objects.exists() and Product.objects.get().stock == 5

    def test_order_needs_a_product(self, client):
        customer = CustomerFactory()
        data = ok(
            client,
            f"mutation {{ createOrder(input: {{customerId: {customer.pk}, "
            f"productIds: []}}) {{ order {{ id }} errors }} }}",
        )
        assert data["createOrder"]["errors"] == ["productIds: Select at least one product."]

    @pytest.mark.parametrize("customer_id", ["424242", "garbage", to_global_id("Product", 1), "-3"])
    def test_order_needs_an_existing_customer(self, client, customer_id):
        product = ProductFactory()
        data = ok(
            client,
            "mutation($c: ID!, $p: [ID!]!) { createOrder(input: "
            "{customerId: $c, productIds: $p}) { order { id } errors } }",
            {"c": customer_id, "p": [str(product.pk)]},
        )
        assert data["createOrder"]["errors"] == [f"customerId: Invalid customer ID: {customer_id}"]

    def test_garbage_product_id(self, client):
        customer = CustomerFactory()
        data = ok(
            client,
            f'mutation {{ createOrder(input: {{customerId: "{customer.pk}", productIds: ["x!"]}}) {{ errors }} }}',
        )
        assert data["createOrder"]["errors"] == ["productIds: Invalid product ID: x!"]

    def test_global_ids_accepted_and_product_listed_twice_is_ordered_twice(self, client):
        customer, product = CustomerFactory(name="Dana"), ProductFactory(price=Decimal("2.50"), stock=3)
        data = ok(
            client,
            """mutation($c: ID!, $p: [ID!]!) { createOrder(input: {customerId: $c, productIds: $p}) {
            order { customer { name } products { name } totalAmount
              lines { quantity unitPrice lineTotal product { name } } }
            errors } }""",
            {"c": to_global_id("Customer", customer.pk), "p": [to_global_id("Product", product.pk)] * 2},
        )
        order = data["createOrder"]["order"]
        assert data["createOrder"]["errors"] == []
        assert order["products"] == [{"name": product.name}] * 2
        assert order["totalAmount"] == "5.00"
        assert order["lines"] == [
            {"quantity": 2, "unitPrice": "2.50", "lineTotal": "5.00", "product": {"name": product.name}}
        ]
        assert Product.objects.get().stock == 1

    def test_short_stock_refused_naming_the_product(self, client):
        customer, product = CustomerFactory(), ProductFactory(name="Widget", stock=1)
        data = ok(
            client,
            f"mutation {{ createOrder(input: {{customerId: {customer.pk}, productIds: "
            f"[{product.pk}, {product.pk}]}}) {{ order {{ id }} errors }} }}",
        )
        [message] = data["createOrder"]["errors"]
        assert message.startswith("productIds: Insufficient stock for Widget")
        assert not Order.objects.exists() and Product.objects.get().stock == 1

    def test_line_keeps_the_unit_price_paid(self, client):
        customer, product = CustomerFactory(), ProductFactory(price=Decimal("10.00"))
        ok(
            client,
            f"mutation {{ createOrder(input: {{customerId: {customer.pk}, "
            f"productIds: [{product.pk}]}}) {{ errors }} }}",
        )
        Product.objects.filter(pk=product.pk).update(price=Decimal("99.00"))
        order = nodes(
            ok(client, "{ allOrders { edges { node { totalAmount lines { unitPrice } products { price } } } } }")[
                "allOrders"
            ]
        )[0]
        assert order == {"totalAmount": "10.00", "lines": [{"unitPrice": "10.00"}], "products": [{"price": "99.00"}]}

    def test_archived_customers_hidden_and_cannot_order(self, client):
        archived = CustomerFactory(name="Old", archived_at=timezone.now())
        CustomerFactory(name="New")
        product = ProductFactory()
        data = ok(
            client,
            f"{{ allCustomers {{ edges {{ node {{ name }} }} }} "
            f'totalCustomers customer(id: "{archived.pk}") {{ name }} }}',
        )
        assert nodes(data["allCustomers"]) == [{"name": "New"}]
        assert data["totalCustomers"] == 1 and data["customer"] is None
        data = ok(
            client,
            f"mutation {{ createOrder(input: {{customerId: {archived.pk}, "
            f"productIds: [{product.pk}]}}) {{ errors }} }}",
        )
        assert data["createOrder"]["errors"] == [f"customerId: Invalid customer ID: {archived.pk}"]

    def test_wrong_type_in_document_is_a_validation_error_not_a_500(self, client):
        status, body = post(client, 'mutation { createProduct(input: {name: "L", price: true}) { errors } }')
        assert status == 400 and "Decimal" in body["errors"][0]["message"]
        status, body = post(
            client, 'mutation($p: Decimal!) { createProduct(input: {name: "L", price: $p}) { errors } }', {"p": "abc"}
        )
        assert status == 400 and "Decimal cannot represent 'abc'" in body["errors"][0]["message"]
        assert not Product.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "mutation",
    [
        'mutation { createCustomer(input: {name: "A\\u0000", email: "a@example.com"}) { errors } }',
        'mutation { createCustomer(input: {name: "A", email: '
        '"a\\u0000@example.com", phone: "+1234567\\u0000"}) { errors } }',
        'mutation { bulkCreateCustomers(input: [{name: "A\\u0000", email: "a@example.com"}]) { errors } }',
        'mutation { createProduct(input: {name: "P\\u0000", price: 1}) { errors } }',
    ],
)
def test_nul_characters_are_a_user_mistake_on_every_database(client, mutation):
    # PostgreSQL cannot store NUL in text; the refusal must come back in the payload, not as a crash.
    data = ok(client, mutation)
    [payload] = data.values()
    assert payload["errors"], payload  # email and phone are refused by their own format validators
    if "name:" in " ".join(payload["errors"]) or "row 0: name" in " ".join(payload["errors"]):
        assert any("Null characters are not allowed." in e for e in payload["errors"]), payload
    assert not Customer.objects.exists() and not Product.objects.exists()


@pytest.mark.django_db
def test_services_refuse_nul_in_names():
    # The defect behind the test above lived in the models (fixed in migration 0003): SQLite stored
    # the NUL, PostgreSQL crashed on save.
    with pytest.raises(ValidationError) as exc:
        services.create_customer(name="A\x00", email="a@example.com")
    assert exc.value.message_dict == {"name": ["Null characters are not allowed."]}
    with pytest.raises(ValidationError):
        services.create_product(name="P\x00", price="1")
    result = services.bulk_create_customers(rows=[{"name": "B\x00", "email": "b@example.com"}])
    assert [str(error) for error in result.errors] == ["row 0: name: Null characters are not allowed."]
