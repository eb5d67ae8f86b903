"""JobLatest: each job's last run and last success, kept by database triggers (migration 0009), which
health, the admin, `crontab show` and /metrics read instead of scanning the history. It must always
say what the history says, whatever is inserted, finished, edited or deleted."""

import importlib
from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Max, Q
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from cronjobs import health, runner
from cronjobs.models import JobLatest, JobRun
from cronjobs.reaper import reap
from cronjobs.retention import prune_job_runs
from tests.cronjobs.conftest import jobrun_triggers
from tests.factories import JobRunFactory

JOBS = "tests.cronjobs.jobs"
migration = importlib.import_module("cronjobs.migrations.0009_job_latest")
STATUSES = ["running", "succeeded", "failed", "skipped", "timed_out", "interrupted", "missed"]


def kept() -> dict:
    """{job: (last id, its status, its start, last success)} as the triggers keep them."""
    return {
        row.job_name: (row.last_id, row.last_status, row.last_started_at, row.last_success_at)
        for row in JobLatest.objects.all()
    }


def from_history() -> dict:
    """The same, asked of the history itself (what snapshot() asked before JobLatest)."""
    found = {}
    rows = JobRun.objects.values("job_name").annotate(
        last_id=Max("id", filter=~Q(status="skipped")), last_success=Max("finished_at", filter=Q(status="succeeded"))
    )
    for row in rows:
        if row["last_id"] is None:
            continue
        last = JobRun.objects.get(pk=row["last_id"])
        found[row["job_name"]] = (last.pk, last.status, last.started_at, row["last_success"])
    return found


def finished(job: str, status: str, minutes: int, **fields) -> JobRun:
    started = timezone.now() - timedelta(minutes=minutes)
    return JobRunFactory(job_name=job, status=status, started_at=started, **fields)


@pytest.mark.django_db
class TestTriggers:
    def test_a_new_run_is_the_last_and_a_later_success_the_last_success(self):
        first = finished("a", "succeeded", 3)
        finished("a", "skipped", 2)  # a skip is never the last run
        failed = finished("a", "failed", 1)
        assert kept() == from_history()
        assert kept()["a"][:2] == (failed.pk, "failed") and kept()["a"][3] == first.finished_at

    def test_a_run_finishing_through_the_runner_updates_its_status_in_place(self, settings):
        settings.CRONJOBS = [("* * * * *", f"{JOBS}.succeed")]
        record = runner.run("succeed", trigger="manual")
        record.refresh_from_db()
        assert kept() == from_history() == {"succeed": (record.pk, "succeeded", record.started_at, record.finished_at)}

    def test_the_reaper_closing_a_dead_run_is_seen(self):
        JobRunFactory(job_name="gone", status="running", host="elsewhere", pid=1, lease_expires_at=timezone.now())
        assert kept()["gone"][1] == "running"
        reap()
        assert kept()["gone"][1] == "interrupted" and kept() == from_history()

    def test_deleting_the_last_run_or_the_last_success_looks_them_up_again(self):
        old_success = finished("a", "succeeded", 5)
        new_success = finished("a", "succeeded", 3)
        last = finished("a", "failed", 1)
        last.delete()
        assert kept() == from_history() and kept()["a"][0] == new_success.pk
        new_success.delete()
        assert kept() == from_history() and kept()["a"][3] == old_success.finished_at
        old_success.delete()
        assert kept() == from_history() == {}

    def test_an_edit_that_takes_the_success_away_looks_it_up_again(self):
        success = finished("a", "succeeded", 2)
        JobRun.objects.filter(pk=success.pk).update(status="failed")
        assert kept() == from_history() and kept()["a"][3] is None
        JobRun.objects.filter(pk=success.pk).update(status="skipped")
        assert kept() == from_history() == {}

    def test_retention_and_deleting_everything(self):
        finished("a", "succeeded", 60 * 24 * 40)
        recent = finished("a", "failed", 1)
        prune_job_runs(days=30)
        assert kept() == from_history() == {"a": (recent.pk, "failed", recent.started_at, None)}
        JobRun.objects.all().delete()
        assert kept() == {}

    def test_the_triggers_exist_after_every_migration(self):
        # SQLite drops a table's triggers when a migration rebuilds it.
        assert {f"cronjobs_jobrun_latest_{event}" for event in ("insert", "update", "delete")} <= jobrun_triggers()


# One operation on the history: insert a run, change a run's status (and finish), or delete a run.
OPERATION = st.one_of(
    st.tuples(st.just("insert"), st.sampled_from("ab"), st.sampled_from(STATUSES), st.integers(0, 50)),
    st.tuples(st.just("update"), st.integers(0, 20), st.sampled_from(STATUSES), st.integers(0, 50)),
    st.tuples(st.just("delete"), st.integers(0, 20)),
)


@pytest.mark.django_db
@hypothesis_settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(OPERATION, max_size=12))
def test_it_always_says_what_the_history_says(operations):
    JobRun.objects.all().delete()
    start = timezone.now().replace(microsecond=0) - timedelta(hours=2)
    for operation in operations:
        rows = list(JobRun.objects.order_by("id"))
        if operation[0] == "insert":
            _, job, status, minute = operation
            JobRunFactory(job_name=job, status=status, exclusive=False, started_at=start + timedelta(minutes=minute))
        elif rows and operation[0] == "update":
            _, index, status, minute = operation
            row = rows[index % len(rows)]
            finish = None if status == "running" else start + timedelta(minutes=minute, seconds=30)
            JobRun.objects.filter(pk=row.pk).update(status=status, finished_at=finish, exclusive=False)
        elif rows and operation[0] == "delete":
            rows[operation[1] % len(rows)].delete()
        assert kept() == from_history(), operation


@pytest.mark.django_db
def test_snapshot_reads_the_same_states_as_before(settings):
    # The states health gives from JobLatest, for jobs in each situation, against what the history says.
    settings.CRONJOBS = [("* * * * *", f"{JOBS}.succeed", {"name": name}) for name in ("ok", "failing", "new", "late")]
    finished("ok", "succeeded", 0)
    finished("failing", "succeeded", 3)
    finished("failing", "failed", 0)
    finished("late", "succeeded", 30)
    states = {item.job.name: item.state for item in health.snapshot()}
    assert states == {"ok": "ok", "failing": "failing", "new": "new", "late": "late"}


@pytest.mark.django_db(transaction=True)
def test_the_migration_adds_the_kept_history():
    executor = MigrationExecutor(connection)
    before, after = [("cronjobs", "0008_run_totals")], [("cronjobs", "0009_job_latest")]
    executor.migrate(before)
    try:
        old = executor.loader.project_state(before).apps.get_model("cronjobs", "JobRun")
        now = timezone.now()
        made = {}
        for job, status, minutes in (
            ("a", "succeeded", 3),
            ("a", "failed", 2),
            ("a", "skipped", 1),
            ("b", "skipped", 1),
        ):
            made[(job, status)] = old.objects.create(
                job_name=job,
                status=status,
                trigger="work",
                host="h",
                started_at=now - timedelta(minutes=minutes),
                finished_at=now - timedelta(minutes=minutes) + timedelta(seconds=5),
            )
        executor.loader.build_graph()
        executor.migrate(after)
        failed, succeeded = made[("a", "failed")], made[("a", "succeeded")]
        assert kept() == {"a": (failed.pk, "failed", failed.started_at, succeeded.finished_at)}  # b: only a skip
    finally:
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
