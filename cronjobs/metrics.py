"""Prometheus metrics of every job, computed from the run history on each scrape (right across processes and hosts).

A custom collector, not process-local counters: whichever process or machine ran a job, the run
history in the database is the one record, so any web process answers the same. Four queries per
scrape whatever the number of jobs and runs (two for the health snapshot, one aggregate of the
history, one of what retention pruned, so counters never go down when old runs are deleted).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

from django.db.models import Count, Q, Sum
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from cronjobs import health
from cronjobs.alerts import ALERT_STATUSES
from cronjobs.models import JobRun, PrunedRunTotal

# Upper bounds (seconds) of the duration histogram: cron jobs take seconds to hours.
DURATION_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)
STATUSES = tuple(JobRun.Status.values)
# Runs that executed the job, so have a duration worth a histogram (not skips, not missed slots).
EXECUTED = (JobRun.Status.SUCCEEDED, JobRun.Status.FAILED, JobRun.Status.TIMED_OUT, JobRun.Status.INTERRUPTED)


class JobCollector(Collector):
    """cronjobs_job_* metrics for every job in CRONJOBS."""

    def collect(self):
        states = health.snapshot()
        names = [state.job.name for state in states]
        stats = run_stats(JobRun.objects.filter(job_name__in=names))
        _add_pruned(stats, PrunedRunTotal.objects.filter(job_name__in=names))
        families = _families()
        for state in states:
            _add_job(families, state, stats.get(state.job.name, {}))
        return list(families.values())


Stats = dict[str, dict[str, dict]]  # {job: {status: {"count": n, "duration": seconds, "buckets": [n, ...]}}}


def run_stats(runs) -> Stats:
    """Counts, total duration and duration buckets of the finished runs in `runs`, per job and status. One query."""
    buckets = {
        f"le_{i}": Count("id", filter=Q(duration__lte=timedelta(seconds=b))) for i, b in enumerate(DURATION_BUCKETS)
    }
    rows = (
        runs.exclude(status=JobRun.Status.RUNNING)
        .values("job_name", "status")
        .annotate(
            count=Count("id"),
            total_duration=Sum("duration"),
            **buckets,
        )
        .order_by()
    )
    stats: Stats = defaultdict(dict)
    for row in rows:
        per_status = stats[row["job_name"]]
        seconds = row["total_duration"].total_seconds() if row["total_duration"] is not None else 0.0
        counts = [row[f"le_{i}"] for i in range(len(DURATION_BUCKETS))]
        per_status[row["status"]] = {"count": row["count"], "duration": seconds, "buckets": counts}
    return stats


def _add_pruned(stats: Stats, totals) -> None:
    for total in totals:
        into = stats[total.job_name].setdefault(
            total.status, {"count": 0, "duration": 0.0, "buckets": [0] * len(DURATION_BUCKETS)}
        )
        into["count"] += total.count
        into["duration"] += total.duration_seconds
        into["buckets"] = [a + b for a, b in zip(into["buckets"], _fit(total.buckets), strict=True)]


def _fit(buckets: list[int]) -> list[int]:
    # Stored under an older DURATION_BUCKETS: counted in +Inf only, never lost.
    return buckets if len(buckets) == len(DURATION_BUCKETS) else [0] * len(DURATION_BUCKETS)


def fold_into_totals(runs) -> None:
    """Add `runs` (about to be deleted by retention, in the caller's transaction) to PrunedRunTotal."""
    for job_name, per_status in run_stats(runs).items():
        for status, values in per_status.items():
            total, _ = PrunedRunTotal.objects.select_for_update().get_or_create(job_name=job_name, status=status)
            total.count += values["count"]
            total.duration_seconds += values["duration"]
            total.buckets = [a + b for a, b in zip(_fit(total.buckets), values["buckets"], strict=True)]
            total.save()


def _families() -> dict[str, object]:
    job, status = ["job"], ["job", "status"]
    return {
        "last_success": GaugeMetricFamily(
            "cronjobs_job_last_success_timestamp_seconds", "When the job's last successful run finished.", labels=job
        ),
        "last_run": GaugeMetricFamily(
            "cronjobs_job_last_run_timestamp_seconds", "When the job's last run (not a skip) started.", labels=job
        ),
        "last_status": GaugeMetricFamily(
            "cronjobs_job_last_status",
            "1 for the status of the job's last run (not a skip), 0 for the others.",
            labels=status,
        ),
        "runs": CounterMetricFamily(
            "cronjobs_job_runs", "Finished runs in the kept run history, by status (skips included).", labels=status
        ),
        "failures": CounterMetricFamily(
            "cronjobs_job_failures",
            "Failed, timed-out, missed and interrupted runs in the kept run history.",
            labels=job,
        ),
        "duration": HistogramMetricFamily(
            "cronjobs_job_duration_seconds", "How long the job's executed runs took.", labels=job
        ),
        "late": GaugeMetricFamily("cronjobs_job_late", "1 when /health/cron/ reports the job late.", labels=job),
        "failing": GaugeMetricFamily(
            "cronjobs_job_failing", "1 when /health/cron/ reports the job failing.", labels=job
        ),
        "paused": GaugeMetricFamily("cronjobs_job_paused", "1 when the job is paused.", labels=job),
    }


def _add_job(families: dict, state: health.JobHealth, stats: dict[str, dict]) -> None:
    name = state.job.name
    if state.last_success is not None:
        families["last_success"].add_metric([name], state.last_success.timestamp())
    last = state.last_run
    if last is not None:
        families["last_run"].add_metric([name], last.started_at.timestamp())
        for status in STATUSES:
            families["last_status"].add_metric([name, status], 1.0 if last.status == status else 0.0)
    for status in STATUSES:
        families["runs"].add_metric([name, status], stats.get(status, {}).get("count", 0))
    families["failures"].add_metric([name], sum(stats.get(s, {}).get("count", 0) for s in ALERT_STATUSES))
    executed = [stats[s] for s in EXECUTED if s in stats]
    cumulative = [sum(s["buckets"][i] for s in executed) for i in range(len(DURATION_BUCKETS))]
    buckets = [(floatToGoString(bound), value) for bound, value in zip(DURATION_BUCKETS, cumulative, strict=True)]
    buckets.append(("+Inf", sum(s["count"] for s in executed)))
    families["duration"].add_metric([name], buckets, sum_value=sum(s["duration"] for s in executed))
    families["late"].add_metric([name], 1.0 if state.state == health.State.LATE else 0.0)
    families["failing"].add_metric([name], 1.0 if state.state == health.State.FAILING else 0.0)
    families["paused"].add_metric([name], 1.0 if state.pause is not None else 0.0)


def exposition() -> bytes:
    """The Prometheus text format of every job's metrics (what GET /metrics answers)."""
    from prometheus_client import generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(JobCollector())
    return generate_latest(registry)
