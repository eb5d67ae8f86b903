"""The engine at fleet scale (issue 26): figures 10-15, curves over the number of declared jobs.

Every fleet is CRONJOBS generated as the issue measured it: N jobs `job_<i>` at `<i % 60> * * * *`
(figure 15: every minute), one no-op target (bench/jobs.py), one succeeded run per job in the history.
The read paths (10-12) are requests through Django's test client in this process, the warm second
request and after; the commands (13, 14) are whole processes with bench/fleet_settings.py; figure
15 runs `crontab work` for real minutes and reads what it recorded.

The issue's targets compare ours at the largest fleet with ours at the smallest (kind "scale"); the
baseline of each curve is the plainest code that does the same work's unavoidable part (see each
figure's label), and the growth check (ours/baseline at the largest fleet within ×1.25 of that at the
smallest) says whether ours grows faster than it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

from bench.measure import Curve, Figure, log, unavailable

REPO = Path(__file__).resolve().parent.parent
SIZES = ([10, 100, 1_000, 10_000], [10, 1_000])  # full, --quick
# --quick: the whole-process figures (13, 14) only when named (a process costs most of a second whatever it
# does: they would take the quick run past two minutes), then at these sizes.
QUICK_PROCESS_SIZES = [10, 100]
TOKEN = "bench-metrics-token-0123456789abcdef"
NOOP = "bench.jobs.noop"
BIN_TRUE = "/bin/true"  # CRONTAB_EXECUTABLE of the commands: `crontab show` reads nobody's crontab


def skipped(figure: Figure, why: str) -> Figure:
    """A figure this run leaves out on purpose (not one whose code is missing: that is `unavailable`)."""
    figure.status, figure.note = "skipped", why
    return figure


def fleet(n: int, schedule: str | None = None) -> list[tuple]:
    """CRONJOBS of n no-op jobs, as bench/fleet_settings.py writes it for the same n."""
    return [(schedule or f"{i % 60} * * * *", NOOP, {"name": f"job_{i}"}) for i in range(n)]


def sizes(ctx) -> list[int]:
    full, quick = SIZES
    return quick if ctx.quick else full


def clear_history() -> None:
    from cronjobs.models import JobPause, JobRun, RunTotal, SchedulerBeat

    for model in (JobRun, RunTotal, SchedulerBeat, JobPause):
        model.objects.all().delete()


def seed(n: int, *, failing: int = 0) -> None:
    """The history the issue seeded: one run per job a minute ago, succeeded (the first `failing` failed)."""
    from django.utils import timezone

    from cronjobs.models import JobRun

    clear_history()
    now = timezone.now().replace(microsecond=0)
    minute = now.replace(second=0) - timedelta(minutes=1)
    JobRun.objects.bulk_create(
        (
            JobRun(
                job_name=f"job_{i}",
                scheduled_for=minute,
                trigger=JobRun.Trigger.WORK,
                status=JobRun.Status.FAILED if i < failing else JobRun.Status.SUCCEEDED,
                exclusive=False,
                host="bench",
                pid=1,
                started_at=now - timedelta(seconds=60),
                finished_at=now - timedelta(seconds=59),
                duration=timedelta(seconds=1),
                result="" if i >= failing else "ValueError: bench",
            )
            for i in range(n)
        ),
        batch_size=2_000,
    )


# --- in-process read paths: 10 health, 11 metrics, 12 admin page -----------------------------------------
class Settings:
    """One fleet's settings at a time (override_settings, entered by prepare, left by the next or finish)."""

    def __init__(self):
        self.active = None

    def use(self, n: int) -> None:
        from django.test import override_settings

        self.leave()
        self.active = override_settings(
            CRONJOBS=fleet(n),
            CRONJOBS_METRICS_TOKEN=TOKEN,
            ALLOWED_HOSTS=["testserver"],
            SECURE_SSL_REDIRECT=False,
            ROOT_URLCONF="bench.fleet_urls",
        )
        self.active.enable()

    def leave(self) -> None:
        if self.active is not None:
            self.active.disable()
            self.active = None


