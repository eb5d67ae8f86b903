"""Runs every figure on the database of DATABASE_URL and writes the results as JSON."""

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
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import django

from bench import hostile

REPO = Path(__file__).resolve().parent.parent


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Figure:
    """One row of the table. ``kind`` says how the ratio reads against the target."""

    number: str
    title: str
    kind: str  # "slower" (ours/baseline <= target), "faster" (baseline/ours >= target), "custom"
    target: float | None = None
    ours: float | None = None  # seconds (median)
    baseline: float | None = None  # seconds (median)
    runs: int = 0
    ours_label: str = ""
    baseline_label: str = ""
    target_label: str = ""
    met: bool | None = None
    status: str = "ok"  # ok | unavailable | error
    note: str = ""
    extra: dict = field(default_factory=dict)

    def judge(self) -> None:
        if self.kind == "slower":
            self.met = self.ours / self.baseline <= self.target
        elif self.kind == "faster":
            self.met = self.baseline / self.ours >= self.target


def median_times(functions, *, runs: int, reset=None, warmup: bool = True) -> list[float]:
    """Median seconds of each function; they alternate (in rotating order) after ``reset()``.

    Interleaving puts ours and the baseline under the same cache, WAL and vacuum conditions.
    """
    samples: list[list[float]] = [[] for _ in functions]
    if warmup:
        for fn in functions:
            if reset:
                reset()
            fn()
    for run in range(runs):
        order = list(range(len(functions)))
        order = order[run % len(order) :] + order[: run % len(order)]
        for index in order:
            if reset:
                reset()
            started = time.perf_counter()
            functions[index]()
            samples[index].append(time.perf_counter() - started)
    return [statistics.median(s) for s in samples]


def unavailable(figure: Figure, missing: str) -> Figure:
    figure.status = "unavailable"
    figure.note = f"not available yet ({missing})"
    return figure


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


# --- figures --------------------------------------------------------------------------------------


def figure_1(ctx) -> Figure:
    from django.db import connection, transaction

    from bench import data
    from crm.models import Product
    from crm.services import restock_low_stock

    fig = Figure("1", "Restock 100,000 products, 50,000 low", "slower", 1.5)
    fig.ours_label = "restock_low_stock()"
    fig.baseline_label = "UPDATE ... WHERE stock < 10 RETURNING id, name, stock, rows fetched as tuples"
    table = Product._meta.db_table
    counts = {}

    def ours():
        counts["ours"] = len(restock_low_stock())

    def baseline():
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f'UPDATE "{table}" SET "stock" = "stock" + 10 WHERE "stock" < 10 RETURNING "id", "name", "stock"'
            )
            counts["baseline"] = len(cursor.fetchall())

    low = data.set_low_stock(2)
    fig.ours, fig.baseline = median_times([ours, baseline], runs=ctx.runs, reset=lambda: data.set_low_stock(2))
    fig.runs = ctx.runs
    fig.extra = {"low": low, **counts}
    if not (counts["ours"] == counts["baseline"] == low):
        fig.note = f"row counts differ: {counts}, low {low}"
    return fig


