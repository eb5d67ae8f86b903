"""Builds, grows and resets the benchmark data: raw multi-row inserts (COPY on PostgreSQL), no ORM objects.

The tables grow to each size a curve measures: products 1 … N (``ensure_products``), customers 1 … N with
their orders (``ensure_customers``). Ids are contiguous from 1, so a size is also the highest id.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from decimal import Decimal

from django.core.management.color import no_style
from django.db import connection, transaction

from crm.models import Customer, Order, OrderLine, Product

DAYS_OF_HISTORY = 3 * 365
CLEANUP_DAYS = 365
ORDERS_PER_CUSTOMER = 2  # for the 60% of customers who ordered at all
CUSTOMER_BACKUP = "bench_customer_backup"
STOCK = 10_000  # the stock of a product no figure made low


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


def scalar(sql: str, params=()) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0] or 0


def reset_sequences() -> None:
    with connection.cursor() as cursor:
        for sql in connection.ops.sequence_reset_sql(no_style(), [Product, Customer, Order, OrderLine]):
            cursor.execute(sql)


def product_price(pid: int) -> Decimal:
    return Decimal(1 + pid % 200) + Decimal("0.99")


def customer_has_orders(cid: int) -> bool:
    # 60% of customers ordered (ORDERS_PER_CUSTOMER orders each); 40% never did.
    return cid % 5 < 3


def order_age_days(cid: int, k: int) -> int:
    # Customers with cid % 10 in (0, 1) ordered only long ago (archived by the cleanup); the
    # others ordered within the last year too (their first order).
    if cid % 10 < 2:
        return CLEANUP_DAYS + 1 + (cid * 37 + k * 101) % (DAYS_OF_HISTORY - CLEANUP_DAYS - 1)
    return (cid * 37 + k * 101) % DAYS_OF_HISTORY if k else (cid * 13) % CLEANUP_DAYS


def ensure_products(size: int, now: datetime) -> float:
    """Make the product table hold exactly products 1 … ``size``, all well stocked; returns seconds spent."""
    started = time.perf_counter()
    table = Product._meta.db_table
    count = scalar(f"SELECT COUNT(*) FROM {table}")
    if count == size and _LOW["every"] is None:
        return 0.0
    with transaction.atomic():
        if _LOW["every"] is not None:
            with connection.cursor() as cursor:
                cursor.execute(f"UPDATE {table} SET stock = %s WHERE stock <> %s", [STOCK, STOCK])
        if count > size:
            with connection.cursor() as cursor:
                cursor.execute(f"DELETE FROM {table} WHERE id > %s", [size])
        elif count < size:
            rows = (
                (pid, f"Product {pid}", product_price(pid), STOCK, _adapt_dt(now - timedelta(days=pid % 900)))
                for pid in range(count + 1, size + 1)
            )
            bulk_insert(table, ["id", "name", "price", "stock", "created_at"], rows)
        reset_sequences()
    _LOW["every"] = None
    if count > size:
        vacuum(table, full=True)
    analyze(table)
    return time.perf_counter() - started


def ensure_customers(size: int, now: datetime, *, lines: bool) -> float:
    """Grow the customers to 1 … ``size``, with their orders (and order lines if ``lines``); returns seconds.

    Orders get ids after the highest one, so orders a figure created stay. Order lines (totals by the
    database triggers) are the costly part of a build: the cleanup curve's larger sizes go without them.
    """
    started = time.perf_counter()
    customer, order = Customer._meta.db_table, Order._meta.db_table
    if CUSTOMER_BACKUP in connection.introspection.table_names():
        restore_customers()  # undo a cleanup first: the ids below the highest are all taken again
    with transaction.atomic():
        count = scalar(f"SELECT MAX(id) FROM {customer}")
        if count >= size:
            return 0.0
        new = range(count + 1, size + 1)
        bulk_insert(
            customer,
            ["id", "name", "email", "email_key", "phone", "created_at"],
            (
                (
                    cid,
                    f"Customer {cid}",
                    f"customer{cid}@example.com",
                    f"customer{cid}@example.com",  # email_key(): already NFKC and case-folded
                    "",
                    _adapt_dt(now - timedelta(days=cid % DAYS_OF_HISTORY, minutes=cid % 1440)),
                )
                for cid in new
            ),
        )
        first_order = scalar(f"SELECT MAX(id) FROM {order}") + 1
        orders = [
            (cid, _adapt_dt(now - timedelta(days=order_age_days(cid, k), minutes=(cid + k) % 1440)))
            for cid in new
            if customer_has_orders(cid)
            for k in range(ORDERS_PER_CUSTOMER)
        ]
        ids = range(first_order, first_order + len(orders))
        bulk_insert(
            order,
            ["id", "customer_id", "order_date", "total_amount"],
            ((oid, cid, when, 0) for oid, (cid, when) in zip(ids, orders, strict=True)),
        )
        if lines:
            insert_lines(ids)
        reset_sequences()
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {CUSTOMER_BACKUP}")
            cursor.execute(f"CREATE TABLE {CUSTOMER_BACKUP} AS SELECT * FROM {customer}")
    analyze(customer, order)
    return time.perf_counter() - started


def insert_lines(order_ids: range) -> None:
    """One or two lines an order, quantities 1-3, at the product's price (products 1 … 1,000)."""

    first = scalar(
        f"SELECT MAX(id) FROM {OrderLine._meta.db_table}"
    )  # not inside the generator: COPY holds the connection

    def lines():
        lid = first
        for oid in order_ids:
            for j in range(2 if oid % 3 == 0 else 1):
                lid += 1
                pid = 1 + (oid * 7919 + j * 104_729) % 1000
                yield (lid, oid, pid, 1 + (oid + j) % 3, product_price(pid))

    bulk_insert(OrderLine._meta.db_table, ["id", "order_id", "product_id", "quantity", "unit_price"], lines())


