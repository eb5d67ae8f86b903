"""How a figure is measured: medians of interleaved runs, curves over sizes, peak RSS in a fresh process."""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# The growth target: ours/baseline at the largest size <= that ratio at the smallest size x this.
GROWTH_TOLERANCE = 1.25


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Figure:
    """One figure: a row of the table, and for a curve its points. ``kind`` says how the ratio reads.

    ``ours`` / ``baseline`` / ``runs`` are the headline: the largest size of a curve, or the single point.
    """

    number: str
    title: str
    # "slower" (ours/baseline <= target), "faster" (baseline/ours >= target), "scale" (ours at the largest
    # size <= target x ours at the smallest: the fleet figures' targets, bench/fleet.py), "custom"
    kind: str
    target: float | None = None
    ours: float | None = None  # seconds (median)
    baseline: float | None = None  # seconds (median)
    runs: int = 0
    ours_label: str = ""
    baseline_label: str = ""
    target_label: str = ""
    met: bool | None = None
    status: str = "ok"  # ok | unavailable (its code is not there yet) | skipped (left out by this run) | error
    note: str = ""
    extra: dict = field(default_factory=dict)
    unit: str = ""  # what a curve's size counts ("products", "rows", ...)
    points: list[dict] = field(default_factory=list)  # {"size", "ours", "baseline", "runs", "counts"}
    memory: dict = field(default_factory=dict)  # side ("ours" / "baseline") -> peak RSS record
    growth_met: bool | None = None

    def judge(self) -> None:
        if self.points:
            largest = self.points[-1]
            self.ours, self.baseline, self.runs = largest["ours"], largest["baseline"], largest["runs"]
        if self.kind == "slower":
            self.met = headline_ratio(self.points, self.ours, self.baseline) <= self.target
        elif self.kind == "faster":
            self.met = 1 / headline_ratio(self.points, self.ours, self.baseline) >= self.target
        elif self.kind == "scale" and self.target is not None and len(self.points) >= 2:
            self.met = scale_ratio(self.points) <= self.target
        if len(self.points) >= 2:
            self.growth_met = point_ratio(self.points[-1]) <= point_ratio(self.points[0]) * GROWTH_TOLERANCE


def point_ratio(point: dict) -> float:
    """ours / baseline at a point: the median of the runs' paired ratios (each run times both sides back to
    back, so a stretch of seconds in which the machine runs slower weighs on both); a point saved without
    them (an older results.json) falls back to the ratio of the medians."""
    return point.get("ratio") or point["ours"] / point["baseline"]


def scale_ratio(points: list[dict]) -> float:
    """ours at the largest size / ours at the smallest: how a "scale" figure is judged."""
    return points[-1]["ours"] / points[0]["ours"]


def headline_ratio(points: list[dict], ours: float, baseline: float) -> float:
    """ours / baseline as a figure is judged: at a curve's largest size, or of its single point."""
    return point_ratio(points[-1]) if points else ours / baseline


def median_times(functions, *, runs: int, reset=None, warmup: bool = True, clock=time.perf_counter) -> list[float]:
    """Median seconds of each function; they alternate (in rotating order) after ``reset()``."""
    timed = timed_runs(functions, runs=runs, reset=reset, warmup=warmup, clock=clock)
    return [statistics.median(s) if s else 0.0 for s in timed]