def figure_2(ctx) -> Figure:
    from bench import data
    from crm.models import Product

    fig = Figure("2", "Restock 10,000 low of 100,000 products", "faster", 20)
    fig.ours_label, fig.baseline_label = "updateLowStockProducts mutation", "per-row save() loop"
    if not schema_has("mutation", "updateLowStockProducts"):
        return unavailable(fig, "mutation updateLowStockProducts is not in the schema yet: crm/schema.py")
    document = "mutation { updateLowStockProducts { success message updatedProducts { id name stock } } }"
    counts = {}

    def ours():
        result = graphql_execute(document)["updateLowStockProducts"]
        counts["ours"] = len(result["updatedProducts"])

    def baseline():
        # What most implementations do: load the low products, save each (one autocommit each).
        n = 0
        for product in Product.objects.filter(stock__lt=10):
            product.stock += 10
            product.save()
            n += 1
        counts["baseline"] = n

    low = data.set_low_stock(10)
    runs = max(3, ctx.runs // 2)
    fig.ours, fig.baseline = median_times([ours, baseline], runs=runs, reset=lambda: data.set_low_stock(10))
    fig.runs = runs
    fig.extra = {"low": low, **counts}
    if not (counts["ours"] == counts["baseline"] == low):
        fig.note = f"row counts differ: {counts}, low {low}"
    return fig


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


def figure_3(ctx) -> Figure:
    fig = Figure("3", "allOrders(first: 100) with customer and products, in-process", "slower", 3)
    fig.ours_label, fig.baseline_label = "allOrders(first: 100)", "ORM select/prefetch + json.dumps"
    if not schema_has("query", "allOrders"):
        return unavailable(fig, "query allOrders is not in the schema yet: crm/schema.py")
    import json as jsonlib

    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from graphql_relay import from_global_id

    document = (
        "query { allOrders(first: 100) { edges { node { id customer { name } products { name } "
        "totalAmount orderDate } } } }"
    )
    out = {}

    def ours():
        out["ours"] = jsonlib.dumps(graphql_execute(document))

    ours()
    type_name = from_global_id(jsonlib.loads(out["ours"])["allOrders"]["edges"][0]["node"]["id"])[0]

    def baseline():
        out["baseline"] = jsonlib.dumps(orders_page(type_name))

    fig.runs = ctx.runs * 4
    fig.ours, fig.baseline = median_times([ours, baseline], runs=fig.runs)
    with CaptureQueriesContext(connection) as ours_q:
        ours()
    with CaptureQueriesContext(connection) as base_q:
        baseline()
    fig.extra = {"queries_ours": len(ours_q), "queries_baseline": len(base_q)}
    fig.ours_label += f", {len(ours_q)} queries"
    fig.baseline_label += f", {len(base_q)} queries"
    counts = [q["sql"] for q in ours_q.captured_queries if q["sql"].startswith("SELECT COUNT(*)")]
    if counts:
        with CaptureQueriesContext(connection) as count_q, connection.cursor() as cursor:
            cursor.execute(counts[0])
        fig.extra["count_seconds"] = float(count_q.captured_queries[0]["time"])
        count_ms = float(count_q.captured_queries[0]["time"]) * 1000
        fig.note = f"ours includes the connection's SELECT COUNT(*) over every order ({count_ms:.1f} ms)"
    if jsonlib.loads(out["ours"]) != jsonlib.loads(out["baseline"]):
        fig.note += "; the baseline's output differs from ours (format), sizes: "
        fig.note += f"{len(out['ours']):,} vs {len(out['baseline']):,} bytes"
    return fig


def _customer_rows(tag: str, n: int = 1000) -> list[dict]:
    return [
        {"name": f"Bench {tag} {i}", "email": f"bench.{tag}.{i}@example.org", "phone": "+1234567890"} for i in range(n)
    ]


def figure_4(ctx) -> list[Figure]:
    from bench import data
    from crm.models import Customer
    from crm.services import bulk_create_customers, create_customer

    counter = iter(range(1_000_000))
    rows: dict[str, list[dict]] = {}
    counts = {}

    def reset():
        data.restore_customers()
        rows["current"] = _customer_rows(str(next(counter)))

    def ours():
        result = bulk_create_customers(rows=rows["current"])
        counts["ours"] = len(result.customers)
        assert not result.errors, result.errors[:3]

    def bulk():
        created = Customer.objects.bulk_create(
            [Customer(name=r["name"], email=r["email"], phone=r["phone"]) for r in rows["current"]]
        )
        counts["bulk_create"] = len(created)

    def one_by_one():
        for row in rows["current"]:
            create_customer(**row)
        counts["one_by_one"] = len(rows["current"])

    runs = ctx.runs
    t_ours, t_bulk, t_single = median_times([ours, bulk, one_by_one], runs=runs, reset=reset)
    data.restore_customers()
    a = Figure("4a", "Create 1,000 valid customers", "slower", 3)
    a.ours_label, a.baseline_label = "bulk_create_customers()", "Customer.objects.bulk_create()"
    a.ours, a.baseline, a.runs = t_ours, t_bulk, runs
    b = Figure("4b", "Create 1,000 valid customers", "faster", 10)
    b.ours_label, b.baseline_label = "bulk_create_customers()", "create_customer() x 1,000"
    b.ours, b.baseline, b.runs = t_ours, t_single, runs
    figures = [a, b]

    c = Figure("4c", "Create 1,000 valid customers", "slower", 3)
    c.ours_label, c.baseline_label = "bulkCreateCustomers mutation", "Customer.objects.bulk_create()"
    if not schema_has("mutation", "bulkCreateCustomers"):
        figures.append(unavailable(c, "mutation bulkCreateCustomers is not in the schema yet: crm/schema.py"))
        return figures
    document = "mutation($input: [CustomerInput!]!) { bulkCreateCustomers(input: $input) { customers { id } errors } }"

    def mutation():
        result = graphql_execute(document, {"input": rows["current"]})["bulkCreateCustomers"]
        assert not result["errors"], result["errors"][:3]
        counts["mutation"] = len(result["customers"])

    t_mut, t_bulk2 = median_times([mutation, bulk], runs=runs, reset=reset)
    data.restore_customers()
    c.ours, c.baseline, c.runs = t_mut, t_bulk2, runs
    figures.append(c)
    return figures


def figure_5(ctx) -> Figure:
    from django.db import connection, transaction

    from bench import data
    from crm.models import Customer, Order
    from crm.services import clean_inactive_customers

    fig = Figure("5", "Cleanup, 100,000 customers and 300,000 orders", "slower", 2)
    fig.ours_label, fig.baseline_label = "clean_inactive_customers()", "DELETE ... WHERE NOT EXISTS (...)"
    now = ctx.now
    cutoff = now - data_timedelta(data.CLEANUP_DAYS)
    customer, order = Customer._meta.db_table, Order._meta.db_table
    counts = {}

    def ours():
        result = clean_inactive_customers(days=data.CLEANUP_DAYS, now=now)
        counts["ours_deleted"], counts["ours_archived"] = result.deleted, result.archived

    def baseline():
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f'DELETE FROM "{customer}" WHERE "archived_at" IS NULL AND "created_at" < %s '
                f'AND NOT EXISTS (SELECT 1 FROM "{order}" o WHERE o."customer_id" = "{customer}"."id")',
                [connection.ops.adapt_datetimefield_value(cutoff)],
            )
            counts["baseline_deleted"] = cursor.rowcount

    fig.ours, fig.baseline = median_times([ours, baseline], runs=ctx.runs, reset=data.restore_customers)
    data.restore_customers()
    fig.runs = ctx.runs
    fig.extra = counts
    fig.note = (
        f"ours deletes {counts['ours_deleted']:,} and also archives {counts['ours_archived']:,} customers "
        f"with only old orders; the baseline only deletes ({counts['baseline_deleted']:,})"
    )
    if counts["ours_deleted"] != counts["baseline_deleted"]:
        fig.note += " -- DELETED COUNTS DIFFER"
    return fig


