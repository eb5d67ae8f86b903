"""GraphQL reads: filters, ordering, pagination, IDs, and SQL query counts constant in the page size."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.http import HttpRequest
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from graphql_relay import to_global_id

from alx_backend_graphql_crm.schema import schema
from crm.models import Customer, Order, Product
from tests.crm.gql_helpers import ALL_CRM_PERMISSIONS, ok, post
from tests.factories import CustomerFactory, ProductFactory, make_order

pytestmark = pytest.mark.django_db


def names(data, field):
    return [edge["node"]["name"] for edge in data[field]["edges"]]


class TestCustomerFilters:
    def test_each_filter(self, client):
        now = timezone.now()
        CustomerFactory(name="Alice", email="alice@corp.com", phone="+15550001", created_at=now - timedelta(days=10))
        CustomerFactory(name="Alina", email="alina@home.org", phone="+44123456789", created_at=now)
        CustomerFactory(name="Bob", email="bob@corp.com", phone="123-456-7890", created_at=now - timedelta(days=400))

        def run(filter_):
            return names(
                ok(client, f"{{ allCustomers(filter: {filter_}) {{ edges {{ node {{ name }} }} }} }}"), "allCustomers"
            )

        assert run('{nameIcontains: "ALI"}') == ["Alice", "Alina"]
        assert run('{emailIcontains: "corp"}') == ["Alice", "Bob"]
        assert run('{phonePattern: "+1"}') == ["Alice"]
        assert run('{phonePattern: "123-"}') == ["Bob"]
        since = (now - timedelta(days=30)).isoformat()
        assert run(f'{{createdAtGte: "{since}"}}') == ["Alice", "Alina"]
        assert run(f'{{createdAtLte: "{since}"}}') == ["Bob"]
        assert run(f'{{createdAtGte: "{since}", nameIcontains: "alin"}}') == ["Alina"]
        assert run("{}") == ["Alice", "Alina", "Bob"]

    def test_ordering_whitelist_string_or_list(self, client):
        CustomerFactory(name="B", email="a@example.com")
        CustomerFactory(name="A", email="c@example.com")
        CustomerFactory(name="A", email="b@example.com")
        query = "query($o: [String!]) { allCustomers(orderBy: $o) { edges { node { name email } } } }"
        emails = lambda o: [e["node"]["email"] for e in ok(client, query, {"o": o})["allCustomers"]["edges"]]  # noqa: E731
        assert emails("-email") == ["c@example.com", "b@example.com", "a@example.com"]
        assert emails(["name", "-email"]) == ["c@example.com", "b@example.com", "a@example.com"]
        assert emails(["name", "email"]) == ["b@example.com", "c@example.com", "a@example.com"]
        status, body = post(client, query, {"o": ["phone"]})  # not in the whitelist: the refusal lists it
        assert body["errors"][0]["message"] == (
            "Invalid filter or ordering: orderBy: 'phone' is not one of: createdAt, email, id, name "
            "('-' in front for descending)."
        )
        assert body["data"] == {"allCustomers": None}


def test_every_unknown_ordering_and_filter_value_named_at_once(client):
    status, body = post(
        client, '{ allOrders(filter: {productId: "zzz"}, orderBy: ["cost", "-orderDate", "-bogus"]) { totalCount } }'
    )
    assert status == 200 and body["errors"][0]["extensions"]["code"] == "bad_user_input"
    assert body["errors"][0]["message"] == (
        "Invalid filter or ordering: filter.productId: Invalid Product ID: zzz; send a Product's global ID or its "
        "integer key; orderBy: 'cost', '-bogus' are not among: id, orderDate, totalAmount ('-' in front for "
        "descending)."
    )


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            '{ allCustomers(filter: {nameIcontains: "A", createdAtGte: "last week"}) { totalCount } }',
            "filter.createdAtGte: DateTime cannot represent value: 'last week'; accepted: an ISO 8601 date-time "
            "such as 2025-01-01T00:00:00Z, or a date such as 2025-01-01",
        ),
        (
            '{ allProducts(filter: {priceGte: "cheap"}) { totalCount } }',
            "filter.priceGte: Expected value of type 'Decimal', found \"cheap\"; accepted: a number or a numeric "
            'string such as "999.99"',
        ),
        (
            "{ allProducts(filter: {lowStock: 1}) { totalCount } }",
            "filter.lowStock: Boolean cannot represent a non boolean value: 1; accepted: true or false",
        ),
    ],
)
def test_a_value_graphql_refuses_is_named_with_the_accepted_form(client, document, message):
    """Refused by GraphQL's validation, before anything runs (HTTP 400): the refusal says which entry."""
    status, body = post(client, document)
    assert status == 400 and [error["message"] for error in body["errors"]] == [message]


