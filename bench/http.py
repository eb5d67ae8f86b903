"""HTTP throughput through gunicorn (`make bench`): /graphql against plain Django views serving the same JSON.

gunicorn runs the project as `make serve` does (gunicorn.conf.py: uvicorn workers, the WSGI app in threads)
with 2 workers (bench/http_settings.py adds two bench-only views to the
product's URLs); a keep-alive client on the same machine sends requests over CONNECTIONS connections for a
fixed time, alternating ours and the baseline, and the figure is the ratio of requests per second. With one
connection per worker, both connections were at times accepted by the same worker while the other idled: the
same figure measured 680 or 1,285 req/s from one round to the next. Four a worker keep both busy.

- allOrders(first: 100) with customers and products, POSTed with an API token, vs a view running the same
  ORM query (figure 3's baseline) and returning the same JSON, with the same token: target <= 2x.
- `{ hello }` as an anonymous GET vs a JsonResponse view: target <= 1.5x.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ORDERS = (
    "query { allOrders(first: 100) { edges { node { id customer { name } products { name } "
    "totalAmount orderDate } } } }"
)
TARGETS = {"orders": 2.0, "hello": 1.5}
WORKERS = 2
CONNECTIONS = 4 * WORKERS


@dataclass
class Endpoint:
    method: str
    path: str
    body: bytes | None
    headers: dict


def post(path: str, token: str | None, query: str | None = None) -> Endpoint:
    """A JSON POST: a GraphQL document to /graphql, or an empty object to a baseline view."""
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    return Endpoint("POST", path, json.dumps({"query": query} if query else {}).encode(), headers)


def get(path: str) -> Endpoint:
    """An anonymous GET (no CSRF token, no session, no database)."""
    return Endpoint("GET", path, None, {"Accept": "application/json"})


def fetch(port: int, endpoint: Endpoint) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request(endpoint.method, endpoint.path, endpoint.body, endpoint.headers)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    if response.status != 200:
        raise RuntimeError(f"{endpoint.method} {endpoint.path}: HTTP {response.status}: {body[:300]!r}")
    return json.loads(body)


def throughput(port: int, endpoint: Endpoint, seconds: float, connections: int) -> tuple[int, float]:
    """(requests answered, seconds taken) over `connections` keep-alive connections for about `seconds`."""
    counts = [0] * connections
    errors: list[str] = []
    stop = time.perf_counter() + seconds

    def client(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            while time.perf_counter() < stop:
                conn.request(endpoint.method, endpoint.path, endpoint.body, endpoint.headers)
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    errors.append(f"HTTP {response.status}")
                    return
                counts[i] += 1
        finally:
            conn.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"{endpoint.path}: {errors[0]}")
    return sum(counts), time.perf_counter() - started


def workers_cpu(master: int) -> float:
    """CPU seconds (user + system) used so far by the gunicorn master's worker processes."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # a process that ended meanwhile
        if int(fields[1]) == master:  # ppid
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def seed_and_token() -> str:
    """In the gunicorn's database: migrate, a few thousand orders, a user who may read them; its token."""
    import django

    django.setup()
    from datetime import timedelta
    from decimal import Decimal

    from django.contrib.auth.models import Permission, User
    from django.core.management import call_command
    from django.utils import timezone

    from crm.models import ApiToken, Customer, Order, OrderLine, Product

    call_command("migrate", verbosity=0, interactive=False)
    now = timezone.now()
    customers = Customer.objects.bulk_create(
        [Customer(name=f"Customer {i}", email=f"c{i}@example.com") for i in range(500)]
    )
    products = Product.objects.bulk_create(
        [Product(name=f"Product {i}", price=Decimal(10 + i % 90) + Decimal("0.99"), stock=100) for i in range(200)]
    )
    orders = Order.objects.bulk_create(
        [Order(customer=customers[i % 500], order_date=now - timedelta(hours=i)) for i in range(2000)]
    )
    OrderLine.objects.bulk_create(
        [
            OrderLine(order=order, product=products[(i * 7 + k) % 200], quantity=1 + k, unit_price=Decimal("10.99"))
            for i, order in enumerate(orders)
            for k in range(2)
        ]
    )
    user = User.objects.create_user("bench-http", password=None)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_order", "view_customer", "view_product"]))
    return ApiToken.issue(user=user, name="bench http")[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(env: dict, port: int) -> subprocess.Popen:
    # What `make serve` runs (gunicorn.conf.py: uvicorn's event loop, the WSGI app in threads), with keep-alive
    # connections kept between the client's requests.
    command = [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "--workers", str(WORKERS)]
    command += ["--keep-alive", "30", "--bind", f"127.0.0.1:{port}"]
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited: {process.stderr.read().decode()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError("gunicorn did not start within 120 s")


def measure(database_url: str, *, seconds: float, rounds: int, log) -> dict:
    """Both figures on one database; returns {"orders": {...}, "hello": {...}} with requests/s and ratios.

    Each of `rounds` pairs times ours and the baseline back to back for `seconds` each (the order
    alternating); the ratio is the median of the pairs' ratios, so a stretch in which this shared
    machine runs slower weighs on both sides. The workers' CPU time per request is read from /proc
    beside it: the same comparison without the client's share of the machine.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRM_", "CRONTAB_"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "bench.http_settings",
            "DJANGO_SECRET_KEY": "bench-only-insecure-key",
            "DJANGO_DEBUG": "0",
            "DATABASE_URL": database_url,
            # As docs/deploy.md advises under gunicorn: a worker keeps its database connection.
            "DATABASE_CONN_MAX_AGE": "60",
            "CRM_ENV_FILE": os.devnull,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
        }
    )
    seeded = subprocess.run(
        [sys.executable, "-c", "from bench.http import seed_and_token; print(seed_and_token())"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if seeded.returncode != 0:
        raise RuntimeError(f"seeding failed: {seeded.stderr[-2000:]}")
    token = seeded.stdout.strip().splitlines()[-1]
    port = free_port()
    server = start_gunicorn(env, port)
    try:
        pairs = {
            "orders": (post("/graphql", token, ORDERS), post("/bench/orders", token)),
            "hello": (get("/graphql?query=%7B%20hello%20%7D"), get("/bench/hello")),
        }
        results = {}
        for name, (ours, baseline) in pairs.items():
            same = fetch(port, ours) == fetch(port, baseline)
            throughput(port, ours, 1, CONNECTIONS)  # warm-up: connections, imports, query plans
            throughput(port, baseline, 1, CONNECTIONS)
            rates: dict[str, list[float]] = {"ours": [], "baseline": []}
            cpu = {"ours": [0.0, 0], "baseline": [0.0, 0]}  # worker CPU seconds, requests
            for i in range(rounds):
                order = ("ours", "baseline") if i % 2 == 0 else ("baseline", "ours")
                for which in order:
                    endpoint = ours if which == "ours" else baseline
                    before = workers_cpu(server.pid)
                    count, elapsed = throughput(port, endpoint, seconds, CONNECTIONS)
                    cpu[which][0] += workers_cpu(server.pid) - before
                    cpu[which][1] += count
                    rates[which].append(count / elapsed)
            paired = [b / o for o, b in zip(rates["ours"], rates["baseline"], strict=True)]
            results[name] = {
                "ours": statistics.median(rates["ours"]),
                "baseline": statistics.median(rates["baseline"]),
                "ratio": statistics.median(paired),
                "cpu_ours": cpu["ours"][0] / max(cpu["ours"][1], 1),
                "cpu_baseline": cpu["baseline"][0] / max(cpu["baseline"][1], 1),
                "same": same,
            }
            log(
                f"  http {name}: ours {results[name]['ours']:.0f} req/s, baseline {results[name]['baseline']:.0f} "
                f"req/s, paired ratio {results[name]['ratio']:.2f}"
            )
        return results
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)


def render(results: dict, *, database: str, seconds: float, rounds: int, load: tuple, uptime: str) -> str:
    titles = {
        "orders": ("allOrders(first: 100) with customer and products, API token", "plain view, same ORM query"),
        "hello": ("{ hello }", "JsonResponse"),
    }
    lines = [
        "## HTTP through gunicorn (bench/http.py)",
        "",
        f"gunicorn as `make serve` runs it, {WORKERS} workers (uvicorn, the WSGI app in threads; keep-alive), on "
        f"{database}; the client on the same "
        f"machine: {CONNECTIONS} keep-alive connections; `DATABASE_CONN_MAX_AGE=60` as docs/deploy.md advises;"
        f" {rounds} pairs of {seconds:g} s slices, ours and the baseline back to back (the order alternating); "
        "the median requests/s of each. Ratio: the median of the pairs' baseline req/s / ours (a stretch in which "
        "this shared machine runs slower weighs on both). Worker CPU a request: the gunicorn workers' user + "
        "system time (/proc) over the requests they answered, the same comparison without the client. The "
        "baselines are bench-only views (bench/http_urls.py) behind the same middleware.",
        "",
        f"- Load before the run (`uptime`): {uptime}",
        "- Load average (1, 5, 15 min) after: " + ", ".join(f"{x:.1f}" for x in load),
        "",
        "| figure | ours | baseline | ratio | target | met | worker CPU a request: ours / baseline |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, result in results.items():
        ours, baseline = titles[name]
        met = "met" if result["ratio"] <= TARGETS[name] else "**not met**"
        lines.append(
            f"| {ours} vs {baseline} | {result['ours']:.0f} req/s | {result['baseline']:.0f} req/s | "
            f"{result['ratio']:.2f}x | ≤ {TARGETS[name]:g}x | {met} | "
            f"{result['cpu_ours'] * 1e6:,.0f} µs / {result['cpu_baseline'] * 1e6:,.0f} µs |"
        )
    differ = [name for name, result in results.items() if not result["same"]]
    if differ:
        lines += ["", f"Note: the baseline's JSON differs from ours for {', '.join(differ)}."]
    else:
        lines += ["", "Each baseline's JSON equals ours (checked before timing)."]
    return "\n".join(lines) + "\n"


def run(database_url: str, database: str, *, quick: bool, log) -> str:
    """The section for bench/RESULTS.md."""
    seconds, rounds = (1.0, 4) if quick else (2.0, 12)
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    results = measure(database_url, seconds=seconds, rounds=rounds, log=log)
    return render(results, database=database, seconds=seconds, rounds=rounds, load=os.getloadavg(), uptime=uptime)


HEADING = "## HTTP through gunicorn (bench/http.py)"


def replace_section(text: str, section: str) -> str:
    """`text` with its HTTP section (from HEADING to the next `## ` heading or the end) replaced by `section`."""
    start = text.find(HEADING)
    if start < 0:
        return text.rstrip("\n") + "\n\n" + section
    end = text.find("\n## ", start + len(HEADING))
    return text[:start] + section + (text[end + 1 :] if end >= 0 else "")


def main() -> int:
    """`python -m bench.http [--quick] [--write]`: only these figures (`make bench` runs them with the rest)."""
    import argparse

    from bench import run as bench_run

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--quick", action="store_true", help="4 pairs of 1 s slices instead of 12 of 2 s")
    parser.add_argument("--write", action="store_true", help="replace this section of bench/RESULTS.md")
    args = parser.parse_args()
    section = bench_run.http_section(argparse.Namespace(quick=args.quick, no_http=False)).lstrip("\n")
    print(section)
    if args.write:
        bench_run.RESULTS.write_text(replace_section(bench_run.RESULTS.read_text(), section))
    return 0


if __name__ == "__main__":
    sys.exit(main())
