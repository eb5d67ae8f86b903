"""Runs every figure on the database of DATABASE_URL and writes the results as JSON.

A figure whose work has a size is a curve (bench/measure.py's ``Curve``): ours and its baseline at every
size, interleaved. ``--memory KEY:SIZE:SIDE`` is the fresh process that measures one side's peak RSS.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import random
import statistics
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import django

from bench.measure import Curve, Figure, log, measure_curve, median_times, peak_rss, unavailable

REPO = Path(__file__).resolve().parent.parent
__all__ = ["Figure", "median_times"]  # bench/hostile.py and bench/http.py build on these

# Sizes of each curve: a decade apart; --quick takes the smaller ones.
SIZES = {
    "1": ([1_000, 10_000, 100_000, 1_000_000], [1_000, 10_000, 100_000]),
    "2": ([1_000, 10_000, 100_000], [100, 1_000, 10_000]),
    "3": ([1, 10, 100], [1, 10, 100]),
    "4": ([10, 100, 1_000], [1, 10, 100]),
    "5": ([10_000, 100_000, 1_000_000], [1_000, 10_000, 100_000]),
    "9": ([1, 10, 100], [1, 10, 100]),
}
BASE_PRODUCTS = 1_000  # the products of every figure after the restock curves (order lines use 1 … 1,000)
ORDER_CUSTOMER = 2  # who places figure 9's orders: a customer with recent orders, so the cleanup is unchanged


@dataclass
class Context:
    runs: int  # timed runs of a point at most (median)
    min_runs: int  # ... and at least, whatever the budget
    budget: float  # seconds a point's timed runs may take, judged from its warm-up round
    quick: bool
    now: datetime
    workdir: str
    explicit: frozenset = frozenset()  # the figures --figures named (bench/fleet.py's 15 runs in --quick only then)

    def sizes(self, key: str) -> list[int]:
        full, quick = SIZES[key]
        return quick if self.quick else full

    def base_customers(self) -> int:
        return self.sizes("5")[0]


def ensure_base(ctx) -> None:
    """Products 1 … 1,000 and the smallest cleanup size of customers, with orders and their lines."""
    from bench import data

    data.ensure_products(BASE_PRODUCTS, ctx.now)
    data.ensure_customers(ctx.base_customers(), ctx.now, lines=True)


# --- availability of code other issues deliver --------------------------------------------------


def root_schema():
    from alx_backend_graphql_crm.schema import schema

    return schema


def schema_has(operation: str, field_name: str) -> bool:
    graphql_schema = root_schema().graphql_schema
    root = graphql_schema.mutation_type if operation == "mutation" else graphql_schema.query_type
    return root is not None and field_name in root.fields


def module_has(module: str, attribute: str | None = None) -> bool:
    try:
        if importlib.util.find_spec(module) is None:
            return False
    except ModuleNotFoundError:
        return False
    return attribute is None or hasattr(importlib.import_module(module), attribute)


# --- GraphQL in-process ---------------------------------------------------------------------------


_USER = []


def bench_user():
    """A superuser, fetched once: permission checks then cost no query, as for a logged-in session."""
    if not _USER:
        from django.contrib.auth import get_user_model

        user, _ = get_user_model().objects.get_or_create(
            username="bench", defaults={"is_staff": True, "is_superuser": True, "email": "bench@example.com"}
        )
        _USER.append(user)
    return _USER[0]


def graphql_execute(document: str, variables: dict | None = None) -> dict:
    """Execute a document in-process as an authenticated superuser; raise on GraphQL errors."""
    from django.test import RequestFactory

    request = RequestFactory().post("/graphql", content_type="application/json")
    request.user = bench_user()
    result = root_schema().execute(document, variable_values=variables, context_value=request)
    if result.errors:
        raise RuntimeError(f"GraphQL errors: {[str(e) for e in result.errors]}")
    return result.data


# --- curves ---------------------------------------------------------------------------------------


def figure_1(ctx) -> Curve:
    from django.db import connection, transaction

    from bench import data
    from crm.models import Product
    from crm.services import restock_low_stock

    fig = Figure("1", "Restock, half the products low", "slower", 1.5)
    fig.ours_label = "restock_low_stock()"
    fig.baseline_label = "UPDATE ... WHERE stock < 10 RETURNING id, name, stock, rows fetched as tuples"
    table = Product._meta.db_table

    def baseline(size):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f'UPDATE "{table}" SET "stock" = "stock" + 10 WHERE "stock" < 10 RETURNING "id", "name", "stock"'
            )
            return len(cursor.fetchall())

    return Curve(
        "1",
        "products",
        ctx.sizes("1"),
        prepare=lambda size: data.ensure_products(size, ctx.now),
        reset=lambda size: data.set_low_stock(2),
        sides={"ours": lambda size: len(restock_low_stock()), "baseline": baseline},
        figures=[(fig, "ours", "baseline")],
    )


def figure_2(ctx) -> Curve | Figure:
    from bench import data
    from crm.models import Product

    fig = Figure("2", "Restock, 1 product in 10 low", "faster", 20)
    fig.ours_label, fig.baseline_label = "updateLowStockProducts mutation", "per-row save() loop"
    if not schema_has("mutation", "updateLowStockProducts"):
        return unavailable(fig, "mutation updateLowStockProducts is not in the schema yet: crm/schema.py")
    document = "mutation { updateLowStockProducts { success message updatedProducts { id name stock } } }"

    def ours(size):
        return len(graphql_execute(document)["updateLowStockProducts"]["updatedProducts"])

    def baseline(size):
        # What most implementations do: load the low products, save each (one autocommit each).
        n = 0
        for product in Product.objects.filter(stock__lt=10):
            product.stock += 10
            product.save()
            n += 1
        return n

    return Curve(
        "2",
        "products",
        ctx.sizes("2"),
        prepare=lambda size: data.ensure_products(size, ctx.now),
        reset=lambda size: data.set_low_stock(10),
        sides={"ours": ours, "baseline": baseline},
        figures=[(fig, "ours", "baseline")],
    )


def orders_page(type_name: str, first: int = 100) -> dict:
    """Figure 3's baseline (and bench/http.py's): allOrders' answer from one select/prefetch ORM query."""
    from django.db.models import Prefetch
    from graphql_relay import to_global_id

    from crm.models import Order, OrderLine

    lines = Prefetch("lines", queryset=OrderLine.objects.select_related("product").order_by("id"))
    orders = Order.objects.select_related("customer").prefetch_related(lines).order_by("id")[:first]
    edges = [
        {
            "node": {
                "id": to_global_id(type_name, order.pk),
                "customer": {"name": order.customer.name},
                # A product is listed once per unit ordered, as the API lists it.
                "products": [{"name": line.product.name} for line in order.lines.all() for _ in range(line.quantity)],
                "totalAmount": str(order.total_amount),
                "orderDate": order.order_date.isoformat(),
            }
        }
        for order in orders
    ]
    return {"allOrders": {"edges": edges}}


