"""Every write and business rule of the CRM: keyword-only, validated, atomic."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connections, transaction
from django.db.models import Count, Exists, OuterRef, Sum
from django.db.models.expressions import RawSQL
from django.utils import timezone

from alx_backend_graphql_crm.validation import (
    FieldErrors,
    InputError,
    errors_from_validation,
    to_exact_decimal,
    validate_utc_range,
)
from crm.models import Customer, Order, OrderLine, Product, email_key

MAX_BULK_CUSTOMERS = 1000
# What Order.total_amount (14 digits, 2 decimals) can hold.
ORDER_TOTAL_LIMIT = Decimal(10) ** (Order._meta.get_field("total_amount").max_digits - 2)


@dataclass
class BulkCreateResult:
    customers: list[Customer] = field(default_factory=list)
    errors: list[InputError] = field(default_factory=list)


# --- customers ---------------------------------------------------------------------------------

CUSTOMER_FIELDS = ("name", "email", "phone")  # the input's order: the order its mistakes are reported in


def _normalise_customer(name, email, phone) -> Customer:
    return Customer(
        name=(name or "").strip(),
        email=(email or "").strip(),
        phone=(phone or "").strip(),
    )


def create_customer(*, name: str, email: str, phone: str | None = None) -> Customer:
    customer = _normalise_customer(name, email, phone)
    errors = FieldErrors(*CUSTOMER_FIELDS)
    with errors.collect():
        customer.full_clean()  # every field, and the email's uniqueness when the email itself is valid
    errors.raise_if_any()
    try:
        with transaction.atomic():
            customer.save()
    except IntegrityError:
        # Another request took the email between the check and the INSERT.
        if not Customer.objects.filter(email_key=email_key(customer.email)).exists():
            raise
        raise ValidationError({"email": ValidationError("Email already exists", code="unique")}) from None
    return customer


def _existing_email_keys(keys: set[str]) -> set[str]:
    """Which of these email keys are taken, in one query on the unique email_key index."""
    customers = Customer.objects.all()
    if connections[customers.db].vendor == "postgresql":
        # Given a long IN (...) list, PostgreSQL's planner prefers a sequential scan (126 ms for
        # 1,000 keys against 100,000 customers); IN (SELECT unnest(array)) makes it probe the
        # unique index once per key.
        return set(
            customers.filter(email_key__in=RawSQL("SELECT unnest(%s::text[])", [sorted(keys)])).values_list(
                "email_key", flat=True
            )
        )
    return set(customers.filter(email_key__in=keys).values_list("email_key", flat=True))


def bulk_create_customers(*, rows: list[dict]) -> BulkCreateResult:
    """Create every valid row in one INSERT; report each invalid row with its index.

    Queries do not grow with the number of rows: one SELECT for existing emails, one INSERT
    (Django may split the INSERT on SQLite, whose parameter limit it assumes is 999).
    """
    result = BulkCreateResult()
    if len(rows) > MAX_BULK_CUSTOMERS:
        result.errors.append(
            InputError("input", f"At most {MAX_BULK_CUSTOMERS} customers per call; got {len(rows)}.", "too_many")
        )
        return result

    candidates, refused = _valid_rows(rows, result.errors)
    new = _new_emails(candidates, result.errors, refused=refused)
    if new:
        result.customers = _insert_customers(new, result.errors)
    result.errors.sort(key=_row_order)
    return result


_NOT_INPUT = ("id", "email_key", "created_at", "archived_at")


def _row_order(error: InputError) -> tuple[int, int]:
    """Errors by row, then in the order of the row's fields."""
    field = CUSTOMER_FIELDS.index(error.field) if error.field in CUSTOMER_FIELDS else -1
    return (-1 if error.index is None else error.index, field)


Row = tuple[int, Customer]  # (index in the input, the customer it describes)


def _valid_rows(rows: list[dict], errors: list[InputError]) -> tuple[list[Row], list[Row]]:
    """The rows that pass validation, and the refused rows whose email passed (their mistakes go to
    ``errors``; whether their email is taken is still worth saying)."""
    candidates, refused = [], []
    for index, row in enumerate(rows):
        customer = _normalise_customer(row.get("name"), row.get("email"), row.get("phone"))
        try:
            # The input's fields only (the rest are defaults); uniqueness is _new_emails' one query for all rows.
            customer.full_clean(exclude=_NOT_INPUT, validate_unique=False, validate_constraints=False)
        except ValidationError as exc:
            errors.extend(errors_from_validation(exc, index=index))
            if "email" not in exc.error_dict:
                refused.append((index, customer))
            continue
        candidates.append((index, customer))
    return candidates, refused


