"""Run totals kept by the database: /metrics reads one row per job, status and duration bucket, not the history.

Two triggers on cronjobs_jobrun add a run to cronjobs_runtotal when it is inserted finished (a skip, a
missed slot, a gap) or when its row turns from `running` to finished (the runner's outcome, the
reaper closing a dead run); an edit of a finished row's status or duration moves it between totals.
Deleting runs (retention) leaves the totals alone, so counters never go down; what PrunedRunTotal
held is moved here and the table dropped. The existing history is added once, below, in the same
transaction that creates the triggers (PostgreSQL locks the table for it, so no run is counted twice
or lost). Going back drops the triggers and the totals: the older code counts the kept history only.

BOUNDS are cronjobs.metrics.DURATION_BUCKETS when this was written (migrations are frozen history; a
test holds the two equal): changing the buckets needs a migration that rewrites these triggers.
SQLite drops a table's triggers when a migration rebuilds it: tests/cronjobs/test_metrics.py checks
they exist after every migration.
"""

from django.db import migrations, models

BOUNDS = (1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)  # seconds
OVER = len(BOUNDS)  # the bucket of longer runs and runs without a duration


def bucket_sql(duration: str, vendor: str) -> str:
    """The bucket index of a run's duration: PostgreSQL stores an interval, SQLite microseconds."""
    if vendor == "postgresql":
        whens = " ".join(f"WHEN {duration} <= interval '{b} seconds' THEN {i}" for i, b in enumerate(BOUNDS))
    else:
        whens = " ".join(f"WHEN {duration} <= {b * 1_000_000} THEN {i}" for i, b in enumerate(BOUNDS))
    return f"(CASE WHEN {duration} IS NULL THEN {OVER} {whens} ELSE {OVER} END)"


def seconds_sql(duration: str, vendor: str) -> str:
    if vendor == "postgresql":
        return f"COALESCE(EXTRACT(EPOCH FROM {duration})::double precision, 0)"
    return f"(COALESCE({duration}, 0) / 1000000.0)"


def upsert(row: str, vendor: str, *, when: str = "") -> str:
    """Add one run (`row`: NEW or OLD) to its total."""
    target = "cronjobs_runtotal." if vendor == "postgresql" else ""
    source = (
        f"VALUES ({row}.job_name, {row}.status, {bucket_sql(f'{row}.duration', vendor)}, 1, "
        f"{seconds_sql(f'{row}.duration', vendor)})"
    )
    if when:  # SQLite: a conditional insert inside a trigger is an INSERT ... SELECT ... WHERE
        source = source.replace("VALUES (", "SELECT ", 1)[:-1] + f" WHERE {when}"
    return (
        f"INSERT INTO cronjobs_runtotal (job_name, status, bucket, count, duration_seconds) {source} "
        f"ON CONFLICT (job_name, status, bucket) DO UPDATE SET count = {target}count + 1, "
        f"duration_seconds = {target}duration_seconds + excluded.duration_seconds"
    )


def take_back(row: str, vendor: str) -> str:
    """Remove one finished run (`row`) from its total: its status or duration was edited."""
    return (
        f"UPDATE cronjobs_runtotal SET count = count - 1, duration_seconds = duration_seconds - "
        f"{seconds_sql(f'{row}.duration', vendor)} WHERE job_name = {row}.job_name AND status = {row}.status "
        f"AND bucket = {bucket_sql(f'{row}.duration', vendor)}"
    )


CHANGED = "(OLD.job_name, OLD.status, OLD.duration) IS DISTINCT FROM (NEW.job_name, NEW.status, NEW.duration)"