def getter(path: str, *, client=None, expect=(200,), **headers):
    """A side that GETs `path` through the test client and returns the body's size."""

    made = []

    def get(size):
        from django.test import Client

        if client is None and not made:
            # One client for the whole curve: a new Client builds a new handler, whose middleware set-up
            # (WhiteNoise scanning the static files) cost ~10 ms a request and hid the view's own time.
            made.append(Client())
        response = (client() if callable(client) else client or made[0]).get(path, **headers)
        if response.status_code not in expect:
            raise RuntimeError(
                f"GET {path} at {size:,} jobs answered {response.status_code}: {response.content[:300]!r}"
            )
        return None  # the sides answer different bodies; their sizes go into the note

    return get


def read_path_curve(ctx, key: str, fig: Figure, ours: str, baseline: str, **kwargs) -> Curve:
    state = Settings()
    bodies: dict[int, tuple[int, int]] = {}
    ours_side = getter(ours, **kwargs)
    baseline_side = getter(baseline, **kwargs)

    def prepare(size):
        seed(size)
        state.use(size)
        bodies[size] = (body_size(ours, **kwargs), body_size(baseline, **kwargs))

    def finish():
        state.leave()
        largest = max(bodies)
        fig.note = f"bodies at {largest:,} jobs: ours {bodies[largest][0]:,} bytes, baseline {bodies[largest][1]:,}"
        fig.extra["bodies"] = {str(k): v for k, v in bodies.items()}

    return Curve(
        key,
        "declared jobs",
        sizes(ctx),
        prepare=prepare,
        sides={"ours": ours_side, "baseline": baseline_side},
        figures=[(fig, "ours", "baseline")],
        finish=finish,
    )


def body_size(path: str, *, client=None, expect=(200,), **headers) -> int:
    from django.test import Client

    return len((client() if callable(client) else client or Client()).get(path, **headers).content)


def figure_10(ctx) -> Curve:
    fig = Figure("10", "GET /health/cron/ (anonymous) at N declared jobs", "scale", 10)
    fig.ours_label = "GET /health/cron/, anonymous, warm, test client"
    fig.baseline_label = (
        "a plain view through the same client: one GROUP BY of each job's last success and last run (the rows "
        "a health answer reads), status as JSON"
    )
    return read_path_curve(ctx, "10", fig, "/health/cron/", "/bench/fleet/health", expect=(200, 503))


def figure_11(ctx) -> Curve:
    fig = Figure("11", "GET /metrics at N declared jobs", "scale", 40)
    fig.ours_label = "GET /metrics with the metrics token, warm, test client"
    fig.baseline_label = (
        "a plain view through the same client: one GROUP BY (job, status) count of the history, one text line a row"
    )
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}
    return read_path_curve(ctx, "11", fig, "/metrics", "/bench/fleet/metrics", **bearer)


def figure_12(ctx) -> Curve:
    fig = Figure("12", "Admin Scheduled jobs page at N declared jobs", "scale", 3)
    fig.ours_label = "GET /admin/cronjobs/scheduledjob/ as a superuser, warm, test client"
    fig.baseline_label = "the admin's own paginated changelist of the run history (one run a job), same client"
    clients = []

    def client():
        if not clients:
            from django.test import Client

            from bench.worker import bench_user

            clients.append(Client())
            clients[0].force_login(bench_user())
        return clients[0]

    return read_path_curve(
        ctx, "12", fig, "/admin/cronjobs/scheduledjob/", "/admin/cronjobs/jobrun/", client=client, expect=(200,)
    )