def figure_3(ctx) -> Curve | Figure:
    fig = Figure("3", "allOrders(first: N) with customer and products, in-process", "slower", 3)
    fig.ours_label, fig.baseline_label = "allOrders(first: N)", "ORM select/prefetch + json.dumps"
    if not schema_has("query", "allOrders"):
        return unavailable(fig, "query allOrders is not in the schema yet: crm/schema.py")
    import json as jsonlib

    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from graphql_relay import from_global_id

    document = (
        "query($first: Int) { allOrders(first: $first) { edges { node { id customer { name } products { name } "
        "totalAmount orderDate } } } }"
    )
    out: dict = {"queries": {}}

    def ours(size):
        out["ours"] = jsonlib.dumps(graphql_execute(document, {"first": size}))
        return len(jsonlib.loads(out["ours"])["allOrders"]["edges"])

    def baseline(size):
        if "type" not in out:
            ours(1)
            out["type"] = from_global_id(jsonlib.loads(out["ours"])["allOrders"]["edges"][0]["node"]["id"])[0]
        out["baseline"] = jsonlib.dumps(orders_page(out["type"], size))
        return size

    def prepare(size):
        ensure_base(ctx)
        counted = []
        for side in (ours, baseline):
            side(size)
            with CaptureQueriesContext(connection) as captured:
                side(size)
            counted.append(len(captured))
        out["queries"][size] = counted
        if jsonlib.loads(out["ours"]) != jsonlib.loads(out["baseline"]):
            fig.extra["differs"] = f"at {size}: {len(out['ours']):,} vs {len(out['baseline']):,} bytes"

    def finish():
        queries = out["queries"]
        fig.ours_label += f", {'/'.join(str(q[0]) for q in queries.values())} queries"
        fig.baseline_label += f", {'/'.join(str(q[1]) for q in queries.values())} queries"
        if "differs" in fig.extra:
            fig.note = f"the baseline's output differs from ours (format) {fig.extra['differs']}"

    return Curve(
        "3",
        "orders a page",
        ctx.sizes("3"),
        prepare=prepare,
        sides={"ours": ours, "baseline": baseline},
        figures=[(fig, "ours", "baseline")],
        finish=finish,
    )