def _new_emails(candidates: list[Row], errors: list[InputError], *, refused: list[Row] = ()) -> list[Row]:
    """The candidates whose email is neither taken nor earlier in the batch (one query); the ``refused``
    rows (never created, so clashing with no row of the batch) are only told when their email is taken."""
    wanted = {email_key(customer.email) for _, customer in [*candidates, *refused]}
    existing = _existing_email_keys(wanted) if wanted else set()
    errors.extend(
        InputError("email", "Email already exists", "unique", index)
        for index, customer in refused
        if email_key(customer.email) in existing
    )
    seen: set[str] = set()
    new = []
    for index, customer in candidates:
        key = email_key(customer.email)
        if key in existing:
            errors.append(InputError("email", "Email already exists", "unique", index))
        elif key in seen:
            errors.append(InputError("email", "Duplicate email in this batch", "duplicate", index))
        else:
            new.append((index, customer))
        seen.add(key)
    return new


def _insert_customers(new: list[Row], errors: list[InputError]) -> list[Customer]:
    """INSERT the new rows; if another request took some of their emails meanwhile, report those
    rows as taken and insert the rest (the unique index is never left to decide alone)."""
    try:
        with transaction.atomic():
            return Customer.objects.bulk_create([customer for _, customer in new])
    except IntegrityError:
        still_new = _new_emails(new, errors)
        for _, customer in still_new:
            customer.pk = None  # a batch INSERTed before the rollback kept its ids
        with transaction.atomic():
            return Customer.objects.bulk_create([customer for _, customer in still_new])


# --- products ----------------------------------------------------------------------------------


def create_product(*, name: str, price, stock: int | None = 0) -> Product:
    errors = FieldErrors("name", "price", "stock")
    with errors.collect("price"):
        price = to_exact_decimal(price)
    product = Product(
        name=(name or "").strip(),
        price=price,
        stock=0 if stock is None else stock,
    )
    if isinstance(product.stock, int) and product.stock < 0:
        # PositiveIntegerField's own message is generic; say the rule.
        errors.add("stock", "Stock cannot be negative.", "min_value")
    with errors.collect():
        product.full_clean(exclude=errors.fields)  # the other fields; each field's mistake is said once
    errors.raise_if_any()
    product.save()
    return product


# A product a restock changed: (id, name, new stock), what the mutation and the job's log report.
RestockedProduct = tuple[int, str, int]


def restock_low_stock(*, threshold: int | None = None, amount: int | None = None) -> list[RestockedProduct]:
    """Add ``amount`` to every product whose stock is below ``threshold``, in one UPDATE.

    Returns the changed products as plain ``(id, name, stock)`` tuples, by id: one statement updates
    and returns them as the driver fetched them. No object is built per row (a restock of 50,000
    products spent most of its time in ``Model.__init__`` and field converters when it returned
    model instances; a NamedTuple per row still cost 2x the UPDATE itself).
    """
    threshold = settings.CRM_LOW_STOCK_THRESHOLD if threshold is None else threshold
    amount = settings.CRM_RESTOCK_AMOUNT if amount is None else amount
    if amount <= 0:
        raise ValidationError({"amount": ValidationError("Restock amount must be positive.", code="min_value")})
    table = Product._meta.db_table
    # PostgreSQL and SQLite >= 3.35 both support RETURNING; QuerySet.update() cannot return rows.
    with transaction.atomic(using=Product.objects.db), connections[Product.objects.db].cursor() as cursor:
        cursor.execute(
            f'UPDATE "{table}" SET "stock" = "stock" + %s WHERE "stock" < %s RETURNING "id", "name", "stock"',
            [amount, threshold],
        )
        rows = cursor.fetchall()
    rows.sort()  # by id (the first item); UPDATE ... RETURNING has no ORDER BY. Near-sorted: cheap.
    return rows


# --- orders ------------------------------------------------------------------------------------


ORDER_DATE_MAX_AHEAD = timedelta(minutes=5)  # how far a client's clock may run ahead of the server's
MAX_KEY = 2**63 - 1  # the largest primary key the databases hold