# --- bench-only baseline views (bench/fleet_urls.py) ----------------------------------------------------------
def health_baseline_view(request):
    """The rows any /health/cron/ answer reads (each job's last success and last run), nothing else."""
    from django.db.models import Max, Q
    from django.http import JsonResponse

    from cronjobs.models import JobRun

    rows = JobRun.objects.values_list("job_name").annotate(
        success=Max("finished_at", filter=Q(status=JobRun.Status.SUCCEEDED)), last=Max("id")
    )
    never = sum(1 for _, success, _ in rows.order_by() if success is None)
    return JsonResponse({"status": "ok" if not never else "error", "never": never})


def metrics_baseline_view(request):
    """A minimal per-job exporter: one GROUP BY (job, status) count, one Prometheus line a row."""
    from django.db.models import Count
    from django.http import HttpResponse

    from cronjobs.access import may_read_details
    from cronjobs.models import JobRun

    if not may_read_details(request):  # the same check as the product's view
        return HttpResponse(status=404)
    rows = JobRun.objects.values_list("job_name", "status").annotate(n=Count("id")).order_by()
    lines = [f'cronjobs_job_runs_total{{job="{job}",status="{status}"}} {n}\n' for job, status, n in rows]
    return HttpResponse("".join(lines), content_type="text/plain; version=0.0.4")


# As the product's views: their bearer token is the metrics token, which the API-token middleware leaves alone.
health_baseline_view.bearer_token_exempt = True
metrics_baseline_view.bearer_token_exempt = True


# --- commands: 13 `crontab show`, 14 one `crontab run` ----------------------------------------------------------
def fleet_env(n: int, **extra: str) -> dict:
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "bench.fleet_settings",
            "BENCH_FLEET_JOBS": str(n),
            "CRONTAB_EXECUTABLE": BIN_TRUE,
            **extra,
        }
    )
    return env


def process(argv: list[str], *, failing_ok: bool = False):
    """A side that runs `python argv...` with the fleet's settings for the size; returns its output's lines."""

    def run(size):
        completed = subprocess.run(
            [sys.executable, *argv], env=fleet_env(size), cwd=REPO, capture_output=True, text=True
        )
        if completed.returncode != 0 and not failing_ok:
            tail = (completed.stderr.strip() or completed.stdout.strip()).splitlines()[-1:]
            raise RuntimeError(f"`{' '.join(argv)}` at {size:,} jobs exited {completed.returncode}: {' '.join(tail)}")
        return None

    return run


