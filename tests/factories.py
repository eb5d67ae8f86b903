"""factory-boy factories. Orders go through the service, which is the only way to write one."""

from datetime import timedelta
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from crm import services
from crm.models import Customer, Product
from cronjobs.models import JobRun


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


class JobRunFactory(factory.django.DjangoModelFactory):
    """A recorded run. By default a finished one: succeeded, started now, took two seconds, holding no
    lock (exclusive=False). `status="running"` makes a run still going, which holds its job's lock
    (exclusive=True) unless told otherwise; give it the `host` and `pid` the runner should look at."""

    class Meta:
        model = JobRun

    class Params:
        took = timedelta(seconds=2)

    job_name = "succeed"
    trigger = JobRun.Trigger.CRONTAB
    status = JobRun.Status.SUCCEEDED
    exclusive = factory.LazyAttribute(lambda run: run.status == JobRun.Status.RUNNING)
    host = "test"
    started_at = factory.LazyFunction(timezone.now)
    finished_at = factory.LazyAttribute(lambda run: None if run.status == "running" else run.started_at + run.took)
    duration = factory.LazyAttribute(lambda run: None if run.status == "running" else run.took)
    # A running run holds a current lease unless told otherwise (pass lease_expires_at in the past: expired).
    lease_expires_at = factory.LazyAttribute(
        lambda run: timezone.now() + timedelta(minutes=10) if run.status == "running" else None
    )
    result = factory.LazyAttribute(lambda run: {"failed": "boom", "running": ""}.get(run.status, "done"))
