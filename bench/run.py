"""`make bench`: every figure on SQLite (and PostgreSQL when reachable); one table, the curves, their plots.

The full run writes bench/RESULTS.md and bench/plots/; ``--quick`` (smaller sizes, for development) writes
bench/quick/ (not committed) unless ``--out`` says otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

from bench.plot import plot_figures
from bench.report import render

REPO = Path(__file__).resolve().parent.parent
PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
# The database the run creates and drops; BENCH_PG_DATABASE lets two runs on one server not collide.
PG_DB = os.environ.get("BENCH_PG_DATABASE", "crm_bench")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def postgres_reachable() -> bool:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=1):
            pass
    except OSError:
        return False
    try:
        import psycopg

        psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", connect_timeout=3).close()
    except Exception as exc:  # reachable port, unusable server: say so and go on with SQLite
        log(f"PostgreSQL at {PG_HOST}:{PG_PORT} is not usable ({exc}); benchmarking SQLite only")
        return False
    return True


def postgres_admin(statement: str) -> None:
    import psycopg

    with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True) as conn:
        conn.execute(statement)


def run_worker(name: str, database_url: str, workdir: Path, args) -> dict | None:
    out = workdir / f"{name}.json"
    env = {key: value for key, value in os.environ.items() if key not in {"CRM_GRAPHQL_URL", "CRM_API_TOKEN"}}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "DJANGO_SECRET_KEY": env.get("DJANGO_SECRET_KEY") or "bench-only-insecure-key",
            "DJANGO_DEBUG": "0",
            "DATABASE_URL": database_url,
            "CRM_LOG_DIR": str(workdir),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
        }
    )
    command = [sys.executable, "-m", "bench.worker", "--out", str(out), "--runs", str(args.runs)]
    command += ["--quick"] if args.quick else []
    if args.figures:
        command += ["--figures", args.figures]
    log(f"== {name}: {database_url}")
    started = time.perf_counter()
    completed = subprocess.run(command, env=env, cwd=REPO)
    if completed.returncode != 0 or not out.exists():
        log(f"== {name}: the benchmark worker failed (exit {completed.returncode})")
        return None
    report = json.loads(out.read_text())
    report["name"] = name
    report["elapsed"] = time.perf_counter() - started
    return report


def measured_source() -> str:
    """Which code was measured: BENCH_SOURCE if set, else the git commit (and whether the tree was dirty)."""
    if os.environ.get("BENCH_SOURCE"):
        return os.environ["BENCH_SOURCE"]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "not a git checkout"
    return f"commit {commit}" + (" plus uncommitted changes" if dirty.strip() else "")


def http_section(args) -> str:
    """bench/http.py's figures (issue 14: throughput through gunicorn), on PostgreSQL when reachable, else
    SQLite, as a section of RESULTS.md; nothing while that file is not there."""
    import importlib.util

    if args.no_http or importlib.util.find_spec("bench.http") is None:
        return ""
    from bench import http

    workdir = Path(tempfile.mkdtemp(prefix="crm-bench-http-"))
    database = f"{PG_DB}_http"
    reachable = postgres_reachable()
    try:
        if reachable:
            postgres_admin(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
            postgres_admin(f"CREATE DATABASE {database}")
            url, name = f"postgres://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}", "PostgreSQL"
        else:
            url, name = f"sqlite:///{workdir / 'http.sqlite3'}", "SQLite"
        log(f"== http through gunicorn: {url}")
        return "\n" + http.run(url, name, quick=args.quick, log=log)
    except Exception as exc:  # the other figures are still written
        log(f"== http: failed: {exc}")
        return f"\n## HTTP through gunicorn (bench/http.py)\n\nThe run failed: {str(exc)[:500]}\n"
    finally:
        if reachable:
            postgres_admin(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        shutil.rmtree(workdir, ignore_errors=True)


def write(out: Path, reports: list[dict], meta: dict) -> str:
    """RESULTS.md, plots/ and results.json (the medians and the run's facts, for rendering again) in ``out``."""
    args = SimpleNamespace(**{k: meta[k] for k in ("quick", "argv", "load_before", "load_after")})
    plots = {n: f"plots/{name}" for n, name in plot_figures(reports, out / "plots").items()}
    started = datetime.fromisoformat(meta["started"])
    text = render(reports, args, started, meta["elapsed"], meta["source"], meta["pg_label"], plots)
    text += meta.get("http_text", "")
    (out / "RESULTS.md").write_text(text)
    (out / "results.json").write_text(json.dumps({"meta": meta, "reports": reports}, indent=1) + "\n")
    log(f"written to {out / 'RESULTS.md'}")
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer runs: under two minutes")
    parser.add_argument("--runs", type=int, help="timed runs per point at most (median); default 7, 3 with --quick")
    parser.add_argument("--figures", default="", help="comma-separated figure numbers, default all (4 is 4a-4c)")
    parser.add_argument("--databases", default="sqlite,postgresql", help="default: sqlite,postgresql")
    parser.add_argument("--out", type=Path, help="folder of RESULTS.md, plots/; default bench/ (quick: bench/quick/)")
    parser.add_argument("--no-write", action="store_true", help="print only, write nothing")
    parser.add_argument("--no-http", action="store_true", help="skip the HTTP figures through gunicorn (bench/http.py)")
    parser.add_argument("--from-json", type=Path, help="no run: write RESULTS.md and plots again from a results.json")
    args = parser.parse_args()
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        write(args.out or args.from_json.parent, saved["reports"], saved["meta"])
        return 0
    args.argv = sys.argv[1:]
    args.runs = args.runs or (3 if args.quick else 7)
    out = args.out or REPO / "bench" / ("quick" if args.quick else "")

    started_at = datetime.now(UTC)
    started = time.perf_counter()
    source = measured_source()  # at the start: the code the workers import
    args.load_before = os.getloadavg()
    reports = []
    wanted = {name.strip() for name in args.databases.split(",")}
    workdir = Path(tempfile.mkdtemp(prefix="crm-bench-"))
    try:
        if "sqlite" in wanted:
            report = run_worker("sqlite", f"sqlite:///{workdir / 'bench.sqlite3'}", workdir, args)
            reports += [report] if report else []
        if "postgresql" in wanted:
            if postgres_reachable():
                postgres_admin(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
                postgres_admin(f"CREATE DATABASE {PG_DB}")
                try:
                    url = f"postgres://{PG_USER}@{PG_HOST}:{PG_PORT}/{PG_DB}"
                    report = run_worker("postgresql", url, workdir, args)
                    reports += [report] if report else []
                finally:
                    postgres_admin(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
            else:
                log(f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT}: SQLite only")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if not reports:
        log("no benchmark worker finished")
        return 1
    http_text = http_section(args)
    meta = {
        "started": started_at.isoformat(),
        "elapsed": time.perf_counter() - started,
        "load_before": args.load_before,
        "load_after": os.getloadavg(),
        "argv": args.argv,
        "quick": args.quick,
        "source": source,
        "pg_label": f"database `{PG_DB}` at {PG_HOST}:{PG_PORT}",
        "http_text": http_text,
    }
    if args.no_write:
        args.load_after = meta["load_after"]
        print(render(reports, args, started_at, meta["elapsed"], source, meta["pg_label"], {}) + http_text)
    else:
        print(write(out, reports, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