class TestProductFilters:
    def test_each_filter(self, client, settings):
        settings.CRM_LOW_STOCK_THRESHOLD = 10
        ProductFactory(name="Laptop", price=Decimal("999.99"), stock=3)
        ProductFactory(name="Mouse", price=Decimal("19.90"), stock=50)
        ProductFactory(name="Desk lamp", price=Decimal("100.00"), stock=10)

        def run(filter_, order=""):
            return names(
                ok(client, f"{{ allProducts(filter: {filter_}{order}) {{ edges {{ node {{ name }} }} }} }}"),
                "allProducts",
            )

        assert run("{priceGte: 100, priceLte: 1000}") == ["Laptop", "Desk lamp"]
        assert run("{priceGte: 19.9, priceLte: 99.99}") == ["Mouse"]
        assert run('{priceLte: "100"}') == ["Mouse", "Desk lamp"]
        assert run("{stockGte: 10}") == ["Mouse", "Desk lamp"]
        assert run("{stockLte: 10}") == ["Laptop", "Desk lamp"]
        assert run("{lowStock: true}") == ["Laptop"]
        assert run("{lowStock: false}") == ["Mouse", "Desk lamp"]
        assert run('{nameIcontains: "LAMP"}') == ["Desk lamp"]
        assert run("{}", ', orderBy: "-stock"') == ["Mouse", "Desk lamp", "Laptop"]
        assert run("{}", ', orderBy: ["price"]') == ["Mouse", "Desk lamp", "Laptop"]
        assert run("{}", ', orderBy: "-createdAt"') == ["Desk lamp", "Mouse", "Laptop"]

    def test_bad_number_is_a_validation_error(self, client):
        status, body = post(client, '{ allProducts(filter: {stockGte: "many"}) { totalCount } }')
        assert status == 400 and "Int cannot represent" in body["errors"][0]["message"]


class TestOrderFilters:
    def test_each_filter(self, client):
        alice, bob = CustomerFactory(name="Alice Smith"), CustomerFactory(name="Bob")
        laptop = ProductFactory(name="Laptop", price=Decimal("999.99"))
        cable = ProductFactory(name="Cable", price=Decimal("5.00"))
        now = timezone.now()
        big = make_order(alice, [laptop, cable], order_date=now - timedelta(days=3))
        small = make_order(bob, [cable, cable], order_date=now)
        both = make_order(alice, [laptop, laptop], order_date=now - timedelta(days=1))

        def run(filter_):
            data = ok(client, f"{{ allOrders(filter: {filter_}) {{ edges {{ node {{ id }} }} }} }}")
            return [edge["node"]["id"] for edge in data["allOrders"]["edges"]]

        gid = lambda order: to_global_id("Order", order.pk)  # noqa: E731
        assert run('{customerName: "alice"}') == [gid(big), gid(both)]
        assert run('{productName: "lap"}') == [gid(big), gid(both)]  # an order with two laptops appears once
        assert run(f'{{productId: "{cable.pk}"}}') == [gid(big), gid(small)]
        assert run(f'{{productId: "{to_global_id("Product", laptop.pk)}"}}') == [gid(big), gid(both)]
        assert run("{totalAmountGte: 500}") == [gid(big), gid(both)]
        assert run("{totalAmountLte: 10}") == [gid(small)]
        day = (now - timedelta(days=2)).isoformat()
        assert run(f'{{orderDateGte: "{day}"}}') == [gid(small), gid(both)]
        assert run(f'{{orderDateLte: "{day}"}}') == [gid(big)]
        assert run('{customerName: "Alice", productName: "Laptop", totalAmountGte: 500}') == [gid(big), gid(both)]

    @pytest.mark.parametrize("bad", ['"zzz"', f'"{to_global_id("Customer", 1)}"'])
    def test_bad_product_id_named_in_the_error(self, client, bad):
        status, body = post(client, f"{{ allOrders(filter: {{productId: {bad}}}) {{ totalCount }} }}")
        assert body["errors"][0]["message"].startswith(
            "Invalid filter or ordering: filter.productId: Invalid Product ID"
        )
        assert body["errors"][0]["extensions"]["code"] == "bad_user_input"

    def test_out_of_range_date_is_a_user_error(self, client):
        status, body = post(client, '{ allOrders(filter: {orderDateLte: "9999-12-31T23:00:00-05:00"}) { totalCount } }')
        assert (
            "filter.orderDateLte: Date-time out of range: it must fall within years 1-9999 in UTC."
            in body["errors"][0]["message"]
        )