def _customer_rows(tag: str, n: int) -> list[dict]:
    return [
        {"name": f"Bench {tag} {i}", "email": f"bench.{tag}.{i}@example.org", "phone": "+1234567890"} for i in range(n)
    ]


def figure_4(ctx) -> Curve:
    from bench import data
    from crm.models import Customer
    from crm.services import bulk_create_customers, create_customer

    counter = iter(range(10**9))
    rows: dict[str, list[dict]] = {}

    def reset(size):
        data.restore_customers()
        rows["current"] = _customer_rows(str(next(counter)), size)

    def ours(size):
        result = bulk_create_customers(rows=rows["current"])
        assert not result.errors, result.errors[:3]
        return len(result.customers)

    def bulk(size):
        customers = [Customer(name=r["name"], email=r["email"], phone=r["phone"]) for r in rows["current"]]
        return len(Customer.objects.bulk_create(customers))

    def one_by_one(size):
        for row in rows["current"]:
            create_customer(**row)
        return len(rows["current"])

    sides = {"ours": ours, "bulk_create": bulk, "one_by_one": one_by_one}
    a = Figure("4a", "Create N valid customers", "slower", 3)
    a.ours_label, a.baseline_label = "bulk_create_customers()", "Customer.objects.bulk_create()"
    b = Figure("4b", "Create N valid customers", "faster", 10)
    b.ours_label, b.baseline_label = "bulk_create_customers()", "create_customer() x N"
    figures = [(a, "ours", "bulk_create"), (b, "ours", "one_by_one")]
    c = Figure("4c", "Create N valid customers", "slower", 3)
    c.ours_label, c.baseline_label = "bulkCreateCustomers mutation", "Customer.objects.bulk_create()"
    if schema_has("mutation", "bulkCreateCustomers"):
        document = (
            "mutation($input: [CustomerInput!]!) { bulkCreateCustomers(input: $input) { customers { id } errors } }"
        )

        def mutation(size):
            result = graphql_execute(document, {"input": rows["current"]})["bulkCreateCustomers"]
            assert not result["errors"], result["errors"][:3]
            return len(result["customers"])

        sides["mutation"] = mutation
        figures.append((c, "mutation", "bulk_create"))
    return Curve(
        "4",
        "customers",
        ctx.sizes("4"),
        prepare=lambda size: ensure_base(ctx),
        reset=reset,
        sides=sides,
        figures=figures,
        finish=data.restore_customers,
    )


def figure_5(ctx) -> Curve:
    from django.db import connection, transaction

    from bench import data
    from crm.models import Customer, Order
    from crm.services import clean_inactive_customers

    fig = Figure("5", "Cleanup of inactive customers (2 orders each for 60% of them)", "slower", 2)
    fig.ours_label, fig.baseline_label = "clean_inactive_customers()", "DELETE ... WHERE NOT EXISTS (...)"
    cutoff = ctx.now - data_timedelta(data.CLEANUP_DAYS)
    customer, order = Customer._meta.db_table, Order._meta.db_table
    archived = {}

    def ours(size):
        result = clean_inactive_customers(days=data.CLEANUP_DAYS, now=ctx.now)
        archived[size] = result.archived
        return result.deleted

    def baseline(size):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f'DELETE FROM "{customer}" WHERE "archived_at" IS NULL AND "created_at" < %s '
                f'AND NOT EXISTS (SELECT 1 FROM "{order}" o WHERE o."customer_id" = "{customer}"."id")',
                [connection.ops.adapt_datetimefield_value(cutoff)],
            )
            return cursor.rowcount

    def finish():
        data.restore_customers()
        if archived:
            size = max(archived)
            fig.note = f"at {size:,}, ours also archives {archived[size]:,} customers with only old orders"

    return Curve(
        "5",
        "customers",
        ctx.sizes("5"),
        prepare=lambda size: data.ensure_customers(size, ctx.now, lines=size <= ctx.base_customers()),
        reset=lambda size: data.restore_customers(),
        sides={"ours": ours, "baseline": baseline},
        figures=[(fig, "ours", "baseline")],
        finish=finish,
    )


