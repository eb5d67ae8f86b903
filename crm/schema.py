"""The CRM's GraphQL types, queries and mutations: a thin skin over crm.services."""

import graphene
from django.db.models import Prefetch
from graphene import relay
from graphene_django import DjangoObjectType
from graphql_relay import to_global_id

from alx_backend_graphql_crm.api.connections import CountableConnection, FilteredConnectionField
from alx_backend_graphql_crm.api.mutations import ServiceMutation
from alx_backend_graphql_crm.api.permissions import permission_required
from alx_backend_graphql_crm.api.scalars import Decimal, decode_id, decode_ids
from crm import services
from crm.filters import CustomerFilter, OrderFilter, ProductFilter
from crm.models import Customer, Order, OrderLine, Product

# Node types never override get_queryset: doing so turns every foreign key into a per-row query.
# Root resolvers fetch related rows (select_related / prefetch_related) instead.


class CustomerNode(DjangoObjectType):
    class Meta:
        model = Customer
        name = "Customer"
        interfaces = (relay.Node,)
        connection_class = CountableConnection
        fields = ("id", "name", "email", "phone", "created_at")


class ProductNode(DjangoObjectType):
    price = graphene.Field(Decimal, required=True, description="Current unit price.")

    class Meta:
        model = Product
        name = "Product"
        interfaces = (relay.Node,)
        connection_class = CountableConnection
        fields = ("id", "name", "price", "stock", "created_at")


class OrderLineType(DjangoObjectType):
    """One ordered product: how many units, at the unit price paid (never changed afterwards)."""

    unit_price = graphene.Field(Decimal, required=True, description="Unit price paid.")
    line_total = graphene.Field(Decimal, required=True, description="quantity x unitPrice.")
    product = graphene.Field(ProductNode)

    class Meta:
        model = OrderLine
        name = "OrderLine"
        fields = ("quantity", "unit_price", "product")

    @staticmethod
    @permission_required("crm.view_product")
    def resolve_product(line, info):
        return line.product


class OrderNode(DjangoObjectType):
    total_amount = graphene.Field(Decimal, required=True, description="Sum of the lines, computed by the server.")
    customer = graphene.Field(CustomerNode)
    products = graphene.List(
        graphene.NonNull(ProductNode),
        description=(
            "What was ordered, one entry per unit: a product ordered twice appears twice. Prices here "
            "are current prices; `lines` has the unit prices paid."
        ),
    )
    lines = graphene.List(graphene.NonNull(OrderLineType), required=True, description="Lines with the prices paid.")

    class Meta:
        model = Order
        name = "Order"
        interfaces = (relay.Node,)
        connection_class = CountableConnection
        fields = ("id", "customer", "order_date", "total_amount")

    @staticmethod
    @permission_required("crm.view_customer")
    def resolve_customer(order, info):
        return order.customer

    @staticmethod
    @permission_required("crm.view_product")
    def resolve_products(order, info):
        # From the prefetched lines (see orders_queryset): no query per order.
        return [line.product for line in order.lines.all() for _ in range(line.quantity)]

    @staticmethod
    def resolve_lines(order, info):
        return order.lines.all()


def orders_queryset():
    """Orders with everything their nested fields read, in two extra queries whatever the page size."""
    return Order.objects.select_related("customer").prefetch_related(
        Prefetch("lines", queryset=OrderLine.objects.select_related("product").order_by("id"))
    )


def _get(queryset, global_or_pk, type_name):
    pk = decode_id(global_or_pk, type_name)
    return None if pk is None else queryset.filter(pk=pk).first()


class Query(graphene.ObjectType):
    all_customers = FilteredConnectionField(
        CustomerNode,
        filterset_class=CustomerFilter,
        filter_input_name="CustomerFilterInput",
        description="Active customers (archived ones are hidden).",
    )
    all_products = FilteredConnectionField(
        ProductNode,
        filterset_class=ProductFilter,
        filter_input_name="ProductFilterInput",
    )
    all_orders = FilteredConnectionField(
        OrderNode,
        filterset_class=OrderFilter,
        filter_input_name="OrderFilterInput",
    )
    customer = graphene.Field(CustomerNode, id=graphene.ID(required=True), description="Global ID or integer.")
    product = graphene.Field(ProductNode, id=graphene.ID(required=True), description="Global ID or integer.")
    order = graphene.Field(OrderNode, id=graphene.ID(required=True), description="Global ID or integer.")
    total_customers = graphene.Int(required=True, description="Active customers.")
    total_orders = graphene.Int(required=True)
    total_revenue = graphene.Field(Decimal, required=True, description="Sum of every order's total.")

    @staticmethod
    @permission_required("crm.view_customer")
    def resolve_all_customers(root, info, **kwargs):
        return Customer.objects.active()

    @staticmethod
    @permission_required("crm.view_product")
    def resolve_all_products(root, info, **kwargs):
        return Product.objects.all()

    @staticmethod
    @permission_required("crm.view_order")
    def resolve_all_orders(root, info, **kwargs):
        return orders_queryset()

    @staticmethod
    @permission_required("crm.view_customer")
    def resolve_customer(root, info, id):
        return _get(Customer.objects.active(), id, "Customer")

    @staticmethod
    @permission_required("crm.view_product")
    def resolve_product(root, info, id):
        return _get(Product.objects.all(), id, "Product")

    @staticmethod
    @permission_required("crm.view_order")
    def resolve_order(root, info, id):
        return _get(orders_queryset(), id, "Order")

    @staticmethod
    @permission_required("crm.view_customer")
    def resolve_total_customers(root, info):
        return _report(info).customers

    @staticmethod
    @permission_required("crm.view_order")
    def resolve_total_orders(root, info):
        return _report(info).orders

    @staticmethod
    @permission_required("crm.view_order")
    def resolve_total_revenue(root, info):
        return _report(info).revenue