POSTGRES_FORWARD = [
    f"""CREATE FUNCTION cronjobs_jobrun_totals() RETURNS trigger AS $$
    BEGIN
        IF TG_OP = 'UPDATE' AND OLD.status <> 'running' THEN
            {take_back("OLD", "postgresql")};
        END IF;
        IF NEW.status <> 'running' THEN
            {upsert("NEW", "postgresql")};
        END IF;
        RETURN NULL;
    END $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER cronjobs_jobrun_totals_insert AFTER INSERT ON cronjobs_jobrun
    FOR EACH ROW WHEN (NEW.status <> 'running') EXECUTE FUNCTION cronjobs_jobrun_totals()""",
    f"""CREATE TRIGGER cronjobs_jobrun_totals_update AFTER UPDATE ON cronjobs_jobrun
    FOR EACH ROW WHEN ({CHANGED}) EXECUTE FUNCTION cronjobs_jobrun_totals()""",
]
POSTGRES_REVERSE = [
    "DROP TRIGGER IF EXISTS cronjobs_jobrun_totals_insert ON cronjobs_jobrun",
    "DROP TRIGGER IF EXISTS cronjobs_jobrun_totals_update ON cronjobs_jobrun",
    "DROP FUNCTION IF EXISTS cronjobs_jobrun_totals()",
]
SQLITE_FORWARD = [
    f"""CREATE TRIGGER cronjobs_jobrun_totals_insert AFTER INSERT ON cronjobs_jobrun
    WHEN NEW.status <> 'running'
    BEGIN {upsert("NEW", "sqlite")}; END""",
    f"""CREATE TRIGGER cronjobs_jobrun_totals_update AFTER UPDATE ON cronjobs_jobrun
    WHEN OLD.job_name IS NOT NEW.job_name OR OLD.status IS NOT NEW.status OR OLD.duration IS NOT NEW.duration
    BEGIN
        {take_back("OLD", "sqlite")} AND OLD.status <> 'running';
        {upsert("NEW", "sqlite", when="NEW.status <> 'running'")};
    END""",
]
SQLITE_REVERSE = [
    "DROP TRIGGER IF EXISTS cronjobs_jobrun_totals_insert",
    "DROP TRIGGER IF EXISTS cronjobs_jobrun_totals_update",
]


def backfill_sql(vendor: str) -> str:
    bucket = bucket_sql("duration", vendor)
    return (
        "INSERT INTO cronjobs_runtotal (job_name, status, bucket, count, duration_seconds) "
        f"SELECT job_name, status, {bucket}, COUNT(*), SUM({seconds_sql('duration', vendor)}) "
        f"FROM cronjobs_jobrun WHERE status <> 'running' GROUP BY job_name, status, {bucket}"
    )


def _vendor(schema_editor) -> str:
    vendor = schema_editor.connection.vendor
    if vendor not in ("postgresql", "sqlite"):
        raise NotImplementedError(f"cronjobs needs its run-total triggers for {vendor}; only PostgreSQL and SQLite")
    return vendor


def create_triggers_and_add_history(apps, schema_editor):
    vendor = _vendor(schema_editor)
    for statement in POSTGRES_FORWARD if vendor == "postgresql" else SQLITE_FORWARD:
        schema_editor.execute(statement, params=None)
    if vendor == "postgresql":  # no run is written between the count below and the triggers taking over
        schema_editor.execute("LOCK TABLE cronjobs_jobrun IN SHARE ROW EXCLUSIVE MODE", params=None)
    schema_editor.execute(backfill_sql(vendor), params=None)
    add_pruned_totals(apps)


def add_pruned_totals(apps):
    """PrunedRunTotal's cumulative buckets, as runs per bucket (older bucket lists: all in OVER)."""
    PrunedRunTotal = apps.get_model("cronjobs", "PrunedRunTotal")
    RunTotal = apps.get_model("cronjobs", "RunTotal")
    for pruned in PrunedRunTotal.objects.all():
        cumulative = pruned.buckets if len(pruned.buckets) == len(BOUNDS) else [0] * len(BOUNDS)
        per_bucket = [b - a for a, b in zip([0, *cumulative], cumulative, strict=False)]
        per_bucket.append(pruned.count - sum(per_bucket))
        # The pruned seconds go with the first non-empty bucket: only their sum is known.
        seconds = pruned.duration_seconds
        for index, count in enumerate(per_bucket):
            if not count:
                continue
            total, _ = RunTotal.objects.get_or_create(job_name=pruned.job_name, status=pruned.status, bucket=index)
            total.count += count
            total.duration_seconds += seconds
            seconds = 0.0
            total.save()


def drop_triggers(apps, schema_editor):
    vendor = _vendor(schema_editor)
    for statement in POSTGRES_REVERSE if vendor == "postgresql" else SQLITE_REVERSE:
        schema_editor.execute(statement, params=None)


class Migration(migrations.Migration):
    dependencies = [("cronjobs", "0007_leases_clock_gaps_schedulers")]

    operations = [
        migrations.CreateModel(
            name="RunTotal",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("job_name", models.CharField(max_length=100)),
                ("status", models.CharField(max_length=20)),
                ("bucket", models.PositiveSmallIntegerField()),
                ("count", models.BigIntegerField(default=0)),
                ("duration_seconds", models.FloatField(default=0.0)),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("job_name", "status", "bucket"), name="cronjobs_runtotal_one_per_bucket"
                    )
                ],
            },
        ),
        migrations.RunPython(create_triggers_and_add_history, drop_triggers),
        migrations.DeleteModel(name="PrunedRunTotal"),
    ]