def figure_9(ctx) -> Curve:
    from django.db import connection, transaction
    from django.db.models import F

    from bench import data
    from crm.models import Order, OrderLine, Product
    from crm.services import create_order

    fig = Figure("9", "Create an order of N products", "slower", 2)
    fig.ours_label = "create_order()"
    fig.baseline_label = "ORM: prices read, Order + bulk_create lines + one F() stock UPDATE"

    def ours(size):
        create_order(customer_id=ORDER_CUSTOMER, product_ids=list(range(1, size + 1)))
        return size

    def baseline(size):
        ids = list(range(1, size + 1))
        with transaction.atomic():
            prices = dict(Product.objects.filter(pk__in=ids).values_list("pk", "price"))
            order = Order.objects.create(customer_id=ORDER_CUSTOMER, order_date=ctx.now)
            OrderLine.objects.bulk_create(
                [OrderLine(order=order, product_id=pid, quantity=1, unit_price=prices[pid]) for pid in ids]
            )
            Product.objects.filter(pk__in=ids).update(stock=F("stock") - 1)
        return len(ids)

    def prepare(size):
        ensure_base(ctx)
        with connection.cursor() as cursor:
            cursor.execute(f"UPDATE {Product._meta.db_table} SET stock = %s WHERE id <= %s", [data.STOCK, size])

    return Curve(
        "9",
        "products an order",
        ctx.sizes("9"),
        prepare=prepare,
        sides={"ours": ours, "baseline": baseline},
        figures=[(fig, "ours", "baseline")],
    )


def data_timedelta(days):
    from datetime import timedelta

    return timedelta(days=days)


# --- single points --------------------------------------------------------------------------------


def fresh_minutes(ctx):
    """Future minutes no run has claimed yet (random days ahead, so reruns on one database work too)."""
    from datetime import timedelta

    start = ctx.now.replace(second=0, microsecond=0) + timedelta(days=1 + random.randrange(100_000))  # noqa: S311 - not a secret
    return iter(start + timedelta(minutes=k) for k in range(1_000_000))


def _time_processes(commands, *, env: dict, runs: int) -> list[float]:
    """Median wall time of each command as a whole process, interleaved; the first round is warm-up.

    A command may be a callable returning the argv, so each run can differ (a fresh cron minute).
    """
    samples: list[list[float]] = [[] for _ in commands]
    for run in range(runs + 1):
        for index, command in enumerate(commands):
            argv = command() if callable(command) else command
            started = time.perf_counter()
            completed = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True)
            elapsed = time.perf_counter() - started
            if completed.returncode != 0 or "not run again" in completed.stdout:
                last = (completed.stderr.strip() or completed.stdout.strip()).splitlines()[-1:]
                raise RuntimeError(f"`{' '.join(argv[1:])}` exited {completed.returncode}: {' '.join(last)}")
            if run:
                samples[index].append(elapsed)
    return [statistics.median(s) for s in samples]