def _report(info) -> services.CrmReport:
    # The three totals come from one report, computed once per request.
    report = getattr(info.context, "_crm_report", None)
    if report is None:
        report = services.crm_report()
        info.context._crm_report = report
    return report


# --- mutations ---------------------------------------------------------------------------------


class CustomerInput(graphene.InputObjectType):
    name = graphene.String(required=True)
    email = graphene.String(required=True)
    phone = graphene.String(description="Optional: + and 7-15 digits, or 123-456-7890.")


class CreateCustomer(ServiceMutation):
    permissions = ("crm.add_customer",)
    failure_message = "Customer not created"

    class Arguments:
        input = CustomerInput(required=True)

    customer = graphene.Field(CustomerNode)
    message = graphene.String(required=True)

    @classmethod
    def perform(cls, info, input):
        customer = services.create_customer(name=input.name, email=input.email, phone=input.phone)
        return {"customer": customer, "message": f"Customer {customer.name} created."}


class BulkCreateCustomers(ServiceMutation):
    """Creates every valid row; reports each invalid one with its 0-based index."""

    permissions = ("crm.add_customer",)

    class Arguments:
        input = graphene.List(graphene.NonNull(CustomerInput), required=True)

    customers = graphene.List(graphene.NonNull(CustomerNode), required=True, description="The rows created.")

    @classmethod
    def perform(cls, info, input):
        result = services.bulk_create_customers(rows=[dict(row) for row in input])
        return {"customers": result.customers, "input_errors": result.errors}


class CreateProductInput(graphene.InputObjectType):
    name = graphene.String(required=True)
    price = Decimal(required=True, description='> 0; 999.99 and "999.99" are both stored exactly.')
    stock = graphene.Int(description=">= 0; default 0.")


class CreateProduct(ServiceMutation):
    permissions = ("crm.add_product",)
    failure_message = "Product not created"

    class Arguments:
        input = CreateProductInput(required=True)

    product = graphene.Field(ProductNode)
    message = graphene.String(required=True)

    @classmethod
    def perform(cls, info, input):
        product = services.create_product(name=input.name, price=input.price, stock=input.stock)
        return {"product": product, "message": f"Product {product.name} created."}


class CreateOrderInput(graphene.InputObjectType):
    customer_id = graphene.ID(required=True, description="Global ID or integer.")
    product_ids = graphene.List(
        graphene.NonNull(graphene.ID),
        required=True,
        description="Global IDs or integers; a product listed twice is ordered twice. At most CRM_MAX_ORDER_ITEMS.",
    )
    order_date = graphene.DateTime(
        description=(
            "When the order was placed (ISO 8601; without an offset, in DJANGO_TIME_ZONE). Default: now. "
            f"At most {int(services.ORDER_DATE_MAX_AHEAD.total_seconds() // 60)} minutes in the future (clock skew)."
        )
    )


class CreateOrder(ServiceMutation):
    permissions = ("crm.add_order",)
    failure_message = "Order not created"

    class Arguments:
        input = CreateOrderInput(required=True)

    order = graphene.Field(OrderNode)
    message = graphene.String(required=True)

    @classmethod
    def perform(cls, info, input):
        [customer_id] = decode_ids([input.customer_id], "Customer")
        product_ids = decode_ids(input.product_ids, "Product")
        order = services.create_order(customer_id=customer_id, product_ids=product_ids, order_date=input.order_date)
        return {"order": orders_queryset().get(pk=order.pk), "message": f"Order {order.pk} created."}


class RestockedProduct(graphene.ObjectType):
    """A product a restock changed, with its new stock (its other fields: query `product(id:)`)."""

    id = graphene.ID(required=True, description="The product's global ID, as in Product.id.")
    name = graphene.String(required=True)
    stock = graphene.Int(required=True, description="The stock after the restock.")

    # Each row is services.restock_low_stock's (id, name, stock) tuple.
    @staticmethod
    def resolve_id(row, info):
        return to_global_id(ProductNode._meta.name, row[0])

    @staticmethod
    def resolve_name(row, info):
        return row[1]

    @staticmethod
    def resolve_stock(row, info):
        return row[2]


class UpdateLowStockProducts(ServiceMutation):
    """Restocks every product below CRM_LOW_STOCK_THRESHOLD by CRM_RESTOCK_AMOUNT."""

    permissions = ("crm.change_product",)
    failure_message = "Nothing restocked"
    failure_payload = {"success": False}

    success = graphene.Boolean(required=True)
    message = graphene.String(required=True)
    updated_products = graphene.List(graphene.NonNull(RestockedProduct), required=True)

    @classmethod
    def perform(cls, info):
        products = services.restock_low_stock()
        return {"success": True, "message": f"Restocked {len(products)} products.", "updated_products": products}


class Mutation(graphene.ObjectType):
    create_customer = CreateCustomer.Field()
    bulk_create_customers = BulkCreateCustomers.Field(description="At most 1,000 rows.")
    create_product = CreateProduct.Field()
    create_order = CreateOrder.Field(description="All-or-nothing; takes the units out of stock.")
    update_low_stock_products = UpdateLowStockProducts.Field()