def create_order(*, customer_id: int, product_ids: list[int], order_date: datetime | None = None) -> Order:
    """Create an order all-or-nothing: check, lock and take stock, write lines at current prices.

    Every mistake is reported at once: the customer, each product (an ID that is not an integer is
    refused as given, so a caller may pass on what it could not read), the total, short stock, the
    date. A product listed twice is ordered twice. The product rows are locked (in id order, so two
    orders cannot deadlock) and stock is taken with a guarded UPDATE, so concurrent orders can never
    oversell. ``order_date`` defaults to now; a naive one is in the current time zone; it may not be
    more than ORDER_DATE_MAX_AHEAD in the future.
    """
    errors = FieldErrors("customer_id", "product_ids", "order_date")
    customer = _order_customer(customer_id, errors)
    order_date = _order_date(order_date, errors)
    with transaction.atomic():
        products, quantities = _order_products(product_ids, errors)
        errors.raise_if_any()
        _take_stock(products, quantities)
        order = Order.objects.create(customer=customer, order_date=order_date)
        OrderLine.objects.bulk_create(
            [
                OrderLine(order=order, product_id=pid, quantity=qty, unit_price=products[pid].price)
                for pid, qty in quantities.items()
            ]
        )
        # The total is maintained by the database triggers from the lines (migration 0006).
        order.refresh_from_db(fields=["total_amount"])
    return order