class TestSingleObjectsAndIds:
    def test_global_or_integer_id_and_wrong_type_is_null(self, client):
        customer, product = CustomerFactory(name="Ann"), ProductFactory(name="Pen")
        order = make_order(customer, [product])
        for value in (str(customer.pk), to_global_id("Customer", customer.pk)):
            assert ok(client, f'{{ customer(id: "{value}") {{ id name }} }}')["customer"] == {
                "id": to_global_id("Customer", customer.pk),
                "name": "Ann",
            }
        assert ok(client, f"{{ product(id: {product.pk}) {{ name }} }}")["product"] == {"name": "Pen"}
        assert ok(client, f'{{ order(id: "{to_global_id("Order", order.pk)}") {{ customer {{ name }} }} }}')[
            "order"
        ] == {"customer": {"name": "Ann"}}
        for bad in (to_global_id("Product", customer.pk), "nope", "99999", "-1", "1e3"):
            assert ok(client, f'{{ customer(id: "{bad}") {{ id }} }}') == {"customer": None}

    def test_cursor_pagination(self, client):
        ProductFactory.create_batch(5)
        page = ok(client, "{ allProducts(first: 2) { pageInfo { hasNextPage endCursor } edges { node { name } } } }")[
            "allProducts"
        ]
        after = page["pageInfo"]["endCursor"]
        rest = ok(
            client,
            f'{{ allProducts(first: 10, after: "{after}") {{ pageInfo '
            f"{{ hasNextPage }} edges {{ node {{ name }} }} }} }}",
        )
        assert len(rest["allProducts"]["edges"]) == 3 and rest["allProducts"]["pageInfo"]["hasNextPage"] is False
        for bad in ('after: "garbage"', 'before: "x"', 'offset: 1, after: "garbage"'):
            status, body = post(client, f"{{ allProducts({bad}) {{ totalCount }} }}")
            assert body["errors"][0]["message"].endswith("is not a cursor from this connection.")
            assert body["data"] == {"allProducts": None}
        assert len(ok(client, "{ allProducts(offset: 4) { edges { node { id } } } }")["allProducts"]["edges"]) == 1


ORDERS_QUERY = """query($first: Int) { allOrders(first: $first) { edges { node {
    id totalAmount orderDate customer { id name email } products { id name price }
    lines { quantity unitPrice product { name } } } } } }"""


@pytest.fixture(scope="class")
def orders(django_db_setup, django_db_blocker):
    """100 orders, made once for the class (through the service: about a CPU-second) and read by
    every test; each test's own writes are rolled back as usual. Removed after the class."""
    with django_db_blocker.unblock():
        products = ProductFactory.create_batch(3, stock=1000)
        orders = [
            make_order(CustomerFactory(), [products[i % 3], products[(i + 1) % 3], products[i % 3]]) for i in range(100)
        ]
        yield
        Order.objects.filter(pk__in=[order.pk for order in orders]).delete()
        Customer.objects.filter(pk__in=[order.customer_id for order in orders]).delete()
        Product.objects.filter(pk__in=[product.pk for product in products]).delete()


