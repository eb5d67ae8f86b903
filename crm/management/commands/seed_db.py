"""Load demo customers, products and orders; running it again changes nothing."""

from decimal import Decimal

from django.core.management.base import BaseCommand
from django.db import transaction

from crm import services
from crm.models import Customer, Product

CUSTOMERS = [
    ("Alice Johnson", "alice.demo@example.com", "+1234567890"),
    ("Bob Smith", "bob.demo@example.com", "123-456-7890"),
    ("Carol White", "carol.demo@example.com", ""),
]
PRODUCTS = [
    ("Laptop", Decimal("999.99"), 25),
    ("Phone", Decimal("499.50"), 40),
    ("Headphones", Decimal("79.90"), 5),
    ("USB cable", Decimal("9.99"), 3),
]
ORDERS = [
    ("alice.demo@example.com", ["Laptop", "Headphones"]),
    ("bob.demo@example.com", ["Phone"]),
]


class Command(BaseCommand):
    help = "Load demo data (idempotent: existing demo rows are kept, nothing is duplicated)."

    @transaction.atomic
    def handle(self, *args, **options):
        created = {"customers": 0, "products": 0, "orders": 0}
        for name, email, phone in CUSTOMERS:
            if not Customer.objects.filter(email__iexact=email).exists():
                services.create_customer(name=name, email=email, phone=phone)
                created["customers"] += 1
        for name, price, stock in PRODUCTS:
            if not Product.objects.filter(name=name).exists():
                services.create_product(name=name, price=price, stock=stock)
                created["products"] += 1
        for email, product_names in ORDERS:
            customer = Customer.objects.get(email__iexact=email)
            if not customer.orders.exists():
                ids = [Product.objects.filter(name=n).values_list("id", flat=True).first() for n in product_names]
                services.create_order(customer_id=customer.pk, product_ids=ids)
                created["orders"] += 1
        summary = ", ".join(f"{count} {kind}" for kind, count in created.items())
        self.stdout.write(f"Demo data: created {summary}.")