def figure_6(ctx) -> Figure:
    fig = Figure("6", "One heartbeat as cron runs it, a whole process", "slower", 1.3)
    fig.baseline_label = "python -c 'import django; django.setup()'"
    if not module_has("cronjobs.runner", "run") or not (REPO / "cronjobs/management/commands/crontab.py").exists():
        return unavailable(fig, "scheduling engine: cronjobs/runner.py and `manage.py crontab run`")

    from django.conf import settings

    env = dict(os.environ)
    job = "log_crm_heartbeat"
    heartbeat = module_has("crm.cron", "log_crm_heartbeat") and any(
        "crm.cron.log_crm_heartbeat" in str(entry) for entry in settings.CRONJOBS
    )
    if heartbeat:
        env["DJANGO_SETTINGS_MODULE"] = "alx_backend_graphql_crm.settings"  # the product's own settings
    else:
        job = "bench_noop"
        fig.note = "log_crm_heartbeat is not in CRONJOBS yet (crm/cron.py): measured `crontab run` of a no-op job"
    fig.ours_label = f"manage.py crontab run {job}"
    # Installed crontab lines run `crontab run <job> --scheduled`, claiming the current minute;
    # repeated runs within one minute would be refused as duplicates, so each run claims its own
    # (future) minute through --scheduled-for: the same path, a fresh slot every time.
    minutes = fresh_minutes(ctx)

    def ours_cmd():
        return [sys.executable, "manage.py", "crontab", "run", job, "--scheduled-for", next(minutes).isoformat()]

    boot_cmd = [sys.executable, "-c", "import django; django.setup()"]
    runs = 2 if ctx.quick else max(5, ctx.runs * 2)
    fig.ours, fig.baseline = _time_processes([ours_cmd, boot_cmd], env=env, runs=runs)
    fig.runs = runs
    # Which heavy modules the job's process imports that it should not need.
    argv = ours_cmd()
    traced = subprocess.run([argv[0], "-X", "importtime", *argv[1:]], env=env, cwd=REPO, capture_output=True, text=True)
    modules = {line.rsplit("|", 1)[1].strip() for line in traced.stderr.splitlines() if "|" in line}
    imported = modules | {name.split(".")[0] for name in modules}
    unwanted = sorted(imported & {"celery", "kombu", "gql", "requests", "graphene_django.views"})
    fig.extra["unwanted_imports"] = unwanted
    check = (
        f"imports {', '.join(unwanted)}"
        if unwanted
        else "Celery, kombu, gql, requests and GraphiQL's view are not imported"
    )
    fig.note = "; ".join(filter(None, [fig.note, f"the job's process: {check} (python -X importtime)"]))
    return fig


def figure_7(ctx) -> Figure:
    fig = Figure("7", "Runner overhead, per run", "custom")
    fig.target_label = "≤ 3 SQL queries per run"
    fig.ours_label, fig.baseline_label = "runner.run(no-op job, its minute)", "calling the no-op directly"
    if not module_has("cronjobs.runner", "run"):
        return unavailable(fig, "scheduling engine: cronjobs/runner.py")

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from cronjobs import runner, supervisor
    from cronjobs.registry import get_job

    job = get_job("bench_noop")
    target = job.resolve()
    # Distinct future minutes: every run claims a fresh (job, minute) slot, as cron's runs do.
    minutes = fresh_minutes(ctx)

    def claimed():
        record = runner.run(job, scheduled_for=next(minutes), trigger="crontab")
        assert record.status == "succeeded", (record.status, record.result)

    def unclaimed():
        runner.run(job, trigger="manual")

    def child():  # the job's own process alone: fork, two pipes, the watchdog thread, the result, the wait
        outcome = supervisor.Supervisor(job, None).execute()
        assert outcome.status == "succeeded", outcome

    runs = ctx.runs * 20
    t_claimed, t_unclaimed, t_child, t_direct = median_times([claimed, unclaimed, child, target], runs=runs)

    def statements(fn):
        with CaptureQueriesContext(connection) as captured:
            fn()
        sql = [q["sql"].split(None, 1)[0].upper() for q in captured.captured_queries]
        control = sum(word in {"BEGIN", "SAVEPOINT", "RELEASE", "ROLLBACK", "COMMIT"} for word in sql)
        return len(sql) - control, control

    q_claimed, c_claimed = statements(claimed)
    q_unclaimed, _ = statements(unclaimed)
    fig.ours, fig.baseline, fig.runs = t_claimed, t_direct, runs
    fig.met = q_claimed <= 3
    fig.ours_label += f": {q_claimed} queries"
    fig.extra = {
        "queries": q_claimed,
        "transaction_statements": c_claimed,
        "queries_unclaimed": q_unclaimed,
        "unclaimed_seconds": t_unclaimed,
        "child_process_seconds": t_child,
        "ratio_text": f"+{(t_claimed - t_direct) * 1000:.2f} ms, {q_claimed} queries",
    }
    fig.note = (
        f"{q_claimed} SQL queries per run (plus {c_claimed} BEGIN/COMMIT-type transaction statements); "
        f"the job's own supervised child process costs {t_child * 1000:.2f} ms of it (fork, pipes, watchdog, "
        f"result, wait: supervisor.Supervisor(job, None).execute()), the queries the rest; "
        f"a manual run without a slot: {t_unclaimed * 1000:.2f} ms, {q_unclaimed} queries"
    )
    return fig


