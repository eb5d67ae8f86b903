"""One SVG per curve: time against size (log-log) and ours/baseline against size, every database."""

from __future__ import annotations

from pathlib import Path

from bench.measure import GROWTH_TOLERANCE, log, point_ratio
from bench.report import fmt_size

COLOURS = {"sqlite": "#1f77b4", "postgresql": "#d62728"}


def plot_figures(reports: list[dict], folder: Path, fmt: str = "svg") -> dict[str, str]:
    """Write ``folder/figure-<number>.svg`` for every curve; returns number -> file name. Needs matplotlib.

    ``python -c 'import json; from bench.plot import *; plot_figures(json.load(open("bench/results.json")),
    Path("/tmp"), "png")'`` draws them again from a run's results, here as PNG.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed (requirements-dev.txt): no plots")
        return {}
    plt.rcParams.update({"svg.hashsalt": "crm-bench", "svg.fonttype": "none", "font.size": 9})
    curves: dict[str, list[tuple[str, dict]]] = {}
    for report in reports:
        for figure in report["figures"]:
            if figure["status"] == "ok" and len(figure["points"]) >= 2:
                curves.setdefault(figure["number"], []).append((report["name"], figure))
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for number, entries in curves.items():
        path = folder / f"figure-{number}.{fmt}"
        fig = draw(plt, number, entries)
        fig.savefig(path, format=fmt, **({"metadata": {"Date": None}} if fmt == "svg" else {"dpi": 110}))
        plt.close(fig)
        written[number] = path.name
    return written


def draw(plt, number: str, entries: list[tuple[str, dict]]):
    first = entries[0][1]
    fig, (times, ratios) = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    fig.suptitle(f"{number}. {first['title']}")
    for db, figure in entries:
        colour = COLOURS.get(db, "black")
        sizes = [p["size"] for p in figure["points"]]
        times.plot(sizes, [p["ours"] * 1000 for p in figure["points"]], "o-", color=colour, label=f"ours, {db}")
        times.plot(sizes, [p["baseline"] * 1000 for p in figure["points"]], "s--", color=colour, alpha=0.6)
        r = [point_ratio(p) for p in figure["points"]]
        ratios.plot(sizes, r, "o-", color=colour, label=db)
        ratios.hlines(r[0] * GROWTH_TOLERANCE, sizes[0], sizes[-1], colors=colour, linestyles=":", linewidth=1)
    times.plot([], [], "s--", color="grey", alpha=0.6, label="baseline (dashed)")
    if first["kind"] == "scale" and first["target"]:  # the targets: ours at the largest vs the smallest
        for db, figure in entries:
            limit = figure["points"][0]["ours"] * 1000 * first["target"]
            times.axhline(limit, color=COLOURS.get(db, "black"), linestyle=":", linewidth=1)
        times.plot([], [], ":", color="grey", label=f"target: {first['target']:g}x ours at the smallest")
    if first["extra"].get("limit_ms"):  # a custom figure's limit on ours (bench/fleet.py's 15a: CPU a fire)
        times.axhline(first["extra"]["limit_ms"], color="black", linestyle=":", linewidth=1, label="limit")
    sizes = [p["size"] for p in first["points"]]
    for axes in (times, ratios):
        axes.set_xscale("log")
        axes.set_xticks(sizes, [fmt_size(n) for n in sizes])
        axes.minorticks_off()
    times.set(yscale="log", xlabel=first["unit"], ylabel="milliseconds (median)")
    from matplotlib.ticker import FuncFormatter, NullFormatter

    plain = FuncFormatter(lambda value, _: f"{value:g}")
    low, high = times.get_ylim()
    times.yaxis.set_major_formatter(plain)
    # Label the minor ticks too when the curve spans less than a decade (else no label would show).
    times.yaxis.set_minor_formatter(plain if high / low < 10 else NullFormatter())
    times.set_title(f"ours: {first['ours_label']}\nbaseline: {first['baseline_label']}", fontsize=8)
    times.grid(True, which="major", alpha=0.3)
    times.legend(fontsize=8)
    target = {"slower": first["target"], "faster": 1 / (first["target"] or 1)}.get(first["kind"])
    if target:
        ratios.axhline(target, color="black", linewidth=1, label=f"target ({target:.2g})")
    ratios.set(xlabel=first["unit"], ylabel="ours / baseline")
    ratios.set_ylim(bottom=0)
    ratios.set_title(f"dotted: growth limit (smallest size's ratio × {GROWTH_TOLERANCE:g})", fontsize=8)
    ratios.grid(True, which="major", alpha=0.3)
    ratios.legend(fontsize=8)
    return fig
