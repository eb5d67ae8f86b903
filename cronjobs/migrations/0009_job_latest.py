"""Each job's last run and last success kept by the database: health, the admin, `crontab show` and
/metrics read one row a job (cronjobs_joblatest), not a scan of the history.

Triggers on cronjobs_jobrun keep the row equal to what the history says:
- a run inserted (not a skip) becomes the job's last run (id, status, start) if it is the newest; a
  finish updates the newest in place; a succeeded run's finish becomes the last success if it is later
  (the common path: one upsert by primary key);
- an update or a delete that takes the last run or the last success away (a row turned into a skip,
  a success edited into a failure, retention deleting a long-failing job's last success) looks both up
  again in the history; a job with no run left (skips aside) loses its row.
The existing history is added once, in the same transaction that creates the triggers (PostgreSQL
locks the table for it). Going back drops the triggers and the table.

SQLite drops a table's triggers when a migration rebuilds it: tests/cronjobs/test_job_latest.py checks
they exist after every migration.
"""

from django.db import migrations, models

SENTINEL = -1  # a looked-up job with no run left: its row is deleted in the next statement


def fast_path(vendor: str) -> str:
    """NEW (not a skip) as the job's last run when it is the newest (a finish updates the newest in place),
    and its finish as the last success when it succeeded later than the one known. SET expressions read
    the row as it was, so each compares with the old last_id."""
    t = "cronjobs_joblatest." if vendor == "postgresql" else ""
    newest = f"excluded.last_id >= {t}last_id"
    return (
        "INSERT INTO cronjobs_joblatest (job_name, last_id, last_status, last_started_at, last_success_at) "
        "SELECT NEW.job_name, NEW.id, NEW.status, NEW.started_at, "
        "CASE WHEN NEW.status = 'succeeded' THEN NEW.finished_at END "
        "WHERE NEW.status <> 'skipped' "
        "ON CONFLICT (job_name) DO UPDATE SET "
        f"last_id = CASE WHEN {newest} THEN excluded.last_id ELSE {t}last_id END, "
        f"last_status = CASE WHEN {newest} THEN excluded.last_status ELSE {t}last_status END, "
        f"last_started_at = CASE WHEN {newest} THEN excluded.last_started_at ELSE {t}last_started_at END, "
        f"last_success_at = CASE WHEN {t}last_success_at IS NULL OR excluded.last_success_at > {t}last_success_at "
        f"THEN COALESCE(excluded.last_success_at, {t}last_success_at) ELSE {t}last_success_at END"
    )


NEWEST = "FROM cronjobs_jobrun WHERE job_name = OLD.job_name AND status <> 'skipped' ORDER BY id DESC LIMIT 1"


def look_up_again(when: str) -> list[str]:
    """OLD's job's last run and last success from the history, where `when` says OLD held one of them."""
    return [
        "UPDATE cronjobs_joblatest SET "
        f"last_id = COALESCE((SELECT id {NEWEST}), {SENTINEL}), "
        f"last_status = COALESCE((SELECT status {NEWEST}), last_status), "
        f"last_started_at = COALESCE((SELECT started_at {NEWEST}), last_started_at), "
        "last_success_at = (SELECT MAX(finished_at) FROM cronjobs_jobrun WHERE job_name = OLD.job_name "
        "AND status = 'succeeded') "
        f"WHERE job_name = OLD.job_name AND ({when})",
        f"DELETE FROM cronjobs_joblatest WHERE job_name = OLD.job_name AND last_id = {SENTINEL}",
    ]


HELD_LAST_SUCCESS = "OLD.status = 'succeeded' AND last_success_at = OLD.finished_at"
# A delete of the last run or the last success.
DELETED = f"last_id = OLD.id OR ({HELD_LAST_SUCCESS})"
# An update that takes the last run or the last success away (a finish, running -> succeeded, does not).
UPDATED = (
    "(last_id = OLD.id AND (NEW.status = 'skipped' OR NEW.job_name <> OLD.job_name)) OR "
    f"({HELD_LAST_SUCCESS} AND (NEW.status <> 'succeeded' OR NEW.finished_at IS NULL "
    "OR NEW.finished_at < OLD.finished_at OR NEW.job_name <> OLD.job_name))"
)


def _statements(statements: list[str]) -> str:
    return ";\n        ".join(statements) + ";"