def figure_8(ctx) -> Figure:
    """Hostile GraphQL documents vs `{ hello }` (issue 12's bench/hostile.py), when it is there."""
    if not module_has("bench.hostile", "figure_8"):
        fig = Figure("8", "Hostile documents just inside the limits, through the view", "slower", 20)
        return unavailable(fig, "bench/hostile.py")
    from bench.hostile import figure_8 as hostile

    return hostile(ctx)


def fleet_figures() -> dict:
    """bench/fleet.py's figures (issue 26: the engine at 10-10,000 declared jobs)."""
    from bench import fleet

    return fleet.FIGURES


FIGURES = {
    "1": figure_1,
    "2": figure_2,
    "3": figure_3,
    "4": figure_4,
    "5": figure_5,
    "6": figure_6,
    "7": figure_7,
    "8": figure_8,
    "9": figure_9,
    **fleet_figures(),
}
# Execution order: the restock curves while no order references a product, the fleet figures (their own
# tables), the cleanup's growing customers last.
ORDER = ["1", "2", "3", "4", "9", "6", "7", "8", "10", "11", "12", "13", "14", "15", "5"]


def run_figure(key: str, ctx) -> list[Figure]:
    produced = FIGURES[key](ctx)
    figures = []
    for item in produced if isinstance(produced, list) else [produced]:
        item = measure_curve(item, ctx) if isinstance(item, Curve) else item
        figures += item if isinstance(item, list) else [item]
    for figure in figures:
        if figure.status == "ok" and figure.met is None:
            figure.judge()
    return figures


def memory_main(spec: str, ctx, out: Path) -> int:
    """The fresh process of one peak-RSS measurement: one side of a curve, once, at one size."""
    key, size, side = spec.split(":")
    curves = FIGURES[key[:2]](ctx) if key[:2] in fleet_figures() else FIGURES[key](ctx)
    curve = next(c for c in (curves if isinstance(curves, list) else [curves]) if c.key == key)
    size = int(size)
    curve.prepare(size)
    if curve.reset:
        curve.reset(size)
    record = peak_rss(lambda: curve.sides[side](size))
    out.write_text(json.dumps({"size": size, "side": side, **record}))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="the smaller sizes, a shorter time per point")
    parser.add_argument("--figures", default="")
    parser.add_argument("--memory", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    now = timezone.now().replace(microsecond=0)
    workdir = Path(args.out).parent
    ctx = Context(
        runs=args.runs,
        min_runs=2 if args.quick else 5,
        budget=3.0 if args.quick else 30.0,
        quick=args.quick,
        now=now,
        workdir=str(workdir),
        explicit=frozenset(filter(None, args.figures.split(","))),
    )
    if args.memory:
        return memory_main(args.memory, ctx, Path(args.out))

    report: dict = {"vendor": connection.vendor, "setup": {}, "figures": [], "quick": args.quick}
    with connection.cursor() as cursor:
        cursor.execute("SELECT sqlite_version()" if connection.vendor == "sqlite" else "SHOW server_version")
        report["db_version"] = cursor.fetchone()[0]
    started = time.perf_counter()
    call_command("migrate", verbosity=0, interactive=False)
    report["setup"]["migrate"] = time.perf_counter() - started
    log(f"  setup migrate: {report['setup']['migrate']:.1f} s")
    # As the product's web processes do on start-up (wsgi.py): the in-process figures then measure the
    # services as they run there, not full collections of the bench's own start-up heap.
    from alx_backend_graphql_crm.heap import freeze_startup_heap

    log(f"  setup froze {freeze_startup_heap():,} start-up objects (gc.freeze, as wsgi.py does)")

    wanted = set(filter(None, args.figures.split(","))) or set(FIGURES)
    for key in [k for k in ORDER if k in wanted]:
        started = time.perf_counter()
        try:
            figures = run_figure(key, ctx)
        except Exception as exc:  # a broken figure is reported, the others still run
            traceback.print_exc()
            note = f"error: {exc}".splitlines()[0][:300]
            figures = [Figure(key, f"figure {key}", "custom", status="error", note=note)]
        elapsed = time.perf_counter() - started
        for figure in figures:
            figure.extra["seconds"] = elapsed
            report["figures"].append(asdict(figure))
        log(f"  figure {key}: {elapsed:.1f} s")
    Path(args.out).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
