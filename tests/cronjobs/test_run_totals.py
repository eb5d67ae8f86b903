"""RunTotal: the run totals database triggers keep as runs finish, which /metrics reads instead of the history."""

import importlib
from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from cronjobs import metrics, runner
from cronjobs.models import JobRun, RunTotal
from cronjobs.reaper import reap
from cronjobs.retention import prune_job_runs
from tests.cronjobs.conftest import jobrun_triggers
from tests.factories import JobRunFactory

JOBS = "tests.cronjobs.jobs"
migration = importlib.import_module("cronjobs.migrations.0008_run_totals")


def totals() -> dict:
    """{(job, status, bucket): (count, seconds)} with the zero rows an edit can leave left out."""
    return {
        (t.job_name, t.status, t.bucket): (t.count, pytest.approx(t.duration_seconds))
        for t in RunTotal.objects.all()
        if t.count
    }


def run(job: str, status: str, seconds: float | None, **fields) -> JobRun:
    took = None if seconds is None else timedelta(seconds=seconds)
    return JobRunFactory(job_name=job, status=status, took=took or timedelta(0), **fields)


@pytest.mark.django_db
class TestTriggers:
    def test_a_finished_run_is_counted_in_its_status_and_duration_bucket(self):
        run("a", "succeeded", 0.5)
        run("a", "succeeded", 1)  # a bound is in its bucket: "at or under"
        run("a", "failed", 1.5)
        run("a", "skipped", 0)
        run("b", "timed_out", 9000)  # longer than the longest bound
        assert totals() == {
            ("a", "succeeded", 0): (2, 1.5),
            ("a", "failed", 1): (1, 1.5),
            ("a", "skipped", 0): (1, 0),
            ("b", "timed_out", len(metrics.DURATION_BUCKETS)): (1, 9000),
        }

    def test_a_running_row_counts_when_it_finishes_through_the_runner(self, settings):
        settings.CRONJOBS = [("* * * * *", f"{JOBS}.succeed")]
        record = runner.run("succeed", trigger="manual")
        record.refresh_from_db()
        assert record.status == "succeeded"
        assert totals() == {("succeed", "succeeded", 0): (1, record.duration.total_seconds())}

    def test_a_dead_run_closed_by_the_reaper_counts_as_interrupted(self):
        JobRunFactory(job_name="gone", status="running", host="elsewhere", pid=1, lease_expires_at=timezone.now())
        assert totals() == {}
        [closed] = reap()
        assert totals() == {("gone", "interrupted", 0): (1, closed.duration.total_seconds())}

    def test_an_edited_status_moves_the_run_between_totals_and_a_deletion_keeps_it(self):
        record = run("a", "failed", 2)
        JobRun.objects.filter(pk=record.pk).update(status="succeeded")
        assert totals() == {("a", "succeeded", 1): (1, 2)}
        JobRun.objects.all().delete()
        assert totals() == {("a", "succeeded", 1): (1, 2)}

    def test_retention_deletes_history_and_the_totals_stay(self):
        run("a", "succeeded", 3, started_at=timezone.now() - timedelta(days=40))
        before = totals()
        assert prune_job_runs(days=30) == "Deleted 1 job runs older than 30 days"
        assert totals() == before == {("a", "succeeded", 1): (1, 3)}

    def test_the_triggers_exist_after_every_migration(self):
        # SQLite drops a table's triggers when a migration rebuilds it (0007 had to create one again).
        assert {"cronjobs_jobrun_totals_insert", "cronjobs_jobrun_totals_update"} <= jobrun_triggers()


def test_the_migration_s_bounds_are_the_metrics_buckets():
    assert migration.BOUNDS == metrics.DURATION_BUCKETS


@pytest.mark.django_db(transaction=True)
def test_the_migration_adds_the_kept_history_and_the_pruned_totals():
    executor = MigrationExecutor(connection)
    before, after = [("cronjobs", "0007_leases_clock_gaps_schedulers")], [("cronjobs", "0008_run_totals")]
    executor.migrate(before)
    try:
        old = executor.loader.project_state(before).apps
        OldRun, Pruned = old.get_model("cronjobs", "JobRun"), old.get_model("cronjobs", "PrunedRunTotal")
        now = timezone.now()
        for status, seconds in (("succeeded", 0.5), ("succeeded", 4), ("failed", 20), ("running", None)):
            duration = None if seconds is None else timedelta(seconds=seconds)
            OldRun.objects.create(
                job_name="a", status=status, trigger="work", host="h", started_at=now, duration=duration
            )
        # cumulative buckets as 0004 stored them: 3 runs, two at or under 1 s, one over 7200 s
        Pruned.objects.create(job_name="a", status="succeeded", count=3, duration_seconds=9001.0, buckets=[2] * 11)
        Pruned.objects.create(job_name="b", status="failed", count=2, duration_seconds=4.0, buckets=[1, 2])  # older
        executor.loader.build_graph()
        executor.migrate(after)
        assert totals() == {
            ("a", "succeeded", 0): (3, 9001.5),
            ("a", "succeeded", 1): (1, 4),
            ("a", "succeeded", len(metrics.DURATION_BUCKETS)): (1, 0),
            ("a", "failed", 3): (1, 20),
            ("b", "failed", len(metrics.DURATION_BUCKETS)): (2, 4),
        }
    finally:
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