def analyze(*tables: str) -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            for table in tables:  # VACUUM cannot run in a transaction (a test's)
                cursor.execute(f"{'' if connection.in_atomic_block else 'VACUUM '}ANALYZE {table}")
        else:
            cursor.execute("ANALYZE")


def vacuum(*tables: str, full: bool = False) -> None:
    """Reclaim dead rows between runs on PostgreSQL so every run starts from the same state.

    ``full``: rewrite the table compactly. After a larger size, the rows a smaller one keeps are spread
    over the larger size's pages (each restock wrote new row versions at the end), and a plain VACUUM
    cannot give those pages back: every scan of the smaller table would still read all of them.
    """
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"VACUUM {'FULL ' if full else ''}{table}")


_LOW: dict = {"every": None}


def set_low_stock(every: int) -> int:
    """Make one product in ``every`` low (stock 0-9) and the rest well stocked; returns the low count.

    After a restock only the low products changed, so a repeat with the same ``every`` rewrites those alone.
    """
    table = Product._meta.db_table
    with connection.cursor() as cursor:
        if _LOW["every"] == every:
            cursor.execute(f"UPDATE {table} SET stock = (id / %s) %% 10 WHERE id %% %s = 0", [every, every])
        else:
            cursor.execute(
                f"UPDATE {table} SET stock = CASE WHEN id %% %s = 0 THEN (id / %s) %% 10 ELSE %s END",
                [every, every, STOCK],
            )
    _LOW["every"] = every
    vacuum(table)
    return scalar(f"SELECT COUNT(*) FROM {table} WHERE stock < 10")


def restore_customers() -> None:
    """Undo a cleanup: un-archive everyone, re-insert deleted customers, drop benchmark additions."""
    table = Customer._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE id > (SELECT MAX(id) FROM {CUSTOMER_BACKUP})")
        cursor.execute(f"UPDATE {table} SET archived_at = NULL WHERE archived_at IS NOT NULL")
        cursor.execute(
            f"INSERT INTO {table} SELECT b.* FROM {CUSTOMER_BACKUP} b "
            f"WHERE NOT EXISTS (SELECT 1 FROM {table} c WHERE c.id = b.id)"
        )
    vacuum(table)