POSTGRES_FORWARD = [
    f"""CREATE FUNCTION cronjobs_jobrun_latest() RETURNS trigger AS $$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            {_statements(look_up_again(DELETED))}
            RETURN NULL;
        END IF;
        IF TG_OP = 'UPDATE' THEN
            {_statements(look_up_again(UPDATED))}
        END IF;
        IF NEW.status <> 'skipped' THEN
            {fast_path("postgresql")};
        END IF;
        RETURN NULL;
    END $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER cronjobs_jobrun_latest_insert AFTER INSERT ON cronjobs_jobrun
    FOR EACH ROW WHEN (NEW.status <> 'skipped') EXECUTE FUNCTION cronjobs_jobrun_latest()""",
    """CREATE TRIGGER cronjobs_jobrun_latest_update AFTER UPDATE ON cronjobs_jobrun
    FOR EACH ROW WHEN ((OLD.job_name, OLD.status, OLD.started_at, OLD.finished_at) IS DISTINCT FROM
    (NEW.job_name, NEW.status, NEW.started_at, NEW.finished_at)) EXECUTE FUNCTION cronjobs_jobrun_latest()""",
    """CREATE TRIGGER cronjobs_jobrun_latest_delete AFTER DELETE ON cronjobs_jobrun
    FOR EACH ROW EXECUTE FUNCTION cronjobs_jobrun_latest()""",
]
POSTGRES_REVERSE = [
    "DROP TRIGGER IF EXISTS cronjobs_jobrun_latest_insert ON cronjobs_jobrun",
    "DROP TRIGGER IF EXISTS cronjobs_jobrun_latest_update ON cronjobs_jobrun",
    "DROP TRIGGER IF EXISTS cronjobs_jobrun_latest_delete ON cronjobs_jobrun",
    "DROP FUNCTION IF EXISTS cronjobs_jobrun_latest()",
]
SQLITE_FORWARD = [
    f"""CREATE TRIGGER cronjobs_jobrun_latest_insert AFTER INSERT ON cronjobs_jobrun
    WHEN NEW.status <> 'skipped'
    BEGIN {fast_path("sqlite")}; END""",
    f"""CREATE TRIGGER cronjobs_jobrun_latest_update AFTER UPDATE ON cronjobs_jobrun
    WHEN OLD.job_name IS NOT NEW.job_name OR OLD.status IS NOT NEW.status OR OLD.started_at IS NOT NEW.started_at
    OR OLD.finished_at IS NOT NEW.finished_at
    BEGIN
        {_statements(look_up_again(UPDATED))}
        {fast_path("sqlite")};
    END""",
    f"""CREATE TRIGGER cronjobs_jobrun_latest_delete AFTER DELETE ON cronjobs_jobrun
    BEGIN
        {_statements(look_up_again(DELETED))}
    END""",
]
SQLITE_REVERSE = [
    "DROP TRIGGER IF EXISTS cronjobs_jobrun_latest_insert",
    "DROP TRIGGER IF EXISTS cronjobs_jobrun_latest_update",
    "DROP TRIGGER IF EXISTS cronjobs_jobrun_latest_delete",
]
BACKFILL = (
    "INSERT INTO cronjobs_joblatest (job_name, last_id, last_status, last_started_at, last_success_at) "
    "SELECT r.job_name, r.id, r.status, r.started_at, (SELECT MAX(s.finished_at) FROM cronjobs_jobrun s "
    "WHERE s.job_name = r.job_name AND s.status = 'succeeded') FROM cronjobs_jobrun r "
    "WHERE r.id IN (SELECT MAX(id) FROM cronjobs_jobrun WHERE status <> 'skipped' GROUP BY job_name)"
)


def _vendor(schema_editor) -> str:
    vendor = schema_editor.connection.vendor
    if vendor not in ("postgresql", "sqlite"):
        raise NotImplementedError(f"cronjobs needs its last-run triggers for {vendor}; only PostgreSQL and SQLite")
    return vendor


def create_triggers_and_add_history(apps, schema_editor):
    vendor = _vendor(schema_editor)
    for statement in POSTGRES_FORWARD if vendor == "postgresql" else SQLITE_FORWARD:
        schema_editor.execute(statement, params=None)
    if vendor == "postgresql":  # no run is written between the look-up below and the triggers taking over
        schema_editor.execute("LOCK TABLE cronjobs_jobrun IN SHARE ROW EXCLUSIVE MODE", params=None)
    schema_editor.execute(BACKFILL, params=None)


def drop_triggers(apps, schema_editor):
    vendor = _vendor(schema_editor)
    for statement in POSTGRES_REVERSE if vendor == "postgresql" else SQLITE_REVERSE:
        schema_editor.execute(statement, params=None)


class Migration(migrations.Migration):
    dependencies = [("cronjobs", "0008_run_totals")]

    operations = [
        migrations.CreateModel(
            name="JobLatest",
            fields=[
                ("job_name", models.CharField(max_length=100, primary_key=True, serialize=False)),
                ("last_id", models.BigIntegerField()),
                ("last_status", models.CharField(max_length=20)),
                ("last_started_at", models.DateTimeField()),
                ("last_success_at", models.DateTimeField(null=True)),
            ],
        ),
        migrations.RunPython(create_triggers_and_add_history, drop_triggers),
    ]