def children_cpu() -> float:
    """CPU seconds (user + system) of this process's finished children: the clock of a CPU curve."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def command_has(subcommand_flag: str) -> bool:
    """Whether `manage.py crontab` takes this option (the hook for options the lead's crontab.py adds)."""
    from cronjobs.management.commands.crontab import Command

    parser = Command().create_parser("manage.py", "crontab")
    return any(subcommand_flag in action.option_strings for action in parser._actions)


def process_sizes(ctx, fig: Figure, key: str) -> list[int] | None:
    """The sizes of a whole-process curve, or None (the figure marked skipped) where --quick leaves it out."""
    if not ctx.quick:
        return sizes(ctx)
    if key not in ctx.explicit:
        skipped(fig, f"whole processes: full run, or alone with `--quick --figures {key}`")
        return None
    return QUICK_PROCESS_SIZES


def show_curve(ctx, key: str, fig: Figure, ours: list[str], baseline: list[str], failing: int) -> Curve | Figure:
    measured = process_sizes(ctx, fig, key[:2])
    if measured is None:
        return fig
    return Curve(
        key,
        "declared jobs",
        measured,
        prepare=lambda size: seed(size, failing=failing),
        sides={"ours": process(ours, failing_ok=True), "baseline": process(baseline)},
        figures=[(fig, "ours", "baseline")],
        memory=False,
    )


def figure_13a(ctx) -> Curve:
    fig = Figure("13a", "`crontab show` at N declared jobs, a whole process", "scale", None)
    fig.ours_label = "manage.py crontab show (wall time; a stand-in crontab binary)"
    fig.baseline_label = "django.setup() + one query of each job's last run + one printed line a job, same settings"
    return show_curve(
        ctx, "13a", fig, ["manage.py", "crontab", "show"], ["-m", "bench.fleet_baseline", "show"], failing=0
    )


def figure_13b(ctx) -> Curve | Figure:
    fig = Figure("13b", "`crontab show --failing` at N declared jobs (one failing), a whole process", "scale", 3)
    fig.ours_label = "manage.py crontab show --failing (wall time; a stand-in crontab binary)"
    fig.baseline_label = "django.setup() + one query of each job's last run + the failing job's line, same settings"
    # The hook: the figure measures as soon as `crontab show` takes --failing (the lead's crontab.py).
    if not command_has("--failing"):
        return unavailable(fig, "`manage.py crontab show --failing` (cronjobs/management/commands/crontab.py)")
    return show_curve(
        ctx,
        "13b",
        fig,
        ["manage.py", "crontab", "show", "--failing"],
        ["-m", "bench.fleet_baseline", "show", "--failing"],
        failing=1,
    )


def figure_14(ctx) -> Curve | Figure:
    fig = Figure("14", "One `crontab run job_1` at N declared jobs: CPU of the whole process", "scale", 1.3)
    fig.ours_label = "manage.py crontab run job_1 (CPU, user + system, of the process and its children)"
    fig.baseline_label = "python -c 'import django; django.setup()' with the same settings (CPU)"
    measured = process_sizes(ctx, fig, "14")
    if measured is None:
        return fig
    return Curve(
        "14",
        "declared jobs",
        measured,
        prepare=lambda size: seed(size),
        sides={
            "ours": process(["manage.py", "crontab", "run", "job_1"]),
            "baseline": process(["-c", "import django; django.setup()"]),
        },
        figures=[(fig, "ours", "baseline")],
        clock=children_cpu,
        memory=False,
    )


# --- 15: `crontab work` firing every minute ---------------------------------------------------------------------
WORK_SIZES = ([100, 1_000], [100])  # every-minute jobs: full, --quick (figure 15 alone)
WORK_MINUTES = ({100: 2, 1_000: 3}, {100: 1})
TARGET_CPU_PER_FIRE = 0.050  # seconds
SAMPLE_EVERY = 0.25  # seconds between looks at the schedulers' process trees
SETTLE = 5.0  # seconds after the last judged minute ends: its last outcomes written
CATCH_UP = 10  # `crontab work --catch-up`: a start does not fire the minute it starts in (unless in its first 10 s)


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def tree(root: int) -> list[int]:
    """`root` and every process descending from it (runners, their jobs), from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields:
                parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, []))
    return found


def _kib(pid: int, field: str, path: str = "status") -> int:
    try:
        with open(f"/proc/{pid}/{path}") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def process_cpu(pid: int) -> float:
    """User + system seconds of `pid` and of its children it has waited for."""
    fields = _stat(pid)
    if not fields:
        return 0.0
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime (stat(5) fields 14-17)
    return ticks / os.sysconf("SC_CLK_TCK")


def wait_for_line(path: Path, text: str, count: int, proc, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"`crontab work` exited {proc.returncode}: {path.read_text()[-500:]}")
        if path.read_text(errors="replace").count(text) >= count:
            return
        time.sleep(0.2)
    raise RuntimeError(f"`crontab work` did not say {text!r} within {timeout:g}s: {path.read_text()[-500:]}")


def run_schedulers(ctx, jobs: int, minutes: int, schedulers: int = 1) -> dict:
    """Start `schedulers` `crontab work` processes on a fleet of `jobs` every-minute jobs, judge `minutes`
    whole minutes, stop them; what they recorded and what they cost."""
    from django.db import connection

    from cronjobs.models import JobRun

    clear_history()
    connection.close()  # the schedulers' first minutes should not wait on this process's idle transaction
    env = fleet_env(jobs, BENCH_FLEET_SCHEDULE="* * * * *")
    workdir = Path(ctx.workdir)
    logs = [workdir / f"work-{jobs}-{k}.log" for k in range(schedulers)]
    load_before = os.getloadavg()[0]
    procs = []
    for log_path in logs:
        with open(log_path, "w") as out:
            procs.append(
                subprocess.Popen(  # noqa: S603 - our own manage.py
                    # --catch-up: no burst of the minute it starts in; the judged minutes are the whole ones after
                    [sys.executable, "manage.py", "crontab", "work", "--catch-up", str(CATCH_UP)],
                    env=env,
                    cwd=REPO,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
    try:
        for proc, log_path in zip(procs, logs, strict=True):
            wait_for_line(log_path, "crontab work:", 1, proc, timeout=120)
        ready_cpu = {proc.pid: process_cpu(proc.pid) for proc in procs}
        ready = datetime.now().astimezone()
        first = (ready + timedelta(minutes=1)).replace(second=0, microsecond=0)
        judged = [first + timedelta(minutes=k) for k in range(minutes)]
        end = judged[-1] + timedelta(minutes=1, seconds=SETTLE)  # a slot not done by then missed its minute
        samples = sample_until(procs, end)
    finally:
        usage = stop(procs)
    counts = judge(jobs, judged)
    fires = JobRun.objects.filter(trigger=JobRun.Trigger.WORK, attempt=1).exclude(
        status__in=[JobRun.Status.MISSED, JobRun.Status.SKIPPED]
    )
    fired = fires.count()
    cpu = sum(usage[proc.pid] - ready_cpu[proc.pid] for proc in procs)
    return {
        "jobs": jobs,
        "minutes": minutes,
        "schedulers": schedulers,
        "judged": [m.isoformat() for m in judged],
        "fires": fired,
        "cpu_seconds": cpu,
        "cpu_per_fire": cpu / fired if fired else None,
        "load_before": load_before,
        **counts,
        **samples,
    }


def sample_until(procs, end: datetime) -> dict:
    """Every SAMPLE_EVERY seconds until `end`: the trees' RSS and PSS, their process counts, the load."""
    peak_rss = peak_pss = peak_processes = 0
    peak_scheduler = 0
    loads = []
    next_pss = 0.0
    while datetime.now().astimezone() < end:
        pids = [pid for proc in procs for pid in tree(proc.pid)]
        peak_processes = max(peak_processes, len(pids) - len(procs))
        peak_rss = max(peak_rss, sum(_kib(pid, "VmRSS") for pid in pids))
        peak_scheduler = max(peak_scheduler, max(_kib(proc.pid, "VmHWM") for proc in procs))
        if time.monotonic() >= next_pss:  # PSS counts pages shared by the forks once: the honest total
            peak_pss = max(peak_pss, sum(_kib(pid, "Pss", "smaps_rollup") for pid in pids))
            loads.append(os.getloadavg()[0])
            next_pss = time.monotonic() + 1.0
        time.sleep(SAMPLE_EVERY)
    return {
        "peak_tree_rss_kib": peak_rss,
        "peak_tree_pss_kib": peak_pss,
        "peak_scheduler_rss_kib": peak_scheduler,
        "peak_processes": peak_processes,
        "load_max": max(loads, default=0.0),
        "load_mean": statistics.mean(loads) if loads else 0.0,
    }


def stop(procs) -> dict[int, float]:
    """SIGTERM every scheduler, wait for it; CPU (user + system, with its waited-for children) of each."""
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    usage = {}
    deadline = time.monotonic() + 60
    for proc in procs:
        while True:
            pid, _status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                usage[proc.pid] = rusage.ru_utime + rusage.ru_stime
                proc.returncode = _status
                break
            if time.monotonic() > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                deadline = time.monotonic() + 10
            time.sleep(0.1)
    return usage


def judge(jobs: int, judged: list[datetime]) -> dict:
    """What happened to each (job, judged minute): succeeded within its minute, once?"""
    from django.db.models import Count, F

    from cronjobs.models import JobRun

    rows = JobRun.objects.filter(scheduled_for__in=judged, attempt=1, job_name__startswith="job_")
    by_status = dict(rows.values_list("status").annotate(n=Count("id")).order_by())
    on_time = rows.filter(status=JobRun.Status.SUCCEEDED, finished_at__lt=F("scheduled_for") + timedelta(minutes=1))
    slots = rows.values("job_name", "scheduled_for").distinct().count()
    late_starts = [
        (started - minute).total_seconds()
        for started, minute in rows.filter(status=JobRun.Status.SUCCEEDED).values_list("started_at", "scheduled_for")
    ]
    return {
        "expected": jobs * len(judged),
        "rows": rows.count(),
        "slots": slots,
        "on_time": on_time.count(),
        "by_status": by_status,
        "start_after_minute_p50": statistics.median(late_starts) if late_starts else None,
        "start_after_minute_max": max(late_starts, default=None),
    }


def baseline_forks(ctx, jobs: int) -> float:
    """CPU per fire of the floor of the fork model: a warm Django parent (same settings) forking one child
    per fire that runs the no-op and exits, as many at once as `crontab work` runs."""
    out = Path(ctx.workdir) / f"forks-{jobs}.json"
    argv = [sys.executable, "-m", "bench.fleet_baseline", "forks", str(jobs), str(out)]
    env = fleet_env(jobs, BENCH_FLEET_SCHEDULE="* * * * *")
    subprocess.run(argv, env=env, cwd=REPO, check=True, capture_output=True)  # noqa: S603
    return json.loads(out.read_text())["cpu_per_fork"]


def figure_15(ctx) -> list[Figure]:
    """15a: one `crontab work`, N every-minute no-op jobs; 15b: three sharing PostgreSQL, 1,000 jobs."""
    from django.db import connection

    a = Figure("15a", "`crontab work` firing N every-minute no-op jobs: CPU per fire", "custom")
    a.target_label = "every slot succeeded within its minute, once; ≤ 50 ms CPU a fire; processes bounded"
    a.ours_label = "crontab work (CPU of the scheduler and its children, per fire)"
    a.baseline_label = "a warm Django parent forking a child per fire that runs the no-op (same concurrency)"
    b = Figure("15b", "Three `crontab work` sharing PostgreSQL, 1,000 every-minute jobs", "custom")
    b.target_label = "every slot once, succeeded within its minute"
    b.ours_label, b.baseline_label = "three crontab work processes", "one (15a at 1,000 jobs)"
    if ctx.quick and "15" not in ctx.explicit:
        reason = "real minutes: full run, or alone with `--quick --figures 15`"
        return [skipped(a, reason), skipped(b, reason)]
    full, quick = WORK_SIZES
    per_minutes = WORK_MINUTES[1] if ctx.quick else WORK_MINUTES[0]
    records = []
    for jobs in quick if ctx.quick else full:
        log(f"    15a: {jobs:,} every-minute jobs for {per_minutes[jobs]} minute(s)")
        record = run_schedulers(ctx, jobs, per_minutes[jobs])
        record["baseline_cpu_per_fire"] = baseline_forks(ctx, jobs)
        log(f"    15a at {jobs:,}: {summary(record)}")
        records.append(record)
        ours, base = record["cpu_per_fire"] or float("nan"), record["baseline_cpu_per_fire"]
        a.points.append({"size": jobs, "ours": ours, "baseline": base, "runs": 1, "ratio": ours / base, "counts": {}})
    a.unit = "every-minute jobs"
    judge_work(a, records)
    if connection.vendor != "postgresql" or ctx.quick:
        return [a, skipped(b, "full run on PostgreSQL only" if ctx.quick else "PostgreSQL only")]
    log("    15b: three schedulers, 1,000 every-minute jobs for 2 minutes")
    shared = run_schedulers(ctx, 1_000, 2, schedulers=3)
    log(f"    15b: {summary(shared)}")
    b.ours, b.baseline, b.runs = shared["cpu_per_fire"], records[-1]["cpu_per_fire"], 1
    b.met = shared["on_time"] == shared["expected"] == shared["rows"] == shared["slots"]
    b.extra = {"record": shared, "ratio_text": f"{shared['on_time']:,} of {shared['expected']:,} on time, once"}
    b.note = "3 schedulers: " + summary(shared)
    return [a, b]


def summary(record: dict) -> str:
    cpu = record["cpu_per_fire"]
    return (
        f"{record['on_time']:,} of {record['expected']:,} slots succeeded within their minute "
        f"({record['rows']:,} rows for {record['slots']:,} slots; {record['by_status']}); "
        f"start after the minute median {fmt_s(record['start_after_minute_p50'])}, max "
        f"{fmt_s(record['start_after_minute_max'])}; CPU {record['cpu_seconds']:.1f} s for {record['fires']:,} fires = "
        f"{'—' if cpu is None else f'{cpu * 1000:.1f} ms'} a fire; at most {record['peak_processes']} processes "
        f"under the scheduler(s); load average max {record['load_max']:.1f} (mean {record['load_mean']:.1f}, "
        f"{record['load_before']:.1f} before); peak RSS of the tree(s) {record['peak_tree_rss_kib'] / 1024:.0f} MB "
        f"(PSS {record['peak_tree_pss_kib'] / 1024:.0f} MB), scheduler {record['peak_scheduler_rss_kib'] / 1024:.0f} MB"
    )


def fmt_s(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds:.1f} s"


def judge_work(fig: Figure, records: list[dict]) -> None:
    """Met: at every size, every slot succeeded within its minute and once, ≤ 50 ms CPU a fire, and the
    processes under the scheduler stayed within its concurrency (a runner and its job each)."""
    from cronjobs import conf

    limit = conf.default_max_concurrent()
    largest = records[-1]
    fig.ours, fig.baseline, fig.runs = largest["cpu_per_fire"], largest["baseline_cpu_per_fire"], 1
    fig.met = all(
        r["on_time"] == r["expected"] == r["rows"] == r["slots"]
        and r["cpu_per_fire"] is not None
        and r["cpu_per_fire"] <= TARGET_CPU_PER_FIRE
        and r["peak_processes"] <= 2 * limit
        for r in records
    )
    fig.extra = {
        "records": records,
        "max_concurrent": limit,
        "ratio_text": (
            f"{largest['on_time']:,}/{largest['expected']:,} on time; "
            f"{(largest['cpu_per_fire'] or 0) * 1000:.1f} ms a fire"
        ),
    }
    fig.memory["ours"] = {
        "size": largest["jobs"],
        "peak_kib": largest["peak_tree_rss_kib"],
        "before_kib": None,
        "method": "sum of VmRSS over the scheduler's process tree, sampled every 0.25 s",
    }
    fig.extra["limit_ms"] = TARGET_CPU_PER_FIRE * 1000  # drawn on the plot
    fig.note = f"at {largest['jobs']:,} jobs for {largest['minutes']} minutes: " + summary(largest)
    if fig.points and len(fig.points) >= 2:
        fig.growth_met = fig.points[-1]["ratio"] <= fig.points[0]["ratio"] * 1.25


def figure_13(ctx) -> list:
    return [figure_13a(ctx), figure_13b(ctx)]


# bench/worker.py runs these after figure 8 (13 is 13a-13b, 15 is 15a-15b).
FIGURES = {"10": figure_10, "11": figure_11, "12": figure_12, "13": figure_13, "14": figure_14, "15": figure_15}
