"""Builds and resets the benchmark data set quickly: raw multi-row inserts, no ORM objects."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from decimal import Decimal

from django.core.management.color import no_style
from django.db import connection, transaction

from crm.models import Customer, Order, OrderLine, Product

PRODUCTS = 100_000
CUSTOMERS = 100_000
ORDERS = 300_000
DAYS_OF_HISTORY = 3 * 365
CLEANUP_DAYS = 365
CUSTOMER_BACKUP = "bench_customer_backup"


def _adapt_dt(value: datetime):
    return connection.ops.adapt_datetimefield_value(value)


def bulk_insert(table: str, columns: list[str], rows) -> None:
    """COPY on PostgreSQL, executemany on SQLite; triggers fire either way."""
    cols = ", ".join(f'"{c}"' for c in columns)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join(["%s"] * len(columns))
            cursor.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks})", list(rows))


def product_price(pid: int) -> Decimal:
    return Decimal(1 + pid % 200) + Decimal("0.99")


def customer_has_orders(cid: int) -> bool:
    # 60% of customers ordered (5 orders each, 300,000 orders); 40% never did.
    return cid % 5 < 3


def order_age_days(cid: int, k: int) -> int:
    # Customers with cid % 10 in (0, 1) ordered only long ago (archived by the cleanup); the
    # others also ordered within the last year.
    if cid % 10 < 2:
        return CLEANUP_DAYS + 1 + (cid * 37 + k * 101) % (DAYS_OF_HISTORY - CLEANUP_DAYS - 1)
    return (cid * 37 + k * 101) % DAYS_OF_HISTORY if k else (cid * 13) % CLEANUP_DAYS


def build(now: datetime, log) -> dict[str, float]:
    """Insert 100,000 products, 100,000 customers, 300,000 orders (with ~400,000 lines)."""
    timings: dict[str, float] = {}

    def step(name, fn):
        started = time.perf_counter()
        with transaction.atomic():
            fn()
        timings[name] = time.perf_counter() - started
        log(f"  setup {name}: {timings[name]:.1f} s")

    step(
        "products",
        lambda: bulk_insert(
            Product._meta.db_table,
            ["id", "name", "price", "stock", "created_at"],
            (
                (pid, f"Product {pid}", product_price(pid), 10_000, _adapt_dt(now - timedelta(days=pid % 900)))
                for pid in range(1, PRODUCTS + 1)
            ),
        ),
    )
    step(
        "customers",
        lambda: bulk_insert(
            Customer._meta.db_table,
            ["id", "name", "email", "email_key", "phone", "created_at"],
            (
                (
                    cid,
                    f"Customer {cid}",
                    f"customer{cid}@example.com",
                    f"customer{cid}@example.com",  # ASCII lower case: its own crm.models.email_key
                    "",
                    _adapt_dt(now - timedelta(days=cid % DAYS_OF_HISTORY, minutes=cid % 1440)),
                )
                for cid in range(1, CUSTOMERS + 1)
            ),
        ),
    )

    def orders():
        oid = 0
        for cid in range(1, CUSTOMERS + 1):
            if not customer_has_orders(cid):
                continue
            for k in range(5):
                oid += 1
                yield (oid, cid, _adapt_dt(now - timedelta(days=order_age_days(cid, k), minutes=oid % 1440)), 0)

    step(
        "orders",
        lambda: bulk_insert(Order._meta.db_table, ["id", "customer_id", "order_date", "total_amount"], orders()),
    )

    def lines():
        lid = 0
        for oid in range(1, ORDERS + 1):
            for j in range(2 if oid % 3 == 0 else 1):
                lid += 1
                pid = 1 + (oid * 7919 + j * 104_729) % PRODUCTS
                yield (lid, oid, pid, 1 + (oid + j) % 3, product_price(pid))

    step(
        "order lines (totals by trigger)",
        lambda: bulk_insert(
            OrderLine._meta.db_table, ["id", "order_id", "product_id", "quantity", "unit_price"], lines()
        ),
    )

    def finish():
        with connection.cursor() as cursor:
            for sql in connection.ops.sequence_reset_sql(no_style(), [Product, Customer, Order, OrderLine]):
                cursor.execute(sql)
            cursor.execute(f"CREATE TABLE {CUSTOMER_BACKUP} AS SELECT * FROM {Customer._meta.db_table}")

    step("sequences and backup", finish)
    analyze()
    return timings


def analyze() -> None:
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")


def vacuum(*tables: str) -> None:
    """Reclaim dead rows between runs on PostgreSQL so every run starts from the same state."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"VACUUM ANALYZE {table}")


def set_low_stock(every: int) -> int:
    """Make one product in ``every`` low (stock 0-9) and the rest well stocked; returns the low count."""
    table = Product._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET stock = CASE WHEN id %% %s = 0 THEN (id / %s) %% 10 ELSE 100 + id %% 50 END",
            [every, every],
        )
    vacuum(table)
    return Product.objects.filter(stock__lt=10).count()


def restore_customers() -> None:
    """Undo a cleanup: un-archive everyone, re-insert deleted customers, drop benchmark additions."""
    table = Customer._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE id > %s", [CUSTOMERS])
        cursor.execute(f"UPDATE {table} SET archived_at = NULL WHERE archived_at IS NOT NULL")
        cursor.execute(
            f"INSERT INTO {table} SELECT b.* FROM {CUSTOMER_BACKUP} b "
            f"WHERE NOT EXISTS (SELECT 1 FROM {table} c WHERE c.id = b.id)"
        )
    vacuum(table)
