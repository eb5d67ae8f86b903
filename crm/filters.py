"""django-filter FilterSets of the CRM's list fields; their names are the GraphQL `filter:` entries."""

import django_filters
import graphene
from django import forms
from django.conf import settings
from django.db.models import Exists, OuterRef

from alx_backend_graphql_crm.api.connections import StableOrderingFilter
from alx_backend_graphql_crm.api.filters import DateTimeFilter, FilterSet
from alx_backend_graphql_crm.api.scalars import decode_id
from crm.models import Customer, Order, OrderLine, Product


class IntegerFilter(django_filters.NumberFilter):
    field_class = forms.IntegerField


class _NodeIDField(forms.CharField):
    """A Relay global ID of one type or a plain integer primary key."""

    def __init__(self, *args, type_name: str, **kwargs):
        self.type_name = type_name
        super().__init__(*args, **kwargs)

    def to_python(self, value):
        value = super().to_python(value)
        if value in self.empty_values:
            return None
        pk = decode_id(value, self.type_name)
        if pk is None:
            raise forms.ValidationError(
                f"Invalid {self.type_name} ID: {value}; send a {self.type_name}'s global ID or its integer key",
                code="invalid",
            )
        return pk


class NodeIDFilter(django_filters.Filter):
    field_class = _NodeIDField

    def __init__(self, *args, type_name: str, **kwargs):
        super().__init__(*args, type_name=type_name, graphql_type=graphene.ID, **kwargs)

    @property
    def field(self):
        # `type_name` and `graphql_type` are ours, not form-field arguments.
        if not hasattr(self, "_field"):
            extra = {k: v for k, v in self.extra.items() if k not in ("graphql_type",)}
            self._field = self.field_class(label=self.label, **extra)
        return self._field


class CustomerFilter(FilterSet):
    name_icontains = django_filters.CharFilter(field_name="name", lookup_expr="icontains")
    email_icontains = django_filters.CharFilter(field_name="email", lookup_expr="icontains")
    created_at_gte = DateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_at_lte = DateTimeFilter(field_name="created_at", lookup_expr="lte")
    phone_pattern = django_filters.CharFilter(
        field_name="phone", lookup_expr="startswith", label="Phone starts with this, e.g. +1."
    )
    order_by = StableOrderingFilter(
        fields=(("id", "id"), ("name", "name"), ("email", "email"), ("created_at", "createdAt"))
    )

    class Meta:
        model = Customer
        fields: list[str] = []


class ProductFilter(FilterSet):
    name_icontains = django_filters.CharFilter(field_name="name", lookup_expr="icontains")
    price_gte = django_filters.NumberFilter(field_name="price", lookup_expr="gte")
    price_lte = django_filters.NumberFilter(field_name="price", lookup_expr="lte")
    stock_gte = IntegerFilter(field_name="stock", lookup_expr="gte")
    stock_lte = IntegerFilter(field_name="stock", lookup_expr="lte")
    low_stock = django_filters.BooleanFilter(
        method="filter_low_stock", label="Stock below CRM_LOW_STOCK_THRESHOLD (true) or not (false)."
    )
    order_by = StableOrderingFilter(
        fields=(("id", "id"), ("name", "name"), ("price", "price"), ("stock", "stock"), ("created_at", "createdAt"))
    )

    class Meta:
        model = Product
        fields: list[str] = []

    def filter_low_stock(self, queryset, name, value):
        low = {"stock__lt": settings.CRM_LOW_STOCK_THRESHOLD}
        return queryset.filter(**low) if value else queryset.exclude(**low)


class OrderFilter(FilterSet):
    total_amount_gte = django_filters.NumberFilter(field_name="total_amount", lookup_expr="gte")
    total_amount_lte = django_filters.NumberFilter(field_name="total_amount", lookup_expr="lte")
    order_date_gte = DateTimeFilter(field_name="order_date", lookup_expr="gte")
    order_date_lte = DateTimeFilter(field_name="order_date", lookup_expr="lte")
    # Each of these reveals another model's data (letter by letter, to a patient caller): it needs
    # that model's view permission as well as crm.view_order.
    customer_name = django_filters.CharFilter(
        field_name="customer__name", lookup_expr="icontains", permission="crm.view_customer"
    )
    # EXISTS rather than a join: an order with two matching lines must still appear once.
    product_name = django_filters.CharFilter(
        method="filter_product_name", label="Some product's name contains this.", permission="crm.view_product"
    )
    product_id = NodeIDFilter(
        method="filter_product_id", type_name="Product", label="Contains this product.", permission="crm.view_product"
    )
    order_by = StableOrderingFilter(fields=(("id", "id"), ("order_date", "orderDate"), ("total_amount", "totalAmount")))

    class Meta:
        model = Order
        fields: list[str] = []

    def filter_product_name(self, queryset, name, value):
        lines = OrderLine.objects.filter(order=OuterRef("pk"), product__name__icontains=value)
        return queryset.filter(Exists(lines))

    def filter_product_id(self, queryset, name, value):
        return queryset.filter(Exists(OrderLine.objects.filter(order=OuterRef("pk"), product_id=value)))