class TestQueryCounts:
    """The N+1 guard: a page of orders with customer and products costs the same queries at any size."""

    def count_in_process(self, user, first):
        request = HttpRequest()
        request.user = user
        with CaptureQueriesContext(connection) as queries:
            result = schema.execute(ORDERS_QUERY, variable_values={"first": first}, context_value=request)
        assert not result.errors, result.errors
        assert len(result.data["allOrders"]["edges"]) == first
        return len(queries)

    def test_all_orders_first_10_and_100_same_count_at_most_4(self, orders, clerk):
        clerk.has_perms(ALL_CRM_PERMISSIONS)  # load the permission cache once, as the first check in a request does
        small, large = self.count_in_process(clerk, 10), self.count_in_process(clerk, 100)
        assert small == large <= 4, (small, large)

    def test_whole_http_request_is_constant_too(self, orders, client, django_assert_max_num_queries):
        def count(first):
            with CaptureQueriesContext(connection) as queries:
                status, body = post(client, ORDERS_QUERY, {"first": first})
            assert status == 200 and len(body["data"]["allOrders"]["edges"]) == first
            return len(queries)

        # Session + user + permissions (loaded once per request) + the 3 of the page.
        assert count(10) == count(100)
        with django_assert_max_num_queries(7):
            post(client, ORDERS_QUERY, {"first": 100})

    @pytest.mark.parametrize(
        ("query", "limit"),
        [
            ("{ allCustomers(first: 100) { totalCount edges { node { id name email phone createdAt } } } }", 2),
            ("{ allProducts(first: 100) { totalCount edges { node { id name price stock } } } }", 2),
            (
                '{ allOrders(first: 100, filter: {productName: "a", customerName: '
                '"c"}) { edges { node { customer { name } products { name } } } } }',
                3,
            ),
            ("{ totalCustomers totalOrders totalRevenue }", 2),
        ],
    )
    def test_every_list_field_bounded(self, orders, clerk, query, limit, django_assert_max_num_queries):
        clerk.has_perms(ALL_CRM_PERMISSIONS)
        request = HttpRequest()
        request.user = clerk
        with django_assert_max_num_queries(limit):
            result = schema.execute(query, context_value=request)
        assert not result.errors


class TestCountOnlyWhenAsked:
    """A forward page without totalCount skips COUNT(*) and reads first + 1 rows for hasNextPage."""

    def run(self, clerk, query):
        clerk.has_perms(ALL_CRM_PERMISSIONS)
        request = HttpRequest()
        request.user = clerk
        with CaptureQueriesContext(connection) as queries:
            result = schema.execute(query, context_value=request)
        assert not result.errors, result.errors
        return result.data["allProducts"], [q["sql"] for q in queries.captured_queries]

    @pytest.mark.parametrize(("first", "has_next"), [(4, True), (5, False), (6, False)])
    def test_has_next_page_without_count(self, clerk, first, has_next):
        ProductFactory.create_batch(5)
        page, sql = self.run(
            clerk,
            f"{{ allProducts(first: {first}) {{ pageInfo {{ hasNextPage hasPreviousPage "
            f"startCursor endCursor }} edges {{ cursor node {{ name }} }} }} }}",
        )
        assert page["pageInfo"]["hasNextPage"] is has_next and page["pageInfo"]["hasPreviousPage"] is False
        assert len(page["edges"]) == min(first, 5)
        assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]
        assert not any("COUNT(" in statement.upper() for statement in sql)
        assert f"LIMIT {first + 1}" in sql[-1]

    def test_after_and_offset_pages_match_the_counting_path(self, clerk):
        ProductFactory.create_batch(7)
        fast, _ = self.run(
            clerk,
            "{ allProducts(first: 2, offset: 1) { edges { cursor "
            "node { name } } pageInfo { hasNextPage endCursor } } }",
        )
        counted, sql = self.run(
            clerk,
            "{ allProducts(first: 2, offset: 1) { totalCount edges { "
            "cursor node { name } } pageInfo { hasNextPage endCursor } } }",
        )
        assert any("COUNT(" in statement.upper() for statement in sql)
        assert counted.pop("totalCount") == 7
        assert fast == counted
        after = fast["pageInfo"]["endCursor"]
        rest, _ = self.run(
            clerk,
            f'{{ allProducts(first: 10, after: "{after}") {{ edges '
            f"{{ node {{ name }} }} pageInfo {{ hasNextPage }} }} }}",
        )
        names = list(Product.objects.order_by("pk").values_list("name", flat=True))
        assert [e["node"]["name"] for e in rest["edges"]] == names[3:]
        assert rest["pageInfo"]["hasNextPage"] is False

    def test_total_count_inside_a_fragment_still_counts(self, clerk):
        ProductFactory.create_batch(3)
        page, sql = self.run(
            clerk, "query { allProducts(first: 1) { ...Counted } } fragment Counted on ProductConnection { totalCount }"
        )
        assert page == {"totalCount": 3}
        assert any("COUNT(" in statement.upper() for statement in sql)