def data_timedelta(days):
    from datetime import timedelta

    return timedelta(days=days)


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
    runs = max(5, ctx.runs * 2)
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

    from cronjobs import runner
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

    runs = ctx.runs * 20
    t_claimed, t_unclaimed, t_direct = median_times([claimed, unclaimed, target], runs=runs)

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
        "ratio_text": f"+{(t_claimed - t_direct) * 1000:.2f} ms, {q_claimed} queries",
    }
    fig.note = (
        f"{q_claimed} SQL queries per run (plus {c_claimed} BEGIN/COMMIT-type transaction statements); "
        f"a manual run without a slot: {t_unclaimed * 1000:.2f} ms, {q_unclaimed} queries"
    )
    return fig


FIGURES = {"1": figure_1, "2": figure_2, "3": figure_3, "4": figure_4, "5": figure_5, "6": figure_6, "7": figure_7}
FIGURES["8"] = hostile.figure_8  # self-contained in bench/hostile.py


@dataclass
class Context:
    runs: int
    now: datetime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--figures", default=",".join(FIGURES))
    args = parser.parse_args()

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from bench import data

    report: dict = {"vendor": connection.vendor, "setup": {}, "figures": []}
    with connection.cursor() as cursor:
        cursor.execute("SELECT sqlite_version()" if connection.vendor == "sqlite" else "SHOW server_version")
        report["db_version"] = cursor.fetchone()[0]
    started = time.perf_counter()
    call_command("migrate", verbosity=0, interactive=False)
    report["setup"]["migrate"] = time.perf_counter() - started
    log(f"  setup migrate: {report['setup']['migrate']:.1f} s")
    now = timezone.now().replace(microsecond=0)
    report["setup"].update(data.build(now, log))
    ctx = Context(runs=args.runs, now=now)

    for key in args.figures.split(","):
        started = time.perf_counter()
        try:
            produced = FIGURES[key](ctx)
        except Exception as exc:  # a broken figure is reported, the others still run
            traceback.print_exc()
            produced = Figure(key, f"figure {key}", "custom", status="error", note=f"error: {exc}"[:300])
        for figure in produced if isinstance(produced, list) else [produced]:
            if figure.status == "ok" and figure.met is None:
                figure.judge()
            report["figures"].append(asdict(figure))
        log(f"  figure {key}: {time.perf_counter() - started:.1f} s")
    Path(args.out).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
