"""`make bench`'s arithmetic and data growth: the growth verdict, the fits, the tables growing to a size."""

import os
from datetime import UTC, datetime

import pytest

from bench import data
from bench.measure import Figure
from bench.report import exponent, fit_linear, summary_row
from crm.models import Customer, Order, OrderLine, Product

NOW = datetime(2026, 3, 2, tzinfo=UTC)


def curve(ratios: list[float], kind: str = "slower", target: float = 2) -> Figure:
    figure = Figure("1", "work", kind, target, ours_label="ours", baseline_label="base", unit="rows")
    for i, ratio in enumerate(ratios):
        size = 10 ** (i + 1)
        figure.points.append({"size": size, "ours": ratio * size, "baseline": float(size), "runs": 3})
    figure.judge()
    return figure


def test_growth_met_when_ours_grows_no_faster_than_the_baseline_within_a_quarter():
    assert curve([1.2, 1.3, 1.5]).growth_met is True  # 1.5 <= 1.2 x 1.25
    assert curve([1.2, 1.3, 1.51]).growth_met is False
    assert curve([3.0, 1.0, 0.5]).growth_met is True


def test_headline_and_target_are_the_largest_size():
    figure = curve([1.0, 1.5, 2.5], target=2)
    assert (figure.ours, figure.baseline, figure.runs) == (2500.0, 1000.0, 3)
    assert figure.met is False and figure.growth_met is False
    faster = curve([0.5, 0.1, 0.01], kind="faster", target=20)  # 100x faster at the largest size
    assert faster.met is True and faster.growth_met is True


def test_fits_recover_fixed_cost_per_item_and_exponent():
    sizes = [10, 100, 1000, 10_000]
    fixed, per_item = fit_linear(sizes, [0.002 + 1e-5 * n for n in sizes])
    assert fixed == pytest.approx(0.002) and per_item == pytest.approx(1e-5)
    assert exponent(sizes, [1e-6 * n for n in sizes]) == pytest.approx(1.0)
    assert exponent(sizes, [1e-9 * n * n for n in sizes]) == pytest.approx(2.0)


def test_summary_row_shows_sizes_growth_and_memory():
    figure = curve([1.2, 1.3, 1.4])
    figure.memory = {"ours": {"size": 1000, "before_kib": 60 * 1024, "peak_kib": 100 * 1024}}
    row = summary_row("1", {"name": "sqlite"}, figure.__dict__)
    assert "| 10, 100, 1k |" in row and "1.20 → 1.40 (×1.17) | met |" in row
    assert "100 MB (+40 MB)" in row


@pytest.mark.django_db
def test_tables_grow_and_shrink_to_each_size():
    data.ensure_products(1000, NOW)
    assert Product.objects.count() == 1000
    assert data.set_low_stock(2) == 500
    data.ensure_products(10, NOW)
    assert list(Product.objects.values_list("id", flat=True)) == list(range(1, 11))
    assert set(Product.objects.values_list("stock", flat=True)) == {data.STOCK}
    data.ensure_products(1000, NOW)  # order lines use products 1 ... 1,000

    data.ensure_customers(100, NOW, lines=True)
    assert Customer.objects.count() == 100 and Order.objects.count() == 60 * data.ORDERS_PER_CUSTOMER
    assert OrderLine.objects.exists()
    data.ensure_customers(1000, NOW, lines=False)
    assert Customer.objects.count() == 1000 and Order.objects.count() == 600 * data.ORDERS_PER_CUSTOMER
    # An order's total is its lines' sum (the triggers), 0 for the orders built without lines.
    assert Order.objects.filter(total_amount=0).count() == 540 * data.ORDERS_PER_CUSTOMER


# --- the fleet figures (bench/fleet.py, issue 26) ----------------------------------------------------------
def test_a_scale_figure_is_judged_on_ours_at_the_largest_size_against_ours_at_the_smallest():
    figure = Figure("10", "health", "scale", 10, ours_label="ours", baseline_label="base", unit="jobs")
    for size, ours, baseline in ((10, 0.004, 0.001), (10_000, 0.036, 0.008)):
        figure.points.append({"size": size, "ours": ours, "baseline": baseline, "runs": 3})
    figure.judge()
    assert figure.met is True  # 9x ours at 10 jobs
    assert figure.growth_met is True  # ours/baseline 4.0 -> 4.5
    row = summary_row("10", {"name": "postgresql"}, figure.__dict__)
    assert "| 9.00x ours at 10 | ≤ 10x ours at 10 | met |" in row
    figure.points[-1]["ours"] = 0.041
    figure.judge()
    assert figure.met is False and figure.growth_met is False


def test_the_fleet_settings_declare_the_fleet_the_figures_measure(monkeypatch):
    import importlib
    import sys

    from bench import fleet

    monkeypatch.setenv("BENCH_FLEET_JOBS", "61")
    sys.modules.pop("bench.fleet_settings", None)
    module = importlib.import_module("bench.fleet_settings")
    assert module.CRONJOBS == fleet.fleet(61)
    assert module.CRONJOBS[60] == ("0 * * * *", "bench.jobs.noop", {"name": "job_60"})
    monkeypatch.setenv("BENCH_FLEET_SCHEDULE", "* * * * *")
    assert importlib.reload(module).CRONJOBS == fleet.fleet(61, "* * * * *")
    sys.modules.pop("bench.fleet_settings", None)


@pytest.mark.django_db
def test_the_fleet_is_seeded_as_the_issue_measured_it_and_the_baselines_answer(settings, capsys):
    from django.test import Client

    from bench import fleet, fleet_baseline
    from cronjobs.models import JobRun

    fleet.seed(5, failing=1)
    assert sorted(JobRun.objects.values_list("job_name", "status")) == [
        ("job_0", "failed"),
        *((f"job_{i}", "succeeded") for i in range(1, 5)),
    ]
    settings.CRONJOBS = fleet.fleet(5)
    settings.ROOT_URLCONF = "bench.fleet_urls"
    settings.CRONJOBS_METRICS_TOKEN = fleet.TOKEN
    assert Client().get("/bench/fleet/health").json() == {"status": "error", "never": 1}  # job_0 never succeeded
    assert Client().get("/bench/fleet/metrics").status_code == 404  # the product's own access rule
    text = Client().get("/bench/fleet/metrics", HTTP_AUTHORIZATION=f"Bearer {fleet.TOKEN}").content.decode()
    assert 'cronjobs_job_runs_total{job="job_0",status="failed"} 1' in text.splitlines()
    fleet_baseline.show(failing=True)
    assert capsys.readouterr().out.splitlines() == ["  job_0  [0 * * * *]  last run: failed", "5 jobs, 1 failing"]


def test_the_show_failing_hook_reads_the_command_s_own_options():
    from bench.fleet import command_has

    assert command_has("--scheduled-for") is True
    assert command_has("--no-such-option") is False


def test_the_process_tree_holds_the_children(tmp_path):
    import subprocess
    import sys

    from bench.fleet import tree

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in tree(os.getpid())
    finally:
        child.kill()
        child.wait()