def timed_runs(functions, *, runs: int, reset=None, warmup: bool = True, clock=time.perf_counter) -> list[list[float]]:
    """The seconds of every run of each function: ``runs`` rounds, each calling every function once, in
    rotating order, after ``reset()``.

    Interleaving puts ours and the baseline under the same cache, WAL and vacuum conditions, and a
    round's calls within seconds of each other (see point_ratio). ``clock``: what a run's seconds are read
    from (wall time; bench/fleet.py's CPU figures read the CPU of this process's finished children).
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
            started = clock()
            functions[index]()
            samples[index].append(clock() - started)
    return samples


def unavailable(figure: Figure, missing: str) -> Figure:
    figure.status = "unavailable"
    figure.note = f"not available yet ({missing})"
    return figure


@dataclass
class Curve:
    """A piece of work measured at several sizes: every side at every size, interleaved, same reset.

    ``sides`` maps a name to a function of the size returning a count (rows changed, created, listed)
    so the sides can be checked to do the same work. Each figure pairs two sides: (figure, ours, baseline).
    """

    key: str
    unit: str
    sizes: list[int]
    prepare: Callable[[int], object]  # the data this size needs (not timed)
    sides: dict[str, Callable[[int], int | None]]
    figures: list[tuple[Figure, str, str]]
    reset: Callable[[int], object] | None = None  # before every call (not timed)
    finish: Callable[[], object] | None = None  # after the last size: leave the data as the next figure expects
    clock: Callable[[], float] = time.perf_counter  # what the sides' seconds are read from (see timed_runs)
    memory: bool = True  # peak RSS of ours in a fresh process (full run); False where ours is another process


def measure_curve(curve: Curve, ctx) -> list[Figure]:
    names = list(curve.sides)
    prepared = 0.0
    for size in curve.sizes:
        started = time.perf_counter()
        curve.prepare(size)
        prepared += time.perf_counter() - started
        reset = (lambda size=size: curve.reset(size)) if curve.reset else None
        counts: dict[str, object] = {}

        def call(name, size=size, counts=counts):
            counts[name] = curve.sides[name](size)

        functions = [lambda name=name: call(name) for name in names]
        # One warm-up round, timed with its resets, sets how many runs this size gets within the budget.
        started = time.perf_counter()
        median_times(functions, runs=0, reset=reset)
        round_seconds = time.perf_counter() - started
        runs = min(ctx.runs, max(ctx.min_runs, int(ctx.budget / max(round_seconds, 1e-6))))
        timed = timed_runs(functions, runs=runs, reset=reset, warmup=False, clock=curve.clock)
        samples = dict(zip(names, timed, strict=True))
        times = {name: statistics.median(seconds) for name, seconds in samples.items()}
        for figure, ours, baseline in curve.figures:
            point = {"size": size, "ours": times[ours], "baseline": times[baseline], "runs": runs}
            paired = [o / b for o, b in zip(samples[ours], samples[baseline], strict=True)]
            point["ratio"] = statistics.median(paired)
            point["counts"] = {"ours": counts[ours], "baseline": counts[baseline]}
            figure.points.append(point)
        timings = ", ".join(f"{name} {seconds * 1000:.1f} ms" for name, seconds in times.items())
        log(f"    {curve.key} at {size:,} {curve.unit}: {timings} ({runs} runs)")
    if curve.finish:
        curve.finish()
    for figure, _, _ in curve.figures:
        figure.unit = curve.unit
        figure.extra["prepare_seconds"] = prepared
        differ = [p for p in figure.points if p["counts"]["ours"] != p["counts"]["baseline"]]
        if differ:
            figure.note = f"the sides' counts differ at {differ[0]['size']:,}: {differ[0]['counts']}"
    if not ctx.quick and curve.memory:  # a fresh process per figure: a full run's figure, not a development one
        measure_memory(curve, ctx)
    return [figure for figure, _, _ in curve.figures]


# --- peak RSS, in a fresh process -------------------------------------------------------------------


def measure_memory(curve: Curve, ctx) -> None:
    """Peak RSS of each figure's ours at the largest size.

    Each side runs once in its own fresh process (``python -m bench.worker --memory``) so nothing a
    previous run left in the heap hides what this one needs.
    """
    size = curve.sizes[-1]
    wanted = {ours for _, ours, _ in curve.figures}
    records = {name: memory_child(curve.key, size, name, ctx) for name in curve.sides if name in wanted}
    for figure, ours, baseline in curve.figures:
        for role, name in (("ours", ours), ("baseline", baseline)):
            if name in records:
                figure.memory[role] = records[name]


def memory_child(key: str, size: int, side: str, ctx) -> dict:
    out = Path(ctx.workdir) / f"memory-{key}-{side}.json"
    command = [sys.executable, "-m", "bench.worker", "--memory", f"{key}:{size}:{side}", "--out", str(out)]
    command += ["--quick"] if ctx.quick else []
    completed = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if completed.returncode != 0 or not out.exists():
        tail = (completed.stderr.strip().splitlines() or ["no output"])[-1]
        return {"size": size, "error": f"exit {completed.returncode}: {tail}"[:300]}
    return json.loads(out.read_text())


def _status_kib(field_name: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def peak_rss(fn: Callable[[], object]) -> dict:
    """Run ``fn`` once; its process's RSS before and at peak (KiB), and how the peak was read.

    Linux: the peak (VmHWM) is reset to the current RSS just before the call (``/proc/self/clear_refs``),
    so the peak is the call's. Elsewhere: ``ru_maxrss``, the peak of the whole process.
    """
    before = _status_kib("VmRSS")
    try:
        Path("/proc/self/clear_refs").write_text("5")
        method = "VmHWM reset before the call"
    except OSError:
        method = "ru_maxrss of the whole process"
    fn()
    peak = _status_kib("VmHWM") if method.startswith("VmHWM") else None
    if peak is None:
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak = maxrss // 1024 if sys.platform == "darwin" else maxrss
    return {"before_kib": before, "peak_kib": peak, "method": method}