def _is_key(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_KEY


def _order_customer(customer_id, errors: FieldErrors) -> Customer | None:
    customer = Customer.objects.active().filter(pk=customer_id).first() if _is_key(customer_id) else None
    if customer is None:
        errors.add("customer_id", f"Invalid customer ID: {customer_id}", "invalid")
    return customer


def _order_products(product_ids: list, errors: FieldErrors) -> tuple[dict[int, Product], Counter]:
    """The ordered products, locked, and how many of each; refuses (into ``errors``) an empty or too
    long list, each ID that names no product, a total the database cannot hold and short stock."""
    if not product_ids:
        errors.add("product_ids", "Select at least one product.", "required")
        return {}, Counter()
    if len(product_ids) > settings.CRM_MAX_ORDER_ITEMS:
        # Bounds the time the product rows stay locked, and every order's `products` list.
        errors.add(
            "product_ids",
            f"At most {settings.CRM_MAX_ORDER_ITEMS} products per order; got {len(product_ids)}.",
            "too_many",
        )
        return {}, Counter()
    quantities = Counter(pid for pid in product_ids if _is_key(pid))
    products = {p.pk: p for p in Product.objects.select_for_update().filter(pk__in=quantities).order_by("pk")}
    unknown = [value for value in dict.fromkeys(product_ids) if not (_is_key(value) and value in products)]
    for value in unknown:
        errors.add("product_ids", f"Invalid product ID: {value}", "invalid")
    if unknown:
        return products, quantities
    total = sum((products[pid].price * qty for pid, qty in quantities.items()), Decimal("0"))
    if total >= ORDER_TOTAL_LIMIT:
        limit = ORDER_TOTAL_LIMIT - Decimal("0.01")
        errors.add("product_ids", f"Order total {total} exceeds the maximum of {limit}.", "max_value")
    for product_id, quantity in sorted(quantities.items()):
        if products[product_id].stock < quantity:
            message = _insufficient_stock(products[product_id], quantity, products[product_id].stock)
            errors.add("product_ids", message, "insufficient_stock")
    return products, quantities


def _order_date(order_date, errors: FieldErrors) -> datetime | None:
    """The order's date, aware (default now); refuses (into ``errors``) what is not a date-time, cannot
    be stored, or is more than ORDER_DATE_MAX_AHEAD ahead of the server's clock."""
    now = timezone.now()
    if order_date is None:
        return now
    if not isinstance(order_date, datetime):
        errors.add("order_date", f"Enter a date-time, not {order_date!r}.", "invalid")
        return None
    if timezone.is_naive(order_date):
        order_date = timezone.make_aware(order_date)
    with errors.collect("order_date"):
        validate_utc_range(order_date)
    if "order_date" in errors:
        return None
    if order_date > now + ORDER_DATE_MAX_AHEAD:
        minutes = int(ORDER_DATE_MAX_AHEAD.total_seconds() // 60)
        errors.add(
            "order_date",
            f"{order_date.isoformat()} is in the future; an order date may be at most {minutes} minutes "
            "ahead of the server's clock.",
            "max_value",
        )
    return order_date


def _take_stock(products: dict[int, Product], quantities: Counter) -> None:
    """Take every ordered quantity in one guarded UPDATE, or refuse naming a short product.

    ``products`` were read locked in this transaction (SQLite: in its snapshot, which a concurrent
    write would make this UPDATE fail on), and _order_products found enough of each; the UPDATE's
    ``stock >= quantity`` guard (and the CHECK constraint) still refuse to oversell. One statement
    whatever the number of products: an order of 100 products cost 100 UPDATEs before.
    """
    # Written out: Django's Case(When(...)) for 100 products cost more to compile than the UPDATE took.
    table, case = Product._meta.db_table, 'CASE "id"' + " WHEN %s THEN %s" * len(quantities) + " END"
    pairs = [value for item in quantities.items() for value in item]
    marks = ", ".join(["%s"] * len(quantities))
    with connections[Product.objects.db].cursor() as cursor:
        cursor.execute(
            f'UPDATE "{table}" SET "stock" = "stock" - {case} WHERE "id" IN ({marks}) AND "stock" >= {case}',
            [*pairs, *quantities, *pairs],
        )
        taken = cursor.rowcount
    if taken != len(quantities):  # only if the rows changed after the read despite the lock: say which
        current = dict(Product.objects.filter(pk__in=quantities).values_list("pk", "stock"))
        short = min(pid for pid, qty in quantities.items() if current.get(pid, 0) < qty)
        message = _insufficient_stock(products[short], quantities[short], current.get(short, 0))
        raise ValidationError({"product_ids": ValidationError(message, code="insufficient_stock")})


def _insufficient_stock(product: Product, quantity: int, stock: int) -> str:
    return f"Insufficient stock for {product.name} (ID {product.pk}): {quantity} ordered, {stock} in stock"


# --- cleanup and reporting ---------------------------------------------------------------------


@dataclass(frozen=True)
class CleanupResult:
    deleted: int
    archived: int


def inactive_customers(*, days: int = 365, now: datetime | None = None):
    """Active customers created before the window with no order inside it."""
    cutoff = (now or timezone.now()) - timedelta(days=days)
    recent_orders = Order.objects.filter(customer=OuterRef("pk"), order_date__gte=cutoff)
    return Customer.objects.active().filter(created_at__lt=cutoff).exclude(Exists(recent_orders))


def clean_inactive_customers(*, days: int = 365, now: datetime | None = None, dry_run: bool = False) -> CleanupResult:
    """Delete inactive customers who never ordered; archive those with older orders.

    Order history is never deleted: a customer with any order is archived instead.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(days=days)
    any_order = Order.objects.filter(customer=OuterRef("pk"))
    # Never ordered implies no order inside the window: one NOT EXISTS is enough.
    never_ordered = Customer.objects.active().filter(created_at__lt=cutoff).exclude(Exists(any_order))
    if dry_run:
        with_history = inactive_customers(days=days, now=now).filter(Exists(any_order))
        return CleanupResult(deleted=never_ordered.count(), archived=with_history.count())
    with transaction.atomic():
        # One DELETE statement. QuerySet.delete() would load every customer and look up their
        # orders in batches to honour PROTECT (the cleanup of 100,000 customers took 0.8 s
        # instead of 0.2 s); here no row can have an order (the NOT EXISTS above, and the
        # foreign key refuses it anyway) and nothing listens to Customer's delete signals.
        deleted = never_ordered._raw_delete(never_ordered.db)
        # Whoever is still inactive has ordered, long ago: archive, keeping the history.
        archived = inactive_customers(days=days, now=now).update(archived_at=now)
    return CleanupResult(deleted=deleted, archived=archived)


@dataclass(frozen=True)
class CrmReport:
    customers: int
    orders: int
    revenue: Decimal


def crm_report() -> CrmReport:
    """Counts and revenue, computed in SQL (two aggregate queries)."""
    orders = Order.objects.aggregate(count=Count("id"), revenue=Sum("total_amount"))
    return CrmReport(
        customers=Customer.objects.active().count(),
        orders=orders["count"],
        revenue=(orders["revenue"] or Decimal("0")).quantize(Decimal("0.01")),
    )
