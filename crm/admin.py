"""Django admin for the CRM: search, filters, order lines inline, API tokens."""

from django.contrib import admin, messages
from django.utils import timezone

from crm.models import ApiToken, Customer, Order, OrderLine, Product


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ("name", "email", "phone", "created_at", "archived_at")
    search_fields = ("name", "email", "phone")
    list_filter = ("created_at", ("archived_at", admin.EmptyFieldListFilter))
    date_hierarchy = "created_at"


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ("name", "price", "stock", "created_at")
    search_fields = ("name",)
    list_filter = ("created_at",)
    ordering = ("name",)


class OrderLineInline(admin.TabularInline):
    """Lines are immutable once written (the database refuses updates); shown read-only."""

    model = OrderLine
    extra = 0
    fields = ("product", "quantity", "unit_price", "line_total")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    """Orders are created through the API (stock and prices are taken there); read-only here."""

    list_display = ("id", "customer", "order_date", "total_amount")
    search_fields = ("customer__name", "customer__email", "lines__product__name")
    list_filter = ("order_date",)
    date_hierarchy = "order_date"
    list_select_related = ("customer",)
    readonly_fields = ("customer", "order_date", "total_amount")
    inlines = [OrderLineInline]

    def has_add_permission(self, request):
        return False

    def get_search_results(self, request, queryset, search_term):
        queryset, _ = super().get_search_results(request, queryset, search_term)
        return queryset.distinct(), False


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("prefix", "user", "name", "created_at", "last_used_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    search_fields = ("user__username", "name", "prefix")
    readonly_fields = ("user", "prefix", "created_at", "last_used_at")
    fields = ("user", "name", "prefix", "created_at", "last_used_at", "revoked_at")
    actions = ["revoke"]

    def has_add_permission(self, request):
        # A token's raw value is shown once, by `manage.py create_api_token`.
        return False

    @admin.action(description="Revoke selected tokens", permissions=["change"])  # view alone may not revoke
    def revoke(self, request, queryset):
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {count} token(s).", messages.SUCCESS)
