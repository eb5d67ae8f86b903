"""factory-boy factories. Orders go through the service, which is the only way to write one."""

from decimal import Decimal

import factory
from django.contrib.auth import get_user_model

from crm import services
from crm.models import Customer, Product


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("pw-for-tests")


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    name = factory.Sequence(lambda n: f"Customer {n}")
    email = factory.Sequence(lambda n: f"customer{n}@example.com")
    phone = ""


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    name = factory.Sequence(lambda n: f"Product {n}")
    price = Decimal("10.00")
    stock = 100


def make_order(customer=None, products=None, **kwargs):
    customer = customer or CustomerFactory()
    products = products or [ProductFactory()]
    return services.create_order(customer_id=customer.pk, product_ids=[p.pk for p in products], **kwargs)
